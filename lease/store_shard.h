// One shard of the Store: entries in a slot array with a free list, found through an
// open-addressing index (linear probing, backward-shift deletion), evicted by W-TinyLFU (window
// LRU + segmented LRU main region + frequency sketch) or CLOCK. Store holds the shard's mutex
// around every call; the counters alone may be read without it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "lease/clock.h"
#include "lease/frequency_sketch.h"
#include "lease/wal_position.h"

namespace corral::lease {

enum class EntryKind : uint8_t {
  kValue,     // a value
  kNotFound,  // a cached negative result: the database had no row (value is empty)
};

// Field order keeps the struct at 32 bytes.
struct EntryMeta {
  Millis filled_at = 0;         // when it was stored
  Millis fresh_until = kNever;  // kNever = no TTL; at/after this the entry is stale (or expired)
  Millis stale_until = kNever;  // >= fresh_until; at/after this the entry is gone
  uint32_t load_ms = 0;         // duration of the load that filled it; 0 for SET
  EntryKind kind = EntryKind::kValue;
  WalPosition position = 0;  // the WAL position the fill was read at; 0: unknown, and for SET
};

// Who stored an entry. Only read-through fills are subject to Store::MarkAllStaleBefore.
enum class EntryOrigin : uint8_t { kSet, kFill };

// JSON memory.policy. kTinyLfu: W-TinyLFU (Einziger, Friedman, Manes, ACM TOS 2017) as Caffeine
// has it: a new entry enters an LRU admission window (1% of the bytes by default; the Store
// resizes it by miniature simulation, lease/window_tuner.h); the window's LRU entry
// then competes with the main region's victim and is admitted only if the frequency sketch rates
// it more often used; the main region is a segmented LRU (probation, and protected = 80%). Every
// access is counted, hit or miss. kClock: one CLOCK bit per entry, second chance.
// Either may be told not to evict at all (Redis's noeviction, StoreShard::set_evict): then the
// policy's bookkeeping goes on, but only gone entries are removed to make room.
enum class EvictionPolicy : uint8_t { kTinyLfu, kClock };

// Why the store removed an entry on its own (not DEL, SET or FLUSHALL).
enum class Removal : uint8_t { kExpired, kEvicted };
// Told of each such removal, with the shard's lock held: it must be quick, copy the key if it
// keeps it, and not call into the store.
using RemovalHook = std::function<void(std::string_view key, Removal why)>;
inline constexpr std::string_view kEvictionPolicyNames[] = {"tinylfu", "clock"};

// What the policy knows of one entry (OBJECT FREQ, OBJECT IDLETIME).
struct PolicyView {
  uint32_t frequency = 0;   // the sketch's estimate (0..15); 0 under CLOCK
  Millis idle_ms = 0;       // since the last read or write, in whole seconds
  const char* region = "";  // "window", "probation", "protected"; "" under CLOCK
};

class StoreShard {
 public:
  // Bytes accounted per entry besides key and value, an estimate of what an entry really costs
  // that errs high: its slot (sizeof(Entry) = 40), its index cell (8 bytes at a load factor of
  // 3/8 to 3/4, so 11-21), a fill's trailer (FillTrailer, 28; none for SET), and the allocator's
  // header and rounding of the data block (8-23 with glibc).
  // Not included, and so the overhead beyond max_bytes: the growth slack of the slot array and
  // of the index (each at most doubles) and slots left free by deletions. The policy's own state
  // (the sketch) is taken off the budget as it grows, see set_budget.
  static constexpr size_t kEntryOverhead = 104;
  // The sketch grows with the entries to at most budget / (kEntryOverhead +
  // kAssumedKeyValueBytes) keys; it starts with room for kInitialSketchKeys.
  static constexpr size_t kAssumedKeyValueBytes = 64;
  static constexpr size_t kInitialSketchKeys = 1024;
  // The bytes an entry of these sizes counts against the budget.
  static size_t Cost(size_t key_size, size_t value_size) {
    return key_size + value_size + kEntryOverhead;
  }

  // The key hash the Store shards by and the policy counts with.
  static uint64_t HashKey(std::string_view key) { return std::hash<std::string_view>{}(key); }

  using SlotId = uint32_t;
  static constexpr SlotId kNil = UINT32_MAX;
  enum class Region : uint8_t { kNone, kWindow, kProbation, kProtected };

  // What follows a fill's value in Entry::data.
  struct [[gnu::packed]] FillTrailer {
    Millis stale_until;
    WalPosition position;
    Millis filled_at;
    uint32_t load_ms;
  };

  // 40 bytes. What a read needs (fresh_until, the sizes, the policy's links and bits) is here;
  // what only a read-through fill has (its stale time, WAL position, load time and exact fill
  // time) follows its value in `data` (FillTrailer), so that a SET entry, whose stale time is its
  // fresh time, carries none of it.
  struct Entry {
    // Key bytes, value bytes, then for a fill its FillTrailer (unaligned); null while the slot
    // is free.
    std::unique_ptr<char[]> data;
    Millis fresh_until = kNever;
    uint32_t key_size = 0;
    uint32_t value_size = 0;
    SlotId prev = kNil;  // TinyLFU: the neighbour towards the MRU end of the entry's region
    SlotId next = kNil;  // ... and towards the LRU end
    // When it was stored, in whole clock seconds: a SET entry's Age (a fill's exact time, which
    // Store::MarkAllStaleBefore compares, is in its trailer).
    uint32_t filled_s = 0;
    // Clock seconds of the last read or write, modulo 2^24 (194 days, as Redis's LRU clock):
    // OBJECT IDLETIME.
    uint32_t access_s : 24 = 0;
    EntryKind kind : 1 = EntryKind::kValue;
    EntryOrigin origin : 1 = EntryOrigin::kSet;
    Region region : 2 = Region::kNone;  // TinyLFU: which list the entry is on
    bool referenced : 1 = false;        // CLOCK bit: set by a read, cleared by the passing hand
    // TinyLFU: the sketch's estimate of this key reached its maximum since the counts were last
    // halved, so counting a read of it would change nothing (ApplyDeferred skips it, and its
    // cache miss). Cleared whenever the sketch's counts go down (ClearSaturated).
    bool saturated : 1 = false;

    bool in_use() const { return data != nullptr; }
    std::string_view key() const { return {data.get(), key_size}; }
    std::string_view value() const { return {data.get() + key_size, value_size}; }
    void touch(Millis now) { access_s = static_cast<uint32_t>(now / 1000) & kAccessMask; }
    Millis stale_until() const {
      return origin == EntryOrigin::kFill ? Trailer().stale_until : fresh_until;
    }
    // Gone at `now`: past its stale time (a live fresh entry is told by fresh_until alone).
    bool gone(Millis now) const { return now >= fresh_until && now >= stale_until(); }
    // A SET entry's stale time is its fresh time: `stale_until` is dropped.
    void set_times(Millis fresh, Millis stale) {
      fresh_until = fresh;
      if (origin == EntryOrigin::kFill) {
        FillTrailer t = Trailer();
        t.stale_until = stale;
        std::memcpy(trailer_bytes(), &t, sizeof t);
      }
    }
    EntryMeta meta() const {
      EntryMeta meta;
      meta.fresh_until = fresh_until;
      meta.stale_until = fresh_until;
      meta.kind = kind;
      if (origin == EntryOrigin::kFill) {
        const FillTrailer t = Trailer();
        meta.stale_until = t.stale_until;
        meta.filled_at = t.filled_at;
        meta.load_ms = t.load_ms;
        meta.position = t.position;
      } else {
        meta.filled_at = static_cast<Millis>(filled_s) * 1000;
      }
      return meta;
    }
    // A SET entry (origin kSet) keeps no stale time, position or load time: those of `meta`
    // are dropped.
    void set_meta(const EntryMeta& meta) {
      fresh_until = meta.fresh_until;
      kind = meta.kind;
      filled_s = static_cast<uint32_t>(meta.filled_at / 1000);
      if (origin == EntryOrigin::kFill) {
        const FillTrailer t{meta.stale_until, meta.position, meta.filled_at, meta.load_ms};
        std::memcpy(trailer_bytes(), &t, sizeof t);
      }
    }

   private:
    char* trailer_bytes() const { return data.get() + key_size + value_size; }
    FillTrailer Trailer() const {
      FillTrailer t;
      std::memcpy(&t, trailer_bytes(), sizeof t);
      return t;
    }
  };
  static constexpr uint32_t kAccessMask = (1u << 24) - 1;
  // The bytes Entry::data holds for a key and value stored by `origin`.
  static size_t DataBytes(size_t key_size, size_t value_size, EntryOrigin origin) {
    return key_size + value_size + (origin == EntryOrigin::kFill ? sizeof(FillTrailer) : 0);
  }

  StoreShard();
  StoreShard(const StoreShard&) = delete;
  StoreShard& operator=(const StoreShard&) = delete;

  // Where the hook told of expirations and evictions is published (null, or pointing at null:
  // none); it must outlive the shard.
  void set_removal_hook(const std::atomic<const RemovalHook*>* hook) { removal_hook_ = hook; }
  // Chooses the policy; only while the shard is empty, before set_budget. CLOCK by default.
  void set_policy(EvictionPolicy policy) { policy_ = policy; }
  // Changes the policy of a shard that may hold entries (CONFIG SET maxmemory-policy), with the
  // shard's share of max_bytes (`bytes`, as set_budget). What the old policy knew is dropped:
  // to CLOCK every entry starts unreferenced; to TinyLFU the sketch starts at zero and every
  // entry starts in probation (slot order). Then evicts, as Shrink, if the sketch's bytes put the
  // entries over the budget. O(slots).
  void SwitchPolicy(EvictionPolicy policy, size_t bytes, Millis now);
  // Where the store publishes the admission window's share of the budget, in permille (its
  // WindowTuner's choice); read (relaxed) on each Put, which applies a change. Null: 1%. Must
  // outlive the shard.
  void set_window_source(const std::atomic<uint32_t>* permille) { window_source_ = permille; }
  size_t window_budget() const { return window_budget_; }
  // Sets the shard's share of max_bytes. Under TinyLFU the sketch's bytes are taken off: entries
  // get budget() = bytes - policy_bytes(). The sketch has room for as many keys as the shard
  // holds (at least kInitialSketchKeys), and Put doubles it as entries come, up to what `bytes`
  // can hold (see kAssumedKeyValueBytes; that full size once a doubling comes within a factor
  // of two of it), so its memory follows the keys, not the bound; a smaller bound that cannot
  // hold it starts it anew.
  void set_budget(size_t bytes);
  size_t budget() const { return budget_; }
  EvictionPolicy policy() const { return policy_; }
  // Redis's noeviction when false: a write that does not fit in what is left of the budget, once
  // gone entries are removed, is refused (Put answers nullptr) and nothing live is evicted; a
  // smaller budget (Shrink) removes gone entries only. True (evict by the policy) by default.
  void set_evict(bool evict) { evict_ = evict; }
  bool evict() const { return evict_; }
  // Whether `need` more bytes fit, `freed` bytes (an entry about to be replaced) being given back
  // first. Always true when evicting (the policy makes room; TooLarge is the caller's check).
  // Under noeviction, first removes gone entries near the expiry cursor while they do not fit.
  bool Fits(size_t need, size_t freed, Millis now);
  // The bytes of an entry (key + value + kEntryOverhead), as accounted.
  static size_t CostOf(const Entry& entry) { return Cost(entry.key_size, entry.value_size); }
  // budget() readable without the lock (relaxed; for Store::RefreshOutOfMemory).
  size_t budget_relaxed() const { return budget_seen_.load(std::memory_order_relaxed); }
  // Bytes of the policy's own state (the sketch; the links live in the slots).
  // Readable without the lock (relaxed): the store sums it (PolicyBytes, the window tuner).
  size_t policy_bytes() const { return policy_bytes_.load(std::memory_order_relaxed); }

  // A read of `entry` (from FindLive) at `now`, whose key hashes to `hash`: counts it and moves
  // it in its list (TinyLFU) or sets its CLOCK bit. O(1), no allocation. TinyLFU's count and move
  // wait in a small buffer (see FlushReads), applied in order before anything else looks at or
  // changes the policy's state, so every decision is the one made without the buffer.
  void OnHit(Entry* entry, uint64_t hash, Millis now) {
    entry->touch(now);
    if (policy_ == EvictionPolicy::kClock) {
      entry->referenced = true;
      return;
    }
    Defer(hash, IdOf(entry), /*move=*/true);
  }
  // A read that found nothing: TinyLFU counts misses too, so a key that is loaded after misses
  // enters with the frequency they built up.
  void OnMiss(uint64_t hash) {
    if (policy_ == EvictionPolicy::kTinyLfu) Defer(hash, kNil, /*move=*/false);
  }
  // A write by SET of the key whose entry is `existing` (from FindLive; null if none): counted
  // as an access (a Fill is not: the miss before it was counted); not moved (Put places it).
  void OnWrite(const Entry* existing, uint64_t hash) {
    if (policy_ == EvictionPolicy::kTinyLfu) {
      Defer(hash, existing != nullptr ? IdOf(existing) : kNil, /*move=*/false);
    }
  }
  // Applies the buffered reads: counts and moves each in order. A read of random keys would
  // otherwise wait for three cache misses one after another (sketch block, the two neighbours it
  // is unlinked from); buffered, they were fetched when the read was (Defer) and overlap with the
  // work in between. Called by every operation that stores, removes, evicts or reports the
  // policy's state, and when the buffer is full.
  void FlushReads() {
    if (deferred_count_ != 0) ApplyDeferred();
  }
  // OBJECT FREQ / IDLETIME (applies the buffered reads first).
  PolicyView View(const Entry& entry, uint64_t hash, Millis now);
  const FrequencySketch& sketch() const { return sketch_; }

  // The entry stored under `key` (whose hash is `hash`), or nullptr. An entry that is gone at
  // `now` (now >= stale_until) is removed first and counts as an expiration. Does not touch the
  // CLOCK bit. The pointer is valid until the next call that stores or removes.
  Entry* FindLive(std::string_view key, uint64_t hash, Millis now);

  // True if key+value cannot fit this shard's budget even when it holds nothing else.
  bool TooLarge(std::string_view key, std::string_view value) const;

  // Stores `value` under `key` for `origin`, replacing `existing` (the entry FindLive returned
  // for this key, or nullptr when there is none). First removes expired entries and then evicts by
  // the policy until the new entry fits the budget; the new entry itself is never the one evicted.
  // Returns the entry, whose meta the caller sets (set_meta, which needs the origin set first);
  // its CLOCK bit is clear, and under TinyLFU it is at the MRU end of the window (a same-size
  // overwrite by the same origin keeps its place). Returns nullptr, changing nothing, if
  // TooLarge(key, value) or, under noeviction, if !Fits (what `existing` holds counting as freed).
  Entry* Put(Entry* existing, std::string_view key, uint64_t hash, std::string_view value,
             EntryOrigin origin, Millis now);

  // Removes a live entry (from FindLive or Put).
  void Remove(Entry* entry);

  // After a smaller set_budget: evicts (expired entries first) until the entries fit the budget;
  // under noeviction removes gone entries only (near the expiry cursor), and may stay over it.
  void Shrink(Millis now) {
    if (evict_) {
      MakeRoom(0, now);
    } else {
      Fits(0, 0, now);
    }
  }

  // Active expiry: looks at up to `budget` slots from a cursor that goes round the slot array and
  // removes the entries gone at `now`. Returns how many it removed.
  size_t ExpireSome(size_t budget, Millis now);

  // Removes every entry and gives the memory back; the sketch is zeroed. Counters are kept.
  void Clear();

  // SCAN's unit of work: calls fn(const Entry&) for every entry whose home cell in the index is
  // `bucket` (< index_cells()). Linear probing keeps such an entry in the run of occupied cells
  // that starts at its home, and backward-shift deletion keeps it there, so the visit walks that
  // run only; gone entries are visited too (the caller filters). Changes nothing.
  template <class Fn>
  void VisitHome(size_t bucket, Fn&& fn) const {
    const size_t mask = index_.size() - 1;
    for (size_t pos = bucket; index_[pos] != 0; pos = (pos + 1) & mask) {
      if (Home(static_cast<uint32_t>(index_[pos] >> 32)) == bucket) {
        fn(slots_[(index_[pos] & 0xffff'ffffu) - 1]);
      }
    }
  }
  // Cells in the index: a power of two that only grows (until Clear).
  size_t index_cells() const { return index_.size(); }
  // Slots, used and free; slot(i) may be free (!in_use()). For RANDOMKEY and KEYS.
  size_t slot_count() const { return slots_.size(); }
  const Entry& slot(size_t i) const { return slots_[i]; }

  // Readable without the lock (relaxed, for metrics).
  size_t size() const { return size_.load(std::memory_order_relaxed); }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
  uint64_t expirations() const { return expirations_.load(std::memory_order_relaxed); }

  // TinyLFU's lists, for tests: keys from the MRU end to the LRU end; bytes per region.
  std::vector<std::string_view> RegionKeys(Region region);
  size_t region_bytes(Region region) const { return List(region).bytes; }

 private:
  // A doubly linked list of slots through Entry::prev/next; head is the MRU end.
  struct LruList {
    SlotId head = kNil;
    SlotId tail = kNil;
    size_t bytes = 0;
  };
  // An index cell: tag << 32 | (slot + 1); 0 is empty.
  using Cell = uint64_t;

  SlotId IdOf(const Entry* entry) const { return static_cast<SlotId>(entry - slots_.data()); }
  size_t Home(uint32_t tag) const { return tag & (index_.size() - 1); }

  // Removes gone or least valuable entries until `need` more bytes fit the budget.
  void MakeRoom(size_t need, Millis now);
  // Removes one gone entry near the expiry cursor, if it finds one among kExpiredScan slots.
  bool EvictExpired(Millis now);
  // Removes one entry: a gone one near the expiry cursor if any, else the CLOCK victim.
  bool EvictOne(Millis now);
  // Removes one entry by TinyLFU, `need` bytes being about to enter the window.
  bool EvictTinyLfu(size_t need);
  void EvictSlot(SlotId id);
  // Removes `id` on the store's own account (expired or evicted): counts it, tells the hook.
  void Drop(SlotId id, Removal why);
  void OnTinyLfuHit(SlotId id);
  // Buffers one access for FlushReads: the key is counted (unless its entry `id` is saturated;
  // kNil: no entry), and with `move` its entry `id` moves in its list. What that will touch is
  // fetched now (the sketch's block, the list neighbours the entry is unlinked from), so that it
  // has arrived by the time the buffer is applied: the reply and the next commands are written
  // and parsed meanwhile.
  void Defer(uint64_t hash, SlotId id, bool move) {
    if (id == kNil || !slots_[id].saturated) sketch_.Prefetch(hash);
    if (move) {
      const Entry& entry = slots_[id];
      if (entry.prev != kNil) __builtin_prefetch(&slots_[entry.prev], 1);
      if (entry.next != kNil) __builtin_prefetch(&slots_[entry.next], 1);
    }
    deferred_[deferred_count_++] = Deferred{hash, id, move};
    if (deferred_count_ == kDeferredReads) ApplyDeferred();
  }
  void ApplyDeferred();
  // The sketch's counts went down (halved, or a new sketch): no entry is known to be saturated.
  void ClearSaturated();
  // Moves `from`'s LRU entries to probation's MRU end while `from` holds more than `budget`
  // bytes (keeping at least one; no eviction): the window's overflow, or protected's.
  void SpillToProbation(Region from, size_t budget);
  LruList& List(Region region) { return lists_[static_cast<size_t>(region) - 1]; }
  const LruList& List(Region region) const { return lists_[static_cast<size_t>(region) - 1]; }
  void PushFront(Region region, SlotId id);
  void Unlink(SlotId id);
  uint32_t FrequencyOf(SlotId id) const;
  void RemoveSlot(SlotId id);
  void InsertCell(Cell cell);
  void EraseCell(uint32_t tag, SlotId id);
  void GrowIndex();
  void AddStats(size_t count, size_t bytes);
  // Sets window_budget_ and protected_budget_ from budget_ and window_permille_.
  void SetRegionBudgets();
  // Sets budget_ (and what follows from it) to share_ less the sketch's bytes.
  void ApplyBudget();
  // TinyLFU: grows the sketch when the shard is about to hold more keys than it has room for.
  void GrowSketch();
  void SubStats(size_t count, size_t bytes);

  EvictionPolicy policy_ = EvictionPolicy::kClock;
  bool evict_ = true;
  size_t budget_ = 0;
  std::atomic<size_t> budget_seen_{0};   // budget_, for readers without the lock
  std::atomic<size_t> policy_bytes_{0};  // sketch_.bytes(), likewise (set with the budget)
  size_t share_ = 0;                     // set_budget's bytes: budget_ + the sketch's
  size_t sketch_limit_ = 0;              // TinyLFU: the keys the sketch may grow to
  size_t window_budget_ = 0;             // TinyLFU: window_permille_ of budget_
  uint32_t window_permille_ = 10;
  const std::atomic<uint32_t>* window_source_ = nullptr;
  size_t protected_budget_ = 0;  // TinyLFU: 80% of the rest
  FrequencySketch sketch_;
  // TinyLFU accesses not yet applied (FlushReads). 16 keeps the batch inside the CPU's
  // outstanding-miss slots and the buffer in one 256-byte stretch.
  static constexpr size_t kDeferredReads = 16;
  struct Deferred {
    uint64_t hash;
    SlotId id;  // the key's entry, or kNil
    bool move;  // a read: the entry moves in its list
  };
  Deferred deferred_[kDeferredReads];
  size_t deferred_count_ = 0;
  LruList lists_[3];  // window, probation, protected
  std::vector<Entry> slots_;
  std::vector<SlotId> free_;  // free slots, reused last-freed first
  std::vector<Cell> index_;   // power-of-two size, at most 3/4 full
  size_t hand_ = 0;           // CLOCK hand over slots_
  size_t expire_cursor_ = 0;  // active-expiry cursor over slots_

  std::atomic<size_t> size_{0};
  std::atomic<size_t> bytes_{0};
  const std::atomic<const RemovalHook*>* removal_hook_ = nullptr;
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expirations_{0};
};

}  // namespace corral::lease

// corral's in-memory store: sharded key -> value entries with Redis-style TTLs, read-through fills
// with jittered TTL and a stale window, a memory bound with W-TinyLFU (or CLOCK) eviction, lazy
// and active expiry.
// SPEC.md rules 3, 5 and 10. Pure: no I/O, no logging; time and randomness are injected.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lease/clock.h"
#include "lease/random.h"
#include "lease/store_shard.h"
#include "lease/window_tuner.h"

namespace corral::lease {

struct StoreOptions {
  size_t max_bytes = 256u << 20;  // accounted bytes (see Store::kEntryOverhead), split evenly
  size_t shards = 64;             // rounded up to a power of two; 0 is taken as 1
  // JSON memory.policy. The struct's default stays CLOCK for the tests written against it; the
  // configuration's default is TinyLFU (cache-server/config.cc).
  EvictionPolicy policy = EvictionPolicy::kClock;
  // false: Redis's noeviction (Store::SetEvict). JSON memory.policy "noeviction" (with CLOCK's
  // bookkeeping underneath, the cheaper one, for a later switch to evicting).
  bool evict = true;
};

// A read-modify-write's view of a key present in the Redis view (Store::Update).
struct Current {
  std::string_view value;  // valid only inside the update's callback
  Millis expire_at;        // fresh_until on the store's clock; kNever: no expiry
};

// What a read-modify-write does with its key.
struct Change {
  enum class Kind : uint8_t {
    kKeep,    // leave the value; with set_expiry, only the expiry changes (GETEX, PERSIST)
    kStore,   // store `value` as a plain entry (origin SET) expiring at `expire_at`
    kDelete,  // remove the key (GETDEL)
  };
  Kind kind = Kind::kKeep;
  std::string value;
  Millis expire_at = kNever;  // kStore, and kKeep with set_expiry; at or before now: deleted
  bool set_expiry = false;
};

enum class RenameResult { kRenamed, kNoSuchKey, kTargetExists, kTooLarge };

enum class SetCondition { kAlways, kIfAbsent /* NX */, kIfPresent /* XX */ };
enum class SetResult {
  kStored,
  kNotStored,  // the NX/XX condition failed
  kTooLarge,   // key + value + overhead exceed one shard's budget or, under noeviction, what is
               // left of it; the caller answers like OOM
};

struct FillOptions {
  Millis ttl_ms = 0;    // base TTL; kNever = no expiry
  double jitter = 0;    // TTL drawn from ttl_ms * [1 - jitter, 1 + jitter]; clamped to [0, 1]
  Millis stale_ms = 0;  // how long past fresh_until the entry may still be served stale
  EntryKind kind = EntryKind::kValue;
  uint32_t load_ms = 0;      // how long the load took
  WalPosition position = 0;  // the WAL position the load read at (0: unknown)
};

// Terms: an entry is *fresh* while now < fresh_until, *stale* from fresh_until until stale_until,
// and *gone* at/after stale_until (then it is removed lazily on access, by ExpireSome, or by an
// eviction). Plain SET entries have stale_until == fresh_until. The "Redis view" (Exists, Pttl,
// Expire, NX/XX, KEEPTTL) sees a key only if it holds a kValue entry that is fresh.
//
// Thread-safe: every method may be called concurrently. Keys are hashed to shards, each with its
// own mutex. Only SetMany and Rename hold more than one shard lock at a time, and they take them
// in shard index order, so no two calls can wait on each other in a cycle.
class Store {
 public:
  static constexpr size_t kEntryOverhead = StoreShard::kEntryOverhead;

  // `clock` and `random` must outlive the Store.
  Store(StoreOptions options, const Clock& clock, Random& random);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // `hook` is told of every entry the store expires or evicts from now on (see RemovalHook).
  void SetRemovalHook(RemovalHook hook);

  // Changes the memory bound (Redis's CONFIG SET maxmemory): each shard gets its share and, if
  // it now holds more, evicts (expired entries first) until it fits, at once. Under TinyLFU the
  // sketch is sized anew, and what it had counted is forgotten.
  void SetMaxBytes(size_t max_bytes);
  size_t max_bytes() const { return max_bytes_.load(std::memory_order_relaxed); }

  // Redis's maxmemory-policy noeviction (evict false) or an evicting one (true), at run time:
  // the policy (TinyLFU or CLOCK, fixed at construction) keeps its bookkeeping either way. Under
  // noeviction a write that does not fit in what is left of its shard's budget, once gone entries
  // are removed, is refused (kTooLarge; Fill stores nothing) and nothing live is evicted, and a
  // smaller SetMaxBytes removes gone entries only. Turning eviction back on evicts at once down
  // to the bound.
  void SetEvict(bool evict);
  bool evict() const { return evict_.load(std::memory_order_relaxed); }
  // Changes the eviction algorithm at run time (CONFIG SET maxmemory-policy allkeys-lru or
  // allkeys-lfu), shard by shard under its lock (StoreShard::SwitchPolicy: what the old policy
  // knew of the entries is forgotten; to TinyLFU the sketch comes off the budget, which may
  // evict). O(entries).
  void SetPolicy(EvictionPolicy policy);

  // Redis's "used memory > maxmemory" (the state in which it refuses denyoom commands): true
  // under noeviction when some shard has no room left for one more entry (key + value +
  // kEntryOverhead, with key and value empty), and under any policy when a shard's budget is too
  // small to hold any entry at all (eviction cannot make room: Redis's EVICT_FAIL). One relaxed
  // load, for the per-command check. Kept current by SetMaxBytes, SetEvict, Clear, a refused
  // write, a Del while it is true, and RefreshOutOfMemory (which the server calls from a timer:
  // memory freed by expiry is seen within one tick).
  bool out_of_memory() const { return out_of_memory_.load(std::memory_order_relaxed); }
  // Recomputes out_of_memory() from the shards' counters. Lock-free: O(shards) relaxed loads.
  void RefreshOutOfMemory();

  // If `key` holds an entry that is not gone, calls fn(std::string_view value, const EntryMeta&)
  // under the shard lock, records the access with the policy and returns true; else records the
  // miss (TinyLFU counts misses) and returns false.
  // `value` is valid only inside fn. fn must be quick and must not call into the Store. The meta
  // passed has fresh_until capped by MarkAllStaleBefore. No heap allocation.
  template <class Fn>
  bool Get(std::string_view key, Fn&& fn);

  // Plain SET (Redis semantics). ttl_ms: nullopt = no expiry, else fresh_until = stale_until =
  // now + ttl_ms (a ttl_ms <= 0 stores nothing and deletes the key). keep_ttl (KEEPTTL) keeps the
  // expiry of a present key and ignores ttl_ms. NX/XX test presence in the Redis view. kTooLarge
  // leaves any existing entry as it was.
  SetResult Set(std::string_view key, std::string_view value, std::optional<Millis> ttl_ms,
                SetCondition cond = SetCondition::kAlways, bool keep_ttl = false);

  // Read-through fill, replacing any entry for `key`: TTL drawn uniformly from
  // ttl_ms * [1 - jitter, 1 + jitter] (one random.Uniform01() draw, rounded to the nearest ms),
  // fresh_until = now + TTL, stale_until = fresh_until + stale_ms. Returns the stored meta, or
  // nullopt if the entry is too large for a shard (then any older entry for `key` is removed,
  // as it is superseded).
  std::optional<EntryMeta> Fill(std::string_view key, std::string_view value,
                                const FillOptions& options);

  // Removes `key`; true if it held an entry that was not gone (fresh, stale or negative).
  bool Del(std::string_view key);
  // Redis EXISTS: true if `key` is present in the Redis view. Does not mark it used.
  bool Exists(std::string_view key);
  // Redis PTTL: -2 if not present in the Redis view, -1 if it has no expiry, else the ms until
  // fresh_until.
  Millis Pttl(std::string_view key);
  // Redis PEXPIRE on a key present in the Redis view: ttl_ms <= 0 deletes it, else fresh_until
  // becomes now + ttl_ms and stale_until keeps its distance from fresh_until. False if missing.
  bool Expire(std::string_view key, Millis ttl_ms);

  // Redis's read-modify-write commands (INCR, APPEND, SETRANGE, GETSET, GETDEL, GETEX, PERSIST),
  // atomic with respect to every other call: under the key's shard lock, calls
  // fn(const Current* current, Millis now) -> Change, where `current` is null when the key is not
  // present in the Redis view (a stale or negative read-through entry counts as absent, and a
  // kStore replaces it). fn must be quick and must not call into the Store. A kStore counts as a
  // write for the policy. Returns false, changing nothing, when a kStore does not fit a shard.
  template <class Fn>
  bool Update(std::string_view key, Fn&& fn);

  // MSET (if_none_exist false) and MSETNX (true), atomic over all the keys: every involved shard
  // is locked, in index order, before any key is read or written, so no other call sees some of
  // the keys written and not others. Values are stored without expiry; a repeated key takes its
  // last value. kNotStored: MSETNX found a key present (nothing is written); kTooLarge: some pair
  // does not fit a shard (nothing is written).
  SetResult SetMany(std::span<const std::pair<std::string_view, std::string_view>> pairs,
                    bool if_none_exist);

  // RENAME (if_absent false) and RENAMENX (true), atomic: both shards are locked in index order.
  // The value and its expiry move to `to` as a plain entry (origin SET), replacing what `to`
  // held; `from` must be present in the Redis view. from == to: kRenamed (RENAMENX:
  // kTargetExists), as Redis answers.
  RenameResult Rename(std::string_view from, std::string_view to, bool if_absent);
  // COPY: as Rename, but `from` stays; without `replace`, a present `to` is kTargetExists.
  // from == to is for the caller to refuse (Redis answers an error).
  RenameResult Copy(std::string_view from, std::string_view to, bool replace);

  // TOUCH: true if `key` is present in the Redis view, which then counts as read by the policy.
  bool Touch(std::string_view key);

  // SCAN over the whole store: calls fn(std::string_view key) for keys present in the Redis
  // view, under a shard lock (fn must be quick and must not call into the Store), and returns
  // the cursor to continue from; 0 when the scan is complete. Start with cursor 0.
  // Guarantee (Redis's): a key present from the scan's first call to its last is returned at
  // least once, however the store grows or shrinks in between; a key may be returned more than
  // once. How: the cursor is a shard index in its low bits and, above them, a position in that
  // shard's index walked in reverse-binary order (Redis's dictScan): entries are visited by
  // their home cell, which depends only on the key's hash and the index size, and reverse-binary
  // order visits, across a doubling or a shrink of the index, every home cell position not yet
  // covered. A call visits home cells until it has found `count` keys or looked at 10 x count
  // cells (an empty shard costs no visit). An arbitrary cursor is accepted (it resumes somewhere).
  uint64_t Scan(uint64_t cursor, size_t count, const std::function<void(std::string_view)>& fn);

  // RANDOMKEY: a key present in the Redis view, picked with the injected Random (not uniformly:
  // a random shard, then the first present entry from a random slot on); nullopt when none is.
  std::optional<std::string> RandomKey();

  // Treats every read-through entry (stored by Fill) filled at or before `before` as stale from
  // then on: Get, Exists, Pttl and Expire see fresh_until capped at `before`; the stale window
  // (stale_until) is unchanged. Entries stored by Set are not affected: no invalidation covers
  // them. O(1): keeps an epoch that only moves forward. Call it when the invalidation listener
  // loses its connection and again when it has subscribed anew, with the time of each.
  void MarkAllStaleBefore(Millis before);
  // Treats `key`'s read-through entry (stored by Fill) as stale from now on: its stale window is
  // unchanged. True if there was such an entry, fresh until now.
  bool MarkStale(std::string_view key);

  // Removes every entry (FLUSHALL). Counters are kept.
  void Clear();

  // What the eviction policy knows of `key` (OBJECT FREQ / IDLETIME), if it holds an entry that
  // is not gone. Not an access: changes nothing.
  std::optional<PolicyView> Inspect(std::string_view key);
  EvictionPolicy policy() const { return policy_.load(std::memory_order_relaxed); }
  // If `key` holds an entry that is not gone, calls fn(std::string_view value, const EntryMeta&,
  // size_t accounted_bytes) under the shard lock and returns true; accounted_bytes is what the
  // entry counts against max_bytes (key + value + kEntryOverhead). Not an access: the policy is
  // not told, as Inspect (MEMORY USAGE, OBJECT ENCODING). fn must be quick and must not call into
  // the Store.
  template <class Fn>
  bool Peek(std::string_view key, Fn&& fn);

  // Entries held, including gone ones not yet removed. Lock-free, approximate under writes.
  size_t Size() const;
  // Accounted bytes: the sum over entries of key + value + kEntryOverhead. MemoryBytes() +
  // PolicyBytes() is never above max_bytes (rounded down to a multiple of the shard count).
  // Lock-free.
  size_t MemoryBytes() const;
  // The eviction policy's own state (TinyLFU's sketches and its window tuner's simulated caches),
  // fixed at construction; 0 for CLOCK.
  size_t PolicyBytes() const;
  // Active expiry step (Redis style): looks at up to `budget_per_shard` slots per shard and
  // removes the gone entries; returns how many it removed. The server calls this from a timer.
  size_t ExpireSome(size_t budget_per_shard);

  // TinyLFU's admission window, in permille of each shard's budget: WindowTuner's choice.
  uint32_t WindowPermille() const { return window_permille_.load(std::memory_order_relaxed); }

  // Entries removed to make room while not gone.
  uint64_t evictions() const;
  // Gone entries removed (lazily, by ExpireSome, or while making room).
  uint64_t expirations() const;

 private:
  struct alignas(64) Shard {
    std::mutex mu;
    StoreShard table;
  };

  static uint64_t Hash(std::string_view key) { return StoreShard::HashKey(key); }
  size_t ShardIndex(uint64_t hash) const { return hash & shard_mask_; }
  // Applies a read-modify-write's Change to `key` (Update), under its shard's lock.
  bool Apply(Shard& shard, StoreShard::Entry* existing, bool present, std::string_view key,
             uint64_t hash, Millis now, const Change& change);
  Shard& ShardFor(uint64_t hash) { return shards_[hash & shard_mask_]; }
  // RENAME, RENAMENX and COPY: `from`'s value and expiry written to `to`; `from` removed unless
  // `keep_source`.
  RenameResult Transfer(std::string_view from, std::string_view to, bool if_absent,
                        bool keep_source);
  // A read or write of a key the window tuner samples (tuner_.Sampled(hash)): replayed through
  // its simulated caches, under tuner_mu_ taken after the shard's lock (never the other way) and
  // only if free: under contention a sample is dropped rather than waited for.
  // The window tuner may take at most 1/kTunerShareDivisor of max_bytes; beyond, it stops.
  static constexpr size_t kTunerShareDivisor = 16;
  void Sample(uint64_t hash);
  // What the shards share of max_bytes: all but the window tuner's bytes.
  size_t EntriesBudget(size_t max_bytes) const;
  // The entry's meta as readers see it: fresh_until capped by MarkAllStaleBefore.
  EntryMeta View(const StoreShard::Entry& entry) const;
  // Present in the Redis view at `now`.
  bool Present(const StoreShard::Entry* entry, Millis now) const;

  const Clock& clock_;
  Random& random_;
  // The hook the shards read (they point at removal_hook_), and every hook set so far.
  std::atomic<const RemovalHook*> removal_hook_{nullptr};
  std::mutex hooks_mu_;
  std::vector<std::unique_ptr<RemovalHook>> hooks_;
  std::atomic<size_t> max_bytes_;
  std::atomic<EvictionPolicy> policy_;
  std::atomic<bool> evict_;
  std::atomic<bool> out_of_memory_{false};
  std::vector<Shard> shards_;
  uint64_t shard_mask_;
  int shard_bits_;  // log2 of the shard count: the low bits of a SCAN cursor
  std::atomic<Millis> stale_before_;
  // TinyLFU: the window tuner (sampling nothing under CLOCK) and its choice, which the shards
  // read on each Put.
  std::mutex tuner_mu_;
  WindowTuner tuner_;
  std::atomic<uint32_t> window_permille_{WindowTuner::kCandidates[0]};
};

inline EntryMeta Store::View(const StoreShard::Entry& entry) const {
  EntryMeta meta = entry.meta();
  if (entry.origin == EntryOrigin::kFill) {
    const Millis before = stale_before_.load(std::memory_order_relaxed);
    if (meta.filled_at <= before && meta.fresh_until > before) meta.fresh_until = before;
  }
  return meta;
}

template <class Fn>
bool Store::Get(std::string_view key, Fn&& fn) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (tuner_.Sampled(hash)) Sample(hash);
  if (entry == nullptr) {
    shard.table.OnMiss(hash);
    return false;
  }
  shard.table.OnHit(entry, hash, now);
  const EntryMeta meta = View(*entry);
  std::invoke(std::forward<Fn>(fn), entry->value(), meta);
  return true;
}

template <class Fn>
bool Store::Peek(std::string_view key, Fn&& fn) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  const StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (entry == nullptr) return false;
  std::invoke(std::forward<Fn>(fn), entry->value(), View(*entry),
              StoreShard::Cost(entry->key_size, entry->value_size));
  return true;
}

template <class Fn>
bool Store::Update(std::string_view key, Fn&& fn) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* existing = shard.table.FindLive(key, hash, now);
  const bool present = Present(existing, now);
  std::optional<Current> current;
  if (present) current = Current{existing->value(), View(*existing).fresh_until};
  const Change change = std::invoke(std::forward<Fn>(fn), current ? &*current : nullptr, now);
  return Apply(shard, existing, present, key, hash, now, change);
}

}  // namespace corral::lease

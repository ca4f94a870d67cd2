// One shard of the Store: entries in a slot array with a free list, found through an
// open-addressing index (linear probing, backward-shift deletion), evicted by CLOCK. Store holds
// the shard's mutex around every call; the counters alone may be read without it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "lease/clock.h"

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
};

// Who stored an entry. Only read-through fills are subject to Store::MarkAllStaleBefore.
enum class EntryOrigin : uint8_t { kSet, kFill };

class StoreShard {
 public:
  // Bytes accounted per entry besides key and value, an estimate of what an entry really costs:
  // its slot (sizeof(Entry) = 56), its index cell (8 bytes at a load factor of 3/8 to 3/4, so
  // 11-21), and the allocator's header and rounding of the key+value block (8-23 with glibc),
  // rounded up. Not included, and so the overhead beyond max_bytes: the growth slack of the slot
  // array and of the index (each at most doubles) and slots left free by deletions.
  static constexpr size_t kEntryOverhead = 96;

  struct Entry {
    std::unique_ptr<char[]> data;  // key bytes then value bytes; null while the slot is free
    uint32_t key_size = 0;
    uint32_t value_size = 0;
    uint32_t tag = 0;         // high 32 bits of the key's hash; places the entry in the index
    bool referenced = false;  // CLOCK bit: set by a read, cleared by the passing hand
    EntryOrigin origin = EntryOrigin::kSet;
    EntryMeta meta;

    bool in_use() const { return data != nullptr; }
    std::string_view key() const { return {data.get(), key_size}; }
    std::string_view value() const { return {data.get() + key_size, value_size}; }
  };

  StoreShard();
  StoreShard(const StoreShard&) = delete;
  StoreShard& operator=(const StoreShard&) = delete;

  void set_budget(size_t bytes) { budget_ = bytes; }
  size_t budget() const { return budget_; }

  // The entry stored under `key` (whose hash is `hash`), or nullptr. An entry that is gone at
  // `now` (now >= stale_until) is removed first and counts as an expiration. Does not touch the
  // CLOCK bit. The pointer is valid until the next call that stores or removes.
  Entry* FindLive(std::string_view key, uint64_t hash, Millis now);

  // True if key+value cannot fit this shard's budget even when it holds nothing else.
  bool TooLarge(std::string_view key, std::string_view value) const;

  // Stores `value` under `key`, replacing `existing` (the entry FindLive returned for this key, or
  // nullptr when there is none). First removes expired entries and then evicts by CLOCK until the
  // new entry fits the budget. Returns the entry, whose meta and origin the caller sets; its CLOCK
  // bit is clear. Returns nullptr, changing nothing, if TooLarge(key, value).
  Entry* Put(Entry* existing, std::string_view key, uint64_t hash, std::string_view value,
             Millis now);

  // Removes a live entry (from FindLive or Put).
  void Remove(Entry* entry);

  // Active expiry: looks at up to `budget` slots from a cursor that goes round the slot array and
  // removes the entries gone at `now`. Returns how many it removed.
  size_t ExpireSome(size_t budget, Millis now);

  // Removes every entry and gives the memory back. Counters are kept.
  void Clear();

  // Readable without the lock (relaxed, for metrics).
  size_t size() const { return size_.load(std::memory_order_relaxed); }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
  uint64_t expirations() const { return expirations_.load(std::memory_order_relaxed); }

 private:
  using SlotId = uint32_t;
  // An index cell: tag << 32 | (slot + 1); 0 is empty.
  using Cell = uint64_t;

  static size_t Cost(size_t key_size, size_t value_size) {
    return key_size + value_size + kEntryOverhead;
  }
  SlotId IdOf(const Entry* entry) const { return static_cast<SlotId>(entry - slots_.data()); }
  size_t Home(uint32_t tag) const { return tag & (index_.size() - 1); }

  // Removes gone or least valuable entries until `need` more bytes fit the budget.
  void MakeRoom(size_t need, Millis now);
  // Removes one entry: a gone one near the expiry cursor if any, else the CLOCK victim.
  bool EvictOne(Millis now);
  void RemoveSlot(SlotId id);
  void InsertCell(Cell cell);
  void EraseCell(uint32_t tag, SlotId id);
  void GrowIndex();
  void AddStats(size_t count, size_t bytes);
  void SubStats(size_t count, size_t bytes);

  size_t budget_ = 0;
  std::vector<Entry> slots_;
  std::vector<SlotId> free_;  // free slots, reused last-freed first
  std::vector<Cell> index_;   // power-of-two size, at most 3/4 full
  size_t hand_ = 0;           // CLOCK hand over slots_
  size_t expire_cursor_ = 0;  // active-expiry cursor over slots_

  std::atomic<size_t> size_{0};
  std::atomic<size_t> bytes_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expirations_{0};
};

}  // namespace corral::lease

// One shard of the Store: slot array, open-addressing index, W-TinyLFU or CLOCK eviction and
// expiry sweeps.
#include "lease/store_shard.h"

#include <algorithm>
#include <cstring>

namespace corral::lease {
namespace {

constexpr size_t kInitialIndexCells = 16;  // power of two
// How many slots at the expiry cursor an eviction checks for gone entries before it falls back
// to CLOCK. The cursor moves on, so repeated evictions look at fresh slots.
constexpr size_t kExpiredScan = 16;
constexpr uint64_t kSlotMask = 0xffff'ffffu;
// TinyLFU's protected share of the main region. (The window's share is window_permille_.)
constexpr size_t kProtectedPercent = 80;

}  // namespace

static_assert(sizeof(StoreShard::Entry) == 40, "kEntryOverhead's estimate assumes 40-byte slots");
static_assert(sizeof(StoreShard::FillTrailer) == 28);

StoreShard::StoreShard() : index_(kInitialIndexCells, 0) {}

void StoreShard::set_budget(size_t bytes) {
  FlushReads();
  share_ = bytes;
  if (policy_ == EvictionPolicy::kTinyLfu) {
    sketch_limit_ = std::max<size_t>(1, bytes / (kEntryOverhead + kAssumedKeyValueBytes));
    const size_t keys = std::min(sketch_limit_, std::max(kInitialSketchKeys, size()));
    if (sketch_.capacity() > sketch_limit_ || sketch_.capacity() == 0) {
      sketch_ = FrequencySketch(keys);
      ClearSaturated();
    } else {
      sketch_.Grow(keys);
    }
  }
  ApplyBudget();
}

void StoreShard::ApplyBudget() {
  // A shard too small for its sketch holds nothing (and stores nothing: TooLarge).
  const size_t bytes = share_ > sketch_.bytes() ? share_ - sketch_.bytes() : 0;
  budget_ = bytes;
  budget_seen_.store(bytes, std::memory_order_relaxed);
  policy_bytes_.store(sketch_.bytes(), std::memory_order_relaxed);
  SetRegionBudgets();
}

void StoreShard::GrowSketch() {
  const size_t capacity = sketch_.capacity();
  if (size() < capacity || capacity >= sketch_limit_) return;
  const size_t before = sketch_.bytes();
  // Doubles, and takes its full size once that is within a factor of two: a shard that holds a
  // quarter of what its budget can hold is taken to be filling up, and the full-size sketch (its
  // blocks a power of two, so up to twice the counters per key) keeps more of the counts apart
  // (Zipf 0.8 with a 10% cache at full scale, bench/hitratio.cc: 59.0% against 58.6% when it
  // stopped at the last doubling).
  const size_t next = 2 * capacity >= sketch_limit_ / 2 ? sketch_limit_ : 2 * capacity;
  sketch_.Grow(next);
  if (sketch_.bytes() != before) ApplyBudget();
}

void StoreShard::SetRegionBudgets() {
  window_budget_ = budget_ * window_permille_ / 1000;
  protected_budget_ = (budget_ - window_budget_) * kProtectedPercent / 100;
}

void StoreShard::SwitchPolicy(EvictionPolicy policy, size_t bytes, Millis now) {
  if (policy == policy_) return;
  FlushReads();
  for (Entry& entry : slots_) {
    entry.region = Region::kNone;
    entry.prev = entry.next = kNil;
    entry.referenced = false;
    entry.saturated = false;
  }
  for (LruList& list : lists_) list = LruList{};
  sketch_ = FrequencySketch();
  policy_ = policy;
  set_budget(bytes);
  if (policy_ == EvictionPolicy::kTinyLfu) {
    for (SlotId id = 0; id < slots_.size(); ++id) {
      if (slots_[id].in_use()) PushFront(Region::kProbation, id);
    }
  }
  Shrink(now);
}

PolicyView StoreShard::View(const Entry& entry, uint64_t hash, Millis now) {
  FlushReads();
  PolicyView view;
  const Millis now_s = now / 1000;
  // Modulo 2^24 seconds, as Redis's LRU clock.
  view.idle_ms =
      static_cast<Millis>((static_cast<uint32_t>(now_s) - entry.access_s) & kAccessMask) * 1000;
  if (policy_ == EvictionPolicy::kTinyLfu) {
    view.frequency = sketch_.Frequency(hash);
    switch (entry.region) {
      case Region::kWindow:
        view.region = "window";
        break;
      case Region::kProbation:
        view.region = "probation";
        break;
      case Region::kProtected:
        view.region = "protected";
        break;
      case Region::kNone:
        break;
    }
  }
  return view;
}

std::vector<std::string_view> StoreShard::RegionKeys(Region region) {
  FlushReads();
  std::vector<std::string_view> keys;
  for (SlotId id = List(region).head; id != kNil; id = slots_[id].next) {
    keys.push_back(slots_[id].key());
  }
  return keys;
}

StoreShard::Entry* StoreShard::FindLive(std::string_view key, uint64_t hash, Millis now) {
  const uint32_t tag = static_cast<uint32_t>(hash >> 32);
  const size_t mask = index_.size() - 1;
  for (size_t pos = Home(tag);; pos = (pos + 1) & mask) {
    const Cell cell = index_[pos];
    if (cell == 0) return nullptr;
    if (static_cast<uint32_t>(cell >> 32) != tag) continue;
    Entry& entry = slots_[(cell & kSlotMask) - 1];
    if (entry.key() != key) continue;
    if (entry.gone(now)) {  // lazy expiry
      Drop(IdOf(&entry), Removal::kExpired);
      return nullptr;
    }
    return &entry;
  }
}

bool StoreShard::TooLarge(std::string_view key, std::string_view value) const {
  // Sizes are kept in 32 bits; anything near that is far past any sane shard budget anyway.
  if (key.size() > UINT32_MAX || value.size() > UINT32_MAX) return true;
  return Cost(key.size(), value.size()) > budget_;
}

bool StoreShard::Fits(size_t need, size_t freed, Millis now) {
  if (evict_) return true;
  // Gone entries go first, as when evicting; EvictExpired never removes a live entry, so a
  // caller's pointer to one (Put's `existing`) stays valid.
  while (bytes() + need > budget_ + freed && EvictExpired(now)) {
  }
  return bytes() + need <= budget_ + freed;
}

StoreShard::Entry* StoreShard::Put(Entry* existing, std::string_view key, uint64_t hash,
                                   std::string_view value, EntryOrigin origin, Millis now) {
  if (TooLarge(key, value)) return nullptr;
  if (!evict_ &&
      !Fits(Cost(key.size(), value.size()), existing != nullptr ? CostOf(*existing) : 0, now)) {
    return nullptr;
  }
  bool referenced = false;
  if (existing != nullptr) {
    if (existing->value_size == value.size() && existing->origin == origin) {
      // Same size and layout: overwrite in place; accounted bytes do not change, so nothing is
      // evicted.
      if (!value.empty())
        std::memcpy(existing->data.get() + existing->key_size, value.data(), value.size());
      existing->touch(now);
      return existing;
    }
    referenced = existing->referenced;
    RemoveSlot(IdOf(existing));
  }
  // What follows moves and evicts: the buffered reads go first (an overwrite in place, above,
  // moves nothing, so its SET's count may wait with them; RemoveSlot applies them itself).
  FlushReads();
  if (policy_ == EvictionPolicy::kTinyLfu && window_source_ != nullptr) {
    const uint32_t permille = window_source_->load(std::memory_order_relaxed);
    if (permille != window_permille_) {
      // A smaller window spills below; a larger one fills with newcomers while main's victims
      // make room (EvictTinyLfu), and protected spills on its next promotion.
      window_permille_ = permille;
      SetRegionBudgets();
    }
  }
  const size_t cost = Cost(key.size(), value.size());
  if (policy_ == EvictionPolicy::kTinyLfu) GrowSketch();
  MakeRoom(cost, now);

  SlotId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<SlotId>(slots_.size());
    slots_.emplace_back();
  }
  Entry& entry = slots_[id];
  entry.data = std::make_unique_for_overwrite<char[]>(DataBytes(key.size(), value.size(), origin));
  if (!key.empty()) std::memcpy(entry.data.get(), key.data(), key.size());
  if (!value.empty()) std::memcpy(entry.data.get() + key.size(), value.data(), value.size());
  entry.key_size = static_cast<uint32_t>(key.size());
  entry.value_size = static_cast<uint32_t>(value.size());
  entry.referenced = referenced;
  entry.saturated = false;
  entry.origin = origin;
  entry.set_meta(EntryMeta{});
  entry.touch(now);

  if ((size() + 1) * 4 > index_.size() * 3) GrowIndex();
  InsertCell(static_cast<Cell>(hash >> 32) << 32 | (static_cast<Cell>(id) + 1));
  AddStats(1, cost);
  if (policy_ == EvictionPolicy::kTinyLfu) {
    PushFront(Region::kWindow, id);
    SpillToProbation(Region::kWindow, window_budget_);
  }
  return &slots_[id];
}

void StoreShard::Remove(Entry* entry) { RemoveSlot(IdOf(entry)); }

size_t StoreShard::ExpireSome(size_t budget, Millis now) {
  const size_t n = slots_.size();
  size_t removed = 0;
  for (size_t i = 0; i < std::min(budget, n); ++i) {
    if (expire_cursor_ >= n) expire_cursor_ = 0;
    const SlotId id = static_cast<SlotId>(expire_cursor_++);
    const Entry& entry = slots_[id];
    if (entry.in_use() && entry.gone(now)) {
      Drop(id, Removal::kExpired);
      ++removed;
    }
  }
  return removed;
}

void StoreShard::Clear() {
  deferred_count_ = 0;  // their slots and counts go with everything else
  std::vector<Entry>().swap(slots_);
  std::vector<SlotId>().swap(free_);
  std::vector<Cell>(kInitialIndexCells, 0).swap(index_);
  for (LruList& list : lists_) list = LruList{};
  if (policy_ == EvictionPolicy::kTinyLfu) {
    // Back to its first size, as the memory of the entries goes back.
    sketch_ = FrequencySketch(std::min(sketch_limit_, kInitialSketchKeys));
    ApplyBudget();
  }
  hand_ = 0;
  expire_cursor_ = 0;
  size_.store(0, std::memory_order_relaxed);
  bytes_.store(0, std::memory_order_relaxed);
}

void StoreShard::MakeRoom(size_t need, Millis now) {
  if (!evict_) return;  // Put checked Fits
  FlushReads();
  if (policy_ == EvictionPolicy::kClock) {
    while (bytes() + need > budget_ && EvictOne(now)) {
    }
    return;
  }
  while (bytes() + need > budget_ && size() > 0) {
    // Gone entries are the least valuable: they go before any live one.
    if (!EvictExpired(now) && !EvictTinyLfu(need)) return;
  }
}

bool StoreShard::EvictExpired(Millis now) {
  const size_t n = slots_.size();
  for (size_t i = 0; i < std::min(n, kExpiredScan); ++i) {
    if (expire_cursor_ >= n) expire_cursor_ = 0;
    const SlotId id = static_cast<SlotId>(expire_cursor_++);
    if (slots_[id].in_use() && slots_[id].gone(now)) {
      Drop(id, Removal::kExpired);
      return true;
    }
  }
  return false;
}

bool StoreShard::EvictTinyLfu(size_t need) {
  const LruList& window = List(Region::kWindow);
  const LruList& probation = List(Region::kProbation);
  const LruList& protected_list = List(Region::kProtected);
  // The window's LRU entry is a candidate for the main region when the newcomer would push the
  // window over its share; the victim is main's LRU end (probation first).
  SlotId candidate = window.bytes + need > window_budget_ ? window.tail : kNil;
  const SlotId victim = probation.tail != kNil ? probation.tail : protected_list.tail;
  if (candidate == kNil && victim == kNil) candidate = window.tail;
  if (candidate == kNil && victim == kNil) return false;
  if (victim == kNil) {
    EvictSlot(candidate);
  } else if (candidate == kNil) {
    EvictSlot(victim);
  } else if (FrequencyOf(candidate) > FrequencyOf(victim)) {
    // Admitted: the victim goes, the candidate moves to probation's MRU end.
    EvictSlot(victim);
    Unlink(candidate);
    PushFront(Region::kProbation, candidate);
  } else {
    EvictSlot(candidate);
  }
  return true;
}

void StoreShard::EvictSlot(SlotId id) { Drop(id, Removal::kEvicted); }

void StoreShard::Drop(SlotId id, Removal why) {
  if (removal_hook_ != nullptr) {
    const RemovalHook* hook = removal_hook_->load(std::memory_order_acquire);
    if (hook != nullptr && *hook) [[unlikely]]
      (*hook)(slots_[id].key(), why);
  }
  RemoveSlot(id);
  (why == Removal::kExpired ? expirations_ : evictions_).fetch_add(1, std::memory_order_relaxed);
}

uint32_t StoreShard::FrequencyOf(SlotId id) const {
  const Entry& entry = slots_[id];
  return sketch_.Frequency(HashKey(entry.key()));
}

void StoreShard::ApplyDeferred() {
  const size_t n = deferred_count_;
  deferred_count_ = 0;
  for (size_t i = 0; i < n; ++i) {
    const SlotId id = deferred_[i].id;
    // A saturated entry's count would change nothing (counts go down only when halved, which
    // clears every mark): skipped, with its cache miss. Decided here, not when the read was
    // buffered, since a count applied before this one may have halved the counts.
    if (id == kNil || !slots_[id].saturated) {
      switch (sketch_.Increment(deferred_[i].hash)) {
        case FrequencySketch::Counted::kCounted:
          break;
        case FrequencySketch::Counted::kFull:
          if (id != kNil) slots_[id].saturated = true;
          break;
        case FrequencySketch::Counted::kAged:
          ClearSaturated();
          break;
      }
    }
    if (deferred_[i].move) OnTinyLfuHit(id);
  }
}

void StoreShard::ClearSaturated() {
  for (Entry& entry : slots_) entry.saturated = false;
}

void StoreShard::OnTinyLfuHit(SlotId id) {
  Entry& entry = slots_[id];
  switch (entry.region) {
    case Region::kWindow:
    case Region::kProtected:
      if (List(entry.region).head != id) {
        const Region region = entry.region;
        Unlink(id);
        PushFront(region, id);
      }
      break;
    case Region::kProbation:
      Unlink(id);
      PushFront(Region::kProtected, id);
      SpillToProbation(Region::kProtected, protected_budget_);
      break;
    case Region::kNone:
      break;
  }
}

void StoreShard::SpillToProbation(Region from, size_t budget) {
  LruList& list = List(from);
  while (list.bytes > budget && list.head != list.tail) {
    const SlotId id = list.tail;
    Unlink(id);
    PushFront(Region::kProbation, id);
  }
}

void StoreShard::PushFront(Region region, SlotId id) {
  LruList& list = List(region);
  Entry& entry = slots_[id];
  entry.region = region;
  entry.prev = kNil;
  entry.next = list.head;
  if (list.head != kNil) slots_[list.head].prev = id;
  list.head = id;
  if (list.tail == kNil) list.tail = id;
  list.bytes += Cost(entry.key_size, entry.value_size);
}

void StoreShard::Unlink(SlotId id) {
  Entry& entry = slots_[id];
  if (entry.region == Region::kNone) return;
  LruList& list = List(entry.region);
  if (entry.prev != kNil) {
    slots_[entry.prev].next = entry.next;
  } else {
    list.head = entry.next;
  }
  if (entry.next != kNil) {
    slots_[entry.next].prev = entry.prev;
  } else {
    list.tail = entry.prev;
  }
  list.bytes -= Cost(entry.key_size, entry.value_size);
  entry.prev = entry.next = kNil;
  entry.region = Region::kNone;
}

bool StoreShard::EvictOne(Millis now) {
  const size_t n = slots_.size();
  if (size() == 0) return false;
  // Expired entries are the least valuable: look for one near the expiry cursor first.
  if (EvictExpired(now)) return true;
  // CLOCK: a referenced entry loses its bit and is passed over once; the first entry found
  // without it is the victim. Two turns of the hand visit every entry twice, so one is found.
  for (size_t step = 0; step < 2 * n; ++step) {
    if (hand_ >= n) hand_ = 0;
    const SlotId id = static_cast<SlotId>(hand_++);
    Entry& entry = slots_[id];
    if (!entry.in_use()) continue;
    if (entry.gone(now)) {
      Drop(id, Removal::kExpired);
      return true;
    }
    if (entry.referenced) {
      entry.referenced = false;
      continue;
    }
    Drop(id, Removal::kEvicted);
    return true;
  }
  return false;
}

void StoreShard::RemoveSlot(SlotId id) {
  // A buffered read names its slot by id: applied before the slot can be freed and reused.
  FlushReads();
  Entry& entry = slots_[id];
  Unlink(id);
  EraseCell(static_cast<uint32_t>(HashKey(entry.key()) >> 32), id);
  SubStats(1, Cost(entry.key_size, entry.value_size));
  entry.data.reset();
  entry.key_size = 0;
  entry.value_size = 0;
  entry.referenced = false;
  entry.saturated = false;
  free_.push_back(id);
}

void StoreShard::InsertCell(Cell cell) {
  const size_t mask = index_.size() - 1;
  size_t pos = Home(static_cast<uint32_t>(cell >> 32));
  while (index_[pos] != 0) pos = (pos + 1) & mask;
  index_[pos] = cell;
}

void StoreShard::EraseCell(uint32_t tag, SlotId id) {
  const size_t mask = index_.size() - 1;
  size_t hole = Home(tag);
  while ((index_[hole] & kSlotMask) != static_cast<Cell>(id) + 1) hole = (hole + 1) & mask;
  // Backward shift: pull later cells of the probe run into the hole when the hole lies on their
  // probe path (between their home and where they sit), so lookups never need tombstones.
  for (size_t pos = (hole + 1) & mask; index_[pos] != 0; pos = (pos + 1) & mask) {
    const size_t home = Home(static_cast<uint32_t>(index_[pos] >> 32));
    if (((pos - home) & mask) >= ((pos - hole) & mask)) {
      index_[hole] = index_[pos];
      hole = pos;
    }
  }
  index_[hole] = 0;
}

void StoreShard::GrowIndex() {
  std::vector<Cell> old(index_.size() * 2, 0);
  old.swap(index_);
  for (Cell cell : old) {
    if (cell != 0) InsertCell(cell);
  }
}

void StoreShard::AddStats(size_t count, size_t bytes) {
  // Written only under the shard lock, so load+store is enough.
  size_.store(size_.load(std::memory_order_relaxed) + count, std::memory_order_relaxed);
  bytes_.store(bytes_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
}

void StoreShard::SubStats(size_t count, size_t bytes) {
  size_.store(size_.load(std::memory_order_relaxed) - count, std::memory_order_relaxed);
  bytes_.store(bytes_.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
}

}  // namespace corral::lease

// corral's in-memory store: Redis SET/EXPIRE semantics and read-through fills over StoreShard.
#include "lease/store.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

namespace corral::lease {
namespace {

// a + b for b >= 0, saturating at kNever (which then reads as "no expiry").
Millis AddClamped(Millis a, Millis b) { return a > kNever - b ? kNever : a + b; }

// One TTL from ttl_ms * [1 - jitter, 1 + jitter], `u` uniform in [0, 1).
Millis DrawTtl(Millis ttl_ms, double jitter, double u) {
  if (ttl_ms == kNever) return kNever;
  if (ttl_ms <= 0) return 0;
  jitter = std::clamp(jitter, 0.0, 1.0);
  const double drawn = static_cast<double>(ttl_ms) * (1.0 - jitter + 2.0 * jitter * u);
  if (drawn >= static_cast<double>(kNever)) return kNever;
  return std::max<Millis>(0, std::llround(drawn));
}

// The next SCAN position after `v` in an index of mask + 1 cells: Redis's dictScan cursor, which
// increments the reversed bits of the cursor so that, when the index doubles or shrinks between
// calls, the positions already visited map exactly onto cells already covered.
uint32_t Reverse(uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; i < 32; ++i, v >>= 1) r = (r << 1) | (v & 1u);
  return r;
}
uint32_t NextScanPosition(uint32_t v, uint32_t mask) { return Reverse(Reverse(v | ~mask) + 1); }

}  // namespace

Store::Store(StoreOptions options, const Clock& clock, Random& random)
    : clock_(clock),
      random_(random),
      policy_(options.policy),
      evict_(options.evict),
      shards_(std::bit_ceil(std::max<size_t>(options.shards, 1))),
      shard_mask_(shards_.size() - 1),
      shard_bits_(std::countr_zero(shards_.size())),
      stale_before_(std::numeric_limits<Millis>::min()),
      tuner_(options.policy == EvictionPolicy::kTinyLfu
                 ? options.max_bytes /
                       (StoreShard::kEntryOverhead + StoreShard::kAssumedKeyValueBytes)
                 : 0) {
  max_bytes_.store(options.max_bytes, std::memory_order_relaxed);
  for (Shard& shard : shards_) {
    shard.table.set_removal_hook(&removal_hook_);
    shard.table.set_window_source(&window_permille_);
    shard.table.set_policy(options.policy);
    shard.table.set_evict(options.evict);
    shard.table.set_budget(EntriesBudget(options.max_bytes) / shards_.size());
  }
  RefreshOutOfMemory();
}

size_t Store::EntriesBudget(size_t max_bytes) const {
  return max_bytes - std::min(max_bytes, tuner_.bytes());
}

void Store::SetRemovalHook(RemovalHook hook) {
  // Published through an atomic pointer: a shard may be dropping an entry right now (under its
  // own lock, not ours). Earlier hooks stay alive with the store, as a shard may still hold one.
  std::lock_guard<std::mutex> lock(hooks_mu_);
  hooks_.push_back(std::make_unique<RemovalHook>(std::move(hook)));
  removal_hook_.store(hooks_.back().get(), std::memory_order_release);
}

void Store::SetMaxBytes(size_t max_bytes) {
  max_bytes_.store(max_bytes, std::memory_order_relaxed);
  size_t entries_budget;
  {
    // A bound so small that the window tuner's simulations would be a large share of it (CONFIG
    // SET maxmemory 1mb on a store built for 256 MB): the tuner stops and gives its memory back,
    // and the window stays at 1%. It is sized once, when the store is built.
    std::lock_guard<std::mutex> tuner_lock(tuner_mu_);
    if (tuner_.bytes() > max_bytes / kTunerShareDivisor) {
      tuner_.Stop();
      window_permille_.store(tuner_.window_permille(), std::memory_order_relaxed);
    }
    entries_budget = EntriesBudget(max_bytes);
  }
  const Millis now = clock_.NowMs();
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.table.set_budget(entries_budget / shards_.size());
    shard.table.Shrink(now);
  }
  RefreshOutOfMemory();
}

void Store::SetEvict(bool evict) {
  evict_.store(evict, std::memory_order_relaxed);
  const Millis now = clock_.NowMs();
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.table.set_evict(evict);
    shard.table.Shrink(now);  // evicting again: down to the bound at once
  }
  RefreshOutOfMemory();
}

void Store::SetPolicy(EvictionPolicy policy) {
  policy_.store(policy, std::memory_order_relaxed);
  size_t entries_budget;
  {
    // The window tuner follows the policy: started, as the constructor would, when the store
    // turns to TinyLFU without one (built for CLOCK, or stopped), so a CONFIG SET
    // maxmemory-policy from an LRU name to an LFU one sizes its window as a store started with
    // tinylfu does; stopped, its memory back in the entries' budget, for CLOCK.
    std::lock_guard<std::mutex> tuner_lock(tuner_mu_);
    const size_t max = max_bytes();
    if (policy != EvictionPolicy::kTinyLfu) {
      tuner_.Stop();
    } else if (tuner_.bytes() == 0) {
      tuner_.Start(max / (StoreShard::kEntryOverhead + StoreShard::kAssumedKeyValueBytes));
      if (tuner_.bytes() > max / kTunerShareDivisor) tuner_.Stop();
    }
    window_permille_.store(tuner_.window_permille(), std::memory_order_relaxed);
    entries_budget = EntriesBudget(max);
  }
  const Millis now = clock_.NowMs();
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.table.SwitchPolicy(policy, entries_budget / shards_.size(), now);
  }
  RefreshOutOfMemory();
}

void Store::RefreshOutOfMemory() {
  bool out = false;
  const bool evicting = evict_.load(std::memory_order_relaxed);
  for (const Shard& shard : shards_) {
    const size_t budget = shard.table.budget_relaxed();
    // Eviction cannot make room for even the smallest entry; or, under noeviction, there is no
    // room left for it.
    if (budget < kEntryOverhead || (!evicting && shard.table.bytes() + kEntryOverhead > budget)) {
      out = true;
      break;
    }
  }
  out_of_memory_.store(out, std::memory_order_relaxed);
}

void Store::Sample(uint64_t hash) {
  std::unique_lock<std::mutex> lock(tuner_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  const uint64_t epochs = tuner_.epochs();
  tuner_.Record(hash);
  if (tuner_.epochs() == epochs) return;
  // An epoch ended: the simulated caches follow the entry count the budget holds at the average
  // entry size seen (the counters are read without the shard locks: an estimate).
  size_t count = 0;
  size_t bytes = 0;
  size_t policy_bytes = tuner_.bytes();
  for (const Shard& shard : shards_) {
    count += shard.table.size();
    bytes += shard.table.bytes();
    policy_bytes += shard.table.policy_bytes();
  }
  const size_t max_bytes = max_bytes_.load(std::memory_order_relaxed);
  if (count > 0 && bytes > 0 && max_bytes > policy_bytes) {
    const size_t budget = max_bytes - policy_bytes;
    tuner_.set_entries(static_cast<size_t>(
        static_cast<double>(budget) * static_cast<double>(count) / static_cast<double>(bytes)));
  }
  window_permille_.store(tuner_.window_permille(), std::memory_order_relaxed);
}

bool Store::Present(const StoreShard::Entry* entry, Millis now) const {
  return entry != nullptr && entry->kind == EntryKind::kValue && now < View(*entry).fresh_until;
}

SetResult Store::Set(std::string_view key, std::string_view value, std::optional<Millis> ttl_ms,
                     SetCondition cond, bool keep_ttl) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* existing = shard.table.FindLive(key, hash, now);
  shard.table.OnWrite(existing, hash);
  if (tuner_.Sampled(hash)) Sample(hash);
  const bool present = Present(existing, now);
  if (cond == SetCondition::kIfAbsent && present) return SetResult::kNotStored;
  if (cond == SetCondition::kIfPresent && !present) return SetResult::kNotStored;
  if (shard.table.TooLarge(key, value)) return SetResult::kTooLarge;

  EntryMeta meta;
  meta.filled_at = now;
  if (keep_ttl && present) {
    meta.fresh_until = View(*existing).fresh_until;
  } else if (!keep_ttl && ttl_ms.has_value()) {
    if (*ttl_ms <= 0) {  // expires at once: what is left is a delete
      if (existing != nullptr) shard.table.Remove(existing);
      return SetResult::kStored;
    }
    meta.fresh_until = AddClamped(now, *ttl_ms);
  }
  meta.stale_until = meta.fresh_until;

  StoreShard::Entry* entry = shard.table.Put(existing, key, hash, value, EntryOrigin::kSet, now);
  if (entry == nullptr) {
    RefreshOutOfMemory();
    return SetResult::kTooLarge;
  }
  entry->set_meta(meta);
  return SetResult::kStored;
}

std::optional<EntryMeta> Store::Fill(std::string_view key, std::string_view value,
                                     const FillOptions& options) {
  const Millis ttl = DrawTtl(options.ttl_ms, options.jitter, random_.Uniform01());
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  EntryMeta meta;
  meta.kind = options.kind;
  meta.filled_at = now;
  meta.fresh_until = AddClamped(now, ttl);
  meta.stale_until = AddClamped(meta.fresh_until, std::max<Millis>(0, options.stale_ms));
  meta.load_ms = options.load_ms;
  meta.position = options.position;

  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* existing = shard.table.FindLive(key, hash, now);
  StoreShard::Entry* entry = shard.table.Put(existing, key, hash, value, EntryOrigin::kFill, now);
  if (entry == nullptr) {
    if (existing != nullptr) shard.table.Remove(existing);
    RefreshOutOfMemory();
    return std::nullopt;
  }
  entry->set_meta(meta);
  return meta;
}

bool Store::Del(std::string_view key) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (entry == nullptr) return false;
  shard.table.Remove(entry);
  if (out_of_memory()) [[unlikely]]
    RefreshOutOfMemory();
  return true;
}

bool Store::Exists(std::string_view key) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  return Present(shard.table.FindLive(key, hash, now), now);
}

Millis Store::Pttl(std::string_view key) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  const StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (!Present(entry, now)) return -2;
  const Millis fresh_until = View(*entry).fresh_until;
  return fresh_until == kNever ? -1 : fresh_until - now;
}

bool Store::Expire(std::string_view key, Millis ttl_ms) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (!Present(entry, now)) return false;
  if (ttl_ms <= 0) {
    shard.table.Remove(entry);
    return true;
  }
  const Millis stale_window =
      entry->fresh_until == kNever ? 0 : entry->stale_until() - entry->fresh_until;
  const Millis fresh_until = AddClamped(now, ttl_ms);
  entry->set_times(fresh_until, AddClamped(fresh_until, stale_window));
  return true;
}

bool Store::Apply(Shard& shard, StoreShard::Entry* existing, bool present, std::string_view key,
                  uint64_t hash, Millis now, const Change& change) {
  switch (change.kind) {
    case Change::Kind::kKeep:
      if (!present || !change.set_expiry) return true;
      if (change.expire_at <= now) {
        shard.table.Remove(existing);
      } else {
        // As Expire: a read-through entry keeps the length of its stale window.
        const Millis stale_window =
            existing->fresh_until == kNever ? 0 : existing->stale_until() - existing->fresh_until;
        existing->set_times(change.expire_at, AddClamped(change.expire_at, stale_window));
      }
      return true;
    case Change::Kind::kDelete:
      if (existing != nullptr) shard.table.Remove(existing);
      return true;
    case Change::Kind::kStore:
      break;
  }
  if (shard.table.TooLarge(key, change.value)) return false;
  shard.table.OnWrite(existing, hash);
  if (change.expire_at <= now) {  // expires at once: what is left is a delete
    if (existing != nullptr) shard.table.Remove(existing);
    return true;
  }
  StoreShard::Entry* entry =
      shard.table.Put(existing, key, hash, change.value, EntryOrigin::kSet, now);
  if (entry == nullptr) {
    RefreshOutOfMemory();
    return false;
  }
  EntryMeta meta;
  meta.filled_at = now;
  meta.fresh_until = change.expire_at;
  meta.stale_until = change.expire_at;
  entry->set_meta(meta);
  return true;
}

SetResult Store::SetMany(std::span<const std::pair<std::string_view, std::string_view>> pairs,
                         bool if_none_exist) {
  std::vector<uint64_t> hashes;
  std::vector<size_t> order;  // the involved shards, ascending, each once
  hashes.reserve(pairs.size());
  for (const auto& [key, value] : pairs) {
    hashes.push_back(Hash(key));
    order.push_back(ShardIndex(hashes.back()));
  }
  std::sort(order.begin(), order.end());
  order.erase(std::unique(order.begin(), order.end()), order.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(order.size());
  for (size_t i : order) locks.emplace_back(shards_[i].mu);

  const Millis now = clock_.NowMs();
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (ShardFor(hashes[i]).table.TooLarge(pairs[i].first, pairs[i].second)) {
      return SetResult::kTooLarge;
    }
  }
  if (if_none_exist) {
    for (size_t i = 0; i < pairs.size(); ++i) {
      StoreShard& table = ShardFor(hashes[i]).table;
      if (Present(table.FindLive(pairs[i].first, hashes[i], now), now)) {
        return SetResult::kNotStored;
      }
    }
  }
  if (!evict()) {
    // Under noeviction every pair must fit before any is written. Counted conservatively: the
    // bytes of the entries the pairs replace are not counted as freed, and a repeated key twice.
    std::vector<size_t> need(order.size(), 0);
    for (size_t i = 0; i < pairs.size(); ++i) {
      const size_t at =
          std::lower_bound(order.begin(), order.end(), ShardIndex(hashes[i])) - order.begin();
      need[at] += pairs[i].first.size() + pairs[i].second.size() + kEntryOverhead;
    }
    for (size_t j = 0; j < order.size(); ++j) {
      if (!shards_[order[j]].table.Fits(need[j], 0, now)) {
        RefreshOutOfMemory();
        return SetResult::kTooLarge;
      }
    }
  }
  for (size_t i = 0; i < pairs.size(); ++i) {
    StoreShard& table = ShardFor(hashes[i]).table;
    StoreShard::Entry* existing = table.FindLive(pairs[i].first, hashes[i], now);
    table.OnWrite(existing, hashes[i]);
    // Put cannot refuse (TooLarge, and under noeviction Fits, were checked under the same
    // locks); it may evict, but never the entry it has just stored.
    StoreShard::Entry* entry =
        table.Put(existing, pairs[i].first, hashes[i], pairs[i].second, EntryOrigin::kSet, now);
    EntryMeta meta;
    meta.filled_at = now;
    entry->set_meta(meta);
  }
  return SetResult::kStored;
}

RenameResult Store::Rename(std::string_view from, std::string_view to, bool if_absent) {
  return Transfer(from, to, if_absent, false);
}

RenameResult Store::Copy(std::string_view from, std::string_view to, bool replace) {
  return Transfer(from, to, !replace, true);
}

RenameResult Store::Transfer(std::string_view from, std::string_view to, bool if_absent,
                             bool keep_source) {
  const uint64_t from_hash = Hash(from), to_hash = Hash(to);
  const size_t a = ShardIndex(from_hash), b = ShardIndex(to_hash);
  std::unique_lock<std::mutex> first(shards_[std::min(a, b)].mu);
  std::unique_lock<std::mutex> second;
  if (a != b) second = std::unique_lock<std::mutex>(shards_[std::max(a, b)].mu);

  const Millis now = clock_.NowMs();
  StoreShard& from_table = shards_[a].table;
  StoreShard& to_table = shards_[b].table;
  StoreShard::Entry* source = from_table.FindLive(from, from_hash, now);
  if (!Present(source, now)) return RenameResult::kNoSuchKey;
  if (from == to) return if_absent ? RenameResult::kTargetExists : RenameResult::kRenamed;
  if (if_absent && Present(to_table.FindLive(to, to_hash, now), now)) {
    return RenameResult::kTargetExists;
  }
  if (to_table.TooLarge(to, source->value())) return RenameResult::kTooLarge;
  if (!evict()) {
    // Under noeviction `to` must fit, what it replaces counting as freed (the source's own bytes
    // do not, even when they leave the same shard: conservative).
    const StoreShard::Entry* target = to_table.FindLive(to, to_hash, now);
    const size_t freed = target != nullptr ? StoreShard::CostOf(*target) : 0;
    if (!to_table.Fits(to.size() + source->value_size + kEntryOverhead, freed, now)) {
      RefreshOutOfMemory();
      return RenameResult::kTooLarge;
    }
  }
  // Copied out before the source goes: Put may evict, and a removal frees the bytes.
  const std::string value(source->value());
  const Millis expire_at = View(*source).fresh_until;
  if (!keep_source) from_table.Remove(source);
  StoreShard::Entry* existing = to_table.FindLive(to, to_hash, now);
  to_table.OnWrite(existing, to_hash);
  StoreShard::Entry* entry = to_table.Put(existing, to, to_hash, value, EntryOrigin::kSet, now);
  EntryMeta meta;
  meta.filled_at = now;
  meta.fresh_until = expire_at;
  meta.stale_until = expire_at;
  entry->set_meta(meta);
  return RenameResult::kRenamed;
}

bool Store::Touch(std::string_view key) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (!Present(entry, now)) return false;
  shard.table.OnHit(entry, hash, now);
  return true;
}

uint64_t Store::Scan(uint64_t cursor, size_t count,
                     const std::function<void(std::string_view)>& fn) {
  size_t shard = cursor & shard_mask_;
  uint32_t position = static_cast<uint32_t>(cursor >> shard_bits_);
  count = std::max<size_t>(count, 1);
  const size_t max_visits = count > SIZE_MAX / 10 ? SIZE_MAX : count * 10;
  size_t found = 0, visits = 0;
  while (true) {
    {
      Shard& s = shards_[shard];
      std::lock_guard<std::mutex> lock(s.mu);
      const Millis now = clock_.NowMs();
      const uint32_t mask = static_cast<uint32_t>(s.table.index_cells() - 1);
      // An empty shard is passed over without counting against the call's visits.
      if (s.table.size() == 0) {
        position = 0;
      } else {
        do {
          s.table.VisitHome(position & mask, [&](const StoreShard::Entry& entry) {
            if (!Present(&entry, now)) return;
            fn(entry.key());
            ++found;
          });
          position = NextScanPosition(position, mask);
          ++visits;
        } while (position != 0 && found < count && visits < max_visits);
      }
    }
    if (position == 0 && ++shard == shards_.size()) return 0;  // the last shard is done
    if (found >= count || visits >= max_visits) {
      return static_cast<uint64_t>(position) << shard_bits_ | shard;
    }
  }
}

std::optional<std::string> Store::RandomKey() {
  const size_t start =
      static_cast<size_t>(random_.Uniform01() * static_cast<double>(shards_.size()));
  const double slot_draw = random_.Uniform01();
  for (size_t i = 0; i < shards_.size(); ++i) {
    Shard& s = shards_[(start + i) & shard_mask_];
    if (s.table.size() == 0) continue;
    std::lock_guard<std::mutex> lock(s.mu);
    const Millis now = clock_.NowMs();
    const size_t n = s.table.slot_count();
    if (n == 0) continue;
    const size_t from = std::min(n - 1, static_cast<size_t>(slot_draw * static_cast<double>(n)));
    for (size_t j = 0; j < n; ++j) {
      const StoreShard::Entry& entry = s.table.slot((from + j) % n);
      if (entry.in_use() && Present(&entry, now)) return std::string(entry.key());
    }
  }
  return std::nullopt;
}

std::optional<PolicyView> Store::Inspect(std::string_view key) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  const StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (entry == nullptr) return std::nullopt;
  return shard.table.View(*entry, hash, now);
}

bool Store::MarkStale(std::string_view key) {
  const uint64_t hash = Hash(key);
  const Millis now = clock_.NowMs();
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mu);
  StoreShard::Entry* entry = shard.table.FindLive(key, hash, now);
  if (entry == nullptr || entry->origin != EntryOrigin::kFill) return false;
  EntryMeta meta = entry->meta();
  if (meta.fresh_until <= now) return false;
  meta.fresh_until = now;
  entry->set_meta(meta);
  return true;
}

void Store::MarkAllStaleBefore(Millis before) {
  Millis current = stale_before_.load(std::memory_order_relaxed);
  while (current < before &&
         !stale_before_.compare_exchange_weak(current, before, std::memory_order_relaxed)) {
  }
}

void Store::Clear() {
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.table.Clear();
  }
  RefreshOutOfMemory();
}

size_t Store::Size() const {
  size_t total = 0;
  for (const Shard& shard : shards_) total += shard.table.size();
  return total;
}

size_t Store::MemoryBytes() const {
  size_t total = 0;
  for (const Shard& shard : shards_) total += shard.table.bytes();
  return total;
}

size_t Store::ExpireSome(size_t budget_per_shard) {
  const Millis now = clock_.NowMs();
  size_t removed = 0;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    removed += shard.table.ExpireSome(budget_per_shard, now);
  }
  return removed;
}

size_t Store::PolicyBytes() const {
  size_t total = tuner_.bytes();
  for (const Shard& shard : shards_) total += shard.table.policy_bytes();
  return total;
}

uint64_t Store::evictions() const {
  uint64_t total = 0;
  for (const Shard& shard : shards_) total += shard.table.evictions();
  return total;
}

uint64_t Store::expirations() const {
  uint64_t total = 0;
  for (const Shard& shard : shards_) total += shard.table.expirations();
  return total;
}

}  // namespace corral::lease

// corral's in-memory store: Redis SET/EXPIRE semantics and read-through fills over StoreShard.
#include "lease/store.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

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

}  // namespace

Store::Store(StoreOptions options, const Clock& clock, Random& random)
    : clock_(clock),
      random_(random),
      policy_(options.policy),
      shards_(std::bit_ceil(std::max<size_t>(options.shards, 1))),
      shard_mask_(shards_.size() - 1),
      stale_before_(std::numeric_limits<Millis>::min()) {
  for (Shard& shard : shards_) {
    shard.table.set_policy(options.policy);
    shard.table.set_budget(options.max_bytes / shards_.size());
  }
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
  shard.table.OnWrite(hash);
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

  StoreShard::Entry* entry = shard.table.Put(existing, key, hash, value, now);
  if (entry == nullptr) return SetResult::kTooLarge;
  entry->set_meta(meta);
  entry->origin = EntryOrigin::kSet;
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
  StoreShard::Entry* entry = shard.table.Put(existing, key, hash, value, now);
  if (entry == nullptr) {
    if (existing != nullptr) shard.table.Remove(existing);
    return std::nullopt;
  }
  entry->set_meta(meta);
  entry->origin = EntryOrigin::kFill;
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
      entry->fresh_until == kNever ? 0 : entry->stale_until - entry->fresh_until;
  entry->fresh_until = AddClamped(now, ttl_ms);
  entry->stale_until = AddClamped(entry->fresh_until, stale_window);
  return true;
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
  size_t total = 0;
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

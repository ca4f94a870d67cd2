// See error_holdoff.h.
#include "lease/error_holdoff.h"

#include <functional>

namespace corral::lease {

struct ErrorHoldoff::Shard {
  struct Record {
    std::string error;
    Millis until;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  mutable std::mutex mu;
  std::unordered_map<std::string, Record, Hash, std::equal_to<>> records;
  size_t sweep_at = 64;  // sweep expired records when the map reaches this size
};

ErrorHoldoff::ErrorHoldoff(Millis holdoff_ms, const Clock& clock, size_t shards)
    : holdoff_ms_(holdoff_ms),
      clock_(clock),
      shard_count_(shards == 0 ? 1 : shards),
      shards_(std::make_unique<Shard[]>(shard_count_)) {}

ErrorHoldoff::~ErrorHoldoff() = default;

ErrorHoldoff::Shard& ErrorHoldoff::ShardFor(std::string_view key) const {
  return shards_[std::hash<std::string_view>()(key) % shard_count_];
}

void ErrorHoldoff::Record(std::string_view key, std::string_view error) {
  if (holdoff_ms_ <= 0) return;
  Millis now = clock_.NowMs();
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  if (s.records.size() >= s.sweep_at) {
    std::erase_if(s.records, [now](const auto& kv) { return kv.second.until <= now; });
    s.sweep_at = std::max<size_t>(64, s.records.size() * 2);
  }
  auto it = s.records.find(key);
  if (it == s.records.end()) {
    s.records.emplace(std::string(key), Shard::Record{std::string(error), now + holdoff_ms_});
  } else {
    it->second = Shard::Record{std::string(error), now + holdoff_ms_};
  }
}

std::optional<std::string> ErrorHoldoff::Check(std::string_view key) {
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  if (s.records.empty()) return std::nullopt;
  auto it = s.records.find(key);
  if (it == s.records.end()) return std::nullopt;
  if (it->second.until <= clock_.NowMs()) {
    s.records.erase(it);
    return std::nullopt;
  }
  return it->second.error;
}

void ErrorHoldoff::Clear(std::string_view key) {
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  if (s.records.empty()) return;
  auto it = s.records.find(key);
  if (it != s.records.end()) s.records.erase(it);
}

size_t ErrorHoldoff::size() const {
  size_t n = 0;
  for (size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].records.size();
  }
  return n;
}

}  // namespace corral::lease

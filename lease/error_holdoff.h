// Error hold-off (SPEC.md rule 7): a failed load is remembered for error_holdoff_ms so that the
// requests in that window get the stale value or the error at once, without touching the database.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "lease/clock.h"

namespace corral::lease {

// JSON "lease.error_holdoff_ms" (with LeaseTableOptions' fields). Checked by Validate in
// lease/options.h.
struct ErrorHoldoffOptions {
  Millis error_holdoff_ms = 1000;  // 0: failures are not remembered
};

// Thread-safe (sharded locks). Memory is bounded by the keys that failed within the last
// holdoff_ms: expired records are swept as new ones arrive.
class ErrorHoldoff {
 public:
  ErrorHoldoff(Millis holdoff_ms, const Clock& clock, size_t shards = 16);
  ~ErrorHoldoff();

  // Remembers that loading `key` failed with `error`, until now + holdoff_ms.
  void Record(std::string_view key, std::string_view error);
  // The remembered error if `key` is within its hold-off window.
  std::optional<std::string> Check(std::string_view key);
  // Forgets `key` (a successful load or an invalidation ends the hold-off).
  void Clear(std::string_view key);
  size_t size() const;

 private:
  struct Shard;
  Shard& ShardFor(std::string_view key) const;
  Millis holdoff_ms_;
  const Clock& clock_;
  size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace corral::lease

// Replica choice and reconnect pacing for the loader, as pure functions so they are unit-tested
// without threads or a database.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "pg-loader/loader.h"

namespace corral::pg {

struct Candidate {
  bool usable = false;  // up (or not yet checked), not lagging, not excluded
  int64_t load = 0;     // in-flight + queued loads
};

// Picks the index of a usable candidate, or nullopt if none is. `ticket` is a per-pool counter the
// caller bumps on every call: kRoundRobin starts scanning at ticket % n and takes the first usable
// one, so consecutive tickets spread over the usable replicas; kLeastLoaded takes the smallest load
// and breaks ties in the same rotating order.
std::optional<size_t> PickReplica(std::span<const Candidate> candidates, Routing routing,
                                  uint64_t ticket);

// Exponential back-off: first, 2×first, ... capped at max. Not thread-safe (one per thread).
class Backoff {
 public:
  Backoff(int64_t first_ms, int64_t max_ms) : first_ms_(first_ms), max_ms_(max_ms) {}
  // The delay to wait now, in milliseconds; the next call returns twice as much (up to max).
  int64_t NextMs();
  void Reset() { next_ms_ = 0; }

 private:
  int64_t first_ms_;
  int64_t max_ms_;
  int64_t next_ms_ = 0;  // 0: start over at first_ms_
};

}  // namespace corral::pg

// Replica choice (round-robin, least-loaded) and exponential back-off.
#include "pg-loader/routing.h"

#include <algorithm>

namespace corral::pg {

std::optional<size_t> PickReplica(std::span<const Candidate> candidates, Routing routing,
                                  uint64_t ticket) {
  const size_t n = candidates.size();
  if (n == 0) return std::nullopt;
  const size_t start = static_cast<size_t>(ticket % n);
  std::optional<size_t> best;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    if (!candidates[i].usable) continue;
    if (routing == Routing::kRoundRobin) return i;
    if (!best || candidates[i].load < candidates[*best].load) best = i;
  }
  return best;
}

int64_t Backoff::NextMs() {
  const int64_t now = next_ms_ == 0 ? first_ms_ : next_ms_;
  next_ms_ = std::min(now * 2, max_ms_);
  return std::min(now, max_ms_);
}

}  // namespace corral::pg

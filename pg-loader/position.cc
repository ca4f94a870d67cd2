// The primary's current WAL position for invalidations (Loader::CurrentPosition): one thread, one
// connection to the primary, and group commit's batching: every request that arrived while a query
// ran is answered by the next query, which starts after all of them arrived and so reads a
// position at least as new as each one's write.
#include "pg-loader/loader_impl.h"
#include "pg-loader/routing.h"

namespace corral::pg {

uint64_t Loader::Impl::NewestKnownPosition() const {
  uint64_t newest = 0;
  for (const auto& node : nodes) newest = std::max(newest, node->state.position());
  return newest;
}

void Loader::Impl::PositionLoop() {
  using SteadyClock = std::chrono::steady_clock;
  Session session(primary_conninfo);
  Backoff backoff(kReconnectFirstMs, kReconnectMaxMs);
  // While the primary is unreachable, requests are answered at once until this time, when the
  // next request tries it again: a dead primary must not hold every DEL for a connect timeout.
  SteadyClock::time_point retry_at{};
  while (true) {
    std::vector<std::function<void(uint64_t)>> batch;
    {
      std::unique_lock lock(positions.mu);
      // Idle for a health-check interval: sample the primary's position anyway, for the
      // replicas' lag (primary_positions).
      positions.cv.wait_for(lock, std::chrono::milliseconds(options.health_check_interval_ms),
                            [&] { return positions.closed || !positions.waiting.empty(); });
      batch.swap(positions.waiting);
      if (positions.closed && batch.empty()) return;
    }
    uint64_t position = 0;
    bool asked = false;
    if (SteadyClock::now() >= retry_at) {
      std::string error = session.Connect();
      if (error.empty()) {
        const int64_t timeout_ms = HealthTimeoutMs();
        const auto asked_at = SteadyClock::now();
        const uint64_t watch = Watch(session.socket(), timeout_ms);
        PrimaryPosition result = session.CurrentPosition(timeout_ms);
        const bool cut = Unwatch(watch);
        asked = !cut && result.ok;
        if (asked) {
          position = result.inserted;
          primary_positions->Add(asked_at, result.flushed);
        }
      }
      if (asked) {
        backoff.Reset();
      } else {
        session.Close();
        retry_at = SteadyClock::now() + std::chrono::milliseconds(backoff.NextMs());
      }
    }
    // Unasked: the newest position any server reported. A write the replicas have not received
    // yet is not covered; with the primary unreachable, no new write commits either.
    if (!asked) position = NewestKnownPosition();
    for (auto& done : batch) done(position);
  }
}

}  // namespace corral::pg

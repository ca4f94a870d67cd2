// The health checker of each server: checks connection, recovery state and replay lag every
// health_check_interval_ms (with back-off while down), and marks the server up, lagging or down.
#include "pg-loader/loader_impl.h"
#include "pg-loader/replay_lag.h"
#include "pg-loader/routing.h"

namespace corral::pg {

HealthResult Loader::Impl::CheckOnce(Session& session, size_t index) {
  HealthResult health;
  if (!session.is_open()) {
    health.error = session.Connect();
    if (!health.error.empty()) return health;
  }
  const int64_t timeout_ms = HealthTimeoutMs();
  const uint64_t watch = Watch(session.socket(), timeout_ms);
  health = session.CheckHealth(timeout_ms);
  if (Unwatch(watch)) {
    health.ok = false;
    health.error = "no answer within the deadline";
  }
  if (!health.ok) session.Close();
  return health;
}

void Loader::Impl::HealthLoop(size_t index) {
  using SteadyClock = std::chrono::steady_clock;
  Node& node = *nodes[index];
  Session session(node.conninfo);
  Backoff backoff(kReconnectFirstMs, kReconnectMaxMs);
  const int64_t interval_ms = options.health_check_interval_ms;
  ReplayLagTracker lag_tracker;
  struct Checked {
    HealthResult health;
    double lag_seconds = 0;
  };
  auto check = [&] {
    Checked c{CheckOnce(session, index)};
    if (c.health.ok) {
      if (c.health.in_recovery && c.health.replay_lsn > 0) {
        node.state.NotePosition(static_cast<uint64_t>(c.health.replay_lsn));
      }
      const auto now = SteadyClock::now();
      c.lag_seconds =
          lag_tracker.Observe(now, c.health.in_recovery, c.health.receive_lsn, c.health.replay_lsn);
      // Against the primary too: a replica that replayed all it received may still not have
      // received what the primary has (just restarted, or its receiver cut off).
      if (c.health.in_recovery && c.health.replay_lsn >= 0) {
        c.lag_seconds =
            std::max(c.lag_seconds,
                     primary_positions->LagOf(now, static_cast<uint64_t>(c.health.replay_lsn)));
      }
    }
    return c;
  };
  while (true) {
    Checked checked = check();
    if (checked.health.ok && node.state.LagTooHigh(checked.lag_seconds) &&
        !node.state.Snapshot().lagging) {
      const int64_t confirm_ms = std::min(kLagConfirmMs, interval_ms / 2);
      if (node.state.WaitForCheck(std::chrono::milliseconds(confirm_ms)) ==
          ReplicaState::Wake::kClosed)
        break;
      checked = check();
    }
    const HealthResult& health = checked.health;
    int64_t delay_ms;
    if (health.ok) {
      // A replica (in recovery) back from down or lagging catches up to every position whose
      // markers may have been forgotten while it was out (ReplicaState::MarkUp).
      {
        std::lock_guard lock(forgotten.mu);
        node.state.MarkUp(checked.lag_seconds, health.in_recovery ? forgotten.upto : 0);
      }
      backoff.Reset();
      delay_ms = interval_ms;
    } else {
      if (node.state.MarkDown()) RerouteQueue(index);
      delay_ms = std::min(backoff.NextMs(), interval_ms * 2);
    }
    if (node.state.WaitForCheck(std::chrono::milliseconds(delay_ms),
                                std::chrono::milliseconds(kMinRecheckMs)) ==
        ReplicaState::Wake::kClosed)
      break;
  }
}

}  // namespace corral::pg

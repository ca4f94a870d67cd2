// How far a streaming replica's data lags, measured from replay progress rather than from
// transaction timestamps (which make an idle-but-current replica look minutes behind).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

namespace corral::pg {

// Feed it one observation per health check; not thread-safe (one per health loop).
//
// At each check the replica reports how much WAL it has received and replayed (byte positions).
// If it has replayed everything it has received, it is current: lag 0. Otherwise its data is at
// least as new as what it had *received* at the newest earlier check whose received position it
// has replayed by now, so the lag is at most the time since that check. A replica that applies a
// steady stream of writes promptly stays near 0; one whose replay is paused or too slow grows by
// the wall-clock time it falls behind.
class ReplayLagTracker {
 public:
  using Clock = std::chrono::steady_clock;

  // receive/replay < 0: the server did not report that position (NULL), e.g. a primary. A
  // standby that reports no received position (its WAL receiver has not streamed since it
  // started) is behind since it was last seen current: +infinity if never.
  double Observe(Clock::time_point now, bool in_recovery, double receive, double replay);

 private:
  struct Sample {
    Clock::time_point at;
    double receive;
  };
  std::deque<Sample> samples_;  // checks while behind, oldest first, receive non-decreasing
  std::optional<Clock::time_point> current_as_of_;
};

// The primary's WAL position over time, sampled every health-check interval (and on every
// invalidation's ask), against which a replica's replay position is a lag no replica-side view
// can hide: a replica that has replayed all it received is current only if what it received is
// what the primary had. It is not after a restart (its WAL receiver starts where its own WAL
// ends) or while its receiver is cut off. Thread-safe: the position loop adds, the health loops
// ask.
class PrimaryPositions {
 public:
  using Clock = std::chrono::steady_clock;

  // `keep`: how far back samples are kept (at least one is): a replica behind the oldest is at
  // least that far behind, which must exceed max_replica_lag_ms.
  explicit PrimaryPositions(Clock::duration keep) : keep_(keep) {}

  // The primary's flush position read by a query sent at `asked_at`: it holds every commit
  // flushed before, which is all a replica can have been sent. (An async commit is flushed within
  // wal_writer_delay; like PostgreSQL's own replay_lag, the lag counts from the flush.)
  void Add(Clock::time_point asked_at, uint64_t position);
  // How far behind a replica that has replayed `replay` is at `now`: 0 if it has replayed the
  // newest sample's position (or there is none), else the time since the newest sample it has
  // replayed (since the oldest kept, if none).
  double LagOf(Clock::time_point now, uint64_t replay) const;

 private:
  struct Sample {
    Clock::time_point at;
    uint64_t position;
  };
  const Clock::duration keep_;
  mutable std::mutex mu_;
  std::deque<Sample> samples_;  // oldest first, positions non-decreasing
};

}  // namespace corral::pg

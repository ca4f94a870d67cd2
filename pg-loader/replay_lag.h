// How far a streaming replica's data lags, measured from replay progress rather than from
// transaction timestamps (which make an idle-but-current replica look minutes behind).
#pragma once

#include <chrono>
#include <deque>
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

  // receive/replay < 0: the server did not report that position (NULL), e.g. a primary.
  double Observe(Clock::time_point now, bool in_recovery, double receive, double replay);

 private:
  struct Sample {
    Clock::time_point at;
    double receive;
  };
  std::deque<Sample> samples_;  // checks while behind, oldest first, receive non-decreasing
  std::optional<Clock::time_point> current_as_of_;
};

}  // namespace corral::pg

// See replay_lag.h.
#include "pg-loader/replay_lag.h"

namespace corral::pg {

double ReplayLagTracker::Observe(Clock::time_point now, bool in_recovery, double receive,
                                 double replay) {
  // Not a replica, or nothing received to compare with (no WAL receiver yet): nothing pending.
  if (!in_recovery || receive < 0 || replay < 0 || replay >= receive) {
    samples_.clear();
    current_as_of_ = now;
    return 0;
  }
  if (!current_as_of_) current_as_of_ = now;  // first sight, already behind: count from here
  while (!samples_.empty() && samples_.front().receive <= replay) {
    current_as_of_ = samples_.front().at;  // everything received by then is replayed now
    samples_.pop_front();
  }
  samples_.push_back(Sample{now, receive});
  if (samples_.size() > 256) samples_.pop_front();  // bounded; dropping old ones only overstates
  return std::chrono::duration<double>(now - *current_as_of_).count();
}

}  // namespace corral::pg

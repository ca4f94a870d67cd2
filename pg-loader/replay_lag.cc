// See replay_lag.h.
#include "pg-loader/replay_lag.h"

#include <algorithm>
#include <limits>

namespace corral::pg {

double ReplayLagTracker::Observe(Clock::time_point now, bool in_recovery, double receive,
                                 double replay) {
  // Not a replica, or one that has replayed everything it received: current.
  if (!in_recovery || (receive >= 0 && replay >= receive)) {
    samples_.clear();
    current_as_of_ = now;
    return 0;
  }
  if (receive < 0 || replay < 0) {
    // A standby whose WAL receiver has received nothing since it started: after a restart it
    // opens for reads while it still replays its own WAL, whose end may be far behind the
    // primary (and behind what it served before it stopped). Behind since it was last current;
    // if it never was, by an unknown time.
    samples_.clear();
    if (!current_as_of_) return std::numeric_limits<double>::infinity();
    return std::chrono::duration<double>(now - *current_as_of_).count();
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

void PrimaryPositions::Add(Clock::time_point asked_at, uint64_t position) {
  std::lock_guard lock(mu_);
  // A sample behind the newest (a reconnect to a primary whose position went back) or asked
  // earlier than it (answers arrive out of order) is not newer news.
  if (!samples_.empty() && (position < samples_.back().position || asked_at < samples_.back().at)) {
    return;
  }
  samples_.push_back(Sample{asked_at, position});
  while (samples_.size() > 1 && asked_at - samples_.front().at > keep_) samples_.pop_front();
  if (samples_.size() > 4096) samples_.pop_front();  // bounded even with a tiny interval
}

double PrimaryPositions::LagOf(Clock::time_point now, uint64_t replay) const {
  std::lock_guard lock(mu_);
  if (samples_.empty() || replay >= samples_.back().position) return 0;
  Clock::time_point as_of = samples_.front().at;  // behind every sample: at least this old
  for (auto it = samples_.rbegin(); it != samples_.rend(); ++it) {
    if (it->position <= replay) {
      as_of = it->at;
      break;
    }
  }
  return std::max(0.0, std::chrono::duration<double>(now - as_of).count());
}

}  // namespace corral::pg

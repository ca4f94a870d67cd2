// See load_limiter.h.
#include "lease/load_limiter.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace corral::lease {

LoadLimiter::LoadLimiter(LoadLimiterOptions options, const Clock& clock)
    : options_(options),
      clock_(clock),
      limit_(static_cast<double>(std::clamp(kInitialLimit, options.min_limit,
                                            std::max(options.max_limit, options.min_limit)))) {}

size_t LoadLimiter::AddGroup(int64_t cap, Priority priority) {
  std::lock_guard lock(mu_);
  groups_.push_back(Group{cap, priority});
  has_high_ = has_high_ || priority == Priority::kHigh;
  return groups_.size() - 1;
}

void LoadLimiter::SetGroupCap(size_t group, int64_t cap) {
  std::vector<Granted> out;
  {
    std::lock_guard lock(mu_);
    groups_[group].cap = cap;
    Pump(clock_.NowMs(), out);
  }
  Answer(out);
}

bool LoadLimiter::PoolHasRoom(Priority priority) const {
  if (options_.max_limit <= 0) return true;
  const auto limit = static_cast<int64_t>(limit_);
  int64_t usable = limit;
  if (priority == Priority::kLow && has_high_) usable = std::max<int64_t>(1, limit - limit / 4);
  return inflight_ < usable;
}

bool LoadLimiter::CannotFinish(const Group& g, int64_t place, Millis now,
                               Millis deadline_ms) const {
  // Its estimated start: it waits for the `place` loads served before it in its group, as many
  // at a time as the group can run (until enough loads were measured, only "if started now").
  int64_t parallel = std::numeric_limits<int64_t>::max();
  if (g.cap > 0) parallel = g.cap;
  if (options_.max_limit > 0) parallel = std::min(parallel, static_cast<int64_t>(limit_));
  const int64_t rounds = EstimatesStarts() ? place / parallel : 0;
  const Millis expected = g.recent_count > 0 ? g.expected_ms : expected_ms_;
  return now + rounds * expected + expected > deadline_ms;
}

Admission LoadLimiter::Blocker(const Group& g) const {
  return GroupHasRoom(g) ? Admission::kPoolInflight : Admission::kInflight;
}

std::optional<size_t> LoadLimiter::NextGroup() const {
  std::optional<size_t> best;
  for (size_t i = 0; i < groups_.size(); ++i) {
    const Group& g = groups_[i];
    if (g.queue.empty() || !GroupHasRoom(g) || !PoolHasRoom(g.priority)) continue;
    if (!best) {
      best = i;
      continue;
    }
    const Group& b = groups_[*best];
    if (g.priority != b.priority) {
      if (g.priority == Priority::kHigh) best = i;
      continue;
    }
    const bool better =
        lifo_ ? g.queue.back().seq > b.queue.back().seq : g.queue.front().seq < b.queue.front().seq;
    if (better) best = i;
  }
  return best;
}

void LoadLimiter::Acquire(size_t group, Millis deadline_ms, Grant grant) {
  Admission answer = Admission::kAdmitted;
  {
    std::lock_guard lock(mu_);
    const Millis now = clock_.NowMs();
    Group& g = groups_[group];
    if (g.queue.empty() && GroupHasRoom(g) && PoolHasRoom(g.priority)) {
      ++g.inflight;
      ++inflight_;
    } else {
      // Newest first, it is next; oldest first, every load queued in its group goes before it.
      const auto place = lifo_ ? 0 : static_cast<int64_t>(g.queue.size());
      if (CannotFinish(g, place, now, deadline_ms)) {
        answer = Blocker(g);
      } else {
        g.queue.push_back(Waiting{deadline_ms, now, next_seq_++, std::move(grant)});
        ++queued_;
        UpdateCodel(now);
        return;
      }
    }
  }
  grant(answer);
}

void LoadLimiter::Release(size_t group, std::optional<Millis> load_ms) {
  std::vector<Granted> out;
  {
    std::lock_guard lock(mu_);
    const Millis now = clock_.NowMs();
    --groups_[group].inflight;
    --inflight_;
    if (load_ms) Sample(now, groups_[group], std::max<Millis>(*load_ms, 0));
    Pump(now, out);
  }
  Answer(out);
}

void LoadLimiter::Expire() {
  std::vector<Granted> out;
  {
    std::lock_guard lock(mu_);
    const Millis now = clock_.NowMs();
    UpdateCodel(now);
    if (queued_ == 0 || now - last_sweep_ < kSweepEveryMs) return;
    last_sweep_ = now;
    for (Group& g : groups_) SweepGroup(g, now, out);
    UpdateCodel(now);
  }
  Answer(out);
}

void LoadLimiter::Pump(Millis now, std::vector<Granted>& out) {
  while (std::optional<size_t> next = NextGroup()) {
    Group& g = groups_[*next];
    Waiting w;
    if (lifo_) {
      w = std::move(g.queue.back());
      g.queue.pop_back();
    } else {
      w = std::move(g.queue.front());
      g.queue.pop_front();
    }
    --queued_;
    if (CannotFinish(g, 0, now, w.deadline_ms)) {
      // Too late to finish in time: whoever waits for it gets stale or BUSY now, not a late
      // answer nobody waits for — and the database is spared a query nobody will read.
      out.push_back(Granted{std::move(w.grant), Blocker(g)});
      continue;
    }
    ++g.inflight;
    ++inflight_;
    out.push_back(Granted{std::move(w.grant), Admission::kAdmitted});
  }
  UpdateCodel(now);
}

void LoadLimiter::SweepGroup(Group& g, Millis now, std::vector<Granted>& out) {
  if (g.queue.empty()) return;
  // Walk in service order; a load's place is counted among those that stay.
  std::deque<Waiting> kept;
  int64_t place = 0;
  const Admission why = Blocker(g);
  auto visit = [&](Waiting& w) {
    if (CannotFinish(g, place, now, w.deadline_ms)) {
      out.push_back(Granted{std::move(w.grant), why});
      --queued_;
    } else {
      ++place;
      if (lifo_) {
        kept.push_front(std::move(w));
      } else {
        kept.push_back(std::move(w));
      }
    }
  };
  if (lifo_) {
    for (auto it = g.queue.rbegin(); it != g.queue.rend(); ++it) visit(*it);
  } else {
    for (Waiting& w : g.queue) visit(w);
  }
  g.queue = std::move(kept);
}

void LoadLimiter::Sample(Millis now, Group& g, Millis load_ms) {
  auto shortest = [](const auto& ring, size_t count) {
    const size_t n = std::min(count, kRecentSamples);
    return *std::min_element(ring.begin(), ring.begin() + static_cast<ptrdiff_t>(n));
  };
  recent_[recent_count_++ % kRecentSamples] = load_ms;
  expected_ms_ = shortest(recent_, recent_count_);
  g.recent[g.recent_count++ % kRecentSamples] = load_ms;
  g.expected_ms = shortest(g.recent, g.recent_count);
  if (window_count_ == 0) window_start_ = now;
  g.window_sum += static_cast<double>(load_ms);
  ++g.window_count;
  ++window_count_;
  window_peak_inflight_ = std::max(window_peak_inflight_, inflight_ + 1);
  if (options_.max_limit <= 0) return;  // nothing to adapt
  const int64_t min_samples = std::clamp<int64_t>(static_cast<int64_t>(limit_), 1, 10);
  if (now - window_start_ < kWindowMs || window_count_ < min_samples) return;
  const bool relearn = ++windows_ % kRelearnWindows == 0;
  // The window's load time against what its mix of namespaces took at no load.
  double expected = 0;
  double actual = 0;
  for (Group& group : groups_) {
    if (group.window_count == 0) continue;
    const auto count = static_cast<double>(group.window_count);
    const double mean = std::max(group.window_sum / count, 1.0);
    if (group.noload_ms <= 0 || mean < group.noload_ms || relearn) group.noload_ms = mean;
    expected += count * group.noload_ms;
    actual += count * mean;
    group.window_sum = 0;
    group.window_count = 0;
  }
  // A re-learnt no-load time may be a lastingly slower database's: what was proven before does
  // not hold for it.
  if (relearn) proven_ = std::min(proven_, limit_);
  const double gradient = std::clamp(kTolerance * expected / actual, 0.5, 1.0);
  const bool healthy = gradient >= 1.0;
  // Only a limit in use (half of it at some point of the window) grows: an idle pool's latency
  // says nothing about more concurrency. And only a window with kBusyLoads at once (or half the
  // limit) shrinks it: the mean of a few short loads is noise around the no-load time.
  const bool used = 2 * window_peak_inflight_ >= static_cast<int64_t>(limit_);
  // A rise with kBusyLoads or more at once is a rise, however high the limit: a limit far above
  // what runs (slow start's, after a cold burst) must still come down when the database slows.
  const bool busy = used || window_peak_inflight_ >= kBusyLoads;
  const double floor = static_cast<double>(options_.min_limit);
  const double ceiling = static_cast<double>(std::max(options_.max_limit, options_.min_limit));
  if (healthy && used) proven_ = std::max(proven_, limit_);
  if (slow_start_ && healthy) {
    if (used) limit_ = std::clamp(2 * limit_, floor, ceiling);
  } else if (healthy && limit_ < proven_) {
    // The database answers at its no-load time again after a fall: back to the highest limit
    // proven healthy under use since, at slow start's pace, whether or not it is in use now —
    // a cache that is warm again would not use it until its next cold burst meets it.
    slow_start_ = false;
    limit_ = std::clamp(std::min(2 * limit_, proven_), floor, ceiling);
  } else if (used || (busy && !healthy)) {
    slow_start_ = false;
    double target = limit_ * gradient;
    if (used) target += std::sqrt(limit_);
    limit_ = std::clamp((1 - kSmoothing) * limit_ + kSmoothing * target, floor, ceiling);
  } else if (!healthy) {
    slow_start_ = false;
  }
  window_count_ = 0;
  window_peak_inflight_ = 0;
}

void LoadLimiter::UpdateCodel(Millis now) {
  // The standing delay is the age of the oldest queued load.
  Millis oldest = now;
  for (const Group& g : groups_) {
    if (!g.queue.empty()) oldest = std::min(oldest, g.queue.front().queued_at);
  }
  if (now - oldest < kCodelTargetMs) {
    above_target_since_ = 0;
    lifo_ = false;
  } else if (above_target_since_ == 0) {
    above_target_since_ = now;
  } else if (now - above_target_since_ >= kCodelIntervalMs) {
    lifo_ = true;
  }
}

void LoadLimiter::Answer(std::vector<Granted>& granted) {
  for (Granted& g : granted) g.grant(g.answer);
}

int64_t LoadLimiter::limit() const {
  std::lock_guard lock(mu_);
  return options_.max_limit <= 0 ? 0 : static_cast<int64_t>(limit_);
}

int64_t LoadLimiter::inflight() const {
  std::lock_guard lock(mu_);
  return inflight_;
}

int64_t LoadLimiter::queued() const {
  std::lock_guard lock(mu_);
  return queued_;
}

Millis LoadLimiter::expected_load_ms() const {
  std::lock_guard lock(mu_);
  return expected_ms_;
}

bool LoadLimiter::lifo() const {
  std::lock_guard lock(mu_);
  return lifo_;
}

}  // namespace corral::lease

// Admission by concurrency for one pool of database connections (SPEC.md rule 8, issue 15): an
// adaptive limit on loads in flight, learned from their measured latency, and a bounded queue in
// front of it that drops a load only when it can no longer finish before its waiters' deadline.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "lease/admission.h"
#include "lease/clock.h"

namespace corral::lease {

// namespaces.NAME.priority: under pressure low is queued behind high, and high keeps a quarter of
// the limit that low cannot take.
enum class Priority : uint8_t { kHigh, kLow };
// "high", "low": the JSON names of Priority, in enum order.
inline constexpr std::string_view kPriorityNames[] = {"high", "low"};

struct LoadLimiterOptions {
  int64_t min_limit = 1;  // the floor the adaptive limit never goes below
  int64_t max_limit = 8;  // its ceiling; 0: no pool-wide limit, only group caps
};

// The limit follows a gradient rule (as Netflix's concurrency-limits Gradient): every window of
// samples (at least kWindowMs and a few loads) compares the window's mean load time with the
// lowest window mean seen (the "no-load" time), each namespace (group) against its own, so that
// pools shared by a fast and a slow query do not read the slow one as a slower database. While the
// mean stays within kTolerance of it the limit grows by about its square root (only while the pool
// uses at least half of it); when the mean rises, the limit is multiplied by min_time x kTolerance
// / mean (at least 0.5). Each new limit is smoothed (kSmoothing) and clamped to [min_limit,
// max_limit]. The no-load time is learned again every kRelearnWindows windows, so a database that
// became lastingly slower (or faster) does not pin the limit.
//
// Only a window in which the pool used at least half its limit grows the limit (as Gradient2's
// "app-limited" rule), and only one with kBusyLoads at once (or half the limit) shrinks it: a few
// loads' mean is noise around the no-load time. Once the limit has fallen,
// a window whose mean is back within kTolerance of the no-load time doubles it, used or not, up to
// the highest limit a used window found healthy ("proven"): a database that recovered gets its
// limit back within a few windows, before the next cold burst needs it.
//
// It starts at kInitialLimit (within the floor and ceiling) and, as TCP's slow start, doubles each
// window while the mean stays within kTolerance of the no-load time, until the first rise. Starting
// at the ceiling would learn the no-load time at full concurrency: a database whose load time
// grows with its load would then never show a rise, and the limit would stay at the ceiling.
//
// The queue: a load that finds the pool at its limit, or its group (a namespace) at its cap, waits.
// Loads are served oldest first; once the queue has held a standing delay — its shortest wait
// stayed above kCodelTargetMs for kCodelIntervalMs (CoDel's rule) — newest first (adaptive LIFO),
// so fresh requests still succeed while old ones, whose clients are about to give up, are dropped.
// A queued load is dropped when it can no longer finish before its deadline: at enqueue and at each
// Expire(), from its estimated start (its place in its group's queue over the loads the group can
// run at once, times the expected load time; see EstimatesStarts) plus the expected load time; at
// dequeue, from now plus the expected load time. The expected load time is the shortest of the last
// kRecentSamples samples (0 before the first, so nothing is dropped before anything was measured):
// a load is dropped only when even a fast load could no longer make it. The first loads on new
// connections also pay for connecting, and the loads after a burst's first wait on the corral side
// too; a mean or median of those would drop loads that would have finished in time.
//
// Thread-safe. Grants are called outside the limiter's lock, on the thread that made room
// (Acquire's caller, Release's, Expire's or SetGroupCap's).
class LoadLimiter {
 public:
  // kAdmitted: the load may query, and its caller owes Release(group, ...). Otherwise the load
  // was dropped from the queue: kInflight if its group's cap held it back, kPoolInflight if the
  // pool's limit did. Called exactly once per Acquire.
  using Grant = std::function<void(Admission)>;

  static constexpr Millis kWindowMs = 100;
  static constexpr int64_t kInitialLimit = 16;
  static constexpr double kTolerance = 1.5;
  static constexpr double kSmoothing = 0.2;
  static constexpr int kRelearnWindows = 300;
  static constexpr Millis kCodelTargetMs = 100;
  static constexpr Millis kCodelIntervalMs = 500;
  static constexpr Millis kSweepEveryMs = 10;
  static constexpr size_t kRecentSamples = 15;
  static constexpr int64_t kBusyLoads = 8;

  LoadLimiter(LoadLimiterOptions options, const Clock& clock);

  // Adds a group (a namespace of the pool) with at most `cap` loads in flight (0: no cap of its
  // own). Call before the limiter is shared between threads; returns the group's index.
  size_t AddGroup(int64_t cap, Priority priority);
  // A run-time change of a group's cap (CONFIG SET); may admit queued loads.
  void SetGroupCap(size_t group, int64_t cap);

  // Admits a load of `group` now, or queues it until there is room or until it can no longer
  // finish by `deadline_ms`; `grant` gets the answer (see Grant).
  void Acquire(size_t group, Millis deadline_ms, Grant grant);
  // A load admitted for `group` ended. `load_ms`: its time from admission to the end, a sample for
  // the limit (nullopt: no sample, e.g. it never reached the database). May admit queued loads.
  void Release(size_t group, std::optional<Millis> load_ms);
  // Drops queued loads that can no longer finish in time (at most every kSweepEveryMs), and
  // updates the standing-queue test (every call).
  void Expire();

  int64_t limit() const;     // the current limit; 0 without a pool-wide limit
  int64_t inflight() const;  // admitted and not yet released
  int64_t queued() const;    // waiting in the queue
  Millis expected_load_ms() const;
  bool lifo() const;  // serving newest first (a standing queue)

 private:
  struct Waiting {
    Millis deadline_ms;
    Millis queued_at;
    uint64_t seq;  // arrival order across the pool's groups
    Grant grant;
  };
  struct Group {
    int64_t cap;
    Priority priority;
    int64_t inflight = 0;
    std::deque<Waiting> queue;  // oldest at the front
    // Its own load times: a namespace is measured against its own query's no-load time, so that a
    // slower query sharing the pool does not read as a slower database.
    std::array<Millis, kRecentSamples> recent{};
    size_t recent_count = 0;
    Millis expected_ms = 0;  // the shortest of recent
    double window_sum = 0;
    int64_t window_count = 0;
    double noload_ms = 0;  // its lowest window mean since the last re-learning
  };
  struct Granted {
    Grant grant;
    Admission answer;
  };

  bool GroupHasRoom(const Group& g) const { return g.cap <= 0 || g.inflight < g.cap; }
  // Whether a queued load's start is estimated from its place in the queue: only once
  // kRecentSamples loads have been measured after the first `limit` (those ran on fresh
  // connections and cold caches, and a burst's first estimate must not rest on them alone).
  // Before that a load is dropped only when it could not finish if started now.
  bool EstimatesStarts() const {
    const auto limit = options_.max_limit > 0 ? static_cast<size_t>(limit_) : 0;
    return recent_count_ >= limit + kRecentSamples;
  }
  // Room in the pool for one more load of `priority`.
  bool PoolHasRoom(Priority priority) const;
  // Whether a queued load of `g` with `place` loads to be served before it can no longer
  // finish by `deadline_ms` (see the class comment).
  bool CannotFinish(const Group& g, int64_t place, Millis now, Millis deadline_ms) const;
  // What held a queued load of `g` back: its cap or the pool's limit.
  Admission Blocker(const Group& g) const;
  // The group whose queued load is next in service order and has room now; nullopt if none.
  std::optional<size_t> NextGroup() const;
  // Admits queued loads while there is room, dropping those that cannot make it; appends the
  // answers to `out`.
  void Pump(Millis now, std::vector<Granted>& out);
  // Drops, from group `g`'s queue, the loads whose estimated finish is past their deadline.
  void SweepGroup(Group& g, Millis now, std::vector<Granted>& out);
  void Sample(Millis now, Group& g, Millis load_ms);
  // CoDel's standing-queue test on the oldest queued load's age: switches lifo_ on and off.
  void UpdateCodel(Millis now);
  static void Answer(std::vector<Granted>& granted);

  const LoadLimiterOptions options_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::vector<Group> groups_;
  bool has_high_ = false;  // a high-priority group exists: low ones leave it a quarter
  int64_t inflight_ = 0;
  int64_t queued_ = 0;
  uint64_t next_seq_ = 0;
  double limit_;  // the smoothed limit; its floor (at least min_limit) is the operating limit
  // Load-time measurement.
  Millis expected_ms_ = 0;                       // the shortest of recent_
  std::array<Millis, kRecentSamples> recent_{};  // the last samples, a ring
  size_t recent_count_ = 0;                      // samples taken, ever
  Millis window_start_ = 0;
  int64_t window_count_ = 0;
  int64_t window_peak_inflight_ = 0;
  // The highest limit a window found healthy while it was in use: after a fall, healthy windows
  // bring the limit back to it (used or not), at slow start's pace.
  double proven_ = 0;
  int windows_ = 0;
  bool slow_start_ = true;
  // CoDel state.
  Millis above_target_since_ = 0;  // 0: the last dequeued load waited less than the target
  bool lifo_ = false;
  Millis last_sweep_ = 0;
};

}  // namespace corral::lease

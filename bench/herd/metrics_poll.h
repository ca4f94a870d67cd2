// corral's own view of a run: a thread that GETs every node's HTTP /metrics every `period` and
// keeps, per poll, the samples of the load-control families (the pools' adaptive limit and queue,
// loads in flight per replica, loads shed by reason), summed over the nodes.
#pragma once

#include <atomic>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench/herd/clock.h"
#include "bench/herd/resp_loop.h"

namespace corral::herd {

// One poll: seconds since the poller's t0, and each kept sample as `name{labels}` → value
// (summed over the nodes that answered; `answered` says how many did).
struct MetricsPoint {
  double t_s = 0;
  int answered = 0;
  std::vector<std::pair<std::string, double>> values;
};

// The value of `series` (`name{labels}` as corral renders it) at `p`, or `missing`.
double MetricValue(const MetricsPoint& p, std::string_view series, double missing = -1);
// Sum of every kept series of family `name` at `p` (e.g. corral_replica_inflight_loads over the
// replicas), or `missing` if there is none.
double MetricFamilySum(const MetricsPoint& p, std::string_view name, double missing = -1);

// Keeps the lines of `text` (Prometheus text format) whose family is one of the load-control
// families, adding each value into `into` under its `name{labels}`.
void KeepLoadControlSamples(std::string_view text,
                            std::vector<std::pair<std::string, double>>& into);

class MetricsPoller {
 public:
  // Starts polling at once: every node of `http` each `period` (each GET bounded by the period,
  // at least 100 ms), times measured from `t0`.
  MetricsPoller(std::vector<Endpoint> http, TimePoint t0, Clock::duration period);
  ~MetricsPoller();
  MetricsPoller(const MetricsPoller&) = delete;
  MetricsPoller& operator=(const MetricsPoller&) = delete;

  // Stops the thread and returns every poll, in time order.
  std::vector<MetricsPoint> Stop();

 private:
  void Run();

  const std::vector<Endpoint> http_;
  const TimePoint t0_;
  const Clock::duration period_;
  std::atomic<bool> running_{true};
  std::vector<MetricsPoint> points_;  // the thread's until Stop joins it
  std::thread thread_;
};

}  // namespace corral::herd

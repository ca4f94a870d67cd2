#include "bench/herd/metrics_poll.h"

#include <algorithm>
#include <cstdlib>

#include "bench/herd/readiness.h"

namespace corral::herd {
namespace {

constexpr std::string_view kKept[] = {
    "corral_concurrency_limit",    "corral_load_queue", "corral_replica_inflight_loads",
    "corral_replica_queued_loads", "corral_shed_total", "corral_leases",
    "corral_lease_waiters"};

void Add(std::vector<std::pair<std::string, double>>& into, std::string_view series, double v) {
  for (auto& [name, value] : into) {
    if (name == series) {
      value += v;
      return;
    }
  }
  into.emplace_back(std::string(series), v);
}

}  // namespace

double MetricValue(const MetricsPoint& p, std::string_view series, double missing) {
  for (const auto& [name, value] : p.values) {
    if (name == series) return value;
  }
  return missing;
}

double MetricFamilySum(const MetricsPoint& p, std::string_view name, double missing) {
  double sum = 0;
  bool found = false;
  for (const auto& [series, value] : p.values) {
    if (series.size() > name.size() && series.starts_with(name) && series[name.size()] == '{') {
      sum += value;
      found = true;
    }
  }
  return found ? sum : missing;
}

void KeepLoadControlSamples(std::string_view text,
                            std::vector<std::pair<std::string, double>>& into) {
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (line.empty() || line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string_view::npos) continue;
    const std::string_view series = line.substr(0, space);
    const std::string_view family = series.substr(0, series.find('{'));
    if (std::find(std::begin(kKept), std::end(kKept), family) == std::end(kKept)) continue;
    const std::string value(line.substr(space + 1));
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (end != value.c_str()) Add(into, series, v);
  }
}

MetricsPoller::MetricsPoller(std::vector<Endpoint> http, TimePoint t0, Clock::duration period)
    : http_(std::move(http)), t0_(t0), period_(period) {
  thread_ = std::thread([this] { Run(); });
}

MetricsPoller::~MetricsPoller() { Stop(); }

std::vector<MetricsPoint> MetricsPoller::Stop() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
  return std::move(points_);
}

void MetricsPoller::Run() {
  const Clock::duration timeout = std::max<Clock::duration>(period_, Millis(100));
  TimePoint next = Clock::now();
  while (running_) {
    MetricsPoint p;
    std::string body;
    for (const Endpoint& node : http_) {
      if (HttpGet(node, "/metrics", timeout, &body) != 200) continue;
      ++p.answered;
      KeepLoadControlSamples(body, p.values);
    }
    p.t_s = SecondsBetween(t0_, Clock::now());
    points_.push_back(std::move(p));
    next += period_;
    const TimePoint now = Clock::now();
    if (next < now) next = now;
    while (running_ && Clock::now() < next) {
      std::this_thread::sleep_for(std::min<Clock::duration>(next - Clock::now(), Millis(10)));
    }
  }
}

}  // namespace corral::herd

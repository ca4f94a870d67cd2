// Sharded counters/histograms and the Prometheus text format; see metrics.h.
#include "cache-server/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace corral::server {
namespace {

// Each thread sticks to one shard, chosen round-robin at its first metric update.
size_t MyShard() {
  static std::atomic<size_t> next{0};
  thread_local size_t shard = next.fetch_add(1, std::memory_order_relaxed) % kMetricShards;
  return shard;
}

void AppendDouble(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

const std::vector<double> kRequestBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
const std::vector<double> kLoadBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};

}  // namespace

std::string_view ProtoName(Proto p) { return p == Proto::kResp ? "resp" : "http"; }

std::string_view OutcomeName(Outcome o) {
  static constexpr std::string_view kNames[] = {"hit",       "miss", "stale", "waited",
                                                "not_found", "shed", "error"};
  return kNames[static_cast<size_t>(o)];
}

void Counter::Add(uint64_t n) { cells_[MyShard()].v.fetch_add(n, std::memory_order_relaxed); }

uint64_t Counter::Value() const {
  uint64_t total = 0;
  for (const auto& c : cells_) total += c.v.load(std::memory_order_relaxed);
  return total;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), shards_(kMetricShards) {
  for (auto& s : shards_) s.buckets = std::vector<std::atomic<uint64_t>>(bounds_.size() + 1);
}

void Histogram::Observe(double seconds) {
  Shard& s = shards_[MyShard()];
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  s.buckets[i].fetch_add(1, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(static_cast<uint64_t>(seconds > 0 ? seconds * 1e9 : 0),
                     std::memory_order_relaxed);
}

void Histogram::Render(std::string& out, std::string_view name, std::string_view labels) const {
  std::vector<uint64_t> counts(bounds_.size() + 1, 0);
  uint64_t count = 0, sum_ns = 0;
  for (const auto& s : shards_) {
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += s.buckets[i].load(std::memory_order_relaxed);
    count += s.count.load(std::memory_order_relaxed);
    sum_ns += s.sum_ns.load(std::memory_order_relaxed);
  }
  std::string sep = labels.empty() ? "" : std::string(labels) + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts[i];
    out.append(name).append("_bucket{").append(sep).append("le=\"");
    AppendDouble(out, i < bounds_.size() ? bounds_[i] : INFINITY);
    out.append("\"} ").append(std::to_string(cumulative)).append("\n");
  }
  std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  out.append(name).append("_sum").append(braces).append(" ");
  AppendDouble(out, static_cast<double>(sum_ns) / 1e9);
  out.append("\n");
  out.append(name).append("_count").append(braces).append(" ").append(std::to_string(count));
  out.append("\n");
}

void LabeledCounter::Add(const std::string& labels, uint64_t n) {
  std::lock_guard lock(mu_);
  values_[labels] += n;
}

uint64_t LabeledCounter::Value(const std::string& labels) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second;
}

void LabeledCounter::Render(std::string& out, std::string_view name) const {
  std::lock_guard lock(mu_);
  for (const auto& [labels, v] : values_) {
    out.append(name).append("{").append(labels).append("} ").append(std::to_string(v));
    out.append("\n");
  }
}

Metrics::Metrics()
    : db_load_seconds(kLoadBuckets), request_seconds_{Histogram(kRequestBuckets),
                                                      Histogram(kRequestBuckets)} {}

void Metrics::CountRequest(Proto proto, Outcome outcome, double seconds) {
  size_t p = static_cast<size_t>(proto);
  requests_[p * kOutcomeCount + static_cast<size_t>(outcome)].Add();
  request_seconds_[p].Observe(seconds);
}

uint64_t Metrics::Requests(Proto proto, Outcome outcome) const {
  return requests_[static_cast<size_t>(proto) * kOutcomeCount + static_cast<size_t>(outcome)]
      .Value();
}

void RenderGaugeHeader(std::string& out, std::string_view name, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" gauge\n");
}

void RenderSample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ");
  AppendDouble(out, value);
  out.append("\n");
}

std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

namespace {
void CounterHeader(std::string& out, std::string_view name, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" counter\n");
}
void HistogramHeader(std::string& out, std::string_view name, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" histogram\n");
}
}  // namespace

void Metrics::Render(std::string& out) const {
  CounterHeader(out, "corral_requests_total", "Requests answered, by protocol and result.");
  for (size_t p = 0; p < kProtoCount; ++p) {
    for (size_t o = 0; o < kOutcomeCount; ++o) {
      std::string labels = "proto=\"" + std::string(ProtoName(static_cast<Proto>(p))) +
                           "\",result=\"" + std::string(OutcomeName(static_cast<Outcome>(o))) +
                           "\"";
      RenderSample(out, "corral_requests_total", labels,
                   static_cast<double>(requests_[p * kOutcomeCount + o].Value()));
    }
  }
  HistogramHeader(out, "corral_request_seconds", "Time from a request's parse to its answer.");
  for (size_t p = 0; p < kProtoCount; ++p) {
    request_seconds_[p].Render(
        out, "corral_request_seconds",
        "proto=\"" + std::string(ProtoName(static_cast<Proto>(p))) + "\"");
  }
  CounterHeader(out, "corral_db_loads_total", "Database loads, by namespace, pool and outcome.");
  db_loads.Render(out, "corral_db_loads_total");
  HistogramHeader(out, "corral_db_load_seconds", "Duration of database loads.");
  db_load_seconds.Render(out, "corral_db_load_seconds", "");
  CounterHeader(out, "corral_coalesced_requests_total",
                "Requests answered by another request's load (they waited on its lease).");
  RenderSample(out, "corral_coalesced_requests_total", "", static_cast<double>(coalesced.Value()));
  CounterHeader(out, "corral_shed_total", "Requests shed with BUSY/503, by reason.");
  shed.Render(out, "corral_shed_total");
  CounterHeader(out, "corral_refreshes_total",
                "Background reloads of servable entries (refresh ahead, stale-while-revalidate), "
                "by what became of them.");
  refreshes.Render(out, "corral_refreshes_total");
  CounterHeader(out, "corral_invalidations_total", "Invalidations received, by source.");
  invalidations.Render(out, "corral_invalidations_total");
}

}  // namespace corral::server

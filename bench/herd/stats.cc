// Recorder and run summaries (stats.h). Latencies are kept exactly (4 bytes a request) and sorted
// once at the end, so percentiles are exact rather than bucketed.
#include "bench/herd/stats.h"

#include <algorithm>

namespace corral::herd {

Recorder::Recorder(TimePoint t0, size_t keys, double bucket_s)
    : t0_(t0), bucket_s_(bucket_s), last_end_(t0), answers_(keys) {}

void Recorder::Record(TimePoint start, TimePoint end, Outcome outcome, int key,
                      std::string_view value, std::string_view error) {
  ++requests_;
  ++count_[static_cast<int>(outcome)];
  int64_t us = std::max<int64_t>(0, MicrosBetween(start, end));
  uint32_t lat = static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX));
  all_us_.push_back(lat);
  double t = SecondsBetween(t0_, end);
  size_t b = t <= 0 ? 0 : static_cast<size_t>(t / bucket_s_);
  if (b >= bucket_us_.size()) {
    bucket_us_.resize(b + 1);
    bucket_answers_.resize(b + 1, 0);
  }
  bucket_us_[b].push_back(lat);
  if (IsAnswer(outcome)) {
    ++bucket_answers_[b];
    if (key >= 0 && static_cast<size_t>(key) < answers_.size()) {
      auto& per_key = answers_[key];
      std::string v(outcome == Outcome::kNotFound ? std::string_view(kNotFoundValue) : value);
      ++per_key[v];
    }
  } else if (first_error_.empty() && !error.empty()) {
    first_error_ = std::string(error);
  }
  if (end > last_end_) last_end_ = end;
}

uint32_t Quantile(std::vector<uint32_t>& v, double q) {
  if (v.empty()) return 0;
  size_t idx = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  idx = std::min(idx, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(idx), v.end());
  return v[idx];
}

void SummarizeClients(const Recorder& rec, RunResult& out) {
  out.requests = rec.requests();
  out.answers = rec.answered();
  out.errors = rec.failed();
  out.timeouts = rec.count(Outcome::kTimeout);
  out.busy = rec.count(Outcome::kBusy);
  out.other_errors = rec.count(Outcome::kError) + rec.count(Outcome::kConnection);
  out.attempts = rec.attempts();
  out.first_error = rec.first_error();
  std::vector<uint32_t> lat = rec.latencies_us();
  out.p50_ms = Quantile(lat, 0.50) / 1000.0;
  out.p99_ms = Quantile(lat, 0.99) / 1000.0;
  out.p999_ms = Quantile(lat, 0.999) / 1000.0;
  out.max_ms = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end()) / 1000.0;
  out.duration_s = std::max(1e-3, SecondsBetween(rec.t0(), rec.last_end()));
  out.goodput = static_cast<double>(out.answers) / out.duration_s;
  out.client_series.clear();
  out.bucket_s = rec.bucket_s();
  const auto& buckets = rec.bucket_latencies();
  for (size_t b = 0; b < buckets.size(); ++b) {
    std::vector<uint32_t> v = buckets[b];
    ClientPoint p;
    p.t_s = (static_cast<double>(b) + 0.5) * rec.bucket_s();
    p.p99_ms = v.empty() ? -1 : Quantile(v, 0.99) / 1000.0;
    p.goodput = static_cast<double>(rec.bucket_answers()[b]) / rec.bucket_s();
    // The last bucket is cut short by the end of the run: its rate is unknown, not low.
    if (b + 1 == buckets.size() && b > 0) p.goodput = -1;
    out.client_series.push_back(p);
  }
}

void SummarizeDb(const std::vector<DbSample>& samples, RunResult& out) {
  out.db_series.clear();
  out.peak_db_qps = 0;
  out.peak_db_active = 0;
  // Rates over intervals shorter than this would exaggerate: one query in 5 ms is not 200/s.
  constexpr double kMinInterval = 0.05;
  std::vector<DbSample> kept;
  for (size_t i = 0; i < samples.size(); ++i) {
    out.peak_db_active = std::max(out.peak_db_active, samples[i].active);
    const bool last = i + 1 == samples.size();
    if (!kept.empty() && samples[i].t_s - kept.back().t_s < kMinInterval) {
      if (!last) continue;
      if (kept.size() > 1) kept.pop_back();  // the final count replaces the sample just before it
    }
    kept.push_back(samples[i]);
  }
  for (size_t i = 1; i < kept.size(); ++i) {
    double dt = kept[i].t_s - kept[i - 1].t_s;
    if (dt <= 0) continue;
    double qps = static_cast<double>(kept[i].calls - kept[i - 1].calls) / dt;
    if (qps < 0) qps = 0;  // statistics were reset underneath us
    out.db_series.push_back({kept[i].t_s, qps, kept[i].active});
    out.peak_db_qps = std::max(out.peak_db_qps, qps);
  }
}

double MeanGoodput(const RunResult& r, double from_s, double to_s) {
  double sum = 0;
  for (const auto& p : r.client_series) {
    if (p.t_s >= from_s && p.t_s < to_s && p.goodput > 0) sum += p.goodput;
  }
  // Buckets past the last completion are absent: divide by the span, not the number of points.
  double span_buckets = (to_s - from_s) / r.bucket_s;
  return span_buckets <= 0 ? 0 : sum / span_buckets;
}

}  // namespace corral::herd

// What one target × scenario run measured: the client-side record of every request (exact
// latencies, outcome, answers per key) and the summary that the table, JSON, CSV and SVG show.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/herd/clock.h"
#include "bench/herd/metrics_poll.h"
#include "bench/herd/referee.h"

namespace corral::herd {

// How a logical request (first attempt to final answer, retries included) ended.
enum class Outcome { kValue, kNotFound, kTimeout, kBusy, kError, kConnection };

inline bool IsAnswer(Outcome o) { return o == Outcome::kValue || o == Outcome::kNotFound; }

// The value recorded for a not-found answer (and what cache-aside clients store for one).
inline constexpr char kNotFoundValue[] = "\x01herd:not-found";

// Single-threaded; the loop thread owns it.
class Recorder {
 public:
  Recorder(TimePoint t0, size_t keys, double bucket_s = 0.1);

  void Record(TimePoint start, TimePoint end, Outcome outcome, int key, std::string_view value,
              std::string_view error);
  void CountAttempt() { ++attempts_; }

  TimePoint t0() const { return t0_; }
  int64_t requests() const { return requests_; }
  int64_t answered() const { return count_[0] + count_[1]; }
  int64_t failed() const { return requests_ - answered(); }
  int64_t count(Outcome o) const { return count_[static_cast<int>(o)]; }
  int64_t attempts() const { return attempts_; }
  TimePoint last_end() const { return last_end_; }
  const std::string& first_error() const { return first_error_; }
  const std::vector<uint32_t>& latencies_us() const { return all_us_; }
  // Completions bucketed by end time: latencies of all, and how many were answers.
  const std::vector<std::vector<uint32_t>>& bucket_latencies() const { return bucket_us_; }
  const std::vector<int64_t>& bucket_answers() const { return bucket_answers_; }
  double bucket_s() const { return bucket_s_; }
  // Per key: each distinct answer and how often it came.
  const std::vector<std::map<std::string, int64_t>>& answers() const { return answers_; }

 private:
  TimePoint t0_;
  double bucket_s_;
  TimePoint last_end_;
  int64_t requests_ = 0;
  int64_t attempts_ = 0;
  int64_t count_[6] = {};
  std::string first_error_;
  std::vector<uint32_t> all_us_;
  std::vector<std::vector<uint32_t>> bucket_us_;
  std::vector<int64_t> bucket_answers_;
  std::vector<std::map<std::string, int64_t>> answers_;
};

// Value at quantile q (0..1) of `v` (reordered); 0 if empty.
uint32_t Quantile(std::vector<uint32_t>& v, double q);

struct ClientPoint {
  double t_s;      // middle of the bucket
  double p99_ms;   // of requests completing in the bucket; <0 if none
  double goodput;  // answers per second in the bucket; <0 for the last, partial one
};

struct DbPoint {
  double t_s;
  double qps;  // calls per second since the previous sample
  int active;  // queries running at the sample
};

struct RunResult {
  std::string scenario;
  std::string target;
  int round = 0;
  int nodes = 1;             // corral nodes the clients were spread over (1 for the Redis targets)
  bool shared_tier = false;  // --shared-tier: those nodes share a Redis tier
  std::string key_range;     // first and last key, for the record

  int64_t requests = 0;
  int64_t answers = 0;  // values and not-found
  int64_t errors = 0;   // requests with no answer
  int64_t timeouts = 0;
  int64_t busy = 0;
  int64_t other_errors = 0;  // error replies, lost connections, failed loads
  int64_t wrong = 0;         // answers that differ from the database's
  int64_t attempts = 0;      // including retries
  std::string first_error;

  int64_t db_queries = 0;        // pg_stat_statements delta over the measured window, all nodes
  int64_t fill_db_queries = -1;  // the fill phase's, when the scenario has one
  double peak_db_qps = 0;
  int peak_db_active = 0;

  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  double duration_s = 0;  // first request to last answer
  // The longest the client thread went without serving its sockets and timers, when it began,
  // and how much of it the thread spent on CPU (little: it was not scheduled).
  double client_stall_ms = 0;
  double client_stall_at_s = 0;
  double client_stall_cpu_ms = 0;
  double goodput = 0;  // answers per second over duration_s

  double bucket_s = 0.1;  // width of a client_series bucket
  std::vector<ClientPoint> client_series;
  std::vector<DbPoint> db_series;
  // corral's /metrics load-control samples over the window (corral target with --corral-http).
  std::vector<MetricsPoint> corral_series;
  std::vector<std::pair<std::string, double>> extra;  // scenario-specific figures, in order
  std::vector<std::pair<double, double>> shaded;      // time ranges to mark (the slow phase)
  std::string note;
};

// Fills the client-side fields of `out` from `rec`.
void SummarizeClients(const Recorder& rec, RunResult& out);
// Fills db_series, peak_db_qps and peak_db_active from the referee's samples.
void SummarizeDb(const std::vector<DbSample>& samples, RunResult& out);
// Mean goodput (answers/s) over [from_s, to_s) of the client series.
double MeanGoodput(const RunResult& r, double from_s, double to_s);

}  // namespace corral::herd

// Prometheus metrics for corral-server: counters and histograms sharded per thread so the hit
// path never contends on a shared cache line, and the text exposition format (version 0.0.4).
// No key is ever used as a label.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace corral::server {

enum class Proto { kResp = 0, kHttp = 1 };
inline constexpr size_t kProtoCount = 2;
// corral_requests_total's result label.
enum class Outcome { kHit = 0, kMiss, kStale, kWaited, kNotFound, kShed, kError };
inline constexpr size_t kOutcomeCount = 7;

std::string_view ProtoName(Proto p);
std::string_view OutcomeName(Outcome o);

inline constexpr size_t kMetricShards = 16;

// A monotonically increasing count; Add is wait-free and thread-safe.
class Counter {
 public:
  void Add(uint64_t n = 1);
  uint64_t Value() const;

 private:
  struct alignas(64) Cell {
    std::atomic<uint64_t> v{0};
  };
  std::array<Cell, kMetricShards> cells_;
};

// Fixed-bucket histogram of seconds; Observe is wait-free and thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double seconds);
  // Appends the _bucket/_sum/_count lines of `name` with `labels` ("" or `proto="resp"`).
  void Render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  struct alignas(64) Shard {
    std::vector<std::atomic<uint64_t>> buckets;  // one per bound, plus +Inf
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
  };
  std::vector<double> bounds_;
  std::vector<Shard> shards_;
};

// Counters keyed by a rendered label set, for the miss path (a mutex is fine there).
class LabeledCounter {
 public:
  void Add(const std::string& labels, uint64_t n = 1);
  uint64_t Value(const std::string& labels) const;
  void Render(std::string& out, std::string_view name) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> values_;
};

// Every metric corral exports (SPEC.md "Metrics"). Thread-safe.
class Metrics {
 public:
  Metrics();

  void CountRequest(Proto proto, Outcome outcome, double seconds);
  uint64_t Requests(Proto proto, Outcome outcome) const;

  Counter coalesced;          // corral_coalesced_requests_total
  Histogram db_load_seconds;  // corral_db_load_seconds
  LabeledCounter db_loads;    // corral_db_loads_total{namespace,pool,outcome}
  LabeledCounter shed;        // corral_shed_total{reason}
  LabeledCounter invalidations;  // corral_invalidations_total{source}
  LabeledCounter refreshes;      // corral_refreshes_total{result}: background reloads
  Counter commands;           // every RESP command (INFO total_commands_processed)
  Counter connections;        // accepted connections (INFO total_connections_received)
  Counter rejected_connections;

  // Appends the counters and histograms above in Prometheus text format.
  void Render(std::string& out) const;

 private:
  std::array<Counter, kProtoCount * kOutcomeCount> requests_;
  std::array<Histogram, kProtoCount> request_seconds_;
};

// Helpers for rendering gauges from the server's live state.
void RenderGaugeHeader(std::string& out, std::string_view name, std::string_view help);
void RenderSample(std::string& out, std::string_view name, std::string_view labels, double value);
// Escapes a Prometheus label value (backslash, quote, newline).
std::string LabelValue(std::string_view v);

}  // namespace corral::server

// The referee: PostgreSQL's own count of the namespace query — pg_stat_statements.calls summed over
// the primary and every replica — read on demand or sampled every 100 ms on a thread of its own,
// with the number of those queries running at the sample (pg_stat_activity). Also the switch that
// slows the database down for vicious-cycle. libpqxx stays inside referee.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/herd/clock.h"

namespace corral::herd {

// Query text as pg_stat_statements shows it, reduced so that the text a client sent and the text
// pg_stat_statements stored compare equal: literals, $n parameters, TRUE/FALSE/NULL become "?",
// whitespace runs become one space, letters are lower-cased, a trailing ';' goes.
std::string NormalizeSql(std::string_view sql);

struct DbSample {
  double t_s = 0;     // since the sampling's t0
  int64_t calls = 0;  // cumulative calls of the query, all nodes
  int active = 0;     // such queries running at the sample, all nodes
};

class Referee {
 public:
  // `nodes`: conninfo strings (primary first, then replicas). `queries`: the namespace queries
  // that can be counted, by index (at most 64; two may be the same text).
  Referee(std::vector<std::string> nodes, std::vector<std::string> queries);
  ~Referee();
  Referee(const Referee&) = delete;
  Referee& operator=(const Referee&) = delete;

  // Connects to every node and checks pg_stat_statements is there. "" or the first error.
  std::string Connect();

  // Total calls of queries[query] over all nodes now, or -1 with `error` set. Thread-safe.
  int64_t Calls(size_t query, std::string* error);

  // Samples Calls(query) and the running count every `period` on a thread until StopSampling.
  void StartSampling(size_t query, TimePoint t0, Clock::duration period);
  std::vector<DbSample> StopSampling();
  // The latest sample's cumulative calls and running count (for the progress line).
  int64_t latest_calls() const { return latest_calls_.load(std::memory_order_relaxed); }
  int latest_active() const { return latest_active_.load(std::memory_order_relaxed); }

  // ALTER SYSTEM SET name = value and pg_reload_conf() on every node (needs superuser).
  // Existing sessions pick the value up before their next statement. "" or the first error.
  std::string SetSetting(const std::string& name, const std::string& value);

 private:
  struct Node;
  bool Sample(size_t query, int64_t& calls, int& active, std::string* error);

  std::vector<std::string> normalized_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::mutex mu_;  // the connections
  std::thread sampler_;
  std::atomic<bool> sampling_{false};
  std::vector<DbSample> samples_;
  std::atomic<int64_t> latest_calls_{0};
  std::atomic<int> latest_active_{0};
};

}  // namespace corral::herd

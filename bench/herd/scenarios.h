// The scenarios (cold, keys, expiry-storm, vicious-cycle, hit, and burst and rolling when named)
// run against each target, with
// the referee's counts taken around every measured window and every answer checked against the
// database afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/herd/db_pool.h"
#include "bench/herd/driver.h"
#include "bench/herd/options.h"
#include "bench/herd/referee.h"
#include "bench/herd/stats.h"

namespace corral::herd {

// Hands out ids that no earlier run of this process has used, so every target run starts cold.
// Ids run over [min, max] from a random start; once the range is used up they repeat with one more
// leading zero ("42", then "042"): a different cache key for the same row when the query casts
// $1 to a number.
class KeySpace {
 public:
  KeySpace(int64_t min, int64_t max, uint64_t seed);
  std::vector<std::string> Take(size_t n);

 private:
  int64_t min_, max_, next_;
  int zeros_ = 0;
};

class Bench {
 public:
  explicit Bench(Options options);
  ~Bench();

  // Connects the referee and the database pool, and sets the normal database delay when a steady
  // scenario's query reads it (each steady run sets its own again). "" or why it cannot run.
  std::string Setup();
  // Every scenario × round × target, targets alternating; results in run order.
  std::vector<RunResult> RunAll();

 private:
  RunResult RunOne(const std::string& scenario, TargetKind target, int round);
  RunResult Cold(TargetKind target);
  RunResult Keys(TargetKind target);
  RunResult ExpiryStorm(TargetKind target);
  RunResult ViciousCycle(TargetKind target);
  RunResult Hit(TargetKind target);
  RunResult Rolling(TargetKind target);
  RunResult Burst(TargetKind target);
  // vicious-cycle, corral with --corral-http: the pool's limit before, during and after the
  // slowdown [slow_at, fast_at) and the seconds it took to come back (extras).
  void AddCycleLimit(RunResult& r, double slow_at, double fast_at) const;

  // A run's keys and connections, ready before its measured window.
  struct Prepared {
    std::vector<std::string> ids;
    std::vector<std::string> keys;
    size_t statement = 0;
    std::unique_ptr<TargetRun> run;
    int first = -1;  // the run's first client
    // How often the referee samples during the measured window, and corral's /metrics (0: not
    // polled; only for the corral target with --corral-http).
    Clock::duration sample_period = std::chrono::milliseconds(100);
    Clock::duration metrics_period{0};
  };
  // Takes fresh ids and opens `clients` connections (FLUSHALL first with --flush). False, with
  // r.note saying why, if the target cannot be reached.
  bool Prepare(TargetKind target, size_t statement, int keys, int clients, int64_t ttl_ms,
               Prepared& p, RunResult& r, bool failover = false,
               const ReadinessProbe* readiness = nullptr);
  // Clients first..first+keys-1 ask for one key each, all at once (a shed fill asks again).
  // Counted apart from the measured window: r.fill_db_queries.
  void Fill(Prepared& p, RunResult& r, TimePoint& start, TimePoint& end);
  // The measured window around `traffic` (which returns false if it ran out of time): referee
  // snapshots and samples, the drain of queued cache-aside loads, the summary, the answer check.
  // `inspect`, when given, sees the window's record before it is dropped.
  bool Measure(Prepared& p, RunResult& r, const std::function<bool()>& traffic,
               const std::function<void(const Recorder&)>& inspect = nullptr);
  // Loads every key on every corral node (rolling): client i of the chunk asks node i mod N for
  // key i / N. Counted apart: r.fill_db_queries.
  void FillEveryNode(Prepared& p, int fill_clients, RunResult& r);

  TargetConfig ConfigFor(TargetKind target, size_t statement) const;
  std::vector<std::string> KeysFor(const std::vector<std::string>& ids, size_t statement) const;
  void Verify(const Recorder& rec, const std::vector<std::string>& ids, size_t statement,
              RunResult& out);
  // The steady traffic whose query is `statement` (o_.steady for the herd and hit statements).
  const SteadyTraffic& Traffic(size_t statement) const;
  bool ReadsDelay(const SteadyTraffic& t) const;
  std::string DelayValue(const SteadyTraffic& t, double factor) const;
  // Sets the database delay to t's normal value × factor when t's query reads it. "" or an error.
  std::string SetDelay(const SteadyTraffic& t, double factor);

  Options o_;
  KeySpace ids_;
  uint64_t seed_;
  std::unique_ptr<Referee> referee_;
  std::unique_ptr<DbPool> pool_;
  bool delay_set_ = false;  // restored to the normal value on exit
  std::string label_;
};

}  // namespace corral::herd

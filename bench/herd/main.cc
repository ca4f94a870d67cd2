// corral-herd: runs the thundering-herd scenarios against corral, redis-naive and redis-lock and
// reports what PostgreSQL saw. Usage and the meaning of every figure: bench/herd/README.md.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "bench/herd/options.h"
#include "bench/herd/report.h"
#include "bench/herd/scenarios.h"

namespace {

using corral::herd::RunResult;

// 10 000 clients need 10 000 descriptors, plus the database connections.
void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// --self-test: corral must cause at most one query per key (per node, when several nodes share no
// tier), and every answer must be right.
int SelfTestVerdict(const corral::herd::Options& o, const std::vector<RunResult>& runs) {
  std::vector<std::string> failures;
  for (const RunResult& r : runs) {
    std::string name = r.scenario + "/" + r.target;
    if (r.answers == 0) failures.push_back(name + ": no answers (" + r.first_error + r.note + ")");
    if (r.wrong > 0) failures.push_back(name + ": " + std::to_string(r.wrong) + " wrong answers");
    const int64_t keys = r.scenario == "cold" ? 1 : o.keys;
    const int64_t bound = r.shared_tier ? keys : keys * r.nodes;
    if (r.target == "corral" && r.db_queries > bound) {
      failures.push_back(name + ": " + std::to_string(r.db_queries) + " DB queries for " +
                         std::to_string(keys) + " keys on " + std::to_string(r.nodes) + " node(s)" +
                         (r.shared_tier ? " sharing a tier" : ""));
    }
    // Every key was cold: a target that caused no query means the referee is not counting.
    if (r.db_queries < 1) failures.push_back(name + ": the referee counted no DB query");
  }
  if (failures.empty()) {
    std::printf("\nself-test: PASS\n");
    return 0;
  }
  std::printf("\nself-test: FAIL\n");
  for (const auto& f : failures) std::printf("  %s\n", f.c_str());
  return 1;
}

// A rolling restart: the share of requests answered correctly must reach --min-goodput, no
// answer may be wrong, the restart command must succeed, and the restart may cost at most one
// query per key per node (one per key when the nodes share a tier). Not a timing check.
int RollingVerdict(const corral::herd::Options& o, const std::vector<RunResult>& runs) {
  std::vector<std::string> failures;
  auto extra = [](const RunResult& r, const std::string& key) {
    for (const auto& [k, v] : r.extra) {
      if (k == key) return v;
    }
    return -1.0;
  };
  for (const RunResult& r : runs) {
    if (r.scenario != "rolling" || r.target != "corral") continue;
    const double goodput = extra(r, "goodput_ratio");
    if (goodput < 0) {
      failures.push_back("no result (" + r.note + ")");
      continue;
    }
    if (goodput < o.min_goodput) {
      failures.push_back("goodput " + std::to_string(goodput) + " < " +
                         std::to_string(o.min_goodput) + " (first error: " + r.first_error + ")");
    }
    if (r.wrong > 0) failures.push_back(std::to_string(r.wrong) + " wrong answers");
    if (extra(r, "command_status") != 0) failures.push_back("the restart command failed");
    const double keys = extra(r, "keys");
    const double bound = r.shared_tier ? keys : keys * r.nodes;
    if (extra(r, "db_queries_restart") + extra(r, "db_queries_after") > bound) {
      failures.push_back("the restart cost more than " + std::to_string(bound) + " DB queries");
    }
  }
  if (failures.empty()) {
    std::printf("\nrolling: PASS\n");
    return 0;
  }
  std::printf("\nrolling: FAIL\n");
  for (const auto& f : failures) std::printf("  %s\n", f.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  corral::herd::Options o = corral::herd::ParseOptions(argc, argv);
  if (o.self_test) {
    o.clients = 50;
    o.keys = 5;
    o.clients_per_key = 4;
    o.repeat = 1;
  }
  if (o.seed == 0) {
    o.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  }
  RaiseFileLimit();

  corral::herd::Bench bench(o);
  if (std::string e = bench.Setup(); !e.empty()) {
    std::fprintf(stderr, "corral-herd: %s\n", e.c_str());
    return 2;
  }
  std::vector<RunResult> runs = bench.RunAll();
  corral::herd::PrintTable(o, runs, std::cout);
  if (!o.out_dir.empty()) {
    if (std::string e = corral::herd::WriteOutputs(o, runs, o.out_dir); !e.empty()) {
      std::fprintf(stderr, "corral-herd: %s\n", e.c_str());
      return 2;
    }
    std::printf("\nwrote %s/results.json, results.csv and one SVG per scenario\n",
                o.out_dir.c_str());
  }
  if (o.self_test) return SelfTestVerdict(o, runs);
  const bool rolling =
      std::find(o.scenarios.begin(), o.scenarios.end(), "rolling") != o.scenarios.end();
  return rolling ? RollingVerdict(o, runs) : 0;
}

// corral-herd's command line: every scenario's parameters with their defaults, parsed and checked
// once at start-up (Boost.Program_options). See bench/herd/README.md for what each one means.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/herd/driver.h"
#include "bench/herd/resp_loop.h"

namespace corral::herd {

inline const std::vector<std::string> kAllScenarios = {"cold", "keys", "expiry-storm",
                                                       "vicious-cycle", "hit"};
// Scenarios that run only when named: `rolling` restarts corral nodes (--rolling-command);
// `burst` is the keys herd on a namespace and pool of its own, sampled finely (record.sh runs it
// once per variant).
inline const std::vector<std::string> kNamedScenarios = {"rolling", "burst"};

// The traffic of a steady scenario and the namespace it reads. The plain flags (--rate,
// --steady-namespace, ...) set it for every steady scenario; --storm-X and --vc-X change one field
// for expiry-storm or vicious-cycle alone, so that one invocation can run both with their own
// namespaces, TTLs and load.
struct SteadyTraffic {
  std::string ns;
  std::string query;
  int64_t ttl_ms = 5000;  // PX of the cache-aside SETs: the namespace's ttl_ms
  int hot_keys = 1000;
  double zipf_s = 1.0;
  double rate = 2000;  // requests/s
  int clients = 400;   // connections that carry it
  int64_t timeout_ms = 200;
  int retries = 3;
  double db_delay_ms = 20;  // the normal value of the delay setting
};

struct Options {
  std::vector<std::string> scenarios;
  std::vector<TargetKind> targets;
  // The corral nodes (--corral, cut to --nodes): clients are spread round-robin over them.
  std::vector<Endpoint> corral;
  // --corral-http: each node's HTTP address, in --corral's order (empty: not given). The rolling
  // scenario's clients then follow the nodes' /readyz as a load balancer's health check would.
  std::vector<Endpoint> corral_http;
  // --shared-tier: the corral nodes share a Redis tier, so one key costs one query fleet-wide (the
  // self-test's bound); without it a key may cost one query per node. A label: herd cannot tell.
  bool shared_tier = false;
  Endpoint redis;
  std::string pg_primary;
  std::vector<std::string> pg_replicas;

  // Herd scenarios (cold, keys) use `ns`/`query`/`ttl_ms`.
  std::string ns;
  std::string query;
  int64_t ttl_ms = 5000;  // PX of the cache-aside SETs: set it to the namespace's ttl_ms

  // cold / keys
  int clients = 1000;
  int keys = 200;
  int clients_per_key = 10;
  int64_t timeout_ms = 5000;

  // burst: `burst_keys` distinct cold keys × `burst_clients_per_key` clients, all at once, on
  // `burst_ns` (default: `ns`), whose pool is `burst_pool` (the label of corral's
  // corral_concurrency_limit{pool}). `burst_capacity` (0: not given) is the loads the pool can
  // finish within corral's wait bound, printed next to the keys served.
  std::string burst_ns;
  std::string burst_query;
  int64_t burst_ttl_ms = 0;  // 0: ttl_ms
  int burst_keys = 200;
  int burst_clients_per_key = 10;
  std::string burst_pool = "default";
  double burst_capacity = 0;

  // Steady scenarios: `steady` for hit, `storm` for expiry-storm, `cycle` for vicious-cycle.
  SteadyTraffic steady;
  SteadyTraffic storm;
  SteadyTraffic cycle;
  double duration_s = 10;  // expiry-storm's traffic after the fill

  // vicious-cycle: the database is slowed with pg_sleep(current_setting(delay_setting)).
  std::string delay_setting = "herd.delay_s";
  double slow_factor = 10;
  double vc_warm_s = 5;
  double vc_slow_s = 5;
  double vc_recover_s = 10;
  std::string vc_pool = "default";  // the cycle namespace's corral pool, for its /metrics

  // rolling: the plain steady traffic (--rate, --hot-keys, --zipf, ...) over every corral node,
  // each key first loaded on every node; --rolling-command runs after rolling_warm_s and the
  // traffic goes on until rolling_after_s after it exits (at most rolling_timeout_s).
  std::string rolling_command;
  double rolling_warm_s = 10;
  double rolling_after_s = 10;
  double rolling_timeout_s = 300;
  double min_goodput = 0.99;  // below it (or any wrong answer) a rolling run exits 1

  // hit
  int hit_keys = 100;
  int hit_clients = 50;
  double hit_duration_s = 10;

  // cache-aside clients
  int db_connections = 32;  // per replica
  int64_t db_statement_timeout_ms = 30000;
  int64_t lock_px_ms = 5000;
  int64_t poll_ms = 20;
  double drain_s = 60;

  int repeat = 1;
  uint64_t seed = 0;  // 0: from the clock
  bool flush = false;
  int64_t id_min = 1;
  int64_t id_max = 10000;
  std::string out_dir;
  bool self_test = false;
};

// Parses argv. On --help prints usage and exits 0; on a bad flag prints why and exits 2.
Options ParseOptions(int argc, char** argv);

}  // namespace corral::herd

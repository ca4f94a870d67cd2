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

struct Options {
  std::vector<std::string> scenarios;
  std::vector<TargetKind> targets;
  Endpoint corral;
  Endpoint redis;
  std::string pg_primary;
  std::vector<std::string> pg_replicas;

  // Herd scenarios (cold, keys) use `ns`/`query`; the steady ones (expiry-storm, vicious-cycle,
  // hit) use `steady_ns`/`steady_query`, which default to the same.
  std::string ns;
  std::string query;
  std::string steady_ns;
  std::string steady_query;
  int64_t ttl_ms = 5000;  // PX of the cache-aside SETs: set it to the namespaces' ttl_ms

  // cold / keys
  int clients = 1000;
  int keys = 200;
  int clients_per_key = 10;
  int64_t timeout_ms = 5000;

  // steady scenarios
  int hot_keys = 1000;
  double zipf_s = 1.0;
  double rate = 2000;
  int steady_clients = 400;
  double duration_s = 10;  // expiry-storm's traffic after the fill
  int64_t steady_timeout_ms = 200;
  int retries = 3;

  // vicious-cycle: the database is slowed with pg_sleep(current_setting(delay_setting)).
  std::string delay_setting = "herd.delay_s";
  double db_delay_ms = 20;
  double slow_factor = 10;
  double vc_warm_s = 5;
  double vc_slow_s = 5;
  double vc_recover_s = 10;

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

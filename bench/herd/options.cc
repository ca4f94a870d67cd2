// ParseOptions (options.h): flags, defaults and the checks that keep every run bounded.
#include "bench/herd/options.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace corral::herd {

namespace po = boost::program_options;

namespace {

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, sep)) {
    size_t b = part.find_first_not_of(" \t");
    size_t e = part.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(part.substr(b, e - b + 1));
  }
  return out;
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "corral-herd: %s (see --help)\n", why.c_str());
  std::exit(2);
}

}  // namespace

Options ParseOptions(int argc, char** argv) {
  Options o;
  std::string scenario = "all", targets = "corral,redis-naive,redis-lock";
  std::string corral = "127.0.0.1:6380", redis = "127.0.0.1:6379", replicas;

  po::options_description desc(
      "corral-herd: thundering-herd scenarios against corral, redis-naive and redis-lock, with\n"
      "PostgreSQL's pg_stat_statements as the referee. Options");
  // clang-format off
  desc.add_options()
    ("help,h", "this text")
    ("scenario", po::value(&scenario)->default_value(scenario),
     "cold|keys|expiry-storm|vicious-cycle|hit|all, or a comma-separated list")
    ("targets", po::value(&targets)->default_value(targets), "comma-separated targets")
    ("corral", po::value(&corral)->default_value(corral), "corral-server RESP address")
    ("redis", po::value(&redis)->default_value(redis), "redis-server address")
    ("pg-primary", po::value(&o.pg_primary), "primary conninfo (required)")
    ("pg-replicas", po::value(&replicas),
     "replica conninfos separated by ';' (cache-aside loads go here; default: the primary)")
    ("namespace", po::value(&o.ns), "corral namespace of cold/keys (required)")
    ("query", po::value(&o.query),
     "the namespace's query, text identical to corral's config (required)")
    ("steady-namespace", po::value(&o.steady_ns),
     "namespace of expiry-storm, vicious-cycle, hit (default: --namespace)")
    ("steady-query", po::value(&o.steady_query), "its query (default: --query)")
    ("ttl-ms", po::value(&o.ttl_ms)->default_value(o.ttl_ms),
     "PX of cache-aside SETs; equal to the namespaces' ttl_ms")
    ("clients", po::value(&o.clients)->default_value(o.clients), "cold: clients on one key")
    ("keys", po::value(&o.keys)->default_value(o.keys), "keys: cold keys")
    ("clients-per-key", po::value(&o.clients_per_key)->default_value(o.clients_per_key),
     "keys: clients per key")
    ("timeout-ms", po::value(&o.timeout_ms)->default_value(o.timeout_ms),
     "cold/keys: a client's timeout (no retry)")
    ("hot-keys", po::value(&o.hot_keys)->default_value(o.hot_keys),
     "expiry-storm/vicious-cycle: hot set size")
    ("zipf", po::value(&o.zipf_s)->default_value(o.zipf_s), "Zipf exponent of steady traffic")
    ("rate", po::value(&o.rate)->default_value(o.rate), "steady traffic, requests/s")
    ("steady-clients", po::value(&o.steady_clients)->default_value(o.steady_clients),
     "connections that carry steady traffic")
    ("duration", po::value(&o.duration_s)->default_value(o.duration_s),
     "expiry-storm: seconds of traffic after the fill")
    ("steady-timeout-ms", po::value(&o.steady_timeout_ms)->default_value(o.steady_timeout_ms),
     "steady scenarios: timeout per attempt")
    ("retries", po::value(&o.retries)->default_value(o.retries),
     "steady scenarios: retries after a timeout")
    ("delay-setting", po::value(&o.delay_setting)->default_value(o.delay_setting),
     "custom setting that the steady query passes to pg_sleep (seconds)")
    ("db-delay-ms", po::value(&o.db_delay_ms)->default_value(o.db_delay_ms),
     "its normal value, in ms")
    ("slow-factor", po::value(&o.slow_factor)->default_value(o.slow_factor),
     "vicious-cycle: how much slower the database gets")
    ("vc-warm", po::value(&o.vc_warm_s)->default_value(o.vc_warm_s), "vicious-cycle: s before")
    ("vc-slow", po::value(&o.vc_slow_s)->default_value(o.vc_slow_s), "vicious-cycle: s slow")
    ("vc-recover", po::value(&o.vc_recover_s)->default_value(o.vc_recover_s),
     "vicious-cycle: s after")
    ("hit-keys", po::value(&o.hit_keys)->default_value(o.hit_keys), "hit: pre-filled keys")
    ("hit-clients", po::value(&o.hit_clients)->default_value(o.hit_clients),
     "hit: closed-loop clients")
    ("hit-duration", po::value(&o.hit_duration_s)->default_value(o.hit_duration_s), "hit: seconds")
    ("db-connections", po::value(&o.db_connections)->default_value(o.db_connections),
     "cache-aside clients' PostgreSQL connections per replica")
    ("db-statement-timeout-ms",
     po::value(&o.db_statement_timeout_ms)->default_value(o.db_statement_timeout_ms),
     "their statement_timeout")
    ("lock-px-ms", po::value(&o.lock_px_ms)->default_value(o.lock_px_ms), "redis-lock: lock TTL")
    ("poll-ms", po::value(&o.poll_ms)->default_value(o.poll_ms), "redis-lock: losers' poll interval")
    ("drain", po::value(&o.drain_s)->default_value(o.drain_s),
     "s to let queued cache-aside loads finish after the clients are done")
    ("repeat", po::value(&o.repeat)->default_value(o.repeat),
     "rounds per scenario; target order rotates each round")
    ("seed", po::value(&o.seed)->default_value(o.seed), "random seed (0: from the clock)")
    ("flush", po::bool_switch(&o.flush), "FLUSHALL each target before each run")
    ("id-min", po::value(&o.id_min)->default_value(o.id_min), "smallest id with a row")
    ("id-max", po::value(&o.id_max)->default_value(o.id_max), "largest id with a row")
    ("out", po::value(&o.out_dir), "write results.json, results.csv and <scenario>.svg here")
    ("self-test", po::bool_switch(&o.self_test),
     "tiny cold + keys; exit 1 if corral ran more queries than keys or any answer was wrong");
  // clang-format on

  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    Die(e.what());
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    std::exit(0);
  }

  if (scenario == "all") {
    o.scenarios = kAllScenarios;
  } else {
    for (const auto& s : Split(scenario, ',')) {
      if (std::find(kAllScenarios.begin(), kAllScenarios.end(), s) == kAllScenarios.end()) {
        Die("unknown scenario '" + s + "'");
      }
      o.scenarios.push_back(s);
    }
  }
  if (o.self_test) o.scenarios = {"cold", "keys"};
  for (const auto& t : Split(targets, ',')) {
    TargetKind kind;
    if (!ParseTarget(t, kind)) Die("unknown target '" + t + "'");
    o.targets.push_back(kind);
  }
  if (o.targets.empty()) Die("no targets");
  if (!ParseEndpoint(corral, o.corral)) Die("--corral: expected IPv4:port, got '" + corral + "'");
  if (!ParseEndpoint(redis, o.redis)) Die("--redis: expected IPv4:port, got '" + redis + "'");
  if (o.pg_primary.empty()) Die("--pg-primary is required");
  o.pg_replicas = Split(replicas, ';');
  if (o.ns.empty() || o.query.empty()) Die("--namespace and --query are required");
  if (o.steady_ns.empty()) o.steady_ns = o.ns;
  if (o.steady_query.empty()) o.steady_query = o.steady_ns == o.ns ? o.query : "";
  if (o.steady_query.empty()) Die("--steady-namespace needs --steady-query");

  auto positive = [](const char* name, double v, double max) {
    if (!(v > 0) || v > max) {
      Die(std::string("--") + name + " must be in (0, " +
          std::to_string(static_cast<long long>(max)) + "]");
    }
  };
  positive("clients", o.clients, 60000);
  positive("keys", o.keys, 100000);
  positive("clients-per-key", o.clients_per_key, 10000);
  if (static_cast<int64_t>(o.keys) * o.clients_per_key > 60000)
    Die("--keys × --clients-per-key > 60000");
  positive("timeout-ms", o.timeout_ms, 600000);
  positive("hot-keys", o.hot_keys, 100000);
  positive("rate", o.rate, 1e7);
  positive("steady-clients", o.steady_clients, 60000);
  positive("duration", o.duration_s, 3600);
  positive("steady-timeout-ms", o.steady_timeout_ms, 600000);
  positive("vc-warm", o.vc_warm_s, 3600);
  positive("vc-slow", o.vc_slow_s, 3600);
  positive("vc-recover", o.vc_recover_s, 3600);
  positive("hit-keys", o.hit_keys, 100000);
  positive("hit-clients", o.hit_clients, 60000);
  positive("hit-duration", o.hit_duration_s, 3600);
  positive("db-connections", o.db_connections, 1000);
  positive("ttl-ms", static_cast<double>(o.ttl_ms), 1e9);
  positive("repeat", o.repeat, 100);
  if (o.retries < 0 || o.retries > 100) Die("--retries must be in [0, 100]");
  if (o.zipf_s < 0) Die("--zipf must be >= 0");
  if (o.drain_s < 0) Die("--drain must be >= 0");
  if (o.id_min > o.id_max) Die("--id-min > --id-max");
  if (o.slow_factor < 1) Die("--slow-factor must be >= 1");
  return o;
}

}  // namespace corral::herd

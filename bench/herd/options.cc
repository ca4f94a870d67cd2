// ParseOptions (options.h): flags, defaults and the checks that keep every run bounded.
#include "bench/herd/options.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <sstream>
#include <tuple>

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

// A steady-traffic field: the plain flag sets it for every steady scenario (with its default);
// --storm-SUFFIX and --vc-SUFFIX, when given, set it for expiry-storm or vicious-cycle alone.
class SteadyFlags {
 public:
  SteadyFlags(Options& o, po::options_description& plain, po::options_description& overrides)
      : o_(o), plain_(plain), overrides_(overrides) {}

  template <typename T>
  void Add(const std::string& plain_name, const std::string& suffix, T SteadyTraffic::*field,
           const std::string& help, bool with_default = true) {
    auto* value = po::value<T>(&(o_.steady.*field));
    if (with_default) value->default_value(o_.steady.*field);
    plain_.add_options()(plain_name.c_str(), value, help.c_str());
    for (const auto& [prefix, scenario, traffic] :
         {std::tuple{"storm-", "expiry-storm", &o_.storm},
          std::tuple{"vc-", "vicious-cycle", &o_.cycle}}) {
      std::string name = prefix + suffix;
      overrides_.add_options()(name.c_str(), po::value<T>(),
                               (std::string(scenario) + ": --" + plain_name).c_str());
      apply_.push_back(
          [name, field, traffic = traffic](const po::variables_map& vm, const SteadyTraffic& base) {
            traffic->*field = vm.count(name) ? vm[name].as<T>() : base.*field;
          });
    }
  }

  // Copies the plain values, then the overrides given, into o.storm and o.cycle.
  void Apply(const po::variables_map& vm) const {
    for (const auto& f : apply_) f(vm, o_.steady);
  }

 private:
  Options& o_;
  po::options_description& plain_;
  po::options_description& overrides_;
  std::vector<std::function<void(const po::variables_map&, const SteadyTraffic&)>> apply_;
};

void Positive(const std::string& name, double v, double max) {
  if (!(v > 0) || v > max) {
    Die("--" + name + " must be in (0, " + std::to_string(static_cast<long long>(max)) + "]");
  }
}

// `prefix`: "" for the plain flags, else "storm-" or "vc-".
void CheckTraffic(const std::string& prefix, const SteadyTraffic& t) {
  auto name = [&](const char* plain, const char* suffix) {
    return prefix.empty() ? std::string(plain) : prefix + suffix;
  };
  Positive(name("steady-ttl-ms", "ttl-ms"), static_cast<double>(t.ttl_ms), 1e9);
  Positive(name("hot-keys", "hot-keys"), t.hot_keys, 100000);
  Positive(name("rate", "rate"), t.rate, 1e7);
  Positive(name("steady-clients", "clients"), t.clients, 60000);
  Positive(name("steady-timeout-ms", "timeout-ms"), static_cast<double>(t.timeout_ms), 600000);
  Positive(name("db-delay-ms", "db-delay-ms"), t.db_delay_ms, 600000);
  if (t.retries < 0 || t.retries > 100)
    Die("--" + name("retries", "retries") + " must be in [0, 100]");
  if (t.zipf_s < 0) Die("--" + name("zipf", "zipf") + " must be >= 0");
}

}  // namespace

Options ParseOptions(int argc, char** argv) {
  Options o;
  std::string scenario = "all", targets = "corral,redis-naive,redis-lock";
  std::string corral = "127.0.0.1:6380", corral_http, redis = "127.0.0.1:6379", replicas;
  int nodes = 0;

  po::options_description desc(
      "corral-herd: thundering-herd scenarios against corral, redis-naive and redis-lock, with\n"
      "PostgreSQL's pg_stat_statements as the referee. Options");
  // clang-format off
  desc.add_options()
    ("help,h", "this text")
    ("scenario", po::value(&scenario)->default_value(scenario),
     "cold|keys|expiry-storm|vicious-cycle|hit|all (all but rolling and burst), rolling, burst, "
     "or a "
     "comma-separated list")
    ("targets", po::value(&targets)->default_value(targets), "comma-separated targets")
    ("corral", po::value(&corral)->default_value(corral),
     "corral-server RESP address, or several comma-separated (one per corral node): the clients "
     "are spread round-robin over them")
    ("nodes", po::value(&nodes)->default_value(nodes),
     "use the first N addresses of --corral (0: all of them)")
    ("corral-http", po::value(&corral_http),
     "the corral nodes' HTTP addresses, in --corral's order: rolling's clients follow their "
     "/readyz (probed every 200 ms) as behind a load balancer; burst and vicious-cycle poll "
     "their /metrics")
    ("shared-tier", po::bool_switch(&o.shared_tier),
     "the corral nodes share a Redis tier: --self-test then allows one query per key in all, "
     "not one per key per node")
    ("redis", po::value(&redis)->default_value(redis), "redis-server address")
    ("pg-primary", po::value(&o.pg_primary), "primary conninfo (required)")
    ("pg-replicas", po::value(&replicas),
     "replica conninfos separated by ';' (cache-aside loads go here; default: the primary)")
    ("namespace", po::value(&o.ns), "corral namespace of cold/keys (required)")
    ("query", po::value(&o.query),
     "the namespace's query, text identical to corral's config (required)")
    ("ttl-ms", po::value(&o.ttl_ms)->default_value(o.ttl_ms),
     "PX of cache-aside SETs in cold/keys: the namespace's ttl_ms")
    ("clients", po::value(&o.clients)->default_value(o.clients), "cold: clients on one key")
    ("keys", po::value(&o.keys)->default_value(o.keys), "keys: cold keys")
    ("clients-per-key", po::value(&o.clients_per_key)->default_value(o.clients_per_key),
     "keys: clients per key")
    ("timeout-ms", po::value(&o.timeout_ms)->default_value(o.timeout_ms),
     "cold/keys/burst: a client's timeout (no retry)")
    ("burst-namespace", po::value(&o.burst_ns), "burst: corral namespace (default: --namespace)")
    ("burst-query", po::value(&o.burst_query),
     "burst: the namespace's query, as in corral's config (with --burst-namespace)")
    ("burst-ttl-ms", po::value(&o.burst_ttl_ms)->default_value(o.burst_ttl_ms),
     "burst: PX of cache-aside SETs (0: --ttl-ms)")
    ("burst-keys", po::value(&o.burst_keys)->default_value(o.burst_keys), "burst: cold keys")
    ("burst-clients-per-key",
     po::value(&o.burst_clients_per_key)->default_value(o.burst_clients_per_key),
     "burst: clients per key")
    ("burst-pool", po::value(&o.burst_pool)->default_value(o.burst_pool),
     "burst: the namespace's corral pool (read from /metrics with --corral-http)")
    ("burst-capacity", po::value(&o.burst_capacity)->default_value(o.burst_capacity),
     "burst: loads the pool can finish within corral's wait bound (connections × replicas × "
     "wait_timeout_ms / query time), printed next to the keys served; 0: not given")
    ("vc-pool", po::value(&o.vc_pool)->default_value(o.vc_pool),
     "vicious-cycle: the namespace's corral pool (read from /metrics with --corral-http)")
    ("duration", po::value(&o.duration_s)->default_value(o.duration_s),
     "expiry-storm: seconds of traffic after the fill")
    ("delay-setting", po::value(&o.delay_setting)->default_value(o.delay_setting),
     "custom setting that the steady query passes to pg_sleep (seconds)")
    ("slow-factor", po::value(&o.slow_factor)->default_value(o.slow_factor),
     "vicious-cycle: how much slower the database gets")
    ("vc-warm", po::value(&o.vc_warm_s)->default_value(o.vc_warm_s), "vicious-cycle: s before")
    ("vc-slow", po::value(&o.vc_slow_s)->default_value(o.vc_slow_s), "vicious-cycle: s slow")
    ("vc-recover", po::value(&o.vc_recover_s)->default_value(o.vc_recover_s),
     "vicious-cycle: s after")
    ("rolling-command", po::value(&o.rolling_command),
     "rolling: shell command that restarts the corral nodes (run with /bin/sh -c)")
    ("rolling-warm", po::value(&o.rolling_warm_s)->default_value(o.rolling_warm_s),
     "rolling: s of steady traffic before the command")
    ("rolling-after", po::value(&o.rolling_after_s)->default_value(o.rolling_after_s),
     "rolling: s of steady traffic after it exits")
    ("rolling-timeout", po::value(&o.rolling_timeout_s)->default_value(o.rolling_timeout_s),
     "rolling: s the command may take (then it is killed)")
    ("min-goodput", po::value(&o.min_goodput)->default_value(o.min_goodput),
     "rolling: exit 1 if the share of requests answered correctly is below this")
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
  po::options_description overrides(
      "Per-scenario steady traffic (default: the plain flag's value)");
  SteadyFlags steady(o, desc, overrides);
  steady.Add("steady-namespace", "namespace", &SteadyTraffic::ns,
             "namespace of the steady scenarios (default: --namespace)", false);
  steady.Add("steady-query", "query", &SteadyTraffic::query,
             "its query, text identical to corral's config (default: --query)", false);
  steady.Add("steady-ttl-ms", "ttl-ms", &SteadyTraffic::ttl_ms,
             "PX of their cache-aside SETs: that namespace's ttl_ms (default: --ttl-ms)", false);
  steady.Add("hot-keys", "hot-keys", &SteadyTraffic::hot_keys,
             "expiry-storm/vicious-cycle: hot set size");
  steady.Add("zipf", "zipf", &SteadyTraffic::zipf_s, "Zipf exponent of steady traffic");
  steady.Add("rate", "rate", &SteadyTraffic::rate, "steady traffic, requests/s");
  steady.Add("steady-clients", "clients", &SteadyTraffic::clients,
             "connections that carry steady traffic");
  steady.Add("steady-timeout-ms", "timeout-ms", &SteadyTraffic::timeout_ms,
             "steady scenarios: timeout per attempt");
  steady.Add("retries", "retries", &SteadyTraffic::retries,
             "steady scenarios: retries after a timeout");
  steady.Add("db-delay-ms", "db-delay-ms", &SteadyTraffic::db_delay_ms,
             "normal value of --delay-setting, in ms");
  desc.add(overrides);

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
      if (std::find(kAllScenarios.begin(), kAllScenarios.end(), s) == kAllScenarios.end() &&
          std::find(kNamedScenarios.begin(), kNamedScenarios.end(), s) == kNamedScenarios.end()) {
        Die("--scenario: unknown scenario '" + s + "'");
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
  for (const auto& address : Split(corral, ',')) {
    Endpoint endpoint;
    if (!ParseEndpoint(address, endpoint)) {
      Die("--corral: expected IPv4:port[,IPv4:port...], got '" + address + "'");
    }
    o.corral.push_back(endpoint);
  }
  if (o.corral.empty()) Die("--corral: no address");
  if (nodes < 0) Die("--nodes must be >= 0");
  if (static_cast<size_t>(nodes) > o.corral.size()) {
    Die("--nodes " + std::to_string(nodes) + ", but --corral lists " +
        std::to_string(o.corral.size()) + " address(es)");
  }
  for (const auto& address : Split(corral_http, ',')) {
    Endpoint endpoint;
    if (!ParseEndpoint(address, endpoint)) {
      Die("--corral-http: expected IPv4:port[,IPv4:port...], got '" + address + "'");
    }
    o.corral_http.push_back(endpoint);
  }
  if (!o.corral_http.empty() && o.corral_http.size() != o.corral.size()) {
    Die("--corral-http lists " + std::to_string(o.corral_http.size()) + " address(es), --corral " +
        std::to_string(o.corral.size()));
  }
  if (nodes > 0) o.corral.resize(static_cast<size_t>(nodes));
  if (nodes > 0 && !o.corral_http.empty()) o.corral_http.resize(static_cast<size_t>(nodes));
  if (!ParseEndpoint(redis, o.redis)) Die("--redis: expected IPv4:port, got '" + redis + "'");
  if (o.pg_primary.empty()) Die("--pg-primary is required");
  o.pg_replicas = Split(replicas, ';');
  if (o.ns.empty() || o.query.empty()) Die("--namespace and --query are required");
  if (o.steady.ns.empty()) o.steady.ns = o.ns;
  if (o.steady.query.empty()) o.steady.query = o.steady.ns == o.ns ? o.query : "";
  if (!vm.count("steady-ttl-ms")) o.steady.ttl_ms = o.ttl_ms;
  if (o.steady.query.empty()) Die("--steady-namespace needs --steady-query");
  steady.Apply(vm);
  if (vm.count("burst-namespace") != vm.count("burst-query")) {
    Die("--burst-namespace and --burst-query go together");
  }
  if (o.burst_ns.empty()) {
    o.burst_ns = o.ns;
    o.burst_query = o.query;
  }
  if (o.burst_ttl_ms == 0) o.burst_ttl_ms = o.ttl_ms;
  Positive("burst-keys", o.burst_keys, 100000);
  Positive("burst-clients-per-key", o.burst_clients_per_key, 10000);
  if (static_cast<int64_t>(o.burst_keys) * o.burst_clients_per_key > 60000)
    Die("--burst-keys × --burst-clients-per-key > 60000");
  if (o.burst_capacity < 0) Die("--burst-capacity must be >= 0");
  for (const char* prefix : {"storm-", "vc-"}) {
    const std::string p = prefix;
    // A namespace has one query: change both or neither.
    if (vm.count(p + "namespace") != vm.count(p + "query")) {
      Die("--" + p + "namespace and --" + p + "query go together");
    }
  }
  Positive("clients", o.clients, 60000);
  Positive("keys", o.keys, 100000);
  Positive("clients-per-key", o.clients_per_key, 10000);
  if (static_cast<int64_t>(o.keys) * o.clients_per_key > 60000)
    Die("--keys × --clients-per-key > 60000");
  Positive("timeout-ms", o.timeout_ms, 600000);
  CheckTraffic("", o.steady);
  CheckTraffic("storm-", o.storm);
  CheckTraffic("vc-", o.cycle);
  Positive("duration", o.duration_s, 3600);
  Positive("vc-warm", o.vc_warm_s, 3600);
  Positive("vc-slow", o.vc_slow_s, 3600);
  Positive("vc-recover", o.vc_recover_s, 3600);
  if (std::find(o.scenarios.begin(), o.scenarios.end(), "rolling") != o.scenarios.end() &&
      o.rolling_command.empty()) {
    Die("--scenario rolling needs --rolling-command");
  }
  Positive("rolling-warm", o.rolling_warm_s, 3600);
  Positive("rolling-after", o.rolling_after_s, 3600);
  Positive("rolling-timeout", o.rolling_timeout_s, 3600);
  if (!(o.min_goodput >= 0 && o.min_goodput <= 1)) Die("--min-goodput must be in [0, 1]");
  Positive("hit-keys", o.hit_keys, 100000);
  Positive("hit-clients", o.hit_clients, 60000);
  Positive("hit-duration", o.hit_duration_s, 3600);
  Positive("db-connections", o.db_connections, 1000);
  Positive("ttl-ms", static_cast<double>(o.ttl_ms), 1e9);
  Positive("repeat", o.repeat, 100);
  if (o.drain_s < 0) Die("--drain must be >= 0");
  if (o.id_min > o.id_max) Die("--id-min > --id-max");
  if (o.slow_factor < 1) Die("--slow-factor must be >= 1");
  return o;
}

}  // namespace corral::herd

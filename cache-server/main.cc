// corral-server: loads the config, wires store, cache, metrics and the RESP/HTTP front ends
// together, and runs until SIGTERM/SIGINT (then drains in-flight requests and exits 0).
#include <signal.h>
#include <sys/resource.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cache-server/build_info.h"
#include "cache-server/cache_service.h"
#include "cache-server/config.h"
#include "cache-server/http_handler.h"
#include "cache-server/log.h"
#include "cache-server/metrics.h"
#include "cache-server/pg_backend.h"
#include "cache-server/resp_commands.h"
#include "cache-server/server.h"
#include "cache-server/tier_backend.h"
#include "cache-server/tls.h"
#include "cache-server/users.h"
#include "lease/clock.h"
#include "lease/lease_table.h"
#include "lease/random.h"
#include "lease/store.h"

namespace po = boost::program_options;
using namespace corral;
using namespace corral::server;

namespace {

// "--resp 6390" or "--resp 127.0.0.1:6390" (same syntax as the config's listen addresses).
void OverrideListen(const std::string& flag, const std::string& value, HostPort* where) {
  bool digits = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
  std::optional<HostPort> parsed = ParseHostPort(digits ? where->host + ":" + value : value);
  if (!parsed) {
    throw ConfigError("--" + flag, "expected a port (0-65535) or host:port, got \"" + value + "\"");
  }
  *where = *parsed;
}

// As Redis does for maxclients: raise the open-file limit so that max_clients connections (plus
// the database connections and some slack) fit; warn when the hard limit does not allow it.
void RaiseFileLimit(const Config& config) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  rlim_t want = static_cast<rlim_t>(config.shedding.max_clients) + 1024;
  if (lim.rlim_cur >= want) return;
  rlim_t target = lim.rlim_max == RLIM_INFINITY ? want : std::min(want, lim.rlim_max);
  lim.rlim_cur = target;
  setrlimit(RLIMIT_NOFILE, &lim);
  if (target < want) {
    Log(LogLevel::kWarn, "file_limit_low",
        "limit=" + std::to_string(target) + " wanted=" + std::to_string(want) +
            " note=\"max_clients cannot all connect; raise the hard limit (ulimit -Hn)\"");
  }
}

int Serve(const Config& config) {
  RaiseFileLimit(config);
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(config.log_level, &level);  // validated by the config parser
  SetLogLevel(level);
  lease::SteadyClock clock;
  lease::SystemRandom random;
  lease::Store store(config.memory, clock, random);
  lease::LeaseTable leases(config.lease, clock);
  Metrics metrics;
  std::unique_ptr<PgBackend> backend;
  if (config.postgres) backend = std::make_unique<PgBackend>(config);
  // With a Redis tier the namespaces' loads go through it (L2, cluster-wide leases) to PostgreSQL.
  std::unique_ptr<TierBackend> tier;
  if (config.redis && backend) tier = std::make_unique<TierBackend>(config, *backend, metrics);
  if (config.redis && !backend) {
    Log(LogLevel::kWarn, "tier_unused", "reason=\"no postgres section: nothing to share\"");
  }
  LoadBackend* loads = tier ? static_cast<LoadBackend*>(tier.get()) : backend.get();
  CacheService cache(config, store, leases, clock, random, metrics, loads);
  std::unique_ptr<auth::UserTable> users = BuildUsers(config);
  std::unique_ptr<TlsContexts> tls;
  if (config.tls) tls = std::make_unique<TlsContexts>(*config.tls);
  ServerState state(config, cache, metrics, *users);
  state.tls = tls.get();
  RespCommands commands(state);
  HttpHandler http_handler(
      state,
      [&] {
        MetricSources sources = MetricSourcesOf(state);
        if (backend) {
          sources.replicas = backend->ReplicaStatus();
          sources.wal = backend->WalGauges();
        }
        sources.tier = tier != nullptr;
        sources.tier_up = tier && tier->up();
        return RenderPrometheus(sources);
      },
      [&] { return backend == nullptr || backend->Ready(); });
  Server server(state, commands, http_handler);
  server.Bind();
  // Active expiry; the out-of-memory state (noeviction) sees the room expiry freed; tracking
  // connections are told of read-through values whose fresh time ended.
  server.AddTimer(std::chrono::milliseconds(100), [&store, &commands] {
    store.ExpireSome(20);
    store.RefreshOutOfMemory();
    commands.TellFreshTimeOver();
  });
  if (tls) {
    // New certificates without a restart: on SIGHUP, and when the files change.
    server.OnHangup([&tls] { tls->Reload(true); });
    server.AddTimer(std::chrono::milliseconds(1000), [&tls] { tls->Reload(false); });
  }
  // Lease waiters time out on this tick: wait_timeout_ms is honoured to within 5 ms.
  server.AddTimer(std::chrono::milliseconds(5), [&cache] { cache.Tick(); });
  if (tier && config.postgres->invalidation == pg::InvalidationMode::kLogical) {
    // One node of the fleet reads the WAL and broadcasts what it reads through the tier.
    tier->CompeteForWalReader();
    backend->SetWalGate([&tier] { return tier->IsWalReader(); });
  }
  if (backend) backend->Start(cache, metrics);
  if (tier) {
    // Pub/sub across the fleet: a PUBLISH on any node reaches the subscribers of every node.
    tier->OnFleetMessage([&state](std::string_view channel, std::string_view message) {
      state.pubsub.Publish(channel, message);
    });
    state.publish_to_fleet = [&tier](std::string_view channel, std::string_view message) {
      tier->PublishToFleet(channel, message);
    };
    tier->Start(cache);
    state.joining_tier = true;
    auto give_up = std::chrono::steady_clock::now() + TierBackend::JoinBound(*config.redis);
    server.AddTimer(std::chrono::milliseconds(20), [&state, &tier, give_up] {
      if (state.joining_tier.load(std::memory_order_relaxed) &&
          (tier->joined() || std::chrono::steady_clock::now() >= give_up)) {
        state.joining_tier = false;
      }
    });
  }

  // SIGTERM/SIGINT: /readyz turns 503, serve on for the drain grace, then stop accepting and
  // finish in-flight requests within the shutdown timeout (SPEC "Running").
  server.ShutdownOnSignals(std::chrono::milliseconds(config.shutdown.drain_grace_ms),
                           std::chrono::milliseconds(config.shutdown.timeout_ms));

  Log(LogLevel::kInfo, "listening",
      "resp_port=" + std::to_string(server.resp_port()) +
          " http_port=" + std::to_string(server.http_port()) +
          (state.resp_tls_port ? " resp_tls_port=" + std::to_string(state.resp_tls_port) : "") +
          (state.http_tls_port ? " http_tls_port=" + std::to_string(state.http_tls_port) : "") +
          " commit=" + std::string(BuildCommit()) + " " + DescribeConfig(config));
  server.Run();
  // The WAL reader first: what it reads is broadcast through the tier, and the tier gives up the
  // reader lease as it stops.
  if (backend) backend->StopInvalidation();
  if (tier) tier->Stop();
  if (backend) backend->Stop();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  po::options_description desc("corral-server options");
  desc.add_options()("help,h", "show this help")(
      "version", "print the version and the commit it was built from, and exit")(
      "config,c", po::value<std::string>(), "JSON config file (see README)")(
      "check-config", po::value<std::string>(), "validate a config file and exit")(
      "resp", po::value<std::string>(), "RESP listen port or host:port (overrides listen.resp)")(
      "http", po::value<std::string>(), "HTTP listen port or host:port (overrides listen.http)")(
      "threads", po::value<int>(), "I/O threads (overrides threads)")(
      "log-level", po::value<std::string>(), "debug|info|warn|error (overrides log_level)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "corral-server: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << VersionLine("corral-server") << "\n";
    return 0;
  }
  try {
    if (vm.count("check-config")) {
      Config config = LoadConfigFile(vm["check-config"].as<std::string>());
      BuildUsers(config);  // the users' ACL rules, checked as start-up checks them
      if (config.tls) {
        TlsContexts check(*config.tls);  // the certificate and key load
      }
      std::cout << "config ok: " << DescribeConfig(config) << "\n";
      return 0;
    }
    Config config =
        vm.count("config") ? LoadConfigFile(vm["config"].as<std::string>()) : ParseConfig("{}");
    if (vm.count("resp")) OverrideListen("resp", vm["resp"].as<std::string>(), &config.resp);
    if (vm.count("http")) OverrideListen("http", vm["http"].as<std::string>(), &config.http);
    if (vm.count("threads")) {
      config.threads = vm["threads"].as<int>();
      // The rest was valid already: only the override can fail, by the config's own rule.
      if (auto error = ValidateServerOptions(config))
        throw ConfigError("--threads", error->problem);
    }
    if (vm.count("log-level")) {
      LogLevel level;
      std::string name = vm["log-level"].as<std::string>();
      if (!ParseLogLevel(name, &level)) {
        throw ConfigError("--log-level", "expected debug|info|warn|error, got \"" + name + "\"");
      }
      config.log_level = name;
    }
    return Serve(config);
  } catch (const ConfigError& e) {
    std::cerr << "corral-server: config error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "fatal", "error=" + LogQuote(e.what()));
    return 1;
  }
}

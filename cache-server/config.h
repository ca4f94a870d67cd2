// corral-server's configuration: the JSON layout of SPEC.md "Configuration (JSON)", parsed and
// fully validated at start-up. Every error names the JSON path of the offending field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lease/load_limiter.h"
#include "lease/option_table.h"
#include "lease/options.h"
#include "pg-loader/options.h"

namespace corral::server {

// A listening address. host is an IPv4 or IPv6 literal without brackets ("127.0.0.1", "::1").
// Port 0 asks the kernel for a free port.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// The configuration is one tree of the modules' own option structs (as Pelikan's setting.h), parsed
// straight into them: PgBackend hands pg-loader its LoaderOptions, ListenerOptions and Statements,
// Serve() hands lease/ its StoreOptions and LeaseTableOptions, and the cache-server's own parts
// are declared here. Each module validates its part once (its Validate, reading the same field
// table the JSON loader reads), so --check-config and start-up cannot disagree.

// JSON "postgres.pools.NAME": replicas as indices into postgres.replicas ("all" = every one).
using PoolConfig = pg::PoolOptions;

// JSON "postgres": pg-loader's LoaderOptions and the invalidation listener's channel. Without
// "pools" in the JSON: {"default": every replica, 8 connections, round_robin}.
struct PostgresConfig : pg::LoaderOptions, pg::ListenerOptions {};

// The cache side of a namespace: TTLs, staleness and load shedding.
struct NamespaceCacheOptions {
  int64_t ttl_ms = 60000;
  double ttl_jitter = 0.1;  // in [0, 1]
  int64_t stale_ms = 300000;
  int64_t negative_ttl_ms = 5000;
  int max_inflight_loads = 64;
  double max_loads_per_s = 0;  // 0 = unlimited
  bool blocked = false;
  lease::Priority priority = lease::Priority::kHigh;  // JSON "high" / "low" (lease::kPriorityNames)
};

// JSON "namespaces.NAME": a read-through namespace, keys "name:ID" loaded with `query` ($1 = ID).
// pg::Statement holds name, query, batch_query (empty = no batching), pool, batch_max and
// batch_window_us; NamespaceCacheOptions the rest.
struct NamespaceConfig : pg::Statement, NamespaceCacheOptions {};

// JSON "lease": the lease table's wait_timeout_ms and lease_ttl_ms, and error_holdoff_ms.
struct LeaseConfig : lease::LeaseTableOptions, lease::ErrorHoldoffOptions {};

// JSON "shedding".
struct SheddingConfig {
  int64_t max_pending_loads = 10000;  // loads in flight across namespaces; also each replica's
                                      // queue bound in the loader
  int64_t max_clients = 10000;
};

// JSON "resp".
struct RespConfig {
  std::string requirepass;  // empty = no AUTH
  int64_t proto_max_bulk_len = 512LL << 20;
  int64_t max_query_buffer = 1LL << 30;
  int64_t idle_timeout_s = 0;                   // 0 = never
  int64_t tracking_table_max_keys = 1'000'000;  // CLIENT TRACKING's table (Redis's default)
  std::string notify_keyspace_events;           // Redis's letters ("KEA"); "" = off
};

// JSON "http".
struct HttpConfig {
  int64_t max_header_bytes = 8192;
  int64_t max_body_bytes = 1 << 20;
  int64_t read_timeout_ms = 10000;
  int64_t idle_timeout_ms = 60000;
  int max_pipelined = 16;
  // /metrics and /v1/stats answer without credentials (Prometheus scrapes them). When false they
  // need a user allowed to run INFO.
  bool open_metrics = true;
};

// JSON "users.NAME": a user of both doors, as Redis's ACL has them (auth/acl.h). Secrets come from
// the JSON, files (one per line, as Kubernetes mounts a Secret) or the environment; they are
// hashed when the server builds its users and never printed.
struct UserConfig {
  std::string acl;                     // Redis ACL rules, applied in order to a new user
  std::vector<std::string> passwords;  // password, password_file's lines, password_env
  std::vector<std::string> tokens;     // HTTP bearer tokens: tokens, token_file's lines, token_env
};

// SIGTERM/SIGINT: /readyz turns 503 at once and corral keeps serving for drain_grace_ms (so a
// load balancer stops sending new connections); then the listeners close and in-flight requests
// and loads get at most timeout_ms before the remaining connections are closed.
struct ShutdownConfig {
  int64_t drain_grace_ms = 0;  // 0: stop accepting at once (outside a load balancer)
  int64_t timeout_ms = 5000;
};

// JSON "tls": the certificate that listen.resp_tls and listen.http_tls serve (Redis's tls-*
// settings). Reloaded without a restart on SIGHUP and when the files change.
struct TlsConfig {
  std::string cert_file;                 // PEM chain, leaf first
  std::string key_file;                  // PEM private key
  std::string ca_file;                   // PEM CAs that client certificates must chain to
  std::string auth_clients = "no";       // no | optional | yes (Redis's tls-auth-clients)
  std::string min_version = "1.2";       // 1.2 | 1.3
  int64_t handshake_timeout_ms = 10000;  // a client that does not finish the handshake is closed
};

// `threads` when the config does not say: half the cores, at least 1. The I/O threads share the
// machine with the loader's connections and often with clients; on 2 cores one I/O thread
// served redis-benchmark faster than two (bench/hit-vs-redis.sh, README), as with Redis's
// io-threads, which its docs advise only from 4 cores up.
int DefaultThreads();

// JSON "redis": the Redis / Redis Cluster tier that several nodes share (SPEC.md "Scale-out").
// Absent (no nodes): single-node behaviour, exactly as without the tier.
struct RedisConfig {
  std::vector<std::string> nodes;  // "host:port" seeds
  std::string cluster = "auto";    // auto | true | false (JSON: "auto" or a boolean)
  std::string prefix = "corral:";  // every Redis key and channel corral uses starts with it
  int64_t timeout_ms = 100;        // longest any request waits on Redis
  int64_t l1_ttl_ms = 5000;        // longest an L1 copy is served as fresh without a recheck
  std::optional<std::string> user;
  std::optional<std::string> password;
};

struct Config {
  HostPort resp{"127.0.0.1", 6380};  // JSON listen.resp
  HostPort http{"127.0.0.1", 8080};  // JSON listen.http
  std::optional<HostPort> resp_tls;  // JSON listen.resp_tls: RESP over TLS (absent: none)
  std::optional<HostPort> http_tls;  // JSON listen.http_tls: HTTPS (absent: none)
  std::optional<TlsConfig> tls;      // JSON "tls"
  int threads = DefaultThreads();
  // JSON "memory": max_bytes, policy (W-TinyLFU unless "clock")
  lease::StoreOptions memory{.policy = lease::EvictionPolicy::kTinyLfu};
  std::string log_level = "info";          // debug | info | warn | error
  std::optional<PostgresConfig> postgres;  // absent = plain cache, no read-through
  std::map<std::string, NamespaceConfig> namespaces;
  LeaseConfig lease;
  SheddingConfig shedding;
  RespConfig resp_options;                  // JSON "resp"
  HttpConfig http_options;                  // JSON "http"
  ShutdownConfig shutdown;                  // JSON "shutdown"
  std::optional<RedisConfig> redis;         // JSON "redis"; absent = no tier
  std::map<std::string, UserConfig> users;  // JSON "users"
  // As Redis's protected mode: with no credential configured, clients from beyond loopback are
  // refused (HTTP probes excepted) with a message that says how to fix it.
  bool protected_mode = true;
};

// A configuration that cannot be used. Thrown at start-up only, never on the request path.
// what() is "<path>: <problem>", or just "<problem>" when path is empty, e.g.
//   namespaces.user.ttl_ms: expected a positive integer, got "abc"
struct ConfigError : std::runtime_error {
  ConfigError(std::string path, std::string problem);

  // JSON path of the offending field ("namespaces.user.ttl_ms", "postgres.replicas[1]"); a key
  // that is not a plain word is quoted ("namespaces.\"a.b\""). Empty for the whole document:
  // JSON syntax errors, a non-object root, an unreadable file.
  std::string path;
  std::string problem;  // what is wrong, without the path
};

// Parses and validates a whole configuration: types, unknown and duplicate fields here, then each
// module's Validate on its part, called with the part's JSON path. Every field is optional except
// postgres.primary
// (when "postgres" is present) and each namespace's "query". Unknown fields, wrong types and
// out-of-range values are errors. Throws ConfigError; a JSON syntax error has an empty path and
// the parser's line and column in its problem. Thread-safe (no shared state).
Config ParseConfig(std::string_view json_text);

// Reads `file` and parses it with ParseConfig. Throws ConfigError; when the file cannot be read
// the path is empty and the problem names the file and the reason.
Config LoadConfigFile(const std::string& file);

// Parses "127.0.0.1:6380", "[::1]:6380" or ":6380" (every IPv4 interface: host "0.0.0.0").
// Host names are not accepted (the server binds without resolving). nullopt when malformed.
std::optional<HostPort> ParseHostPort(std::string_view text);

// The inverse of ParseHostPort: "127.0.0.1:6380", "[::1]:6380".
std::string FormatHostPort(const HostPort& address);

// The cache-server's own Validate: threads, shedding, resp and http against their field tables
// (config.cc), and a namespace's cache options under `path`. Pure; the first problem found.
std::optional<options::OptionError> ValidateServerOptions(const Config& config);
std::optional<options::OptionError> Validate(const NamespaceCacheOptions& o, std::string_view path);

// One field of the configuration as the JSON shows it, for README's table and the tests that walk
// every field. Read from the same field tables the parser reads.
struct ConfigField {
  std::string path;          // "namespaces.NAME.ttl_ms"; NAME stands for any pool or namespace
  std::string default_text;  // as README shows it: "60000", "info", "none", "required", ...
  std::vector<std::string> invalid;  // JSON values that the parser rejects at `path`
};
std::vector<ConfigField> ConfigFields();

// A one-line key=value summary for the start-up log. Never includes connection strings or the
// password (connection strings may carry one).
std::string DescribeConfig(const Config& config);

}  // namespace corral::server

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

namespace corral::server {

// A listening address. host is an IPv4 or IPv6 literal without brackets ("127.0.0.1", "::1").
// Port 0 asks the kernel for a free port.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// One pool of connections per replica, shared by the namespaces that name the pool.
struct PoolConfig {
  std::vector<std::string> replicas;    // connection strings, resolved from "all" or indices
  int connections = 8;                  // per replica
  std::string routing = "round_robin";  // or "least_loaded"
  // Loads in flight across every namespace of the pool; past it they are shed like a namespace's
  // (-BUSY / 503). 0: bounded only by connections x replicas (further loads queue in the loader).
  int64_t max_inflight_loads = 0;
};

struct PostgresConfig {
  std::string primary;                // connection string; LISTEN and (optionally) fallback loads
  std::vector<std::string> replicas;  // connection strings
  // Without "pools" in the JSON: {"default": every replica, 8 connections, round_robin}.
  std::map<std::string, PoolConfig> pools;
  int64_t statement_timeout_ms = 1000;  // 0 = no timeout
  int64_t max_replica_lag_ms = 5000;
  int64_t health_check_interval_ms = 1000;
  bool fallback_to_primary = false;
  std::string invalidation_channel = "corral_invalidate";
  bool prepared_statements = true;  // false through PgBouncer in transaction mode
};

// A read-through namespace: keys "name:ID" are loaded with `query`, $1 bound to ID.
struct NamespaceConfig {
  std::string name;
  std::string query;        // contains $1
  std::string batch_query;  // empty = no batching; else contains $1 (the array of IDs)
  std::string pool = "default";
  int64_t ttl_ms = 60000;
  double ttl_jitter = 0.1;  // in [0, 1]
  int64_t stale_ms = 300000;
  int64_t negative_ttl_ms = 5000;
  int max_inflight_loads = 64;
  double max_loads_per_s = 0;  // 0 = unlimited
  bool blocked = false;
  int batch_max = 64;
  int64_t batch_window_us = 200;
};

struct LeaseConfig {
  int64_t wait_timeout_ms = 2000;
  int64_t lease_ttl_ms = 10000;
  int64_t error_holdoff_ms = 1000;
};

struct SheddingConfig {
  int64_t max_pending_loads = 10000;
  int64_t max_clients = 10000;
};

struct RespConfig {
  std::string requirepass;  // empty = no AUTH
  int64_t proto_max_bulk_len = 512LL << 20;
  int64_t max_query_buffer = 1LL << 30;
  int64_t idle_timeout_s = 0;  // 0 = never
};

struct HttpConfig {
  int64_t max_header_bytes = 8192;
  int64_t max_body_bytes = 1 << 20;
  int64_t read_timeout_ms = 10000;
  int64_t idle_timeout_ms = 60000;
  int max_pipelined = 16;
};

// SIGTERM/SIGINT: /readyz turns 503 at once and corral keeps serving for drain_grace_ms (so a
// load balancer stops sending new connections); then the listeners close and in-flight requests
// and loads get at most timeout_ms before the remaining connections are closed.
struct ShutdownConfig {
  int64_t drain_grace_ms = 0;  // 0: stop accepting at once (outside a load balancer)
  int64_t timeout_ms = 5000;
};

// `threads` when the config does not say: half the cores, at least 1. The I/O threads share the
// machine with the loader's connections and often with clients; on 2 cores one I/O thread
// served redis-benchmark faster than two (bench/hit-vs-redis.sh, README), as with Redis's
// io-threads, which its docs advise only from 4 cores up.
int DefaultThreads();

struct Config {
  HostPort resp{"127.0.0.1", 6380};  // JSON listen.resp
  HostPort http{"127.0.0.1", 8080};  // JSON listen.http
  int threads = DefaultThreads();
  int64_t max_bytes = 256LL << 20;         // JSON memory.max_bytes
  std::string log_level = "info";          // debug | info | warn | error
  std::optional<PostgresConfig> postgres;  // absent = plain cache, no read-through
  std::map<std::string, NamespaceConfig> namespaces;
  LeaseConfig lease;
  SheddingConfig shedding;
  RespConfig resp_options;  // JSON "resp"
  HttpConfig http_options;  // JSON "http"
  ShutdownConfig shutdown;  // JSON "shutdown"
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

// Parses and validates a whole configuration. Every field is optional except postgres.primary
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

// A one-line key=value summary for the start-up log. Never includes connection strings or the
// password (connection strings may carry one).
std::string DescribeConfig(const Config& config);

}  // namespace corral::server

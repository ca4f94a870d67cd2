// What every session of corral-server shares: configuration, the cache, metrics and a few
// process-wide counters. Owned by main(); sessions hold a reference.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <string_view>

#include "auth/acl.h"
#include "cache-server/cache_service.h"
#include "cache-server/command_gate.h"
#include "cache-server/command_log.h"
#include "cache-server/config.h"
#include "cache-server/keyspace_events.h"
#include "cache-server/maxmemory_policy.h"
#include "cache-server/metrics.h"
#include "cache-server/pubsub.h"
#include "cache-server/tracking.h"
#include "cache-server/watch_table.h"

namespace corral::server {

// A connection that can be asked to finish: close now if idle, else after the request in hand.
// Drain() is thread-safe (it posts to the connection's own executor).
class TlsContexts;

class Drainable {
 public:
  virtual ~Drainable() = default;
  virtual void Drain() = 0;
};

struct ServerState {
  ServerState(const Config& config, CacheService& cache, Metrics& metrics, auth::UserTable& users)
      : config(config), cache(cache), metrics(metrics), users(users) {
    // Validated with the config: CONFIG SET notify-keyspace-events changes it later.
    keyspace_events.set_flags(
        ParseKeyspaceEvents(config.resp_options.notify_keyspace_events).value_or(0));
  }

  const Config& config;
  CacheService& cache;
  Metrics& metrics;
  auth::UserTable& users;  // both doors' users (users.h); ACL SETUSER changes them at run time
  std::atomic<int64_t> connected_clients{0};
  std::atomic<uint64_t> next_client_id{1};
  // Shutdown has begun: /readyz answers 503 so that load balancers stop sending (SPEC "Running").
  std::atomic<bool> draining{false};
  // With a Redis tier, the node has not joined it yet (at most TierJoinBound after start): /readyz
  // answers 503, so that a restarted node takes traffic once its misses can be L2 hits rather
  // than database queries, and still takes it if Redis is down.
  std::atomic<bool> joining_tier{false};
  // The listeners have closed: sessions answer the request in hand, then close.
  std::atomic<bool> shutting_down{false};
  std::time_t started_unix = std::time(nullptr);
  uint16_t resp_port = 0;  // the ports actually bound (config may say 0)
  uint16_t http_port = 0;
  uint16_t resp_tls_port = 0;  // 0: no TLS port
  uint16_t http_tls_port = 0;
  TlsContexts* tls = nullptr;  // set when the config has "tls" (tls.h)
  // Transactions: sessions hold the gate shared while they run commands, EXEC alone; the keys
  // that connections WATCH.
  CommandGate gate;
  WatchTable watches;
  PubSub pubsub;  // SUBSCRIBE and PUBLISH
  // With a Redis tier: sends a client's PUBLISH to the other nodes too (TierBackend). Set
  // before serving.
  std::function<void(std::string_view channel, std::string_view message)> publish_to_fleet;
  KeyspaceEvents keyspace_events{pubsub};  // notify-keyspace-events
  ClientRegistry clients;                  // the RESP connections by CLIENT ID
  TrackingTable tracking{clients,          // CLIENT TRACKING
                         static_cast<size_t>(config.resp_options.tracking_table_max_keys)};
  // CONFIG SET maxmemory-policy: the Redis name last set (what CONFIG GET and INFO report); the
  // store's algorithm and evict flag are what change behaviour (maxmemory_policy.h).
  std::atomic<MaxmemoryPolicy> maxmemory_policy{DefaultMaxmemoryPolicy(config.memory)};
  CommandLog command_log;  // SLOWLOG and LATENCY, and how sessions time commands
};

// What metrics.cc renders (INFO, /v1/stats, /metrics) as this server's state shows it; the caller
// adds what the state does not hold (replica gauges, INFO's version strings).
inline MetricSources MetricSourcesOf(const ServerState& s) {
  MetricSources m;
  m.metrics = &s.metrics;
  m.store = &s.cache.store();
  m.leases = &s.cache.leases();
  m.connected_clients = s.connected_clients.load();
  m.started_unix = s.started_unix;
  m.resp_port = s.resp_port;
  m.io_threads = s.config.threads;
  m.max_clients = s.config.shedding.max_clients;
  m.max_bytes = static_cast<int64_t>(s.cache.store().max_bytes());  // CONFIG SET maxmemory
  m.maxmemory_policy = NameOf(s.maxmemory_policy.load(std::memory_order_relaxed));
  m.pools = s.cache.PoolStatus();
  m.position_markers = s.cache.position_markers();
  m.position_marker_bytes = s.cache.position_marker_bytes();
  const TrackingTable::Stats tracking = s.tracking.stats();
  m.tracking_clients = tracking.clients;
  m.tracking_keys = tracking.keys;
  m.tracking_items = tracking.items;
  m.tracking_prefixes = tracking.prefixes;
  return m;
}

}  // namespace corral::server

// See pg_backend.h.
#include "cache-server/pg_backend.h"

#include <algorithm>
#include <stdexcept>

#include "cache-server/log.h"
#include "pg-loader/listener.h"
#include "pg-loader/loader.h"

namespace corral::server {

namespace {
pg::LoaderOptions ToLoaderOptions(const Config& config) {
  const PostgresConfig& pg = *config.postgres;
  pg::LoaderOptions o;
  o.primary = pg.primary;
  o.replicas = pg.replicas;
  o.statement_timeout_ms = pg.statement_timeout_ms;
  o.max_replica_lag_ms = pg.max_replica_lag_ms;
  o.health_check_interval_ms = pg.health_check_interval_ms;
  o.fallback_to_primary = pg.fallback_to_primary;
  o.prepared_statements = pg.prepared_statements;
  o.max_queued_per_replica = static_cast<size_t>(std::max<int64_t>(1, config.shedding.max_pending_loads));
  for (const auto& [name, pool] : pg.pools) {
    pg::PoolOptions p;
    p.name = name;
    p.connections = pool.connections;
    p.routing = pool.routing == "least_loaded" ? pg::Routing::kLeastLoaded : pg::Routing::kRoundRobin;
    for (const std::string& conn : pool.replicas) {
      auto it = std::find(pg.replicas.begin(), pg.replicas.end(), conn);
      if (it == pg.replicas.end()) throw std::invalid_argument("pool " + name + ": unknown replica");
      p.replicas.push_back(static_cast<size_t>(it - pg.replicas.begin()));
    }
    o.pools.push_back(std::move(p));
  }
  return o;
}

// One statement per namespace, in the same order CacheService numbers them (config map order).
std::vector<pg::Statement> ToStatements(const Config& config) {
  std::vector<pg::Statement> statements;
  for (const auto& [name, ns] : config.namespaces) {
    statements.push_back(pg::Statement{name, ns.query, ns.pool, ns.batch_query, ns.batch_max,
                                       ns.batch_window_us});
  }
  return statements;
}
}  // namespace

PgBackend::PgBackend(const Config& config)
    : loader_(std::make_unique<pg::Loader>(ToLoaderOptions(config), ToStatements(config))),
      config_(config) {}

PgBackend::~PgBackend() { Stop(); }

void PgBackend::Start(CacheService& cache, Metrics& metrics) {
  loader_->Start();
  const PostgresConfig& pg = *config_.postgres;
  listener_ = std::make_unique<pg::Listener>(
      pg.primary, pg.invalidation_channel,
      [&cache](std::string_view payload) {
        cache.Invalidate(payload, InvalidationSource::kNotify);
      },
      [&cache] {
        // Notifications sent while we are not listening are lost: nothing cached can be
        // trusted as fresh until it is reloaded (SPEC "Freshness promise").
        Log(LogLevel::kWarn, "invalidation_listener_disconnected", "action=mark_all_stale");
        cache.MarkAllStale();
      },
      [&cache] {
        Log(LogLevel::kInfo, "invalidation_listener_connected");
        cache.MarkAllStale();
      });
  listener_->Start();
  (void)metrics;
}

void PgBackend::Stop() {
  if (listener_) listener_->Stop();
  if (loader_) loader_->Stop();
}

void PgBackend::Load(size_t ns_index, std::string id, std::function<void(BackendResult)> done) {
  loader_->Load(ns_index, std::move(id), [done = std::move(done)](pg::LoadOutcome o) {
    BackendResult r;
    r.kind = o.kind == pg::LoadOutcome::Kind::kValue      ? lease::LoadResult::Kind::kValue
             : o.kind == pg::LoadOutcome::Kind::kNotFound ? lease::LoadResult::Kind::kNotFound
                                                          : lease::LoadResult::Kind::kError;
    r.data = std::move(o.data);
    r.micros = o.micros;
    done(std::move(r));
  });
}

bool PgBackend::Ready() const { return loader_->Ready(); }

std::vector<ReplicaGauges> PgBackend::ReplicaStatus() const {
  std::vector<ReplicaGauges> gauges;
  for (const pg::ReplicaStatus& r : loader_->Status()) {
    gauges.push_back(ReplicaGauges{r.name, r.up, r.lag_seconds, r.inflight, r.queued});
  }
  return gauges;
}

}  // namespace corral::server

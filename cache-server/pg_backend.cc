// See pg_backend.h.
#include "cache-server/pg_backend.h"


#include "cache-server/log.h"
#include "pg-loader/listener.h"
#include "pg-loader/loader.h"

namespace corral::server {

namespace {
// pg-loader's own options, as parsed. The one thing wired across modules: each replica's queue
// holds at most shedding.max_pending_loads, the bound the cache already puts on loads in flight.
pg::LoaderOptions LoaderOptionsOf(const Config& config) {
  pg::LoaderOptions options = *config.postgres;
  options.max_queued_per_replica = static_cast<size_t>(config.shedding.max_pending_loads);
  return options;
}

// The namespaces' statements, in the order CacheService numbers them (config map order).
std::vector<pg::Statement> StatementsOf(const Config& config) {
  std::vector<pg::Statement> statements;
  for (const auto& [name, ns] : config.namespaces) statements.push_back(ns);
  return statements;
}
}  // namespace

PgBackend::PgBackend(const Config& config)
    : loader_(std::make_unique<pg::Loader>(LoaderOptionsOf(config), StatementsOf(config))),
      config_(config) {}

PgBackend::~PgBackend() { Stop(); }

void PgBackend::Start(CacheService& cache, Metrics& metrics) {
  loader_->Start();
  const PostgresConfig& pg = *config_.postgres;
  listener_ = std::make_unique<pg::Listener>(
      pg.primary, pg.invalidation_channel,
      [&cache](std::string_view payload) { cache.Invalidate(payload, "notify"); },
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

void PgBackend::RenderMetrics(std::string& out) const {
  std::vector<pg::ReplicaStatus> status = loader_->Status();
  RenderGaugeHeader(out, "corral_replica_up", "1 if the replica passes its health check.");
  for (const auto& r : status) {
    RenderSample(out, "corral_replica_up", "replica=\"" + LabelValue(r.name) + "\"",
                 r.up ? 1 : 0);
  }
  RenderGaugeHeader(out, "corral_replica_inflight_loads", "Loads running on the replica now.");
  for (const auto& r : status) {
    RenderSample(out, "corral_replica_inflight_loads", "replica=\"" + LabelValue(r.name) + "\"",
                 r.inflight);
  }
  RenderGaugeHeader(out, "corral_replica_queued_loads", "Loads waiting for a connection.");
  for (const auto& r : status) {
    RenderSample(out, "corral_replica_queued_loads", "replica=\"" + LabelValue(r.name) + "\"",
                 static_cast<double>(r.queued));
  }
  RenderGaugeHeader(out, "corral_replica_lag_seconds", "Replay lag from the last health check.");
  for (const auto& r : status) {
    RenderSample(out, "corral_replica_lag_seconds", "replica=\"" + LabelValue(r.name) + "\"",
                 r.lag_seconds);
  }
}

}  // namespace corral::server

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
  cache.SetPositionSource(this);
  const PostgresConfig& pg = *config_.postgres;
  listener_ = std::make_unique<pg::Listener>(
      pg.primary, pg.invalidation_channel,
      [&cache](std::string_view payload) {
        cache.Invalidate(payload, InvalidationSource::kNotify);
      },
      [&cache] {
        // Notifications sent while we are not listening are lost: nothing cached can be
        // trusted as fresh until it is reloaded (SPEC "Freshness promise"). Marked before the
        // log line, so whoever reads the line (an operator, a test) sees it done.
        cache.MarkAllStale();
        Log(LogLevel::kWarn, "invalidation_listener_disconnected", "action=mark_all_stale");
      },
      [&cache] {
        cache.MarkAllStale();
        Log(LogLevel::kInfo, "invalidation_listener_connected");
      });
  listener_->Start();
  (void)metrics;
}

void PgBackend::Stop() {
  if (listener_) listener_->Stop();
  if (loader_) loader_->Stop();
}

namespace {
// The loads admitted inside a Together on this thread, per statement; null outside one.
thread_local std::vector<std::pair<size_t, pg::Loader::Request>>* together = nullptr;
}  // namespace

void PgBackend::Together(const std::function<void()>& body) {
  std::vector<std::pair<size_t, pg::Loader::Request>> loads;
  auto* outer = together;
  together = &loads;
  body();
  together = outer;
  // A call is one namespace's, so normally one statement; group them anyway.
  while (!loads.empty()) {
    const size_t statement = loads.front().first;
    std::vector<pg::Loader::Request> same;
    auto rest = std::stable_partition(loads.begin(), loads.end(),
                                      [&](const auto& l) { return l.first == statement; });
    for (auto it = loads.begin(); it != rest; ++it) same.push_back(std::move(it->second));
    loads.erase(loads.begin(), rest);
    loader_->LoadMany(statement, std::move(same));
  }
}

void PgBackend::Load(size_t ns_index, std::string id, lease::WalPosition min_position,
                     AdmitFn admit, std::function<void(BackendResult)> done) {
  // The answer may come later, from the thread that made room in the pool's queue.
  admit([this, ns_index, min_position, id = std::move(id),
         done = std::move(done)](lease::Admission a) {
    if (a != lease::Admission::kAdmitted) return done(ShedResult(a));
    pg::LoadCallback answer = [done](pg::LoadOutcome o) {
      BackendResult r;
      r.kind = o.kind == pg::LoadOutcome::Kind::kValue      ? lease::LoadResult::Kind::kValue
               : o.kind == pg::LoadOutcome::Kind::kNotFound ? lease::LoadResult::Kind::kNotFound
                                                            : lease::LoadResult::Kind::kError;
      r.data = std::move(o.data);
      r.micros = o.micros;
      r.position = o.position;
      r.behind = o.behind;
      done(std::move(r));
    };
    if (together != nullptr) {
      together->emplace_back(ns_index, pg::Loader::Request{id, std::move(answer), min_position});
    } else {
      loader_->Load(ns_index, id, std::move(answer), min_position);
    }
  });
}

void PgBackend::CurrentPosition(std::function<void(lease::WalPosition)> done) {
  loader_->CurrentPosition(std::move(done));
}

bool PgBackend::CanRead(size_t ns_index, lease::WalPosition position) const {
  return loader_->CanRead(ns_index, position);
}

void PgBackend::RefreshPositions(size_t ns_index) { loader_->RefreshPositions(ns_index); }

lease::WalPosition PgBackend::ReplayedEverywhere() const { return loader_->ReplayedEverywhere(); }

bool PgBackend::Ready() const { return loader_->Ready(); }

std::vector<ReplicaGauges> PgBackend::ReplicaStatus() const {
  std::vector<ReplicaGauges> gauges;
  for (const pg::ReplicaStatus& r : loader_->Status()) {
    gauges.push_back(
        ReplicaGauges{r.name, r.up, r.lag_seconds, r.catching_up, r.inflight, r.queued});
  }
  return gauges;
}

}  // namespace corral::server

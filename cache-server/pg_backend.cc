// See pg_backend.h.
#include "cache-server/pg_backend.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "cache-server/log.h"
#include "pg-loader/listener.h"
#include "pg-loader/loader.h"
#include "pg-loader/wal_invalidator.h"

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
  (void)metrics;
  if (pg.invalidation == pg::InvalidationMode::kLogical) return StartWal(cache);
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
}

std::string PgBackend::SlotName(const PostgresConfig& pg, bool shared) {
  if (shared) return pg.slot;
  std::string node;
  if (const char* name = std::getenv("CORRAL_NODE_NAME"); name != nullptr && *name != '\0') {
    node = name;
  } else {
    char host[256] = {};
    node = ::gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0' ? host : "node";
  }
  return pg::WalSlotName(pg.slot, node);
}

void PgBackend::StartWal(CacheService& cache) {
  const PostgresConfig& pg = *config_.postgres;
  pg::WalInvalidatorOptions options;
  options.primary = pg.primary;
  options.slot = SlotName(pg, static_cast<bool>(wal_gate_));
  options.may_read = wal_gate_;
  options.publication = pg.publication;
  for (const auto& [name, ns] : config_.namespaces) {
    if (ns.table.empty()) {
      Log(LogLevel::kWarn, "wal_namespace_without_table",
          "namespace=" + LogQuote(name) + " detail=\"only DEL and its TTL end its entries\"");
      continue;
    }
    options.sources.push_back(*pg::MakeKeySource(name, ns.table, ns.key_column));
  }
  pg::WalInvalidator::Callbacks callbacks;
  // A transaction's keys are invalidated at its commit's end position (the fence then waits for a
  // replica that has replayed the commit); the slot moves past it once every one is applied here
  // and, with the tier, propagated.
  callbacks.apply = [&cache](std::vector<pg::WalInvalidation> batch, pg::Lsn end,
                             std::function<void()> applied) {
    auto left = std::make_shared<std::atomic<size_t>>(batch.size());
    auto finish = [left, applied = std::make_shared<std::function<void()>>(std::move(applied))] {
      if (left->fetch_sub(1) == 1) (*applied)();
    };
    for (const pg::WalInvalidation& invalidation : batch) {
      if (invalidation.kind == pg::WalInvalidation::Kind::kKey) {
        cache.Invalidate(
            invalidation.key, InvalidationSource::kWal, [finish](bool) { finish(); }, end);
      } else {
        Log(LogLevel::kInfo, "wal_namespace_flushed", "namespace=" + LogQuote(invalidation.ns));
        cache.InvalidateNamespace(invalidation.ns, InvalidationSource::kWal, end, finish);
      }
    }
  };
  callbacks.lost = [&cache](std::string_view why, pg::Lsn from) {
    // Changes before the new slot were never kept for us: nothing cached can be trusted as fresh,
    // here or (with the tier) anywhere in the fleet; and no fill read on a replica that has not
    // replayed up to the slot's start may be cached as fresh (a change before it is never named).
    cache.FenceAllBefore(from);
    cache.MarkAllStaleEverywhere();
    Log(LogLevel::kWarn, "wal_changes_missed", "action=mark_all_stale detail=" + LogQuote(why));
  };
  callbacks.report = [](bool warning, std::string_view event, std::string_view detail) {
    Log(warning ? LogLevel::kWarn : LogLevel::kInfo, event, "detail=" + LogQuote(detail));
  };
  wal_ = std::make_unique<pg::WalInvalidator>(std::move(options), std::move(callbacks));
  wal_->Start();
}

void PgBackend::StopInvalidation() {
  if (listener_) listener_->Stop();
  if (wal_) wal_->Stop();
}

void PgBackend::Stop() {
  StopInvalidation();
  if (loader_) loader_->Stop();
}

std::optional<MetricSources::Wal> PgBackend::WalGauges() const {
  if (!wal_) return std::nullopt;
  const pg::WalStatus status = wal_->status();
  return MetricSources::Wal{status.connected, status.lag_bytes, status.lag_seconds,
                            status.slot_resets};
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

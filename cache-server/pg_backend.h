// Connects corral-server to PostgreSQL: the namespaces' loads go to pg-loader's replica pools, and
// the invalidation listener's NOTIFYs (postgres.invalidation "notify") or the WAL stream's changed
// rows ("logical") become invalidations. The only cache-server code that knows pg-loader exists.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache-server/cache_service.h"
#include "cache-server/config.h"
#include "cache-server/metrics.h"

namespace corral::pg {
class Loader;
class Listener;
class WalInvalidator;
}  // namespace corral::pg

namespace corral::server {

class PgBackend final : public LoadBackend, public PositionSource {
 public:
  // Hands pg-loader its parts of `config` (which ParseConfig has validated with the loader's own
  // Validate, so this does not throw for a parsed config). `config` must outlive the backend.
  explicit PgBackend(const Config& config);
  ~PgBackend() override;

  // Starts the loader's workers and health checks, and what invalidates `cache` entries: the
  // listener on NOTIFY (which marks everything stale whenever its connection drops), or the WAL
  // stream (which marks everything stale only when its slot is new).
  void Start(CacheService& cache, Metrics& metrics);
  void Stop();
  // Stops the listener or the WAL stream only (Stop does too).
  void StopInvalidation();
  // With the Redis tier: the fleet shares one slot (postgres.slot as it is), read by the node
  // `gate` says holds the WAL reader lease. Call before Start.
  void SetWalGate(std::function<bool()> gate) { wal_gate_ = std::move(gate); }

  void Load(size_t ns_index, std::string id, lease::WalPosition min_position, AdmitFn admit,
            std::function<void(BackendResult)> done) override;
  // The loads admitted while `body` runs (on this thread) go to one server at once (LoadMany).
  void Together(const std::function<void()>& body) override;
  // PositionSource, from the loader (Loader::CurrentPosition, CanRead, ReplayedEverywhere).
  void CurrentPosition(std::function<void(lease::WalPosition)> done) override;
  bool CanRead(size_t ns_index, lease::WalPosition position) const override;
  void RefreshPositions(size_t ns_index) override;
  lease::WalPosition ReplayedEverywhere() const override;
  // Every pool has a usable replica (or the primary, with fallback_to_primary).
  bool Ready() const;
  // Each replica's health, lag and load counts, for metrics.cc's corral_replica_* gauges.
  std::vector<ReplicaGauges> ReplicaStatus() const;
  // The WAL stream's gauges; nullopt with postgres.invalidation "notify".
  std::optional<MetricSources::Wal> WalGauges() const;
  // The slot this node reads with postgres.invalidation "logical": "<slot>_<node>" (the node is
  // $CORRAL_NODE_NAME, else the host name), or `slot` itself when the fleet shares it.
  static std::string SlotName(const PostgresConfig& pg, bool shared);

 private:
  void StartWal(CacheService& cache);

  std::unique_ptr<pg::Loader> loader_;
  std::unique_ptr<pg::Listener> listener_;
  std::unique_ptr<pg::WalInvalidator> wal_;
  std::function<bool()> wal_gate_;
  const Config& config_;
};

}  // namespace corral::server

// Connects corral-server to PostgreSQL: the namespaces' loads go to pg-loader's replica pools and
// the invalidation listener's NOTIFYs become invalidations. The only cache-server code that knows
// pg-loader exists.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cache-server/cache_service.h"
#include "cache-server/config.h"
#include "cache-server/metrics.h"

namespace corral::pg {
class Loader;
class Listener;
}  // namespace corral::pg

namespace corral::server {

class PgBackend final : public LoadBackend, public PositionSource {
 public:
  // Hands pg-loader its parts of `config` (which ParseConfig has validated with the loader's own
  // Validate, so this does not throw for a parsed config). `config` must outlive the backend.
  explicit PgBackend(const Config& config);
  ~PgBackend() override;

  // Starts the loader's workers and health checks, and the listener that invalidates `cache`
  // entries on NOTIFY (and marks everything stale whenever its connection drops).
  void Start(CacheService& cache, Metrics& metrics);
  void Stop();

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

 private:
  std::unique_ptr<pg::Loader> loader_;
  std::unique_ptr<pg::Listener> listener_;
  const Config& config_;
};

}  // namespace corral::server

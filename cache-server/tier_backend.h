// The Redis tier (SPEC.md "Scale-out"): several corral nodes share one Redis or Redis Cluster as
// their second tier (L2) and as the holder of cluster-wide leases, so one key costs one database
// query across the fleet. Wraps the node's database backend; the node's own store is L1.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cache-server/cache_service.h"
#include "cache-server/config.h"
#include "cache-server/metrics.h"
#include "lease/random.h"

namespace corral::server {

// A LoadBackend in front of `db`: an L1 miss asks L2 (one Eval: a fresh L2 value, or the cluster
// lease, or "another node holds it"); the lease holder loads from `db` and fills L2 with a
// compare-and-set against its lease, then wakes the other nodes by PUBLISH; a waiting node reads
// L2 when woken. Invalidations of this node go to L2 and, broadcast, to every node's L1. A dead,
// slow or partitioned Redis never holds a request past redis.timeout_ms: the node falls back to
// `db` directly (node-local single flight) and returns to the tier when Redis answers again.
class TierBackend final : public LoadBackend, public InvalidationSink {
 public:
  // `config.redis` must be set. Everything must outlive the backend.
  TierBackend(const Config& config, LoadBackend& db, Metrics& metrics);
  ~TierBackend() override;

  // Starts the tier's thread, its connections and the subscription; invalidations broadcast by
  // other nodes are applied to `cache`, which also gets this backend as its sink.
  void Start(CacheService& cache);
  void Stop();

  void Load(size_t ns_index, std::string id, lease::WalPosition min_position, AdmitFn admit,
            std::function<void(BackendResult)> done) override;
  bool AnswersWithoutAdmission() const override { return true; }
  void Together(const std::function<void()>& body) override;  // the database's
  void Begin(std::string_view key) override;
  void Propagate(std::string_view key, InvalidationSource source, lease::WalPosition position,
                 std::function<void(bool held)> done) override;
  // A new tier epoch: every L2 entry void, every node's L1 stale (the tier cannot list a
  // namespace's keys; `ns` "" is every namespace).
  void FlushNamespace(std::string_view ns, std::function<void()> done) override;

  // Pub/sub across the fleet: PublishToFleet sends a PUBLISH this node's clients made to the
  // other nodes (through `<prefix>messages`), where `deliver` (set before Start) hands it to
  // their subscribers. Best effort, as Redis Cluster's: a node cut off from Redis misses it.
  // Thread-safe.
  void OnFleetMessage(
      std::function<void(std::string_view channel, std::string_view message)> deliver);
  void PublishToFleet(std::string_view channel, std::string_view message);

  bool up() const;  // corral_tier_up
  // The node has joined the tier once (subscribed, a member, the epoch read: `tier_ready`).
  bool joined() const;
  // How long a starting node waits to join before it serves without the tier: 10 x
  // redis.timeout_ms, at least 3 s.
  static std::chrono::milliseconds JoinBound(const RedisConfig& redis);
  const std::string& node_id() const;

  // postgres.invalidation "logical": one node of the fleet reads the WAL slot, the one holding the
  // lease `<prefix>wal:reader` in Redis (taken when free, renewed with the heartbeat, lapsing
  // kWalReaderTtlMs after its holder stops renewing). Call before Start() to compete for it.
  void CompeteForWalReader();
  // This node holds the lease: renewed less than half its TTL ago, so it stops reading well before
  // another node can take the lease over. Thread-safe.
  bool IsWalReader() const;
  static constexpr int64_t kWalReaderTtlMs = 5000;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The Lua scripts and key names the tier uses, for tests that look inside Redis.
namespace tier_keys {
std::string Value(std::string_view prefix, std::string_view key);  // a hash: v k f s e m
std::string Lease(std::string_view prefix, std::string_view key);
std::string Error(std::string_view prefix, std::string_view key);
// The newest invalidation's WAL position, for a while: fills read before it are refused.
std::string Fence(std::string_view prefix, std::string_view key);
std::string Epoch(std::string_view prefix);
std::string Nodes(std::string_view prefix);      // sorted set: node id -> last heartbeat
std::string WalReader(std::string_view prefix);  // the node id reading the WAL slot
}  // namespace tier_keys

}  // namespace corral::server

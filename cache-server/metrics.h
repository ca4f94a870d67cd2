// corral's metrics: every family declared once (kFamilies), the sharded counters the cache service
// bumps, and the one renderer of what the modules expose for /metrics, INFO and /v1/stats. Label
// values are enums or config-given names indexed at start-up; no key is ever a label.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/errors.h"

namespace corral::lease {
class LeaseTable;
class Store;
}  // namespace corral::lease

namespace corral::server {

// --- The registry ------------------------------------------------------------------------------

enum class MetricType { kCounter, kGauge, kHistogram };
std::string_view MetricTypeName(MetricType t);  // "counter", "gauge", "histogram"

enum class Family : size_t {
  kRequests,
  kRequestSeconds,
  kRequestResultSeconds,
  kDbLoads,
  kDbLoadSeconds,
  kCoalesced,
  kShed,
  kRefreshes,
  kInvalidations,
  kLeaseWaiters,
  kLeases,
  kEntries,
  kMemoryBytes,
  kEvictions,
  kConnectedClients,
  kReplicaUp,
  kReplicaLag,
  kReplicaCatchingUp,
  kReplicaInflight,
  kReplicaQueued,
  kConcurrencyLimit,
  kLoadQueue,
  kTierUp,
  kTierRequests,
  kTierLookups,
  kTierLeases,
  kTierFallbacks,
  kFencedFills,
  kPositionMarkers,
  kPositionMarkerBytes,
  kReplicationUp,
  kReplicationLagBytes,
  kReplicationLagSeconds,
  kReplicationSlotResets,
  kCount
};
inline constexpr size_t kFamilyCount = static_cast<size_t>(Family::kCount);

struct FamilySpec {
  Family id;
  std::string_view name;
  MetricType type;
  std::string_view labels;  // label names, comma-separated; "" for none (histograms: besides le)
  std::string_view help;
};

// Every family corral exports, in rendering order (README.md "Metrics" lists the same, checked
// by metrics_test). kFamilies[i].id == Family(i).
inline constexpr std::array<FamilySpec, kFamilyCount> kFamilies = {{
    {Family::kRequests, "corral_requests_total", MetricType::kCounter, "proto,result",
     "Requests answered, by protocol and result."},
    {Family::kRequestSeconds, "corral_request_seconds", MetricType::kHistogram, "proto",
     "Time from a request's parse to its answer."},
    {Family::kRequestResultSeconds, "corral_request_result_seconds", MetricType::kHistogram,
     "proto,result", "Time from a request's parse to its answer, by result."},
    {Family::kDbLoads, "corral_db_loads_total", MetricType::kCounter, "namespace,pool,outcome",
     "Database loads, by namespace, pool and outcome."},
    {Family::kDbLoadSeconds, "corral_db_load_seconds", MetricType::kHistogram, "",
     "Duration of database loads."},
    {Family::kCoalesced, "corral_coalesced_requests_total", MetricType::kCounter, "",
     "Requests answered by another request's load (they waited on its lease)."},
    {Family::kShed, "corral_shed_total", MetricType::kCounter, "reason",
     "Loads shed with BUSY/503 and connections refused, by reason."},
    {Family::kRefreshes, "corral_refreshes_total", MetricType::kCounter, "result",
     "Background reloads of servable entries (refresh ahead, stale-while-revalidate), by what "
     "became of them."},
    {Family::kInvalidations, "corral_invalidations_total", MetricType::kCounter, "source",
     "Invalidations received, by source."},
    {Family::kLeaseWaiters, "corral_lease_waiters", MetricType::kGauge, "",
     "Requests waiting on another request's load."},
    {Family::kLeases, "corral_leases", MetricType::kGauge, "",
     "Keys with a load in flight (leases held)."},
    {Family::kEntries, "corral_entries", MetricType::kGauge, "", "Entries in the store."},
    {Family::kMemoryBytes, "corral_memory_bytes", MetricType::kGauge, "",
     "Bytes accounted to entries (keys, values, overhead)."},
    {Family::kEvictions, "corral_evictions_total", MetricType::kCounter, "",
     "Entries evicted to stay within memory.max_bytes."},
    {Family::kConnectedClients, "corral_connected_clients", MetricType::kGauge, "",
     "Open RESP and HTTP connections."},
    {Family::kReplicaUp, "corral_replica_up", MetricType::kGauge, "replica",
     "1 if the replica passes its health check."},
    {Family::kReplicaLag, "corral_replica_lag_seconds", MetricType::kGauge, "replica",
     "Replay lag from the last health check."},
    {Family::kReplicaCatchingUp, "corral_replica_catching_up", MetricType::kGauge, "replica",
     "1 while a replica back from down or lagging replays invalidations it missed (not read)."},
    {Family::kReplicaInflight, "corral_replica_inflight_loads", MetricType::kGauge, "replica",
     "Loads running on the replica now."},
    {Family::kReplicaQueued, "corral_replica_queued_loads", MetricType::kGauge, "replica",
     "Loads waiting for a connection."},
    {Family::kConcurrencyLimit, "corral_concurrency_limit", MetricType::kGauge, "pool",
     "The pool's adaptive limit on loads in flight (0: no pool-wide limit)."},
    {Family::kLoadQueue, "corral_load_queue", MetricType::kGauge, "pool",
     "Loads waiting in the pool's queue for room under its limit."},
    {Family::kTierUp, "corral_tier_up", MetricType::kGauge, "",
     "1 if the Redis tier is reachable (only with redis configured)."},
    {Family::kTierRequests, "corral_tier_requests_total", MetricType::kCounter, "op,result",
     "Requests to the Redis tier, by operation and how they ended."},
    {Family::kTierLookups, "corral_tier_lookups_total", MetricType::kCounter, "result",
     "L1 misses asked of the Redis tier, by what the tier answered."},
    {Family::kTierLeases, "corral_tier_leases_total", MetricType::kCounter, "outcome",
     "Cluster-wide leases this node held, by how they ended."},
    {Family::kTierFallbacks, "corral_tier_fallbacks_total", MetricType::kCounter, "",
     "Loads run with node-local single flight because the Redis tier was away."},
    {Family::kFencedFills, "corral_fenced_fills_total", MetricType::kCounter, "action",
     "Database fills read before the key's last invalidation (replica lag), by what was done."},
    {Family::kPositionMarkers, "corral_position_markers", MetricType::kGauge, "",
     "Keys whose last invalidation's WAL position some usable replica has not replayed yet."},
    {Family::kPositionMarkerBytes, "corral_position_marker_bytes", MetricType::kGauge, "",
     "Estimated memory of those markers."},
    {Family::kReplicationUp, "corral_replication_up", MetricType::kGauge, "",
     "1 while the WAL stream (postgres.invalidation logical) is connected."},
    {Family::kReplicationLagBytes, "corral_replication_lag_bytes", MetricType::kGauge, "",
     "WAL the slot holds for corral: the primary's end of WAL less the position confirmed."},
    {Family::kReplicationLagSeconds, "corral_replication_lag_seconds", MetricType::kGauge, "",
     "How long the WAL stream has had a change read and not applied, or been disconnected."},
    {Family::kReplicationSlotResets, "corral_replication_slot_resets_total", MetricType::kCounter,
     "", "Replication slots created or recreated (each marks every entry stale once)."},
}};

constexpr const FamilySpec& Spec(Family f) { return kFamilies[static_cast<size_t>(f)]; }

// --- Label values ------------------------------------------------------------------------------

enum class Proto { kResp = 0, kHttp = 1 };  // proto
inline constexpr size_t kProtoCount = 2;
// corral_requests_total's result label.
enum class Outcome { kHit = 0, kMiss, kStale, kWaited, kNotFound, kShed, kError };
inline constexpr size_t kOutcomeCount = 7;
// corral_db_loads_total's outcome label.
enum class LoadOutcome { kValue = 0, kNotFound, kError };
inline constexpr size_t kLoadOutcomeCount = 3;
// corral_refreshes_total's result label.
// kAwaitingReplay: not started, because no server has replayed the key's last invalidation yet.
enum class RefreshResult { kStarted = 0, kHeldOff, kShed, kAwaitingReplay };
// corral_fenced_fills_total's action label (lease/position_fence.h): a fill read before the key's
// last invalidation was retried on a server past it, kept as stale, or (its position arrived
// after the fill) marked stale.
enum class FencedFill { kRetried = 0, kStale, kMarkedStale };
// corral_invalidations_total's source label: NOTIFY, RESP SET/DEL of a namespace key, HTTP DELETE.
// kTier: another node's invalidation, broadcast through the Redis tier.
enum class InvalidationSource { kNotify = 0, kSet, kDel, kHttp, kTier, kWal };
// corral_shed_total's reason label: why a request (or a connection) was refused. Declared with
// its answer texts in proto/errors.h.
using ShedReason = proto::ShedReason;

std::string_view ProtoName(Proto p);
std::string_view OutcomeName(Outcome o);
std::string_view LoadOutcomeName(LoadOutcome o);

// corral_tier_requests_total's labels: which tier operation, and how its request ended.
enum class TierOp { kLookup = 0, kFill, kRelease, kInvalidate, kTakeover, kLiveness, kEpoch };
inline constexpr size_t kTierOpCount = 7;
enum class TierResult { kOk = 0, kError, kTimeout, kDown };
inline constexpr size_t kTierResultCount = 4;
// corral_tier_lookups_total's result: an L2 hit, the cluster lease won (this node loads), or
// another node's lease waited on.
enum class TierLookup { kHit = 0, kWon, kWaited };
// corral_tier_leases_total's outcome: the fill was stored, refused because an invalidation voided
// the lease, the load failed and the lease was released, or a dead holder's lease was taken over.
enum class TierLease { kFilled = 0, kVoided, kReleased, kTakenOver };
std::string_view TierOpName(TierOp op);
std::string_view TierResultName(TierResult r);

// Each label enum's values, for the renderer: kCount values 0..kCount-1, Name(value).
template <class E>
struct LabelValues;
template <>
struct LabelValues<ShedReason> {
  static constexpr size_t kCount = proto::kShedReasonCount;
  static std::string_view Name(ShedReason r) { return proto::ShedReasonLabel(r); }
};
template <>
struct LabelValues<RefreshResult> {
  static constexpr size_t kCount = 4;
  static std::string_view Name(RefreshResult r);
};
template <>
struct LabelValues<InvalidationSource> {
  static constexpr size_t kCount = 6;
  static std::string_view Name(InvalidationSource s);
};

template <>
struct LabelValues<FencedFill> {
  static constexpr size_t kCount = 3;
  static std::string_view Name(FencedFill f);
};
template <>
struct LabelValues<TierLookup> {
  static constexpr size_t kCount = 3;
  static std::string_view Name(TierLookup r);
};
template <>
struct LabelValues<TierLease> {
  static constexpr size_t kCount = 4;
  static std::string_view Name(TierLease r);
};

// Escapes a Prometheus label value (backslash, quote, newline): the one place it is done.
std::string LabelValue(std::string_view v);

// --- Counters ----------------------------------------------------------------------------------

inline constexpr size_t kMetricShards = 16;

// A monotonically increasing count; Add is wait-free and thread-safe, and allocates nothing.
class Counter {
 public:
  void Add(uint64_t n = 1);
  uint64_t Value() const;

 private:
  struct alignas(64) Cell {
    std::atomic<uint64_t> v{0};
  };
  std::array<Cell, kMetricShards> cells_;
};

// Fixed-bucket histogram of seconds; Observe is wait-free and thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double seconds);
  // What it has observed, summed over its shards; Add sums histograms of the same bounds.
  struct Totals {
    std::vector<uint64_t> counts;  // per bucket (not cumulative), +Inf last
    uint64_t count = 0;
    uint64_t sum_ns = 0;
    void Add(const Totals& other);
  };
  Totals Read() const;
  // Appends the _bucket/_sum/_count lines of `name` with `labels` ("" or `proto="resp"`).
  void Render(std::string& out, std::string_view name, std::string_view labels) const {
    Render(out, name, labels, Read());
  }
  // The same for `totals` read from histograms with this one's bounds.
  void Render(std::string& out, std::string_view name, std::string_view labels,
              const Totals& totals) const;

 private:
  struct alignas(64) Shard {
    std::vector<std::atomic<uint64_t>> buckets;  // one per bound, plus +Inf
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
  };
  std::vector<double> bounds_;
  std::vector<Shard> shards_;
};

// A counter family with one enum label (family F's only label): one Counter per value, so Add
// takes no lock and allocates nothing.
template <class E, Family F>
class EnumCounter {
 public:
  static constexpr size_t kCount = LabelValues<E>::kCount;
  void Add(E e, uint64_t n = 1) { cells_[static_cast<size_t>(e)].Add(n); }
  uint64_t Value(E e) const { return cells_[static_cast<size_t>(e)].Value(); }
  // The count of the label set as /metrics renders it (`reason="blocked"`); 0 if none matches.
  uint64_t Value(std::string_view labels) const {
    for (size_t i = 0; i < kCount; ++i) {
      if (LabelSet(static_cast<E>(i)) == labels) return cells_[i].Value();
    }
    return 0;
  }
  static std::string LabelSet(E e) {
    return std::string(Spec(F).labels) + "=\"" + LabelValue(LabelValues<E>::Name(e)) + "\"";
  }

 private:
  std::array<Counter, kCount> cells_;
};

// corral_db_loads_total: one Counter per (namespace index, outcome). The namespaces' names and
// pools are declared once at start-up and escaped once.
class DbLoadCounter {
 public:
  struct NamespaceLabel {
    std::string name;
    std::string pool;
    bool operator==(const NamespaceLabel&) const = default;
  };
  // Start-up only (not concurrent with Add): namespace i is `namespaces[i]`, in the order that
  // CacheService numbers them. Re-declaring the same list keeps the counts.
  void Declare(std::vector<NamespaceLabel> namespaces);
  // Thread-safe, lock-free. An index that was not declared is ignored.
  void Add(size_t ns_index, LoadOutcome o);
  uint64_t Value(size_t ns_index, LoadOutcome o) const;
  // As rendered: `namespace="user",pool="default",outcome="value"`; 0 if none matches.
  uint64_t Value(std::string_view labels) const;
  size_t size() const { return namespaces_.size(); }
  // `namespace="...",pool="...",outcome="..."` for one counter.
  std::string LabelSet(size_t ns_index, LoadOutcome o) const;

 private:
  std::vector<NamespaceLabel> namespaces_;
  std::vector<std::string> labels_;  // namespace="...",pool="..." (escaped)
  std::unique_ptr<std::array<Counter, kLoadOutcomeCount>[]> counts_;
};

// The counters the cache service and the front ends bump. Everything else the renderers show is
// read from the modules' own accessors (store, lease table, loader, server). Thread-safe.
class Metrics {
 public:
  Metrics();

  void CountRequest(Proto proto, Outcome outcome, double seconds);
  uint64_t Requests(Proto proto, Outcome outcome) const;
  // corral_request_result_seconds{proto,result}; corral_request_seconds{proto} is their sum.
  const Histogram& request_seconds(Proto proto, Outcome outcome) const {
    return request_seconds_[static_cast<size_t>(proto) * kOutcomeCount +
                            static_cast<size_t>(outcome)];
  }

  Histogram db_load_seconds;  // corral_db_load_seconds
  DbLoadCounter db_loads;     // corral_db_loads_total{namespace,pool,outcome}
  // corral_shed_total{reason}: the one counter of shed loads.
  EnumCounter<ShedReason, Family::kShed> shed;
  EnumCounter<RefreshResult, Family::kRefreshes> refreshes;  // corral_refreshes_total{result}
  EnumCounter<InvalidationSource, Family::kInvalidations> invalidations;
  EnumCounter<FencedFill, Family::kFencedFills> fenced_fills;
  Counter connections;  // accepted connections (INFO total_connections_received)
  Counter rejected_connections;
  // The Redis tier's counters (zero without one).
  void CountTier(TierOp op, TierResult result) {
    tier_requests_[static_cast<size_t>(op) * kTierResultCount + static_cast<size_t>(result)].Add();
  }
  uint64_t TierRequests(TierOp op, TierResult result) const {
    return tier_requests_[static_cast<size_t>(op) * kTierResultCount + static_cast<size_t>(result)]
        .Value();
  }
  EnumCounter<TierLookup, Family::kTierLookups> tier_lookups;
  EnumCounter<TierLease, Family::kTierLeases> tier_leases;
  Counter tier_fallbacks;

 private:
  std::array<Counter, kProtoCount * kOutcomeCount> requests_;
  std::array<Histogram, kProtoCount * kOutcomeCount> request_seconds_;  // one Observe a request
  std::array<Counter, kTierOpCount * kTierResultCount> tier_requests_;
};

// --- Rendering ---------------------------------------------------------------------------------

// One replica's gauges (from pg-loader's status; listed as the loader names them).
struct ReplicaGauges {
  std::string name;
  bool up = false;
  double lag_seconds = 0;
  bool catching_up = false;
  int inflight = 0;
  size_t queued = 0;
};

// One pool's admission state (CacheService::PoolStatus).
struct PoolGauges {
  std::string name;
  int64_t limit = 0;  // the adaptive concurrency limit; 0: none (no pool in the config)
  int64_t inflight = 0;
  int64_t queued = 0;
};

// What one render reads: the modules' plain accessors, gathered by the caller. The pointers must
// be non-null and outlive the call.
struct MetricSources {
  const Metrics* metrics = nullptr;
  const lease::Store* store = nullptr;
  const lease::LeaseTable* leases = nullptr;
  int64_t connected_clients = 0;
  std::vector<ReplicaGauges> replicas;  // empty without PostgreSQL
  std::vector<PoolGauges> pools;
  size_t position_markers = 0;
  size_t position_marker_bytes = 0;
  // CLIENT TRACKING (INFO tracking_clients, tracking_total_keys/items/prefixes).
  size_t tracking_clients = 0;
  size_t tracking_keys = 0;
  size_t tracking_items = 0;
  size_t tracking_prefixes = 0;
  // With postgres.invalidation "logical": the WAL stream's state.
  struct Wal {
    bool up = false;
    uint64_t lag_bytes = 0;
    double lag_seconds = 0;
    uint64_t slot_resets = 0;
  };
  std::optional<Wal> wal;
  // INFO commandstats and total_commands_processed: each command run or refused at least once,
  // in the command table's order (RespCommands counts them).
  struct CommandCalls {
    std::string_view name;
    uint64_t calls = 0;     // run
    uint64_t rejected = 0;  // refused before running: arity, NOAUTH, the ACL
    uint64_t failed = 0;    // run, and answered with an error
  };
  std::vector<CommandCalls> command_calls;
  bool tier = false;     // a Redis tier is configured
  bool tier_up = false;  // and reachable
  // For INFO and /v1/stats.
  std::time_t started_unix = 0;
  uint16_t resp_port = 0;
  int io_threads = 1;
  int64_t max_clients = 0;
  int64_t max_bytes = 0;
  std::string_view maxmemory_policy = "noeviction";  // INFO maxmemory_policy (Redis's name)
  std::string_view redis_version;                    // INFO redis_version
  std::string_view corral_version;                   // INFO corral_version
  std::string_view corral_commit;                    // INFO corral_commit (build_info.h)
};

// The three renderers are thread-safe: they read atomics and the sources' own accessors.
// /metrics: every family of kFamilies, in order, in Prometheus text format 0.0.4.
std::string RenderPrometheus(const MetricSources& s);
// INFO [section ...] (Redis format: "# Section", field:value, CRLF), as Redis 7.0 chooses the
// sections: none or "default" gives the default ones, "all" and "everything" add commandstats,
// names are case-insensitive, each section comes once and in Redis's order, and an unknown name
// adds nothing.
std::string RenderInfo(const MetricSources& s, const std::vector<std::string_view>& sections);
// GET /v1/stats: a JSON object (pretty-printed, newline-terminated).
std::string RenderStatsJson(const MetricSources& s);

}  // namespace corral::server

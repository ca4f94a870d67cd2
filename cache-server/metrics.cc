// Sharded counters/histograms and the one place that renders metrics (/metrics, INFO, /v1/stats);
// see metrics.h.
#include "cache-server/metrics.h"

#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

#include "cache-server/allocator.h"
#include "lease/lease_table.h"
#include "lease/store.h"

namespace corral::server {
namespace {

// Each thread sticks to one shard, chosen round-robin at its first metric update.
size_t MyShard() {
  static std::atomic<size_t> next{0};
  thread_local size_t shard = next.fetch_add(1, std::memory_order_relaxed) % kMetricShards;
  return shard;
}

void AppendDouble(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

const std::vector<double> kRequestBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
const std::vector<double> kLoadBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};

// The registry must list each family at its own index: Spec(f) relies on it.
constexpr bool RegistryInOrder() {
  for (size_t i = 0; i < kFamilyCount; ++i) {
    if (static_cast<size_t>(kFamilies[i].id) != i) return false;
  }
  return true;
}
static_assert(RegistryInOrder(), "kFamilies[i].id must be Family(i)");

}  // namespace

std::string_view MetricTypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string_view ProtoName(Proto p) { return p == Proto::kResp ? "resp" : "http"; }

std::string_view OutcomeName(Outcome o) {
  static constexpr std::string_view kNames[] = {"hit",       "miss", "stale", "waited",
                                                "not_found", "shed", "error"};
  return kNames[static_cast<size_t>(o)];
}

std::string_view LoadOutcomeName(LoadOutcome o) {
  static constexpr std::string_view kNames[] = {"value", "not_found", "error"};
  return kNames[static_cast<size_t>(o)];
}

std::string_view LabelValues<RefreshResult>::Name(RefreshResult r) {
  static constexpr std::string_view kNames[] = {"started", "held_off", "shed", "awaiting_replay"};
  return kNames[static_cast<size_t>(r)];
}

std::string_view LabelValues<FencedFill>::Name(FencedFill f) {
  static constexpr std::string_view kNames[] = {"retried", "stale", "marked_stale"};
  return kNames[static_cast<size_t>(f)];
}

std::string_view LabelValues<InvalidationSource>::Name(InvalidationSource s) {
  static constexpr std::string_view kNames[] = {"notify", "set", "del", "http", "tier", "wal"};
  return kNames[static_cast<size_t>(s)];
}

std::string_view LabelValues<TierLookup>::Name(TierLookup r) {
  static constexpr std::string_view kNames[] = {"hit", "won", "waited"};
  return kNames[static_cast<size_t>(r)];
}

std::string_view LabelValues<TierLease>::Name(TierLease r) {
  static constexpr std::string_view kNames[] = {"filled", "voided", "released", "taken_over"};
  return kNames[static_cast<size_t>(r)];
}

std::string_view TierOpName(TierOp op) {
  static constexpr std::string_view kNames[] = {"lookup",   "fill",     "release", "invalidate",
                                                "takeover", "liveness", "epoch"};
  return kNames[static_cast<size_t>(op)];
}

std::string_view TierResultName(TierResult r) {
  static constexpr std::string_view kNames[] = {"ok", "error", "timeout", "down"};
  return kNames[static_cast<size_t>(r)];
}

std::string LabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// --- Counters ----------------------------------------------------------------------------------

void Counter::Add(uint64_t n) { cells_[MyShard()].v.fetch_add(n, std::memory_order_relaxed); }

uint64_t Counter::Value() const {
  uint64_t total = 0;
  for (const auto& c : cells_) total += c.v.load(std::memory_order_relaxed);
  return total;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), shards_(kMetricShards) {
  for (auto& s : shards_) s.buckets = std::vector<std::atomic<uint64_t>>(bounds_.size() + 1);
}

void Histogram::Observe(double seconds) {
  Shard& s = shards_[MyShard()];
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  s.buckets[i].fetch_add(1, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(static_cast<uint64_t>(seconds > 0 ? seconds * 1e9 : 0),
                     std::memory_order_relaxed);
}

void Histogram::Totals::Add(const Totals& other) {
  if (counts.size() < other.counts.size()) counts.resize(other.counts.size(), 0);
  for (size_t i = 0; i < other.counts.size(); ++i) counts[i] += other.counts[i];
  count += other.count;
  sum_ns += other.sum_ns;
}

Histogram::Totals Histogram::Read() const {
  Totals t;
  t.counts.assign(bounds_.size() + 1, 0);
  for (const auto& s : shards_) {
    for (size_t i = 0; i < t.counts.size(); ++i) {
      t.counts[i] += s.buckets[i].load(std::memory_order_relaxed);
    }
    t.count += s.count.load(std::memory_order_relaxed);
    t.sum_ns += s.sum_ns.load(std::memory_order_relaxed);
  }
  return t;
}

void Histogram::Render(std::string& out, std::string_view name, std::string_view labels,
                       const Totals& totals) const {
  const std::vector<uint64_t>& counts = totals.counts;
  const uint64_t count = totals.count, sum_ns = totals.sum_ns;
  std::string sep = labels.empty() ? "" : std::string(labels) + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts[i];
    out.append(name).append("_bucket{").append(sep).append("le=\"");
    AppendDouble(out, i < bounds_.size() ? bounds_[i] : INFINITY);
    out.append("\"} ").append(std::to_string(cumulative)).append("\n");
  }
  std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  out.append(name).append("_sum").append(braces).append(" ");
  AppendDouble(out, static_cast<double>(sum_ns) / 1e9);
  out.append("\n");
  out.append(name).append("_count").append(braces).append(" ").append(std::to_string(count));
  out.append("\n");
}

void DbLoadCounter::Declare(std::vector<NamespaceLabel> namespaces) {
  if (namespaces == namespaces_ && counts_) return;
  labels_.clear();
  for (const NamespaceLabel& ns : namespaces) {
    labels_.push_back("namespace=\"" + LabelValue(ns.name) + "\",pool=\"" + LabelValue(ns.pool) +
                      "\"");
  }
  namespaces_ = std::move(namespaces);
  counts_ = std::make_unique<std::array<Counter, kLoadOutcomeCount>[]>(namespaces_.size());
}

void DbLoadCounter::Add(size_t ns_index, LoadOutcome o) {
  if (ns_index >= namespaces_.size()) return;
  counts_[ns_index][static_cast<size_t>(o)].Add();
}

uint64_t DbLoadCounter::Value(size_t ns_index, LoadOutcome o) const {
  if (ns_index >= namespaces_.size()) return 0;
  return counts_[ns_index][static_cast<size_t>(o)].Value();
}

std::string DbLoadCounter::LabelSet(size_t ns_index, LoadOutcome o) const {
  return labels_[ns_index] + ",outcome=\"" + std::string(LoadOutcomeName(o)) + "\"";
}

uint64_t DbLoadCounter::Value(std::string_view labels) const {
  for (size_t i = 0; i < namespaces_.size(); ++i) {
    for (size_t o = 0; o < kLoadOutcomeCount; ++o) {
      if (LabelSet(i, static_cast<LoadOutcome>(o)) == labels) {
        return counts_[i][o].Value();
      }
    }
  }
  return 0;
}

Metrics::Metrics()
    : db_load_seconds(kLoadBuckets), request_seconds_{[] {
        // std::array of a type without a default constructor: built from an index sequence.
        return [&]<size_t... I>(std::index_sequence<I...>) {
          return std::array<Histogram, sizeof...(I)>{((void)I, Histogram(kRequestBuckets))...};
        }
        (std::make_index_sequence<kProtoCount * kOutcomeCount>());
      }()} {}

void Metrics::CountRequest(Proto proto, Outcome outcome, double seconds) {
  size_t p = static_cast<size_t>(proto);
  requests_[p * kOutcomeCount + static_cast<size_t>(outcome)].Add();
  request_seconds_[p * kOutcomeCount + static_cast<size_t>(outcome)].Observe(seconds);
}

uint64_t Metrics::Requests(Proto proto, Outcome outcome) const {
  return requests_[static_cast<size_t>(proto) * kOutcomeCount + static_cast<size_t>(outcome)]
      .Value();
}

// --- /metrics ----------------------------------------------------------------------------------

namespace {

void Header(std::string& out, const FamilySpec& f) {
  out.append("# HELP ").append(f.name).append(" ").append(f.help).append("\n");
  out.append("# TYPE ").append(f.name).append(" ").append(MetricTypeName(f.type)).append("\n");
}

// `labels` is a rendered label set (`a="x",b="y"`) or "".
void Sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ");
  AppendDouble(out, value);
  out.append("\n");
}

template <class E, Family F>
void RenderEnumCounter(std::string& out, const EnumCounter<E, F>& c) {
  for (size_t i = 0; i < EnumCounter<E, F>::kCount; ++i) {
    E e = static_cast<E>(i);
    Sample(out, Spec(F).name, EnumCounter<E, F>::LabelSet(e), static_cast<double>(c.Value(e)));
  }
}

template <class Field>
void RenderReplicas(std::string& out, const FamilySpec& f, const MetricSources& s, Field field) {
  for (const ReplicaGauges& r : s.replicas) {
    Sample(out, f.name, "replica=\"" + LabelValue(r.name) + "\"", field(r));
  }
}

void RenderFamily(std::string& out, const FamilySpec& f, const MetricSources& s) {
  const Metrics& m = *s.metrics;
  switch (f.id) {
    case Family::kRequests:
      for (size_t p = 0; p < kProtoCount; ++p) {
        for (size_t o = 0; o < kOutcomeCount; ++o) {
          std::string labels = "proto=\"" + std::string(ProtoName(static_cast<Proto>(p))) +
                               "\",result=\"" + std::string(OutcomeName(static_cast<Outcome>(o))) +
                               "\"";
          Sample(out, f.name, labels,
                 static_cast<double>(m.Requests(static_cast<Proto>(p), static_cast<Outcome>(o))));
        }
      }
      return;
    case Family::kRequestSeconds:
      for (size_t p = 0; p < kProtoCount; ++p) {
        Proto proto = static_cast<Proto>(p);
        Histogram::Totals all;
        for (size_t o = 0; o < kOutcomeCount; ++o) {
          all.Add(m.request_seconds(proto, static_cast<Outcome>(o)).Read());
        }
        m.request_seconds(proto, Outcome{})
            .Render(out, f.name, "proto=\"" + std::string(ProtoName(proto)) + "\"", all);
      }
      return;
    case Family::kRequestResultSeconds:
      for (size_t p = 0; p < kProtoCount; ++p) {
        for (size_t o = 0; o < kOutcomeCount; ++o) {
          Proto proto = static_cast<Proto>(p);
          Outcome outcome = static_cast<Outcome>(o);
          m.request_seconds(proto, outcome)
              .Render(out, f.name,
                      "proto=\"" + std::string(ProtoName(proto)) + "\",result=\"" +
                          std::string(OutcomeName(outcome)) + "\"");
        }
      }
      return;
    case Family::kDbLoads:
      for (size_t i = 0; i < m.db_loads.size(); ++i) {
        for (size_t o = 0; o < kLoadOutcomeCount; ++o) {
          LoadOutcome outcome = static_cast<LoadOutcome>(o);
          Sample(out, f.name, m.db_loads.LabelSet(i, outcome),
                 static_cast<double>(m.db_loads.Value(i, outcome)));
        }
      }
      return;
    case Family::kDbLoadSeconds:
      m.db_load_seconds.Render(out, f.name, "");
      return;
    case Family::kCoalesced:
      Sample(out, f.name, "", static_cast<double>(s.leases->coalesced_total()));
      return;
    case Family::kShed:
      RenderEnumCounter(out, m.shed);
      return;
    case Family::kRefreshes:
      RenderEnumCounter(out, m.refreshes);
      return;
    case Family::kInvalidations:
      RenderEnumCounter(out, m.invalidations);
      return;
    case Family::kLeaseWaiters:
      Sample(out, f.name, "", static_cast<double>(s.leases->waiters()));
      return;
    case Family::kLeases:
      Sample(out, f.name, "", static_cast<double>(s.leases->leases()));
      return;
    case Family::kEntries:
      Sample(out, f.name, "", static_cast<double>(s.store->Size()));
      return;
    case Family::kMemoryBytes:
      Sample(out, f.name, "", static_cast<double>(s.store->MemoryBytes()));
      return;
    case Family::kEvictions:
      Sample(out, f.name, "", static_cast<double>(s.store->evictions()));
      return;
    case Family::kConnectedClients:
      Sample(out, f.name, "", static_cast<double>(s.connected_clients));
      return;
    case Family::kReplicaUp:
      return RenderReplicas(out, f, s, [](const ReplicaGauges& r) { return r.up ? 1.0 : 0.0; });
    case Family::kReplicaLag:
      return RenderReplicas(out, f, s, [](const ReplicaGauges& r) { return r.lag_seconds; });
    case Family::kReplicaCatchingUp:
      return RenderReplicas(out, f, s,
                            [](const ReplicaGauges& r) { return r.catching_up ? 1.0 : 0.0; });
    case Family::kReplicaInflight:
      return RenderReplicas(out, f, s,
                            [](const ReplicaGauges& r) { return static_cast<double>(r.inflight); });
    case Family::kReplicaQueued:
      return RenderReplicas(out, f, s,
                            [](const ReplicaGauges& r) { return static_cast<double>(r.queued); });
    case Family::kConcurrencyLimit:
      for (const PoolGauges& p : s.pools) {
        Sample(out, f.name, "pool=\"" + LabelValue(p.name) + "\"", static_cast<double>(p.limit));
      }
      return;
    case Family::kLoadQueue:
      for (const PoolGauges& p : s.pools) {
        Sample(out, f.name, "pool=\"" + LabelValue(p.name) + "\"", static_cast<double>(p.queued));
      }
      return;
    case Family::kTierUp:
      if (s.tier) Sample(out, f.name, "", s.tier_up ? 1.0 : 0.0);
      return;
    case Family::kTierRequests:
      for (size_t op = 0; op < kTierOpCount; ++op) {
        for (size_t r = 0; r < kTierResultCount; ++r) {
          std::string labels = "op=\"" + std::string(TierOpName(static_cast<TierOp>(op))) +
                               "\",result=\"" +
                               std::string(TierResultName(static_cast<TierResult>(r))) + "\"";
          Sample(out, f.name, labels,
                 static_cast<double>(
                     m.TierRequests(static_cast<TierOp>(op), static_cast<TierResult>(r))));
        }
      }
      return;
    case Family::kTierLookups:
      RenderEnumCounter(out, m.tier_lookups);
      return;
    case Family::kTierLeases:
      RenderEnumCounter(out, m.tier_leases);
      return;
    case Family::kTierFallbacks:
      Sample(out, f.name, "", static_cast<double>(m.tier_fallbacks.Value()));
      return;
    case Family::kFencedFills:
      RenderEnumCounter(out, m.fenced_fills);
      return;
    case Family::kPositionMarkers:
      Sample(out, f.name, "", static_cast<double>(s.position_markers));
      return;
    case Family::kPositionMarkerBytes:
      Sample(out, f.name, "", static_cast<double>(s.position_marker_bytes));
      return;
    case Family::kReplicationUp:
      if (s.wal) Sample(out, f.name, "", s.wal->up ? 1.0 : 0.0);
      return;
    case Family::kReplicationLagBytes:
      if (s.wal) Sample(out, f.name, "", static_cast<double>(s.wal->lag_bytes));
      return;
    case Family::kReplicationLagSeconds:
      if (s.wal) Sample(out, f.name, "", s.wal->lag_seconds);
      return;
    case Family::kReplicationSlotResets:
      if (s.wal) Sample(out, f.name, "", static_cast<double>(s.wal->slot_resets));
      return;
    case Family::kCount:
      return;
  }
}

}  // namespace

std::string RenderPrometheus(const MetricSources& s) {
  std::string out;
  out.reserve(16 * 1024);
  for (const FamilySpec& f : kFamilies) {
    Header(out, f);
    RenderFamily(out, f, s);
  }
  return out;
}

// --- INFO --------------------------------------------------------------------------------------

namespace {

// INFO's sections in Redis's order; kDefault marks those INFO gives without an argument.
enum InfoSection : uint32_t {
  kServer = 1u << 0,
  kClients = 1u << 1,
  kMemory = 1u << 2,
  kPersistence = 1u << 3,
  kStats = 1u << 4,
  kReplication = 1u << 5,
  kCpu = 1u << 6,
  kCommandStats = 1u << 7,
  kCluster = 1u << 8,
  kKeyspace = 1u << 9,
  kDefault = kServer | kClients | kMemory | kPersistence | kStats | kReplication | kCpu | kCluster |
             kKeyspace,
  kAll = kDefault | kCommandStats,
};

uint32_t SectionsOf(const std::vector<std::string_view>& names) {
  static constexpr std::pair<std::string_view, uint32_t> kNames[] = {
      {"server", kServer},   {"clients", kClients},
      {"memory", kMemory},   {"persistence", kPersistence},
      {"stats", kStats},     {"replication", kReplication},
      {"cpu", kCpu},         {"commandstats", kCommandStats},
      {"cluster", kCluster}, {"keyspace", kKeyspace},
      {"default", kDefault}, {"all", kAll},
      {"everything", kAll}};
  if (names.empty()) return kDefault;
  uint32_t sections = 0;
  for (std::string_view name : names) {
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& [n, bits] : kNames) {
      if (lower == n) sections |= bits;
    }
  }
  return sections;
}

std::string Seconds(const timeval& t) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(t.tv_sec),
                static_cast<long>(t.tv_usec));
  return buf;
}

}  // namespace

std::string RenderInfo(const MetricSources& s, const std::vector<std::string_view>& sections) {
  const uint32_t chosen = SectionsOf(sections);
  auto want = [&](InfoSection section) { return (chosen & section) != 0; };
  std::string out;
  auto field = [&](std::string_view k, const std::string& v) {
    out.append(k).append(":").append(v).append("\r\n");
  };
  const Metrics& m = *s.metrics;
  const lease::Store& store = *s.store;
  if (want(kServer)) {
    out += "# Server\r\n";
    field("redis_version", std::string(s.redis_version));
    field("corral_version", std::string(s.corral_version));
    field("corral_commit", std::string(s.corral_commit));
    field("redis_mode", "standalone");
    field("os", "Linux");
    field("arch_bits", "64");
    field("multiplexing_api", "epoll");
    field("process_id", std::to_string(getpid()));
    field("tcp_port", std::to_string(s.resp_port));
    std::time_t up = std::time(nullptr) - s.started_unix;
    field("uptime_in_seconds", std::to_string(up));
    field("uptime_in_days", std::to_string(up / 86400));
    field("io_threads_active", std::to_string(s.io_threads > 1 ? 1 : 0));
    out += "\r\n";
  }
  if (want(kClients)) {
    out += "# Clients\r\n";
    field("connected_clients", std::to_string(s.connected_clients));
    field("maxclients", std::to_string(s.max_clients));
    field("blocked_clients", "0");
    field("tracking_clients", std::to_string(s.tracking_clients));
    out += "\r\n";
  }
  if (want(kMemory)) {
    out += "# Memory\r\n";
    field("used_memory", std::to_string(store.MemoryBytes()));
    long pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
      std::fclose(f);
    }
    field("used_memory_rss", std::to_string(resident * sysconf(_SC_PAGESIZE)));
    field("mem_allocator", AllocatorName());
    // Redis leaves its replication and AOF buffers out of the eviction bound; corral has none.
    field("mem_not_counted_for_evict", "0");
    // Redis frees big values in the background and counts them here; corral frees in place.
    field("lazyfree_pending_objects", "0");
    field("maxmemory", std::to_string(s.max_bytes));
    field("maxmemory_policy", std::string(s.maxmemory_policy));
    out += "\r\n";
  }
  if (want(kPersistence)) {
    // corral keeps nothing on disk: a restart starts empty, and the database refills it.
    out += "# Persistence\r\n";
    field("loading", "0");
    field("async_loading", "0");
    field("rdb_bgsave_in_progress", "0");
    field("aof_enabled", "0");
    field("aof_rewrite_in_progress", "0");
    out += "\r\n";
  }
  if (want(kStats)) {
    uint64_t commands = 0;
    for (const auto& c : s.command_calls) commands += c.calls;
    out += "# Stats\r\n";
    field("total_connections_received", std::to_string(m.connections.Value()));
    field("total_commands_processed", std::to_string(commands));
    field("rejected_connections", std::to_string(m.rejected_connections.Value()));
    field("expired_keys", std::to_string(store.expirations()));
    field("evicted_keys", std::to_string(store.evictions()));
    uint64_t hits = 0, misses = 0;
    for (Proto p : {Proto::kResp, Proto::kHttp}) {
      hits += m.Requests(p, Outcome::kHit) + m.Requests(p, Outcome::kStale);
      misses += m.Requests(p, Outcome::kMiss) + m.Requests(p, Outcome::kWaited);
    }
    field("keyspace_hits", std::to_string(hits));
    field("keyspace_misses", std::to_string(misses));
    field("tracking_total_keys", std::to_string(s.tracking_keys));
    field("tracking_total_items", std::to_string(s.tracking_items));
    field("tracking_total_prefixes", std::to_string(s.tracking_prefixes));
    field("coalesced_requests", std::to_string(s.leases->coalesced_total()));
    // Each pool's adaptive limit and queue (corral's own fields, like corral_commit).
    for (const PoolGauges& p : s.pools) {
      field("corral_pool_" + p.name + "_concurrency_limit", std::to_string(p.limit));
      field("corral_pool_" + p.name + "_inflight_loads", std::to_string(p.inflight));
      field("corral_pool_" + p.name + "_queued_loads", std::to_string(p.queued));
    }
    field("corral_position_markers", std::to_string(s.position_markers));
    field("corral_position_marker_bytes", std::to_string(s.position_marker_bytes));
    out += "\r\n";
  }
  if (want(kReplication)) {
    // corral's RESP front end neither replicates nor is replicated (its fleet shares state
    // through the Redis tier instead): it answers as a master without replicas, as ROLE does.
    out += "# Replication\r\n";
    field("role", "master");
    field("connected_slaves", "0");
    field("master_failover_state", "no-failover");
    field("master_repl_offset", "0");
    field("second_repl_offset", "-1");
    field("repl_backlog_active", "0");
    out += "\r\n";
  }
  if (want(kCpu)) {
    rusage self{}, children{};
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    out += "# CPU\r\n";
    field("used_cpu_sys", Seconds(self.ru_stime));
    field("used_cpu_user", Seconds(self.ru_utime));
    field("used_cpu_sys_children", Seconds(children.ru_stime));
    field("used_cpu_user_children", Seconds(children.ru_utime));
    out += "\r\n";
  }
  if (want(kCommandStats)) {
    // Redis's fields but usec and usec_per_call: corral does not time each command (two clock
    // reads on every GET); corral_request_seconds in /metrics has the latencies.
    out += "# Commandstats\r\n";
    for (const auto& c : s.command_calls) {
      field("cmdstat_" + std::string(c.name), "calls=" + std::to_string(c.calls) +
                                                  ",rejected_calls=" + std::to_string(c.rejected) +
                                                  ",failed_calls=" + std::to_string(c.failed));
    }
    out += "\r\n";
  }
  if (want(kCluster)) {
    out += "# Cluster\r\n";
    field("cluster_enabled", "0");
    out += "\r\n";
  }
  if (want(kKeyspace)) {
    out += "# Keyspace\r\n";
    size_t keys = store.Size();
    if (keys > 0) field("db0", "keys=" + std::to_string(keys) + ",expires=0,avg_ttl=0");
    out += "\r\n";
  }
  return out;
}

// --- /v1/stats ---------------------------------------------------------------------------------

std::string RenderStatsJson(const MetricSources& s) {
  nlohmann::json j;
  const lease::Store& store = *s.store;
  j["entries"] = store.Size();
  j["memory_bytes"] = store.MemoryBytes();
  j["max_bytes"] = s.max_bytes;
  j["evictions"] = store.evictions();
  j["expirations"] = store.expirations();
  j["connected_clients"] = s.connected_clients;
  j["uptime_s"] = std::time(nullptr) - s.started_unix;
  nlohmann::json requests;
  for (Proto p : {Proto::kResp, Proto::kHttp}) {
    for (size_t o = 0; o < kOutcomeCount; ++o) {
      requests[std::string(ProtoName(p))][std::string(OutcomeName(static_cast<Outcome>(o)))] =
          s.metrics->Requests(p, static_cast<Outcome>(o));
    }
  }
  j["requests"] = requests;
  j["coalesced_requests"] = s.leases->coalesced_total();
  return j.dump(2) + "\n";
}

}  // namespace corral::server

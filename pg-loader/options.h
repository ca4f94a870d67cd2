// pg-loader's options — the loader's servers and pools, each read-through statement, the
// invalidation listener's channel — with a field table per struct and one Validate each. Free of
// libpqxx, so the configuration code and its tests include it without the database library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lease/option_table.h"

namespace corral::pg {

inline constexpr char kDefaultPool[] = "default";

enum class Routing {
  kRoundRobin,   // each load goes to the next usable replica of the pool
  kLeastLoaded,  // each load goes to the usable replica with the fewest in-flight + queued loads
};

// "round_robin", "least_loaded": the JSON names of Routing, in enum order.
inline constexpr std::string_view kRoutingNames[] = {"round_robin", "least_loaded"};

// JSON "postgres.pools.NAME".
struct PoolOptions {
  std::vector<size_t> replicas;  // indices into LoaderOptions::replicas; empty: the primary only
                                 // (needs fallback_to_primary)
  // Worker threads (one connection each) per replica of this pool; a replica shared by several
  // pools gets the largest of their counts, and one queue.
  int connections = 8;
  Routing routing = Routing::kRoundRobin;
  // The ceiling of the pool's adaptive concurrency limit on loads in flight across its namespaces
  // (loads past the limit queue in the cache); 0: connections x replicas. Enforced by the caller
  // (corral-server's lease::LoadLimiter), not the loader.
  int64_t max_inflight_loads = 0;
  // The floor of that limit: however slow the database gets, this many loads may run at once.
  int64_t min_inflight_loads = 1;
};

// JSON "postgres" (with ListenerOptions' field).
struct LoaderOptions {
  std::string primary;                // libpq connection string (key=value or URI)
  std::vector<std::string> replicas;  // named "replica0", "replica1", ... by index
  // By name. Empty: one pool "default" over all replicas (AddDefaultPool).
  std::map<std::string, PoolOptions> pools;
  int64_t statement_timeout_ms = 1000;  // 0: no statement timeout
  int64_t max_replica_lag_ms = 5000;
  int64_t health_check_interval_ms = 1000;
  bool fallback_to_primary = false;  // serve a pool from the primary when none of its replicas can
  bool prepared_statements = true;   // false through PgBouncer in transaction mode
  // Not in the JSON:
  int64_t connect_timeout_ms = 2000;      // added to connection strings that do not set one; libpq
                                          // counts whole seconds, at least 2
  int primary_connections = 2;            // workers on the primary (used only with fallback)
  size_t max_queued_per_replica = 10000;  // beyond: kError "queue full ..." at once
};

// Where invalidations come from (JSON "postgres.invalidation"): LISTEN for the trigger's NOTIFYs,
// or logical decoding (pgoutput) of the primary's WAL through a replication slot.
enum class InvalidationMode { kNotify, kLogical };

// "notify", "logical": the JSON names of InvalidationMode, in enum order.
inline constexpr std::string_view kInvalidationModeNames[] = {"notify", "logical"};

// JSON "postgres" (the invalidation side of it).
struct ListenerOptions {
  std::string invalidation_channel = "corral_invalidate";  // a PostgreSQL identifier
  InvalidationMode invalidation = InvalidationMode::kNotify;
  // logical: the replication slot's name (a node's slot is "<slot>_<node>", WalSlotName) and the
  // publication's; both [a-z0-9_]+.
  std::string slot = "corral";
  std::string publication = "corral";
};

// The slot one node consumes: PostgreSQL lets one reader use a slot at a time, so each node has
// its own, "<slot>_<node>" with `node` lowered and every other character than [a-z0-9_] made '_',
// cut to PostgreSQL's 63 bytes.
std::string WalSlotName(std::string_view slot, std::string_view node);

// One read-through query (JSON "namespaces.NAME", its loader part). `query` takes the id as $1
// (bound as text) and returns zero or one row.
//
// With `batch_query`, concurrent loads of this statement queued on one server go to the database
// as one query: $1 is bound to a text array literal of the distinct ids ({"1","2"}); each result
// row's first column is an id as text and the rest is the value, read as `query`'s row would be.
// Ids without a row are kNotFound; rows for ids not asked for are ignored. A worker that takes
// such a load also takes the other queued loads of the statement, up to `batch_max`, and while it
// has fewer it waits up to `batch_window_us` for more. A batch of one distinct id runs `query`.
struct Statement {
  std::string name;  // for messages and metrics
  std::string query;
  std::string batch_query;          // empty: no batching
  std::string pool = kDefaultPool;  // a key of LoaderOptions::pools; empty means "default"
  int batch_max = 64;               // loads per batch (positive; 1 turns batching off)
  int64_t batch_window_us = 200;    // 0: take only what is already queued
  // With postgres.invalidation "logical": the rows of `table` ("schema.table", or "table" in
  // schema public) whose `key_column` text is the key's ID; a change to one invalidates "NAME:ID".
  // Empty: the WAL invalidates nothing of this namespace.
  std::string table;
  std::string key_column = "id";
};

// The JSON-visible scalar fields. "replicas" and "pools" (LoaderOptions), "replicas" and
// "routing" (PoolOptions) are not plain scalars and are read by the JSON loader itself.
const std::vector<options::Field<LoaderOptions>>& LoaderFields();
const std::vector<options::Field<PoolOptions>>& PoolFields();
const std::vector<options::Field<Statement>>& StatementFields();
const std::vector<options::Field<ListenerOptions>>& ListenerFields();

// Gives `o` the pool "default" over every replica when it has no pools.
void AddDefaultPool(LoaderOptions& o);

// True when `sql` uses parameter $1 ("$10" alone does not count).
bool UsesParameterOne(std::string_view sql);

// The first rule each breaks, its path under `path` (the JSON path of the section; "" for the
// root); nullopt when valid. Pure, no exceptions. A statement is checked against the pools of
// `loader`, whose section is at `loader_path`.
std::optional<options::OptionError> Validate(const LoaderOptions& o, std::string_view path);
std::optional<options::OptionError> Validate(const ListenerOptions& o, std::string_view path);
std::optional<options::OptionError> Validate(const Statement& s, std::string_view path,
                                             const LoaderOptions& loader,
                                             std::string_view loader_path);

}  // namespace corral::pg

// corral's database loader: runs read-through queries on pools of PostgreSQL replicas, off the
// caller's thread. Routing, health and lag checks, bounded queues and the one retry after a broken
// connection (SPEC "Keys and values", rules 8 and 9) live here. No libpqxx type leaks out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pg-loader/options.h"

namespace corral::pg {

struct LoadOutcome {
  enum class Kind { kValue, kNotFound, kError };
  Kind kind = Kind::kError;
  std::string data;       // kValue: the value; kError: a one-line reason; kNotFound: empty
  std::string replica;    // "replica0", "replica1", ..., "primary": who served it; empty if nobody
  int64_t micros = 0;     // time spent in the database call (0 if none was made)
  uint64_t position = 0;  // the WAL position the query read at (Session's kPositionSql); 0: unknown
  // Served by a replica that was lagging (or marked down) when it answered: routed there only
  // because no replica of the pool was usable (panic mode). Its data may be older than
  // max_replica_lag_ms allows, so it must not be cached as fresh.
  bool behind = false;
};

// Called exactly once per Load(), on a loader thread, with no loader lock held. It may call Load()
// again but must not call Stop() or destroy the Loader. It must not throw.
using LoadCallback = std::function<void(LoadOutcome)>;

struct ReplicaStatus {
  std::string name;  // "replica0", ..., or "primary" (listed only with fallback_to_primary)
  bool up = false;   // the last health check succeeded and no load has since lost its connection
  double lag_seconds = 0;      // replay lag from the last health check (0 for the primary)
  bool lagging = false;        // lag is above max_replica_lag_ms, so loads skip this replica
  bool catching_up = false;    // back from down or lagging, not read until it has replayed
                               // every invalidation forgotten meanwhile (ReplicaState::MarkUp)
  int inflight = 0;            // loads running in the database now
  size_t queued = 0;           // loads waiting for a worker
  uint64_t loads = 0;          // database calls made (including failed ones); a batch counts once
  uint64_t batches = 0;        // of those, calls that answered more than one load
  uint64_t batched_loads = 0;  // loads answered by those calls
};

// Thread pools per replica, fed through bounded queues. Thread-safe after construction.
//
// Results (SPEC "Keys and values"): zero rows or a one-column NULL → kNotFound; one column → its
// text; several columns → a JSON object (numbers, booleans and json/jsonb stay typed); more than
// one row ("query returned N rows") or any SQL error (PostgreSQL's first line, e.g. "canceling
// statement due to statement timeout") → kError. A load whose connection breaks is retried once on
// another usable replica, and that server is marked down; SQL errors and timeouts are not retried.
// In a batch, an SQL error or timeout answers every load of it with the error, and a broken
// connection retries the whole batch once, on one other replica.
// A server that stops answering altogether (frozen, network gone) is cut off after
// statement_timeout_ms + max(statement_timeout_ms, 1 s) and treated as a broken connection. With
// statement_timeout_ms 0 (no statement timeout) loads are not cut off: a query may run as long as
// it needs, and only TCP keepalives notice a server that is gone.
class Loader {
 public:
  // Validates the options and statements with Validate (options.h), the same rules the
  // configuration is checked with. Throws std::invalid_argument "pg loader: <field>: <problem>"
  // (a statement's fields are under its name); start-up only. Connects nothing.
  Loader(LoaderOptions options, std::vector<Statement> statements);
  ~Loader();  // Stop()

  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Spawns the workers and health checkers. Workers connect lazily (on their first load, and again
  // after a break); a down server is probed by its health checker with back-off (100 ms doubling
  // to 2 s) until it answers. Replicas count as usable until a check or a load says otherwise;
  // Ready() waits for a successful health check. Call once; a no-op after Stop().
  void Start();

  // Stops and joins every loader thread. Loads still queued are answered kError "shutting down";
  // a load running in the database is answered when it finishes (bounded by the cut-off above, or
  // by connect_timeout_ms for a connection attempt). Idempotent.
  void Stop();

  // Queues one load of `statement` (an index into the constructor's statements) with $1 = `id`;
  // with batch_query it may be answered by a batch query (LoadOutcome::micros is then the batch's).
  // Never blocks on the database, thread-safe. Rejections (unknown statement, no usable replica,
  // queue full) are answered at once with kError, still on a loader thread. Before Start() or after
  // Stop() has returned, `done` runs inline on the caller's thread with kError.
  // `min_position`: the load should read at this WAL position or later; it goes to a replica
  // known to have replayed it, else to the primary (with fallback_to_primary), else as usual.
  void Load(size_t statement, std::string id, LoadCallback done, uint64_t min_position = 0);

  // One load of a LoadMany.
  struct Request {
    std::string id;
    LoadCallback done;
    uint64_t min_position = 0;
  };
  // Loads of one `statement` that go to the database together: queued on one server at once, so
  // that a worker pops them as one batch (with batch_query, up to batch_max; the loader's own
  // batching may still add others). Routed as Load routes the highest min_position among them.
  // Each `done` is answered as Load's would be.
  void LoadMany(size_t statement, std::vector<Request> requests);

  // Calls `done` once, on a loader thread, with the primary's current WAL position. Requests that
  // arrive while one query runs share the next one. When the primary cannot be asked (down, or no
  // answer within the health timeout), the newest position any server has reported instead.
  void CurrentPosition(std::function<void(uint64_t)> done);
  // A server of `statement`'s pool has replayed `position` (as last reported by its health check
  // or a load) and may be used, or the usable primary would serve it. Thread-safe.
  bool CanRead(size_t statement, uint64_t position) const;
  // Asks the health checkers of `statement`'s pool for a check now (positions learnt sooner than
  // health_check_interval_ms): a fill was read before an invalidation no server is known to
  // have replayed yet. Thread-safe, never blocks.
  void RefreshPositions(size_t statement);
  // The lowest position that every usable replica has replayed (the cache forgets invalidation
  // markers up to it); replicas that are down or lagging do not count, ones catching up do. 0
  // when none counts. A replica back from down or lagging is not read until it has replayed the
  // highest position this has returned. Thread-safe.
  uint64_t ReplayedEverywhere() const;

  // A snapshot, replicas in index order, then the primary when fallback_to_primary. Thread-safe.
  std::vector<ReplicaStatus> Status() const;

  // True when every pool has a replica whose last health check succeeded within the lag bound
  // (or, with fallback_to_primary, the primary's did). Thread-safe.
  bool Ready() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace corral::pg

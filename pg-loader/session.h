// One PostgreSQL connection of the loader and the two things done on it: a read-through load in its
// own short read-only transaction, and a health/lag check. The libpqxx connection stays inside
// session.cc. A Session is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "pg-loader/batch.h"
#include "pg-loader/loader.h"

namespace corral::pg {

struct SessionResult {
  LoadOutcome::Kind kind = LoadOutcome::Kind::kError;
  std::string data;              // value, or a one-line error
  bool connection_lost = false;  // the connection broke (data says why); the load may be retried
  int64_t micros = 0;            // time in the transaction
  uint64_t position = 0;         // the WAL position the transaction read at (kPositionSql)
  std::string sqlstate;          // of an SQL error, when the server sent one
};

// A batch load's result: one answer per id asked (an SQL error answers them all), or a broken
// connection.
struct SessionBatchResult {
  std::vector<KeyAnswer> answers;  // empty when connection_lost
  bool connection_lost = false;
  std::string lost_reason;  // when connection_lost
  int64_t micros = 0;       // time in the transaction
  // The batch query failed with a data exception (SQLSTATE class 22, e.g. one id that is not a
  // valid bigint): the error may belong to one id only, and the others deserve their own answers.
  bool data_error = false;
  uint64_t position = 0;  // the WAL position the transaction read at (kPositionSql)
};

struct HealthResult {
  bool ok = false;
  bool in_recovery = false;  // a streaming replica
  double receive_lsn = -1;   // WAL bytes received / replayed; -1 when the server reports NULL
  double replay_lsn = -1;
  std::string error;  // when !ok
};

// The replay-progress query: the caller turns positions into a lag (ReplayLagTracker).
inline constexpr char kLagSql[] =
    "SELECT pg_is_in_recovery(),"
    " COALESCE((pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::float8, -1),"
    " COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::float8, -1)";

// The WAL position a load reads at, asked in the statement that sets its timeout (no extra round
// trip), so before the load query takes its snapshot: on a replica what it has replayed, on the
// primary its insert position (see kCurrentPositionSql). The load's snapshot holds at least every
// commit up to it, which is what the position fence (lease/position_fence.h) relies on. Under an
// isolation level other than read committed the snapshot would be taken by this very statement,
// possibly before the position is read, so the position is reported unknown (0) and the fill counts
// as older than any invalidation.
inline constexpr char kPositionSql[] =
    "SELECT CASE WHEN current_setting('transaction_isolation') <> 'read committed' THEN 0"
    " WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_replay_lsn() - '0/0'::pg_lsn, 0)"
    " ELSE pg_current_wal_insert_lsn() - '0/0'::pg_lsn END::text";
// The primary's current WAL positions. For an invalidation, the insert position, which is past
// every commit record already inserted. (pg_current_wal_lsn() is the write position: with
// synchronous_commit off a commit can return before its record is written, and then the write
// position is short of it.) For the replicas' lag, the flush position: WAL senders stream only
// flushed WAL, and with synchronous_commit off the WAL writer flushes a commit up to
// wal_writer_delay (200 ms) after it: measured against the insert position, a replica that has
// everything it could have been sent looks that much behind, and with a short max_replica_lag_ms
// every replica looked lagging (FailoverPgTest, under load).
inline constexpr char kCurrentPositionSql[] =
    "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text,"
    " (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::text";

// What kCurrentPositionSql read.
struct PrimaryPosition {
  bool ok = false;
  uint64_t inserted = 0;  // for invalidations
  uint64_t flushed = 0;   // for the replicas' lag
  std::string error;      // when !ok
};

class Session {
 public:
  // `conninfo` is passed to libpq as is. Nothing connects until Connect().
  explicit Session(std::string conninfo);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Opens the connection unless it is open. Returns an empty string on success, else why not.
  std::string Connect();
  void Close();
  bool is_open() const;
  // The socket descriptor while open, else -1 (for the Watchdog).
  int socket() const;

  // Runs `sql` with $1 = id as text in a read-only transaction that starts with
  // SET LOCAL statement_timeout = timeout_ms. With `prepared`, the statement is prepared once per
  // connection under a name derived from `statement`; else it is sent with its parameter each time
  // (PgBouncer transaction mode). An id containing a NUL byte cannot be sent as text: it is
  // answered kError "id contains a NUL byte" without a query. Requires is_open(). Never throws.
  SessionResult Load(size_t statement, const std::string& sql, const std::string& id,
                     int64_t timeout_ms, bool prepared);

  // Runs `batch_sql` with $1 = EncodeTextArray(ids) under the same transaction, timeout and
  // preparation rules as Load() (prepared under its own name); ids containing a NUL byte are left
  // out of the array and answered as Load() answers them. `ids` should be distinct. The
  // result needs at least two columns (the id as text, then the value); with fewer, every id is
  // answered kError. Requires is_open(). Never throws.
  SessionBatchResult LoadBatch(size_t statement, const std::string& batch_sql,
                               std::span<const std::string> ids, int64_t timeout_ms, bool prepared);

  // Runs kLagSql under the same timeout rule. Requires is_open(). Never throws.
  HealthResult CheckHealth(int64_t timeout_ms);
  // Runs kCurrentPositionSql (on the primary). Never throws.
  PrimaryPosition CurrentPosition(int64_t timeout_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// First line of a libpq / libpqxx error text, without the "ERROR:  " style severity prefix.
std::string FirstErrorLine(const std::string& what);

}  // namespace corral::pg

// Test support for integration tests against the real PostgreSQL started by deploy/run-tests.sh:
// where it is, running SQL through psql, counting queries with pg_stat_statements, stopping and
// starting nodes, and firing herds of concurrent RESP/HTTP requests at corral-server.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/server_process.h"

namespace corral::integration {

// The cluster from CORRAL_TEST_PG_PRIMARY / CORRAL_TEST_PG_REPLICAS / CORRAL_TEST_PG_LOCAL.
struct PgCluster {
  std::string primary;
  std::vector<std::string> replicas;
  std::string pg_local;  // path of deploy/pg-local.sh (CORRAL_PG_DIR/PORT are in the environment)

  // Empty `primary` when the variables are unset.
  static PgCluster FromEnv();
  bool available() const { return !primary.empty() && !replicas.empty(); }

  // Runs `sql` on `conn` with psql; the trimmed output, or "ERROR: ..." on failure.
  static std::string Sql(const std::string& conn, const std::string& sql);
  // pg_stat_statements_reset() on every node.
  void ResetStatements() const;
  // Sum of calls, over every node, of statements whose text contains `needle`.
  int64_t Calls(const std::string& needle) const;
  // The same on one node (`conn`).
  static int64_t CallsOn(const std::string& conn, const std::string& needle);
  // A WAL position at or past every commit made so far on the primary, and written to its disk
  // (so streamed to the replicas and the slots); "ERROR: ..." if psql fails. See the .cc.
  std::string FlushedPosition() const;
  // Waits until every replica has replayed FlushedPosition().
  bool WaitReplayed(Millis timeout = Millis(10000)) const;
  // Pauses WAL replay on every replica and waits until each says it is paused (false if one does
  // not within 5 s); ResumeReplay resumes it everywhere.
  bool PauseReplay() const;
  void ResumeReplay() const;
  // deploy/pg-local.sh ACTION NODE (stop-node, start-node, ...); true on exit 0.
  bool Node(const std::string& action, const std::string& node) const;
  // The seeded users row's version on the primary (0 if psql fails), and the same after an UPDATE
  // that increments it.
  int64_t UserVersion(int id) const;
  int64_t BumpUserVersion(int id) const;
  // The JSON "postgres" section for corral's config.
  std::string PostgresJson(const std::string& extra = "") const;
};

// One answer in a herd: the raw reply and how long it took from its send.
struct HerdReply {
  std::string reply;  // RESP reply bytes, or the whole HTTP response
  double ms = -1;     // -1: no reply by the deadline
};

// Opens one connection per command, sends each command at once, and collects every reply with
// epoll (so replies are timed as they arrive, not one after another). `commands` are RESP
// commands, e.g. {"GET", "slow:7"}.
std::vector<HerdReply> RespHerd(uint16_t port,
                                const std::vector<std::vector<std::string>>& commands,
                                Millis timeout = Millis(20000));
// The same over HTTP: one GET of `targets[i]` per connection ("Connection: close").
std::vector<HerdReply> HttpHerd(uint16_t port, const std::vector<std::string>& targets,
                                Millis timeout = Millis(20000));
// `clients_per_key` concurrent GETs of each of the cold keys NS:first_id+1 .. NS:first_id+keys (a
// namespace whose query returns the seeded users.name), all sent at once over RESP; checks that
// every answer is its own key's row ("user <id>") and returns the replies.
std::vector<HerdReply> ManyKeysHerd(uint16_t port, const std::string& ns, int first_id, int keys,
                                    int clients_per_key);

// The bulk string of a RESP reply ("$3\r\nabc\r\n" -> "abc"); "<nil>" for "$-1", the line itself
// for +, -, : replies.
std::string RespValue(const std::string& reply);

// p-th percentile (0..100) of the replies' latencies (ignores missing replies).
double Percentile(const std::vector<HerdReply>& replies, double p);

// Prints a "[figures]" line: clients, database queries and latency percentiles of a herd.
void ReportHerd(const char* what, const std::vector<HerdReply>& replies, int64_t queries);

// Waits until corral's /readyz/database says every pool has a usable replica.
bool WaitReady(uint16_t http_port, Millis timeout = Millis(30000));

// Waits until corral's invalidation source is connected: the NOTIFY listener, or with `wal` the
// WAL stream (with `tier`, one node of the fleet reads the WAL and the others report standing by).
// On connecting, the source marks everything stale and voids every lease, so a load that raced it
// has its fill dropped and the next reader loads again: a test that counts queries waits first.
bool WaitInvalidationConnected(ServerProcess& server, bool wal = false, bool tier = false,
                               Millis timeout = Millis(30000));

// Prometheus sample value from corral's /metrics, e.g. Metric(port,
// "corral_requests_total{proto=\"resp\",result=\"waited\"}"); 0 if absent.
double Metric(uint16_t http_port, const std::string& sample);

// Base fixture for tests against the real cluster: skips without one (fails when env CI is set),
// resets pg_stat_statements before each test, and starts corral in front of the cluster.
class PgTest : public ::testing::Test {
 protected:
  void SetUp() override;
  // corral with `namespaces` (a JSON object), extra top-level config fields `extra` (e.g.
  // "\"lease\": {...}") and extra "postgres" fields `pg_extra`; waits until /readyz/database (nodes
  // restarted by an earlier test may still be coming up). nullptr (and a test failure) if not.
  std::unique_ptr<ServerProcess> StartCorral(const std::string& namespaces,
                                             const std::string& extra = "",
                                             const std::string& pg_extra = "");
  // For tests that stop, pause or lag nodes: resumes and starts every node, resumes replay, and
  // waits until the replicas have caught up.
  void RestoreNodes();

  PgCluster pg_;
};

}  // namespace corral::integration

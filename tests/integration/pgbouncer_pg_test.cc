// corral through PgBouncer in transaction mode (SPEC "Freshness promise", issue 5 item 2): loads go
// through a bouncer in front of each replica, LISTEN goes direct to the primary. The bouncers come
// from deploy/pgbouncer-local.sh, named by CORRAL_TEST_PG_BOUNCER_REPLICAS (deploy/run-tests.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSlowQuery = "SELECT name FROM users, pg_sleep(0.2) WHERE id = $1::bigint";
constexpr const char* kVersionQuery = "SELECT version::text FROM users WHERE id = $1::bigint";

std::vector<std::string> SplitList(const char* list) {
  std::vector<std::string> out;
  std::stringstream ss(list == nullptr ? "" : list);
  std::string part;
  while (std::getline(ss, part, ';')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// The rows of a psql unaligned result, split into fields at '|'.
std::vector<std::vector<std::string>> Rows(const std::string& out) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, '|')) fields.push_back(field);
    rows.push_back(std::move(fields));
  }
  return rows;
}

class PgBouncerPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = PgCluster::FromEnv();
    bouncers_ = SplitList(std::getenv("CORRAL_TEST_PG_BOUNCER_REPLICAS"));
    if (!pg_.available() || bouncers_.empty()) {
      if (std::getenv("CI") != nullptr) {
        FAIL() << "CORRAL_TEST_PG_* or CORRAL_TEST_PG_BOUNCER_REPLICAS unset: run through "
                  "deploy/run-tests.sh";
      }
      GTEST_SKIP() << "no PgBouncer: set CORRAL_TEST_PG_* and CORRAL_TEST_PG_BOUNCER_REPLICAS "
                      "(deploy/run-tests.sh does)";
    }
    // The premise of every test here: each bouncer pools by transaction.
    for (const auto& bouncer : bouncers_) {
      std::string config = PgCluster::Sql(Console(bouncer), "SHOW CONFIG");
      ASSERT_NE(("\n" + config).find("\npool_mode|transaction|"), std::string::npos)
          << bouncer << ": " << config;
    }
    pg_.ResetStatements();
  }

  // The bouncer's admin console (user app is in its stats_users).
  static std::string Console(const std::string& bouncer) {
    std::string conn = bouncer;
    size_t at = conn.find("dbname=app");
    if (at != std::string::npos) conn.replace(at, 10, "dbname=pgbouncer");
    return conn;
  }

  // corral with loads through `replicas` (default: every bouncer) and the primary (LISTEN) direct.
  // `pg_extra` adds to the "postgres" section; "prepared_statements" is false unless it says so.
  std::unique_ptr<ServerProcess> StartCorral(const std::string& namespaces,
                                             const std::string& pg_extra = "",
                                             std::vector<std::string> replicas = {}) {
    PgCluster through = pg_;
    through.replicas = replicas.empty() ? bouncers_ : std::move(replicas);
    std::string postgres = pg_extra.find("\"prepared_statements\"") == std::string::npos
                               ? "\"prepared_statements\": false"
                               : "";
    if (!pg_extra.empty()) postgres += (postgres.empty() ? "" : ", ") + pg_extra;
    ServerOptions options;
    options.config_json = "{\"threads\": 2, \"postgres\": " + through.PostgresJson(postgres) +
                          ", \"namespaces\": " + namespaces + "}";
    std::string error;
    auto server = ServerProcess::Start(options, &error);
    EXPECT_NE(server, nullptr) << error;
    // The listener (on the primary, not through a bouncer) voids every lease when it connects:
    // a herd that raced it would load some keys twice.
    if (server != nullptr && !WaitInvalidationConnected(*server)) {
      ADD_FAILURE() << "corral's invalidation listener never connected:\n" << server->Stderr();
      return nullptr;
    }
    return server;
  }

  // The console as an admin (postgres is in the bouncers' admin_users).
  static std::string Admin(const std::string& bouncer) {
    std::string conn = Console(bouncer);
    size_t at = conn.find("user=app");
    if (at != std::string::npos) conn.replace(at, 8, "user=postgres");
    return conn;
  }

  // Server connections of database app on `bouncer`, all or only those in a transaction now
  // (SHOW SERVERS: type|user|database|state|...).
  static int AppServers(const std::string& bouncer, bool active_only) {
    int servers = 0;
    for (const auto& row : Rows(PgCluster::Sql(Console(bouncer), "SHOW SERVERS"))) {
      if (row.size() > 3 && row[2] == "app" && (!active_only || row[3] == "active")) ++servers;
    }
    return servers;
  }

  // Closes the bouncer's server connections to database app (as they are released), and with them
  // whatever session state earlier clients left there; true once none is left.
  static bool CloseServerConnections(const std::string& bouncer) {
    if (PgCluster::Sql(Admin(bouncer), "RECONNECT app").rfind("ERROR", 0) == 0) return false;
    return WaitFor([&] { return AppServers(bouncer, false) == 0; }, Millis(10000));
  }

  // Client connections to database app on every bouncer (SHOW CLIENTS: type|user|database|...).
  int BouncerAppClients() const {
    int clients = 0;
    for (const auto& bouncer : bouncers_) {
      for (const auto& row : Rows(PgCluster::Sql(Console(bouncer), "SHOW CLIENTS"))) {
        if (row.size() > 2 && row[1] == "app" && row[2] == "app") ++clients;
      }
    }
    return clients;
  }

  PgCluster pg_;  // direct connections: counting queries, writing rows
  std::vector<std::string> bouncers_;
};

// 500 concurrent clients on one cold key whose query takes 200 ms: one query reaches the replicas
// (pg_stat_statements on the servers behind the bouncers), and all 500 get its result.
TEST_F(PgBouncerPgTest, HerdOnOneColdKeyCausesOneQuery) {
  auto server = StartCorral(std::string("{\"slow\": {\"query\": \"") + kSlowQuery + "\"}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  // corral's loader connections are the bouncers' clients.
  EXPECT_GE(BouncerAppClients(), 1);
  std::vector<std::vector<std::string>> commands(500, {"GET", "slow:4343"});
  std::vector<HerdReply> replies = RespHerd(server->resp_port(), commands);
  for (size_t i = 0; i < replies.size(); ++i) {
    ASSERT_EQ(RespValue(replies[i].reply), "user 4343") << "client " << i;
  }
  int64_t queries = pg_.Calls("pg_sleep");
  ReportHerd("through PgBouncer: cold key, 500 RESP clients, 200 ms query", replies, queries);
  EXPECT_EQ(queries, 1);
}

// 200 cold keys x 5 clients each, spread over both bouncers: each key is loaded exactly once and
// every client gets its own key's row.
TEST_F(PgBouncerPgTest, ManyDistinctKeys) {
  auto server = StartCorral(
      "{\"slow\": {\"query\": \"SELECT name FROM users, pg_sleep(0.05) WHERE id = $1::bigint\","
      " \"max_inflight_loads\": 256}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  std::vector<HerdReply> replies = ManyKeysHerd(server->resp_port(), "slow", 2000, 200, 5);
  int64_t queries = pg_.Calls("pg_sleep");
  ReportHerd("through PgBouncer: 200 keys x 5 clients", replies, queries);
  EXPECT_EQ(queries, 200);
}

// statement_timeout_ms still holds: corral sets it with SET LOCAL inside each load's transaction,
// which a transaction-mode bouncer carries to the server. The setting ends with the transaction,
// so it does not leak into the pooled server connection that later clients get.
TEST_F(PgBouncerPgTest, StatementTimeoutIsEnforced) {
  auto server = StartCorral(
      "{\"sleepy\": {\"query\": \"SELECT name FROM users, pg_sleep(5) WHERE id = $1::bigint\"},"
      " \"fast\": {\"query\": \"SELECT name FROM users WHERE id = $1::bigint\"}}",
      "\"statement_timeout_ms\": 300");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  auto replies = RespHerd(server->resp_port(), {{"GET", "sleepy:1"}}, Millis(10000));
  const std::string& reply = replies[0].reply;
  EXPECT_EQ(reply.rfind("-ERR upstream: ", 0), 0u) << reply;
  EXPECT_NE(reply.find("canceling statement due to statement timeout"), std::string::npos) << reply;
  EXPECT_GE(replies[0].ms, 0);
  EXPECT_LT(replies[0].ms, 3000) << "the 5 s query was not cut off";
  // The pooled server connections still work for corral...
  auto fast = RespHerd(server->resp_port(), {{"GET", "fast:12"}, {"GET", "fast:13"}});
  EXPECT_EQ(RespValue(fast[0].reply), "user 12");
  EXPECT_EQ(RespValue(fast[1].reply), "user 13");
  // ...and for other clients, without corral's timeout. Bouncers reuse the most recently released
  // server connection first, so this is likely the very connection the load ran on.
  for (const auto& bouncer : bouncers_) {
    EXPECT_EQ(PgCluster::Sql(bouncer, "SHOW statement_timeout"), "0") << bouncer;
  }
}

// Invalidation still works: the listener's LISTEN goes direct to the primary (a transaction-mode
// bouncer cannot carry it), and the trigger's NOTIFY there voids the entry loaded through the
// bouncer.
TEST_F(PgBouncerPgTest, NotifyInvalidatesThroughDirectListener) {
  auto server = StartCorral(std::string("{\"user\": {\"query\": \"") + kVersionQuery +
                            "\", \"ttl_ms\": 600000}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->WaitForStderr("event=invalidation_listener_connected", Millis(10000)));
  ASSERT_TRUE(WaitReady(server->http_port()));
  EXPECT_GE(std::atoi(PgCluster::Sql(pg_.primary,
                                     "SELECT count(*) FROM pg_stat_activity "
                                     "WHERE application_name = 'corral-listener'")
                          .c_str()),
            1)
      << "no listener session on the primary";
  const int id = 9001;
  const std::string key = "user:" + std::to_string(id);
  std::string before = RespValue(RespHerd(server->resp_port(), {{"GET", key}})[0].reply);
  ASSERT_EQ(RespValue(RespHerd(server->resp_port(), {{"GET", key}})[0].reply), before);
  const std::string notify_metric = "corral_invalidations_total{source=\"notify\"}";
  double notifies = Metric(server->http_port(), notify_metric);
  std::string after = PgCluster::Sql(
      pg_.primary, "UPDATE users SET version = version + 1 WHERE id = " + std::to_string(id) +
                       " RETURNING version");
  ASSERT_EQ(std::atoll(after.c_str()), std::atoll(before.c_str()) + 1) << after;
  // Both replicas have the new row, so the reload after the invalidation cannot read the old one.
  // (PgCluster::WaitReplayed compares with pg_current_wal_lsn(), the WAL *write* position, which
  // with the cluster's synchronous_commit = off may not yet include this commit.)
  const std::string select = "SELECT version FROM users WHERE id = " + std::to_string(id);
  for (const auto& replica : pg_.replicas) {
    ASSERT_TRUE(WaitFor([&] { return PgCluster::Sql(replica, select) == after; }, Millis(10000)))
        << replica << " did not replay the update";
  }
  ASSERT_TRUE(
      WaitFor([&] { return Metric(server->http_port(), notify_metric) > notifies; }, Millis(5000)))
      << "no NOTIFY reached corral";
  EXPECT_EQ(RespValue(RespHerd(server->resp_port(), {{"GET", key}})[0].reply), after);
  EXPECT_EQ(pg_.Calls("version::text"), 2);
}

// With "prepared_statements": true through a transaction-mode bouncer, loads fail, with two
// PostgreSQL errors. A prepared statement belongs to one server connection, while the bouncer lends
// a client a server connection for one transaction only, and corral names a statement after its
// namespace's index ("corral_0"), the same in every worker and process. So (1) a client handed a
// server connection on which another client prepared the statement gets `prepared statement
// "corral_0" already exists`, and since libpqxx records a statement as prepared only when PREPARE
// succeeded, it tries again, and fails again, on every load; (2) a client that prepared on one
// server connection and is handed another gets `... does not exist`. Which loads fail depends on
// which server connection each transaction gets; under real traffic that is unpredictable. Here it
// is made deterministic: the bouncer reuses the server connection released last
// (server_round_robin = 0), so one transaction at a time always gets the same one. This is why
// "prepared_statements" must be false behind PgBouncer 1.18 in transaction mode.
TEST_F(PgBouncerPgTest, PreparedStatementsFailInTransactionMode) {
  const std::string bouncer = bouncers_[0];
  // Statements that earlier corral processes prepared would make the first load fail too.
  ASSERT_TRUE(CloseServerConnections(bouncer)) << "server connections left on " << bouncer;
  // Two corral processes A and B with one loader connection each, both through the first bouncer,
  // with no health check after the first: nothing but the loads below runs transactions there.
  const std::string namespaces =
      "{\"p\": {\"query\": \"SELECT name FROM users WHERE id = $1::bigint\"}}";
  const std::string pg =
      "\"prepared_statements\": true, \"health_check_interval_ms\": 600000,"
      " \"pools\": {\"default\": {\"connections\": 1}}";
  auto a = StartCorral(namespaces, pg, {bouncer});
  auto b = StartCorral(namespaces, pg, {bouncer});
  ASSERT_TRUE(a != nullptr && b != nullptr);
  ASSERT_TRUE(WaitReady(a->http_port()));
  ASSERT_TRUE(WaitReady(b->http_port()));
  auto get = [](ServerProcess& server, int id) {
    return RespValue(RespHerd(server.resp_port(), {{"GET", "p:" + std::to_string(id)}})[0].reply);
  };
  const std::string exists = "-ERR upstream: prepared statement \"corral_0\" already exists";
  const std::string missing = "-ERR upstream: prepared statement \"corral_0\" does not exist";
  // A prepares corral_0 on the server connection S and loads.
  EXPECT_EQ(get(*a, 11), "user 11");
  // B is handed S as well, where corral_0 exists: its PREPARE fails, on every load.
  EXPECT_EQ(get(*b, 12), exists);
  EXPECT_EQ(get(*b, 13), exists);
  // A's statement is still on S.
  EXPECT_EQ(get(*a, 14), "user 14");
  // While another client holds S in a transaction, A is handed a fresh server connection, where
  // corral_0 was never prepared.
  std::thread holder([&] { PgCluster::Sql(bouncer, "SELECT pg_sleep(1)"); });
  bool held = WaitFor([&] { return AppServers(bouncer, true) >= 1; }, Millis(5000));
  std::string during = held ? get(*a, 15) : "(S was not taken)";
  holder.join();
  EXPECT_TRUE(held);
  EXPECT_EQ(during, missing);
}

}  // namespace
}  // namespace corral::integration

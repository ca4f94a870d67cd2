// The string and key commands on read-through keys against the real PostgreSQL: a SETNX/SETEX
// that lands while the key's load is in flight voids it as SET does (the late row is not cached
// as fresh), and a refused write leaves the load and its result alone.
#include <gtest/gtest.h>

#include <string>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

constexpr const char* kSlowVersion =
    "SELECT version::text FROM users, pg_sleep(0.3) WHERE id = $1::bigint";

class StringCommandsPgTest : public PgTest {
 protected:
  std::unique_ptr<ServerProcess> StartSlow() {
    return StartCorral(std::string("{\"ver\": {\"query\": \"") + kSlowVersion + "\"}}");
  }
  // Starts a GET of `key` on a raw connection and waits until its load is under way.
  std::unique_ptr<TcpClient> StartLoad(const ServerProcess& server, const std::string& key) {
    auto reader = TcpClient::Connect(server.resp_port());
    EXPECT_TRUE(reader);
    if (!reader) return nullptr;
    EXPECT_TRUE(
        reader->Send("*2\r\n$3\r\nGET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n"));
    EXPECT_TRUE(WaitFor([&] { return Metric(server.http_port(), "corral_lease_waiters") >= 1; },
                        Millis(5000)));
    return reader;
  }
  static std::string Cmd(redisContext* c, const std::vector<std::string>& args) {
    return ReplyText(RedisCmd(c, args).get());
  }
};

TEST_F(StringCommandsPgTest, SetexAndSetnxDuringALoadVoidItAsSetDoes) {
  auto server = StartSlow();
  ASSERT_NE(server, nullptr);
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_TRUE(c);
  for (const auto& [key, write] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"ver:610", {"SETEX", "ver:610", "100", "written"}},
           {"ver:611", {"SETNX", "ver:611", "written"}},
           {"ver:612", {"PSETEX", "ver:612", "100000", "written"}}}) {
    auto reader = StartLoad(*server, key);
    ASSERT_TRUE(reader);
    EXPECT_EQ(Cmd(c.get(), write), write[0] == "SETNX" ? ":1" : "+OK") << key;
    ASSERT_TRUE(reader->ReadUntil("\r\n", Millis(5000))) << key;
    // Once the load's row has come back (and been dropped), the written value is still there.
    ASSERT_TRUE(WaitFor([&] { return Metric(server->http_port(), "corral_lease_waiters") == 0; },
                        Millis(5000)));
    EXPECT_EQ(Cmd(c.get(), {"GET", key}), "$written") << key;
    EXPECT_EQ(Cmd(c.get(), {"STRLEN", key}), ":7") << key;
  }
  EXPECT_EQ(pg_.Calls("pg_sleep"), 3);
}

TEST_F(StringCommandsPgTest, RefusedWritesLeaveTheLoadAlone) {
  auto server = StartSlow();
  ASSERT_NE(server, nullptr);
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_TRUE(c);
  const int64_t version = pg_.UserVersion(620);
  auto reader = StartLoad(*server, "ver:620");
  ASSERT_TRUE(reader);
  const std::string refused = "-ERR read-through key 'ver:620': ";
  EXPECT_EQ(Cmd(c.get(), {"INCR", "ver:620"}), refused + "INCR is not supported on namespace keys");
  EXPECT_EQ(Cmd(c.get(), {"GETSET", "ver:620", "x"}),
            refused + "GETSET is not supported on namespace keys");
  EXPECT_EQ(Cmd(c.get(), {"MSET", "plain", "1", "ver:620", "x"}),
            refused + "MSET is not supported on namespace keys");
  // A read that does not load sees nothing yet.
  EXPECT_EQ(Cmd(c.get(), {"STRLEN", "ver:620"}), ":0");
  ASSERT_TRUE(reader->ReadUntil(std::to_string(version), Millis(5000))) << reader->received();
  // The row is cached as loaded; the cached-only reads see it now.
  EXPECT_EQ(Cmd(c.get(), {"GET", "ver:620"}), "$" + std::to_string(version));
  EXPECT_EQ(Cmd(c.get(), {"STRLEN", "ver:620"}),
            ":" + std::to_string(std::to_string(version).size()));
  EXPECT_EQ(Cmd(c.get(), {"TYPE", "ver:620"}), "+string");
  EXPECT_EQ(Cmd(c.get(), {"EXISTS", "plain"}), ":0");
  EXPECT_EQ(pg_.Calls("pg_sleep"), 1);
}

// Read-through keys in a transaction (docs/protocol.md "Transactions"): a GET inside EXEC answers
// as it would outside it, loading a cold key (every GET of it in the transaction shares the one
// load) and EXEC's reply waits for it; WATCH on a read-through key aborts EXEC when its row changes
// (the invalidation corral hears), and only then.
TEST_F(StringCommandsPgTest, TransactionsReadThroughKeysAsOutsideAndWatchTheirRows) {
  auto server = StartCorral(
      R"({"user": {"query": "SELECT version::text AS tx_version FROM users WHERE id = $1::bigint"}})");
  ASSERT_NE(server, nullptr);
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_TRUE(c);
  const int id = 630;
  const std::string key = "user:" + std::to_string(id);
  std::string version = std::to_string(pg_.UserVersion(id));
  pg_.ResetStatements();
  EXPECT_EQ(Cmd(c.get(), {"MULTI"}), "+OK");
  EXPECT_EQ(Cmd(c.get(), {"GET", key}), "+QUEUED");
  EXPECT_EQ(Cmd(c.get(), {"SET", "plain", "1"}), "+QUEUED");
  EXPECT_EQ(Cmd(c.get(), {"MGET", key, "plain"}), "+QUEUED");
  EXPECT_EQ(Cmd(c.get(), {"EXEC"}), "[$" + version + ", +OK, [$" + version + ", $1]]");
  EXPECT_EQ(pg_.Calls("tx_version"), 1);

  // Nothing changed: EXEC runs.
  EXPECT_EQ(Cmd(c.get(), {"WATCH", key}), "+OK");
  EXPECT_EQ(Cmd(c.get(), {"MULTI"}), "+OK");
  EXPECT_EQ(Cmd(c.get(), {"GET", key}), "+QUEUED");
  EXPECT_EQ(Cmd(c.get(), {"EXEC"}), "[$" + version + "]");

  // The row changes in PostgreSQL: EXEC aborts.
  const std::string notified = "corral_invalidations_total{source=\"notify\"}";
  const double before = Metric(server->http_port(), notified);
  EXPECT_EQ(Cmd(c.get(), {"WATCH", key}), "+OK");
  version = std::to_string(pg_.BumpUserVersion(id));
  ASSERT_TRUE(
      WaitFor([&] { return Metric(server->http_port(), notified) > before; }, Millis(5000)));
  EXPECT_EQ(Cmd(c.get(), {"MULTI"}), "+OK");
  EXPECT_EQ(Cmd(c.get(), {"GET", key}), "+QUEUED");
  EXPECT_EQ(Cmd(c.get(), {"EXEC"}), "(nil)");
  ASSERT_TRUE(pg_.WaitReplayed());
  EXPECT_EQ(Cmd(c.get(), {"GET", key}), "$" + version);
  EXPECT_EQ(pg_.Calls("tx_version"), 2);
}

}  // namespace
}  // namespace corral::integration

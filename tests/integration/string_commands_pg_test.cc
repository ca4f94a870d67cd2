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

}  // namespace
}  // namespace corral::integration

// Database outages against the real cluster (SPEC rules 2, 5, 7, 9). These stop and start
// PostgreSQL nodes, so ctest runs them alone (RUN_SERIAL).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

class OutagePgTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (!IsSkipped() && pg_.pg_local.empty()) GTEST_SKIP() << "CORRAL_TEST_PG_LOCAL unset";
  }
  // Whatever happened, leave every node running for the next test.
  void TearDown() override { RestoreNodes(); }

  static std::pair<std::string, double> TimedGet(uint16_t port, const std::string& key) {
    auto r = RespHerd(port, {{"GET", key}}, Millis(15000));
    return {r[0].reply, r[0].ms};
  }
};

// Issue 4: primary and replicas stopped. A key past its TTL but within stale_ms is served at once;
// a cold key answers an error within wait_timeout_ms and never hangs; when the databases return,
// reads recover without restarting corral.
TEST_F(OutagePgTest, StaleServedWhileDatabaseIsDownAndReadsRecover) {
  auto server = StartCorral(
      "{\"u\": {\"query\": \"SELECT name FROM users WHERE id = $1::bigint\", \"ttl_ms\": 300,"
      " \"ttl_jitter\": 0, \"stale_ms\": 600000}}",
      "\"lease\": {\"wait_timeout_ms\": 800, \"error_holdoff_ms\": 200}",
      "\"statement_timeout_ms\": 500, \"health_check_interval_ms\": 200");
  ASSERT_NE(server, nullptr);
  for (int k = 1; k <= 5; ++k) {
    ASSERT_EQ(RespValue(TimedGet(server->resp_port(), "u:" + std::to_string(k)).first),
              "user " + std::to_string(k));
  }
  ASSERT_TRUE(pg_.Node("stop-node", "replica1"));
  ASSERT_TRUE(pg_.Node("stop-node", "replica2"));
  ASSERT_TRUE(pg_.Node("stop-node", "primary"));
  // Past the TTL (PTTL reports -2 once an entry is no longer fresh).
  ASSERT_TRUE(WaitFor(
      [&] {
        return RespValue(RespHerd(server->resp_port(), {{"PTTL", "u:1"}})[0].reply) == ":-2";
      },
      Millis(5000)));
  for (int k = 1; k <= 5; ++k) {
    auto [reply, ms] = TimedGet(server->resp_port(), "u:" + std::to_string(k));
    EXPECT_EQ(RespValue(reply), "user " + std::to_string(k));
    std::printf("[figures] stale read with the database down: %.2f ms\n", ms);
  }
  auto http = HttpHerd(server->http_port(), {"/v1/cache/u/1"});
  EXPECT_NE(http[0].reply.find("X-Cache: STALE"), std::string::npos) << http[0].reply;
  // A cold key: an error (or BUSY) within the wait bound, never a hang.
  auto [cold, cold_ms] = TimedGet(server->resp_port(), "u:777");
  EXPECT_TRUE(cold.rfind("-ERR upstream: ", 0) == 0 || cold.rfind("-BUSY", 0) == 0) << cold;
  EXPECT_GE(cold_ms, 0) << "no answer at all";
  EXPECT_LT(cold_ms, 800 + 2000) << "answered later than wait_timeout_ms allows";
  std::printf("[figures] cold read with the database down: %.1f ms (%s)\n", cold_ms,
              cold.substr(0, cold.find("\r\n")).c_str());
  auto http_cold = HttpHerd(server->http_port(), {"/v1/cache/u/778"});
  EXPECT_TRUE(http_cold[0].reply.rfind("HTTP/1.1 502", 0) == 0 ||
              http_cold[0].reply.rfind("HTTP/1.1 503", 0) == 0)
      << http_cold[0].reply;
  EXPECT_EQ(RespHerd(server->resp_port(), {{"PING"}})[0].reply, "+PONG\r\n");

  ASSERT_TRUE(pg_.Node("start-node", "primary"));
  ASSERT_TRUE(pg_.Node("start-node", "replica1"));
  ASSERT_TRUE(pg_.Node("start-node", "replica2"));
  // Recovery without a restart: the cold key loads, and the stale one is reloaded fresh.
  EXPECT_TRUE(
      WaitFor([&] { return RespValue(TimedGet(server->resp_port(), "u:777").first) == "user 777"; },
              Millis(30000)));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = HttpHerd(server->http_port(), {"/v1/cache/u/1"});
        return r[0].reply.find("X-Cache: HIT") != std::string::npos ||
               r[0].reply.find("X-Cache: MISS") != std::string::npos;
      },
      Millis(30000)));
}

// Issue 3 / rule 9: a replica stopped mid-test: loads fail over to the other replica with no wrong
// answers; after it restarts it serves loads again.
TEST_F(OutagePgTest, ReplicaStoppedMidTestFailsOver) {
  auto server =
      StartCorral("{\"u\": {\"query\": \"SELECT name FROM users WHERE id = $1::bigint\"}}",
                  "\"lease\": {\"wait_timeout_ms\": 3000}", "\"health_check_interval_ms\": 200");
  ASSERT_NE(server, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, bad{0};
  std::string first_bad;
  std::thread reader([&] {
    int id = 2000;
    while (!stop) {
      std::string key = "u:" + std::to_string(id);
      std::string v = RespValue(TimedGet(server->resp_port(), key).first);
      if (v == "user " + std::to_string(id)) {
        ++ok;
      } else if (bad++ == 0) {
        first_bad = key + " -> " + v;
      }
      id = id >= 9000 ? 2000 : id + 1;  // always a cold key: every read is a load
    }
  });
  ASSERT_TRUE(WaitFor([&] { return ok.load() > 20; }, Millis(10000)));
  ASSERT_TRUE(pg_.Node("stop-node", "replica1"));
  int64_t ok_at_stop = ok.load();
  ASSERT_TRUE(WaitFor([&] { return ok.load() > ok_at_stop + 100; }, Millis(20000)));
  ASSERT_TRUE(pg_.Node("start-node", "replica1"));
  // replica1 is used again once its health check passes.
  PgCluster::Sql(pg_.replicas[0], "SELECT pg_stat_statements_reset()");
  bool used_again =
      WaitFor([&] { return PgCluster::CallsOn(pg_.replicas[0], "FROM users WHERE id") > 0; },
              Millis(20000));
  stop = true;
  reader.join();
  std::printf("[figures] failover: %lld loads answered right, %lld wrong\n",
              static_cast<long long>(ok.load()), static_cast<long long>(bad.load()));
  EXPECT_EQ(bad.load(), 0) << first_bad;
  EXPECT_TRUE(used_again) << "replica1 never served a load after it restarted";
}

}  // namespace
}  // namespace corral::integration

// Issue 12: readiness means "can serve". With every PostgreSQL node stopped corral stays in the
// load balancer (/readyz 200) while /readyz/database and corral_replica_up report the outage.
// Stops and starts PostgreSQL nodes, so ctest runs it alone (RUN_SERIAL, as outage_*).
#include <gtest/gtest.h>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

class OutageReadinessPgTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (!IsSkipped() && pg_.pg_local.empty()) GTEST_SKIP() << "CORRAL_TEST_PG_LOCAL unset";
  }
  // Whatever happened, leave every node running for the next test.
  void TearDown() override { RestoreNodes(); }

  static int Status(uint16_t http_port, const std::string& target) {
    std::optional<HttpResponse> r = HttpRequestOnce(http_port, "GET", target);
    return r ? r->status : 0;
  }

  double ReplicasUp(uint16_t http_port) const {
    double up = 0;
    for (size_t i = 0; i < pg_.replicas.size(); ++i) {
      up += Metric(http_port, "corral_replica_up{replica=\"replica" + std::to_string(i) + "\"}");
    }
    return up;
  }
};

TEST_F(OutageReadinessPgTest, ReadyzStaysUpWhileEveryDatabaseNodeIsDown) {
  constexpr int kWaitTimeoutMs = 5000;
  auto server = StartCorral(
      "{\"u\": {\"query\": \"SELECT name FROM users WHERE id = $1::bigint\", \"ttl_ms\": 300,"
      " \"ttl_jitter\": 0, \"stale_ms\": 600000}}",
      "\"lease\": {\"wait_timeout_ms\": " + std::to_string(kWaitTimeoutMs) +
          ", \"error_holdoff_ms\": 200}",
      "\"statement_timeout_ms\": 500, \"health_check_interval_ms\": 200");
  ASSERT_NE(server, nullptr);
  const uint16_t http = server->http_port();
  for (int k = 1; k <= 5; ++k) {
    ASSERT_EQ(
        RespValue(RespHerd(server->resp_port(), {{"GET", "u:" + std::to_string(k)}})[0].reply),
        "user " + std::to_string(k));
  }
  EXPECT_EQ(Status(http, "/readyz"), 200);
  EXPECT_EQ(Status(http, "/readyz/database"), 200);
  EXPECT_EQ(ReplicasUp(http), static_cast<double>(pg_.replicas.size()));

  for (const char* node : {"replica1", "replica2", "primary"})
    ASSERT_TRUE(pg_.Node("stop-node", node));
  // The health checks notice within a few intervals.
  EXPECT_TRUE(
      WaitFor([&] { return Status(http, "/readyz/database") == 503; }, Millis(20000), Millis(50)))
      << "/readyz/database did not report the outage";
  EXPECT_TRUE(WaitFor([&] { return ReplicasUp(http) == 0; }, Millis(20000), Millis(50)));
  // Still ready to take traffic: it can serve, and a load balancer must keep it.
  EXPECT_EQ(Status(http, "/readyz"), 200);
  EXPECT_EQ(Status(http, "/healthz"), 200);

  // Warm keys past their TTL are served stale, at once.
  ASSERT_TRUE(WaitFor(
      [&] {
        return RespValue(RespHerd(server->resp_port(), {{"PTTL", "u:1"}})[0].reply) == ":-2";
      },
      Millis(5000)));
  for (int k = 1; k <= 5; ++k) {
    auto r = RespHerd(server->resp_port(), {{"GET", "u:" + std::to_string(k)}}, Millis(15000));
    EXPECT_EQ(RespValue(r[0].reply), "user " + std::to_string(k));
    EXPECT_GE(r[0].ms, 0);
    EXPECT_LT(r[0].ms, 1000) << "a stale value must not wait for the database";
  }
  auto stale = HttpHerd(http, {"/v1/cache/u/2"});
  EXPECT_NE(stale[0].reply.find("X-Cache: STALE"), std::string::npos) << stale[0].reply;

  // A cold key: a clear error at once (dead nodes refuse connections), well before the wait bound.
  auto cold = RespHerd(server->resp_port(), {{"GET", "u:777"}}, Millis(15000));
  EXPECT_TRUE(cold[0].reply.rfind("-ERR upstream: ", 0) == 0 ||
              cold[0].reply.rfind("-BUSY", 0) == 0)
      << cold[0].reply;
  EXPECT_GE(cold[0].ms, 0) << "no answer at all";
  EXPECT_LT(cold[0].ms, kWaitTimeoutMs / 2) << "a cold key waited for the lease bound";
  std::printf("[figures] cold read with every database node down: %.1f ms (%s)\n", cold[0].ms,
              cold[0].reply.substr(0, cold[0].reply.find("\r\n")).c_str());
  auto http_cold = HttpHerd(http, {"/v1/cache/u/778"});
  EXPECT_TRUE(http_cold[0].reply.rfind("HTTP/1.1 502", 0) == 0 ||
              http_cold[0].reply.rfind("HTTP/1.1 503", 0) == 0)
      << http_cold[0].reply;
  EXPECT_LT(http_cold[0].ms, kWaitTimeoutMs / 2);
  EXPECT_EQ(Status(http, "/readyz"), 200);

  // The database returns: both report ready, and the cold key loads.
  for (const char* node : {"primary", "replica1", "replica2"}) {
    ASSERT_TRUE(pg_.Node("start-node", node));
  }
  EXPECT_TRUE(
      WaitFor([&] { return Status(http, "/readyz/database") == 200; }, Millis(30000), Millis(50)));
  EXPECT_EQ(Status(http, "/readyz"), 200);
  EXPECT_TRUE(WaitFor(
      [&] {
        return RespValue(RespHerd(server->resp_port(), {{"GET", "u:777"}})[0].reply) == "user 777";
      },
      Millis(30000), Millis(50)));
  ExitStatus status = server->Stop();
  EXPECT_TRUE(status.ok()) << status.ToString();
}

}  // namespace
}  // namespace corral::integration

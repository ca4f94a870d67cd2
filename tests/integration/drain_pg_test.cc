// Graceful drain with loads in flight (issue 12): requests waiting on a slow PostgreSQL load when
// SIGTERM arrives are answered, whole, before corral exits 0 within shutdown.timeout_ms.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

class DrainPgTest : public PgTest {};

TEST_F(DrainPgTest, LoadsInFlightAreAnsweredBeforeExit) {
  auto server = StartCorral(
      "{\"slow\": {\"query\": \"SELECT name FROM users, pg_sleep(0.8) WHERE id = $1::bigint\"}}",
      "\"shutdown\": {\"drain_grace_ms\": 0, \"timeout_ms\": 5000}",
      "\"statement_timeout_ms\": 5000");
  ASSERT_NE(server, nullptr);
  auto resp = TcpClient::Connect(server->resp_port());
  auto http = TcpClient::Connect(server->http_port());
  ASSERT_NE(resp, nullptr);
  ASSERT_NE(http, nullptr);
  ASSERT_TRUE(resp->Send("*2\r\n$3\r\nGET\r\n$6\r\nslow:1\r\n"));
  ASSERT_TRUE(http->Send(FormatHttpRequest("GET", "/v1/cache/slow/2")));
  ASSERT_TRUE(
      WaitFor([&] { return Metric(server->http_port(), "corral_leases") >= 2; }, Millis(5000)))
      << "the two loads never started";

  const auto sigterm_at = Clock::now();
  server->Signal(SIGTERM);  // no grace: the listeners close at once, the loads are still running
  ASSERT_TRUE(resp->ReadUntil("user 1\r\n", Millis(5000))) << "RESP reply: " << resp->received();
  EXPECT_EQ(resp->received(), "$6\r\nuser 1\r\n");
  std::string error;
  std::optional<HttpResponse> res = ReadHttpResponse(*http, Millis(5000), &error);
  ASSERT_TRUE(res.has_value()) << error;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "user 2");
  EXPECT_EQ(res->Header("connection"), "close") << "draining: no keep-alive";
  // Then each connection closes cleanly, and the process exits 0 within the bound.
  EXPECT_TRUE(resp->WaitForClose(Millis(5000)));
  EXPECT_TRUE(http->WaitForClose(Millis(5000)));
  ExitStatus status = server->Wait(Millis(10000));
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << server->Stderr();
  EXPECT_LT(std::chrono::duration_cast<Millis>(Clock::now() - sigterm_at).count(), 5000 + 3000);
  EXPECT_EQ(server->Stderr().find("event=shutdown_drain_timeout"), std::string::npos);
}

// A query stuck in the database (here for a minute, under a statement_timeout of a minute) must
// not hold the process past shutdown.timeout_ms: nobody waits for its answer once the server
// stopped serving. Before 2026-12-03 corral waited for it, a minute.
TEST_F(DrainPgTest, AQueryStuckInTheDatabaseDoesNotHoldTheExit) {
  auto server = StartCorral(
      R"({"stuck": {"query": "SELECT name FROM users, pg_sleep(60) WHERE id = $1::bigint"}})",
      R"("shutdown": {"drain_grace_ms": 0, "timeout_ms": 1000})",
      R"("statement_timeout_ms": 60000)");
  ASSERT_NE(server, nullptr);
  auto resp = TcpClient::Connect(server->resp_port());
  ASSERT_NE(resp, nullptr);
  ASSERT_TRUE(resp->Send("*2\r\n$3\r\nGET\r\n$7\r\nstuck:1\r\n"));
  ASSERT_TRUE(
      WaitFor([&] { return Metric(server->http_port(), "corral_leases") >= 1; }, Millis(5000)))
      << "the load never started";
  const auto sigterm_at = Clock::now();
  server->Signal(SIGTERM);
  ExitStatus status = server->Wait(Millis(10000));
  const auto took = std::chrono::duration_cast<Millis>(Clock::now() - sigterm_at).count();
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << server->Stderr();
  std::printf("[figures] exit %lld ms after SIGTERM with a query stuck in the database\n",
              static_cast<long long>(took));
  EXPECT_LT(took, 1000 + 3000);
  EXPECT_TRUE(resp->WaitForClose(Millis(5000)));
}

}  // namespace
}  // namespace corral::integration

// http.max_pipelined (SPEC "HTTP endpoint": a bounded queue of pipelined responses per
// connection): a connection's pipelined requests are handled while earlier responses are still
// pending, never more than max_pipelined at a time, and the responses come back in request order.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

class HttpPipelinePgTest : public PgTest {};

TEST_F(HttpPipelinePgTest, PipelinedLoadsOverlapUpToTheBoundAndAnswerInOrder) {
  constexpr int kBound = 4;
  constexpr int kRequests = 16;
  constexpr int kFirstId = 300;
  auto server = StartCorral(
      "{\"slow\": {\"query\": \"SELECT name FROM users, pg_sleep(0.3) WHERE id = $1::bigint\"}}",
      "\"http\": {\"max_pipelined\": " + std::to_string(kBound) + "}",
      "\"statement_timeout_ms\": 5000");
  ASSERT_NE(server, nullptr);
  auto conn = TcpClient::Connect(server->http_port());
  ASSERT_NE(conn, nullptr);
  std::string batch;
  for (int i = 0; i < kRequests; ++i) {
    batch += FormatHttpRequest("GET", "/v1/cache/slow/" + std::to_string(kFirstId + i));
  }

  // Loads in flight (corral_leases), sampled while the batch is answered.
  std::atomic<bool> done{false};
  std::atomic<int> most{0};
  std::thread sampler([&] {
    while (!done.load()) {
      int now = static_cast<int>(Metric(server->http_port(), "corral_leases"));
      if (now > most.load()) most.store(now);
      std::this_thread::sleep_for(Millis(5));  // sampling a gauge, not waiting for a state
    }
  });
  const auto start = Clock::now();
  ASSERT_TRUE(conn->Send(batch));
  for (int i = 0; i < kRequests; ++i) {
    std::string error;
    std::optional<HttpResponse> res = ReadHttpResponse(*conn, Millis(20000), &error);
    ASSERT_TRUE(res.has_value()) << "response " << i << ": " << error;
    EXPECT_EQ(res->status, 200) << "response " << i;
    EXPECT_EQ(res->body, "user " + std::to_string(kFirstId + i)) << "out of order at " << i;
  }
  const double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  done.store(true);
  sampler.join();
  std::printf(
      "[figures] %d pipelined 300 ms loads, max_pipelined %d: %.0f ms, at most %d at once\n",
      kRequests, kBound, wall_ms, most.load());
  EXPECT_LE(most.load(), kBound) << "more requests in flight than http.max_pipelined";
  EXPECT_GE(most.load(), 2) << "pipelined requests were handled one at a time";
  EXPECT_EQ(pg_.Calls("pg_sleep"), kRequests);
  // The connection is still usable afterwards.
  ASSERT_TRUE(conn->Send(FormatHttpRequest("GET", "/v1/cache/slow/" + std::to_string(kFirstId))));
  std::optional<HttpResponse> again = ReadHttpResponse(*conn, Millis(5000));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->body, "user " + std::to_string(kFirstId));
}

}  // namespace
}  // namespace corral::integration

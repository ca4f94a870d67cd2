// Listener behaviour without a database: an unreachable primary is retried quietly (no disconnect
// reported for a connection that never existed) and Stop() returns promptly.
#include "pg-loader/listener.h"

#include <gtest/gtest.h>

#include <atomic>

#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::LoopbackSocket;

TEST(ListenerTest, UnreachablePrimaryReportsNothingAndStopsPromptly) {
  LoopbackSocket refused(/*listen=*/false);
  std::atomic<int> calls{0};
  Listener listener(
      refused.conninfo(), "corral_invalidate", [&](std::string_view) { calls.fetch_add(1); },
      [&] { calls.fetch_add(1); }, [&] { calls.fetch_add(1); });
  listener.Start();
  EXPECT_FALSE(listener.connected());
  const auto start = testing::Clock::now();
  listener.Stop();
  listener.Stop();                                                    // idempotent
  EXPECT_LT(testing::Clock::now() - start, std::chrono::seconds(2));  // not waiting out a back-off
  EXPECT_EQ(calls.load(), 0);
  EXPECT_FALSE(listener.connected());
}

TEST(ListenerTest, StopWithoutStartIsFine) {
  Listener listener("host=127.0.0.1 port=1", "c", nullptr, nullptr);
  listener.Stop();
  EXPECT_FALSE(listener.connected());
}

}  // namespace
}  // namespace corral::pg

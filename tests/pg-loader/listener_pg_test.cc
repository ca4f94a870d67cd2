// The invalidation Listener against a real PostgreSQL primary: NOTIFYs from the users trigger,
// channel filtering, and a killed session reported once and re-established. Uses its own channel
// where it kills sessions, so it never disturbs other tests; the primary restart case is in
// failover_pg_test.cc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "pg-loader/listener.h"
#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::PgEnv;
using testing::RunSql;
using testing::WaitFor;

class Recorder {
 public:
  std::function<void(std::string_view)> OnNotify() {
    return [this](std::string_view payload) {
      std::lock_guard lock(mu_);
      payloads_.emplace_back(payload);
    };
  }
  std::function<void()> OnDisconnect() {
    return [this] { disconnects.fetch_add(1); };
  }
  std::function<void()> OnConnect() {
    return [this] { connects.fetch_add(1); };
  }
  bool Received(const std::string& payload) {
    std::lock_guard lock(mu_);
    return std::find(payloads_.begin(), payloads_.end(), payload) != payloads_.end();
  }
  std::vector<std::string> payloads() {
    std::lock_guard lock(mu_);
    return payloads_;
  }

  std::atomic<int> connects{0};
  std::atomic<int> disconnects{0};

 private:
  std::mutex mu_;
  std::vector<std::string> payloads_;
};

class ListenerPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = PgEnv::FromEnvironment();
    CORRAL_REQUIRE_PG(env_, false);
  }
  PgEnv env_;
};

TEST_F(ListenerPgTest, ReceivesTheUsersTriggerNotification) {
  Recorder recorder;
  Listener listener(env_.primary, "corral_invalidate", recorder.OnNotify(), recorder.OnDisconnect(),
                    recorder.OnConnect());
  EXPECT_FALSE(listener.connected());
  listener.Start();
  ASSERT_TRUE(WaitFor([&] { return listener.connected(); }));
  EXPECT_EQ(recorder.connects.load(), 1);
  // Changes nothing, but the trigger still announces the row.
  RunSql(env_.primary, "UPDATE users SET name = name WHERE id = 9995");
  EXPECT_TRUE(WaitFor([&] { return recorder.Received("user:9995"); }));
  EXPECT_EQ(recorder.disconnects.load(), 0);
}

TEST_F(ListenerPgTest, OnlyItsChannelIsDelivered) {
  const std::string channel = "corral_test_" + std::to_string(::getpid()) + "_filter";
  Recorder recorder;
  Listener listener(env_.primary, channel, recorder.OnNotify(), recorder.OnDisconnect());
  listener.Start();
  ASSERT_TRUE(WaitFor([&] { return listener.connected(); }));
  RunSql(env_.primary, "SELECT pg_notify('" + channel + "_other', 'nope')");
  RunSql(env_.primary,
         "SELECT pg_notify('" + channel + "', 'ns:1'), pg_notify('" + channel + "', 'ns:2')");
  ASSERT_TRUE(WaitFor([&] { return recorder.Received("ns:2"); }));
  // Notifications arrive in commit order, so "nope" would have come before "ns:2".
  EXPECT_EQ(recorder.payloads(), (std::vector<std::string>{"ns:1", "ns:2"}));
}

TEST_F(ListenerPgTest, KilledSessionIsReportedOnceAndListeningResumes) {
  const std::string channel = "corral_test_" + std::to_string(::getpid()) + "_kill";
  Recorder recorder;
  Listener listener(env_.primary, channel, recorder.OnNotify(), recorder.OnDisconnect(),
                    recorder.OnConnect());
  listener.Start();
  ASSERT_TRUE(WaitFor([&] { return listener.connected(); }));
  // Our session is the one whose last statement was LISTEN on this test's own channel.
  EXPECT_EQ(RunSql(env_.primary,
                   "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = "
                   "'LISTEN \"" +
                       channel + "\"'"),
            "1");
  ASSERT_TRUE(WaitFor([&] { return recorder.disconnects.load() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return recorder.connects.load() == 2 && listener.connected(); }));
  RunSql(env_.primary, "SELECT pg_notify('" + channel + "', 'after:1')");
  EXPECT_TRUE(WaitFor([&] { return recorder.Received("after:1"); }));
  EXPECT_EQ(recorder.disconnects.load(), 1);
}

}  // namespace
}  // namespace corral::pg

// tier::Subscriber against a real redis-server: messages on every channel, lost() when the server
// dies or stalls, and subscribed() again after it is back.
#include <atomic>
#include <mutex>

#include "tests/tier/redis_process.h"

namespace corral::tier {
namespace {

using namespace tiertest;

// What the handlers saw, readable from the test thread.
struct Seen {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> messages;
  std::atomic<int> subscribed{0};
  std::atomic<int> lost{0};

  Subscriber::Handlers Handlers() {
    Subscriber::Handlers handlers;
    handlers.message = [this](std::string_view channel, std::string_view message) {
      std::lock_guard lock(mutex);
      messages.emplace_back(std::string(channel), std::string(message));
    };
    handlers.subscribed = [this] { subscribed++; };
    handlers.lost = [this] { lost++; };
    return handlers;
  }
  bool Has(const std::string& channel, const std::string& message) {
    std::lock_guard lock(mutex);
    for (auto& [c, m] : messages) {
      if (c == channel && m == message) return true;
    }
    return false;
  }
  size_t Count() {
    std::lock_guard lock(mutex);
    return messages.size();
  }
};

ClientOptions Options(const std::vector<std::string>& nodes) {
  ClientOptions options;
  options.nodes = nodes;
  options.timeout = 100ms;
  options.reconnect_min = 20ms;
  options.reconnect_max = 200ms;
  return options;
}

class SubscriberRedisTest : public ::testing::Test {
 protected:
  void SetUp() override { CORRAL_REQUIRE_REDIS(); }
};

TEST_F(SubscriberRedisTest, ReceivesMessagesOnEveryChannel) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Seen seen;
  Subscriber subscriber(tier.io(), Options({redis.address()}), {"corral:a", "corral:b"},
                        seen.Handlers());
  subscriber.Start();
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 1; }));
  EXPECT_TRUE(subscriber.subscribed());

  EXPECT_EQ(redis.Cli({"PUBLISH", "corral:a", "one"}), "1");
  EXPECT_EQ(redis.Cli({"PUBLISH", "corral:b", "two\r\nlines"}), "1");
  EXPECT_EQ(redis.Cli({"PUBLISH", "corral:other", "never"}), "0");
  ASSERT_TRUE(WaitFor([&] { return seen.Count() == 2; }));
  EXPECT_TRUE(seen.Has("corral:a", "one"));
  EXPECT_TRUE(seen.Has("corral:b", "two\r\nlines"));
  EXPECT_EQ(seen.lost.load(), 0);

  // The heartbeat keeps a quiet subscription alive (no spurious lost()).
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(seen.lost.load(), 0);
  EXPECT_EQ(seen.subscribed.load(), 1);
  EXPECT_EQ(redis.Cli({"PUBLISH", "corral:a", "three"}), "1");
  EXPECT_TRUE(WaitFor([&] { return seen.Has("corral:a", "three"); }));
}

TEST_F(SubscriberRedisTest, LostWhenKilledAndSubscribedAgainAfterRestart) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Seen seen;
  Subscriber subscriber(tier.io(), Options({redis.address()}), {"corral:inv"}, seen.Handlers());
  subscriber.Start();
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 1; }));

  redis.Kill();
  ASSERT_TRUE(WaitFor([&] { return seen.lost.load() == 1; }, 2s));
  EXPECT_FALSE(subscriber.subscribed());
  std::this_thread::sleep_for(300ms);  // several failed reconnects: still one lost()
  EXPECT_EQ(seen.lost.load(), 1);

  ASSERT_TRUE(redis.Start());
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 2; }, 5s));
  EXPECT_TRUE(subscriber.subscribed());
  EXPECT_EQ(redis.Cli({"PUBLISH", "corral:inv", "after"}), "1");
  EXPECT_TRUE(WaitFor([&] { return seen.Has("corral:inv", "after"); }));
}

TEST_F(SubscriberRedisTest, StalledServerIsLostThenResubscribed) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Seen seen;
  Subscriber subscriber(tier.io(), Options({redis.address()}), {"corral:inv"}, seen.Handlers());
  subscriber.Start();
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 1; }));

  Clock::time_point paused = Clock::now();
  redis.Pause();
  // A heartbeat within a second, declared unanswered after max(2 x timeout, 1.5 s): lost within
  // 2.5 s (plus a timer tick and the machine's slack), and not before the stall bound.
  ASSERT_TRUE(WaitFor([&] { return seen.lost.load() == 1; }, 5s));
  auto took = Clock::now() - paused;
  EXPECT_GE(took, 1400ms);  // (a heartbeat sent just before the pause counts from then)
  EXPECT_LT(took, 2500ms + 100ms + kSlack);
  redis.Resume();
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 2; }, 5s));
  EXPECT_EQ(redis.Cli({"PUBLISH", "corral:inv", "back"}), "1");
  EXPECT_TRUE(WaitFor([&] { return seen.Has("corral:inv", "back"); }));
}

TEST_F(SubscriberRedisTest, MovesToTheNextNode) {
  RedisProcess first, second;
  ASSERT_TRUE(first.Start());
  ASSERT_TRUE(second.Start());
  TierThread tier;
  Seen seen;
  Subscriber subscriber(tier.io(), Options({first.address(), second.address()}), {"corral:inv"},
                        seen.Handlers());
  subscriber.Start();
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 1; }));
  EXPECT_EQ(first.Cli({"PUBLISH", "corral:inv", "first"}), "1");
  first.Kill();
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 2; }, 5s));
  EXPECT_EQ(seen.lost.load(), 1);
  EXPECT_EQ(second.Cli({"PUBLISH", "corral:inv", "second"}), "1");
  EXPECT_TRUE(WaitFor([&] { return seen.Has("corral:inv", "second"); }));
  EXPECT_TRUE(seen.Has("corral:inv", "first"));
}

TEST_F(SubscriberRedisTest, WithPasswordAndStopIsFinal) {
  RedisProcess redis({"--requirepass", "pw"}, "pw");
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Seen seen;
  ClientOptions options = Options({redis.address()});
  options.password = "pw";
  auto subscriber = std::make_unique<Subscriber>(tier.io(), options, std::vector<std::string>{"c"},
                                                 seen.Handlers());
  subscriber->Start();
  ASSERT_TRUE(WaitFor([&] { return seen.subscribed.load() == 1; }));
  subscriber->Stop();
  subscriber->Stop();
  EXPECT_FALSE(subscriber->subscribed());
  EXPECT_TRUE(WaitFor([&] { return redis.Cli({"PUBSUB", "NUMSUB", "c"}) == "c\n0"; }));
  subscriber.reset();
  EXPECT_EQ(seen.lost.load(), 0);  // Stop() is not a loss
}

}  // namespace
}  // namespace corral::tier

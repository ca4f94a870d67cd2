// tier::Client against a real redis-server (each test starts its own): round trips, pipelining
// from two threads, AUTH, per-command deadlines, a killed and a stopped server, Eval's NOSCRIPT
// fallback, and Stop() with commands in flight.
#include <atomic>
#include <boost/asio/post.hpp>
#include <memory>

#include "tests/tier/redis_process.h"

namespace corral::tier {
namespace {

using namespace tiertest;
using Status = Result::Status;

ClientOptions Options(const RedisProcess& redis, std::chrono::milliseconds timeout = 100ms) {
  ClientOptions options;
  options.nodes = {redis.address()};
  options.timeout = timeout;
  options.reconnect_min = 20ms;
  options.reconnect_max = 200ms;
  return options;
}

class ClientRedisTest : public ::testing::Test {
 protected:
  void SetUp() override { CORRAL_REQUIRE_REDIS(); }

  // A Result should have come back as a Redis answer, not a failure.
  static void ExpectOk(const Result& result, const char* what) {
    EXPECT_EQ(result.status, Status::kOk) << what << ": " << result.error;
    EXPECT_FALSE(result.reply.IsError()) << what << ": " << result.reply.str;
  }
};

TEST_F(ClientRedisTest, SetGetRoundTrip) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Client client(tier.io(), Options(redis, 1000ms));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  EXPECT_FALSE(client.cluster());

  Result set = Call(client, {"SET", "greeting", "hello\r\nworld"}, "greeting");
  ExpectOk(set, "SET");
  EXPECT_EQ(set.reply.type, Reply::Type::kStatus);
  EXPECT_EQ(set.reply.str, "OK");

  Result get = Call(client, {"GET", "greeting"}, "greeting");
  ExpectOk(get, "GET");
  EXPECT_EQ(get.reply.type, Reply::Type::kString);
  EXPECT_EQ(get.reply.str, "hello\r\nworld");
  EXPECT_EQ(redis.Cli({"GET", "greeting"}), "hello\r\nworld");

  Result missing = Call(client, {"GET", "nothing"}, "nothing");
  ExpectOk(missing, "GET missing");
  EXPECT_EQ(missing.reply.type, Reply::Type::kNil);

  Result incr = Call(client, {"INCR", "counter"}, "counter");
  ExpectOk(incr, "INCR");
  EXPECT_EQ(incr.reply.type, Reply::Type::kInteger);
  EXPECT_EQ(incr.reply.integer, 1);

  // A Redis error reply is an answer: kOk with an error reply, and not a breaker failure.
  Result wrong = Call(client, {"INCR", "greeting"}, "greeting");
  EXPECT_EQ(wrong.status, Status::kOk);
  EXPECT_TRUE(wrong.reply.IsError());
  EXPECT_FALSE(wrong.ok());
  EXPECT_NE(wrong.reply.str.find("not an integer"), std::string::npos) << wrong.reply.str;

  Result list = Call(client, {"MGET", "greeting", "nothing", "counter"}, "greeting");
  ExpectOk(list, "MGET");
  ASSERT_EQ(list.reply.type, Reply::Type::kArray);
  ASSERT_EQ(list.reply.elements.size(), 3u);
  EXPECT_EQ(list.reply.elements[1].type, Reply::Type::kNil);
  EXPECT_EQ(list.reply.elements[2].str, "1");

  ClientStats stats = client.stats();
  EXPECT_EQ(stats.commands, 6u);
  EXPECT_EQ(stats.timeouts, 0u);
  EXPECT_EQ(stats.down, 0u);
}

TEST_F(ClientRedisTest, TenThousandPipelinedCommandsFromTwoThreads) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Client client(tier.io(), Options(redis, 5000ms));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));

  constexpr int kPerThread = 5000;
  std::atomic<int> answered{0}, failed{0};
  auto send = [&](std::string key) {
    for (int i = 0; i < kPerThread; ++i) {
      client.Command({"INCR", key}, key, [&](Result result) {
        if (!result.ok() || result.reply.type != Reply::Type::kInteger) failed++;
        answered++;
      });
    }
  };
  std::thread first(send, "counter:a");
  std::thread second(send, "counter:b");
  first.join();
  second.join();
  ASSERT_TRUE(WaitFor([&] { return answered.load() == 2 * kPerThread; }, 30s))
      << answered.load() << " answered";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(Call(client, {"GET", "counter:a"}, "counter:a").reply.str, "5000");
  EXPECT_EQ(Call(client, {"GET", "counter:b"}, "counter:b").reply.str, "5000");
}

TEST_F(ClientRedisTest, AuthWithPassword) {
  RedisProcess redis({"--requirepass", "s3cret"}, "s3cret");
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  ClientOptions options = Options(redis, 1000ms);
  options.password = "s3cret";
  Client client(tier.io(), options);
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  ExpectOk(Call(client, {"SET", "k", "v"}, "k"), "SET");
  EXPECT_EQ(Call(client, {"GET", "k"}, "k").reply.str, "v");
}

TEST_F(ClientRedisTest, AuthWithAclUser) {
  RedisProcess redis({"--user", "alice", "on", ">wonderland", "~*", "&*", "+@all"}, "");
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  ClientOptions options = Options(redis, 1000ms);
  options.user = "alice";
  options.password = "wonderland";
  Client client(tier.io(), options);
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  ExpectOk(Call(client, {"SET", "k", "v"}, "k"), "SET");
  Result whoami = Call(client, {"ACL", "WHOAMI"}, "");
  ExpectOk(whoami, "ACL WHOAMI");
  EXPECT_EQ(whoami.reply.str, "alice");
}

TEST_F(ClientRedisTest, WrongPasswordEndsCommandsWithAnErrorAndNeverHangs) {
  RedisProcess redis({"--requirepass", "s3cret"}, "s3cret");
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  ClientOptions options = Options(redis, 200ms);
  options.password = "wrong";
  Client client(tier.io(), options);
  client.Start();
  for (int i = 0; i < 5; ++i) {
    Clock::time_point start = Clock::now();
    Result result = Call(client, {"GET", "k"}, "k", 2s);
    EXPECT_FALSE(result.ok()) << "attempt " << i;
    EXPECT_LT(Clock::now() - start, 200ms + kSlack) << "attempt " << i;
    std::this_thread::sleep_for(50ms);  // spread the attempts over the connect
  }
  // Once connected, the answer is Redis's own refusal.
  ASSERT_TRUE(WaitFor([&] {
    Result result = Call(client, {"GET", "k"}, "k", 2s);
    return result.status == Status::kOk && result.reply.IsError();
  }));
  Result refused = Call(client, {"GET", "k"}, "k", 2s);
  EXPECT_NE(refused.reply.str.find("NOAUTH"), std::string::npos) << refused.reply.str;
}

TEST_F(ClientRedisTest, SlowCommandTimesOutAndTheConnectionRecovers) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Client client(tier.io(), Options(redis, 100ms));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));

  Clock::time_point start = Clock::now();
  Result slow = Call(client, {"DEBUG", "SLEEP", "0.5"}, "");
  auto elapsed = Clock::now() - start;
  EXPECT_EQ(slow.status, Status::kTimeout) << StatusName(slow.status) << " " << slow.error;
  EXPECT_GE(elapsed, 95ms);
  EXPECT_LT(elapsed, 100ms + kSlack);

  // The late +OK of DEBUG SLEEP is discarded; the next commands get their own answers.
  ASSERT_TRUE(WaitFor([&] { return Call(client, {"PING"}, "").ok(); }, 5s));
  ExpectOk(Call(client, {"SET", "after", "1"}, "after"), "SET after the timeout");
  Result get = Call(client, {"GET", "after"}, "after");
  ExpectOk(get, "GET after the timeout");
  EXPECT_EQ(get.reply.str, "1");
  // DEBUG SLEEP, and maybe PINGs sent during the sleep (a stall if it lasted: the connection is
  // then replaced, which is what a sleeping server looks like).
  EXPECT_GE(client.stats().timeouts, 1u);
}

TEST_F(ClientRedisTest, KilledServerFailsFastAndReconnectsAfterRestart) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Client client(tier.io(), Options(redis, 100ms));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  ExpectOk(Call(client, {"SET", "k", "v"}, "k"), "SET before the kill");

  redis.Kill();
  // Every command ends well within its deadline: kDisconnected if the close raced it, kDown once
  // the breaker is open. None succeeds, none hangs.
  for (int i = 0; i < 20; ++i) {
    Clock::time_point start = Clock::now();
    Result result = Call(client, {"GET", "k"}, "k");
    EXPECT_NE(result.status, Status::kOk) << "attempt " << i;
    EXPECT_LT(Clock::now() - start, 100ms + kSlack) << "attempt " << i;
  }
  EXPECT_TRUE(WaitFor([&] { return !client.up(); }, 2s));
  Clock::time_point start = Clock::now();
  Result down = Call(client, {"GET", "k"}, "k");
  EXPECT_EQ(down.status, Status::kDown) << StatusName(down.status);
  EXPECT_LT(Clock::now() - start, 100ms);  // refused before any deadline could fire

  ASSERT_TRUE(redis.Start());
  ASSERT_TRUE(WaitFor([&] { return client.up(); }, 5s));
  ExpectOk(Call(client, {"SET", "k", "again"}, "k"), "SET after the restart");
  EXPECT_EQ(Call(client, {"GET", "k"}, "k").reply.str, "again");
  EXPECT_GE(client.stats().disconnects, 1u);
  EXPECT_GE(client.stats().reconnects, 1u);
}

TEST_F(ClientRedisTest, StalledServerTimesOutThenTheBreakerOpensThenRecovers) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Client client(tier.io(), Options(redis, 250ms));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  ExpectOk(Call(client, {"SET", "k", "v"}, "k"), "SET before the stall");

  redis.Pause();
  int timeouts = 0, downs = 0, fast_downs_in_a_row = 0;
  for (int i = 0; i < 20 && fast_downs_in_a_row < 5; ++i) {
    Clock::time_point start = Clock::now();
    Result result = Call(client, {"GET", "k"}, "k");
    auto elapsed = Clock::now() - start;
    EXPECT_NE(result.status, Status::kOk) << "attempt " << i;
    EXPECT_LT(elapsed, 250ms + kSlack) << "attempt " << i;  // nobody waits past the deadline
    if (result.status == Status::kTimeout) {
      timeouts++;
      fast_downs_in_a_row = 0;
    } else if (result.status == Status::kDown) {
      downs++;
      if (elapsed < 125ms) fast_downs_in_a_row++;  // did not wait for the deadline
    }
  }
  // A stalled node costs a few full timeouts, then commands are refused at once.
  EXPECT_GE(timeouts, 3);
  EXPECT_LE(timeouts, 6);
  EXPECT_EQ(fast_downs_in_a_row, 5) << timeouts << " timeouts, " << downs << " downs";
  EXPECT_FALSE(client.up());

  redis.Resume();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }, 5s));
  Result get = Call(client, {"GET", "k"}, "k");
  ExpectOk(get, "GET after SIGCONT");
  EXPECT_EQ(get.reply.str, "v");
}

TEST_F(ClientRedisTest, EvalFallsBackToEvalOnNoscript) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Client client(tier.io(), Options(redis, 1000ms));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));

  const std::string script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  Result first = CallEval(client, script, {"n"}, {"5"});
  ExpectOk(first, "first Eval (NOSCRIPT, then EVAL)");
  EXPECT_EQ(first.reply.integer, 5);
  // EVAL cached the script; its SHA1 is the one the client computed.
  std::string sha = redis.Cli({"SCRIPT", "LOAD", script});
  EXPECT_EQ(redis.Cli({"SCRIPT", "EXISTS", sha}), "1");
  Result second = CallEval(client, script, {"n"}, {"2"});
  ExpectOk(second, "second Eval (EVALSHA)");
  EXPECT_EQ(second.reply.integer, 7);

  EXPECT_EQ(redis.Cli({"SCRIPT", "FLUSH"}), "OK");
  Result third = CallEval(client, script, {"n"}, {"1"});
  ExpectOk(third, "Eval after SCRIPT FLUSH");
  EXPECT_EQ(third.reply.integer, 8);

  std::string stats = redis.Cli({"INFO", "commandstats"});
  EXPECT_NE(stats.find("cmdstat_evalsha:calls=3"), std::string::npos) << stats;
  EXPECT_NE(stats.find("cmdstat_eval:calls=2"), std::string::npos) << stats;

  // A script error is an answer too.
  Result broken = CallEval(client, "return redis.call('NOSUCHCOMMAND')", {}, {});
  EXPECT_EQ(broken.status, Status::kOk);
  EXPECT_TRUE(broken.reply.IsError());
}

TEST_F(ClientRedisTest, EvalRefusesKeysInDifferentSlots) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  Client client(tier.io(), Options(redis, 1000ms));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  ASSERT_NE(HashSlot("a"), HashSlot("b"));
  Result result = CallEval(client, "return 1", {"a", "b"}, {});
  EXPECT_EQ(result.status, Status::kOk);
  EXPECT_TRUE(result.reply.IsError());
  EXPECT_NE(result.reply.str.find("CROSSSLOT"), std::string::npos);
  ExpectOk(CallEval(client, "return 1", {"{t}a", "{t}b"}, {}), "hash-tagged keys");
}

TEST_F(ClientRedisTest, StopEndsCommandsInFlightWithDisconnected) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  auto client = std::make_unique<Client>(tier.io(), Options(redis, 10000ms));
  client->Start();
  ASSERT_TRUE(WaitFor([&] { return client->up(); }));
  redis.Pause();
  std::atomic<int> disconnected{0}, other{0};
  for (int i = 0; i < 10; ++i) {
    client->Command({"GET", "k"}, "k", [&](Result result) {
      (result.status == Status::kDisconnected ? disconnected : other)++;
    });
  }
  // Let them reach the socket: one PING behind them proves they were sent.
  std::this_thread::sleep_for(50ms);
  client->Stop();
  client->Stop();  // idempotent
  EXPECT_TRUE(WaitFor([&] { return disconnected.load() + other.load() == 10; }, 2s));
  EXPECT_EQ(disconnected.load(), 10);
  EXPECT_FALSE(client->up());
  client.reset();  // nothing may touch the client after this
  redis.Resume();
  tier.Join();
}

TEST_F(ClientRedisTest, DestroyedWhileTheTierThreadRuns) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  std::atomic<int> ended{0};
  for (int round = 0; round < 5; ++round) {
    Client client(tier.io(), Options(redis, 1000ms));
    client.Start();
    for (int i = 0; i < 200; ++i) {
      client.Command({"INCR", "n"}, "n", [&](Result) { ended++; });
    }
  }  // ~Client: Stop(), every callback runs exactly once
  EXPECT_TRUE(WaitFor([&] { return ended.load() == 5 * 200; }, 5s)) << ended.load();
}

TEST_F(ClientRedisTest, DestroyedFromInsideItsOwnCallback) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  auto client = std::make_unique<Client>(tier.io(), Options(redis, 1000ms));
  client->Start();
  ASSERT_TRUE(WaitFor([&] { return client->up(); }));
  std::atomic<int> ended{0};
  std::promise<void> destroyed;
  // Several commands in flight; the first answer destroys the client, the rest end kDisconnected.
  // Redis is paused while they are issued: an answer arriving mid-loop would destroy the client
  // under the loop's feet (a use-after-free of the test's own making, seen 3 runs in 30).
  Client* raw = client.get();
  redis.Pause();
  for (int i = 0; i < 50; ++i) {
    raw->Command({"INCR", "n"}, "n", [&](Result result) {
      ended++;
      if (client) {
        client.reset();
        destroyed.set_value();
      }
    });
  }
  redis.Resume();
  ASSERT_EQ(destroyed.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(WaitFor([&] { return ended.load() == 50; }, 5s)) << ended.load();
}

TEST_F(ClientRedisTest, DestroyedFromAnotherHandlerOfTheSameIoContext) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  auto client = std::make_unique<Client>(tier.io(), Options(redis, 10000ms));
  client->Start();
  ASSERT_TRUE(WaitFor([&] { return client->up(); }));
  redis.Pause();  // the commands stay in flight
  std::atomic<int> disconnected{0};
  for (int i = 0; i < 10; ++i) {
    client->Command({"GET", "k"}, "k", [&](Result result) {
      if (result.status == Status::kDisconnected) disconnected++;
    });
  }
  // The tier logic's own handler (not the client's strand) destroys the client: Stop() must not
  // wait for the strand there (this is the only thread running the io_context).
  std::promise<std::chrono::nanoseconds> took;
  boost::asio::post(tier.io(), [&] {
    Clock::time_point start = Clock::now();
    client.reset();
    took.set_value(Clock::now() - start);
  });
  std::future<std::chrono::nanoseconds> future = took.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_LT(future.get(), 1s);  // not the seconds of a wait for itself
  EXPECT_TRUE(WaitFor([&] { return disconnected.load() == 10; }, 2s)) << disconnected.load();
  redis.Resume();
}

TEST_F(ClientRedisTest, ForcedClusterModeOnAPlainRedisStaysDownAndAsksAgain) {
  RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  TierThread tier;
  ClientOptions options = Options(redis, 100ms);
  options.cluster = ClientOptions::Cluster::kOn;
  options.reconnect_max = 100ms;
  Client client(tier.io(), options);
  client.Start();
  // CLUSTER SLOTS is refused ("cluster support disabled"): no slot map, so nothing is up and
  // every command is refused at once; the client keeps asking.
  auto cluster_slots_calls = [&] {
    std::string stats = redis.Cli({"INFO", "commandstats"});
    size_t at = stats.find("cmdstat_cluster|slots:calls=");
    return at == std::string::npos ? 0 : std::atoi(stats.c_str() + at + 28);
  };
  EXPECT_TRUE(WaitFor([&] { return cluster_slots_calls() >= 3; })) << cluster_slots_calls();
  EXPECT_FALSE(client.up());
  EXPECT_FALSE(client.cluster());
  Clock::time_point start = Clock::now();
  Result result = Call(client, {"GET", "k"}, "k");
  EXPECT_EQ(result.status, Status::kDown) << StatusName(result.status);
  EXPECT_LT(Clock::now() - start, 100ms);
}

TEST_F(ClientRedisTest, NoServerMeansDownAtOnce) {
  int port = FreePort();  // nothing listens there
  TierThread tier;
  ClientOptions options;
  options.nodes = {"127.0.0.1:" + std::to_string(port)};
  options.timeout = 100ms;
  Client client(tier.io(), options);
  client.Start();
  for (int i = 0; i < 5; ++i) {
    Clock::time_point start = Clock::now();
    Result result = Call(client, {"PING"}, "");
    EXPECT_NE(result.status, Status::kOk);
    EXPECT_LT(Clock::now() - start, 100ms + kSlack);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_FALSE(client.up());
}

}  // namespace
}  // namespace corral::tier

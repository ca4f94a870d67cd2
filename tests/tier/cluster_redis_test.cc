// tier::Client and tier::Subscriber against a real 3-master Redis Cluster that the suite starts
// itself (shared by its tests): routing by slot, ASK and MOVED during a hand-made slot migration,
// Eval on hash-tagged keys, and pub/sub across nodes.
#include <atomic>
#include <memory>
#include <set>

#include "tests/tier/redis_process.h"

namespace corral::tier {
namespace {

using namespace tiertest;
using Status = Result::Status;

class ClusterRedisTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveRedis()) return;
    Clock::time_point start = Clock::now();
    std::string create = "redis-cli --cluster create";
    for (auto& node : nodes_) {
      node = std::make_unique<RedisProcess>(
          std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file",
                                   "nodes.conf", "--cluster-node-timeout", "5000"},
          "", true);
      if (!node->Start()) {
        std::fprintf(stderr, "redis-server did not start on port %d; its log:\n", node->port());
        std::system(("cat " + node->dir() + "/redis.log >&2").c_str());
        return;
      }
      create += " " + node->address();
    }
    create += " --cluster-yes >/dev/null 2>&1";
    if (std::system(create.c_str()) != 0) {
      std::fprintf(stderr, "failed: %s\n", create.c_str());
      return;
    }
    // Every node says ok and knows all three ranges.
    ready_ = WaitFor(
        [] {
          for (auto& node : nodes_) {
            if (node->Cli({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) {
              return false;
            }
            if (node->Cli({"CLUSTER", "SHARDS"}).find("master") == std::string::npos) {
              return false;
            }
          }
          return true;
        },
        20s);
    startup_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  }
  static void TearDownTestSuite() {
    for (auto& node : nodes_) node.reset();
  }

  void SetUp() override {
    CORRAL_REQUIRE_REDIS();
    ASSERT_TRUE(ready_) << "the 3-node cluster did not come up";
  }

  static ClientOptions Options(int seed = 0) {
    ClientOptions options;
    options.nodes = {nodes_[seed]->address()};
    options.timeout = 1000ms;
    options.reconnect_min = 20ms;
    options.reconnect_max = 200ms;
    return options;
  }

  // The index of the node that holds `key` (asked without following redirects), or -1.
  static int Holder(const std::string& key, const std::string& value) {
    int holder = -1;
    for (int i = 0; i < 3; ++i) {
      if (nodes_[i]->Cli({"GET", key}) == value) {
        if (holder != -1) return -2;  // two nodes: impossible
        holder = i;
      }
    }
    return holder;
  }

  static std::string Id(int node) { return nodes_[node]->Cli({"CLUSTER", "MYID"}); }

  static std::unique_ptr<RedisProcess> nodes_[3];
  static bool ready_;
  static std::chrono::milliseconds startup_;
};

std::unique_ptr<RedisProcess> ClusterRedisTest::nodes_[3];
bool ClusterRedisTest::ready_ = false;
std::chrono::milliseconds ClusterRedisTest::startup_{0};

TEST_F(ClusterRedisTest, RoutesEveryKeyToItsOwner) {
  std::printf("cluster start-up took %lld ms\n", static_cast<long long>(startup_.count()));
  TierThread tier;
  Client client(tier.io(), Options(1));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  EXPECT_TRUE(client.cluster());

  constexpr int kKeys = 300;
  std::atomic<int> answered{0}, failed{0};
  for (int i = 0; i < kKeys; ++i) {
    std::string key = "spread:" + std::to_string(i);
    client.Command({"SET", key, "v" + std::to_string(i)}, key, [&](Result result) {
      if (!result.ok()) failed++;
      answered++;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return answered.load() == kKeys; }));
  EXPECT_EQ(failed.load(), 0);

  std::set<int> holders;
  for (int i = 0; i < kKeys; i += 20) {
    std::string key = "spread:" + std::to_string(i);
    Result get = Call(client, {"GET", key}, key);
    ASSERT_TRUE(get.ok()) << key << ": " << get.error << get.reply.str;
    EXPECT_EQ(get.reply.str, "v" + std::to_string(i));
    int holder = Holder(key, "v" + std::to_string(i));
    EXPECT_GE(holder, 0) << key;
    holders.insert(holder);
  }
  EXPECT_EQ(holders.size(), 3u) << "the keys should have landed on all three masters";
  ClientStats stats = client.stats();
  EXPECT_EQ(stats.redirects_moved, 0u);  // the slot map was right from the start
  EXPECT_EQ(stats.redirects_ask, 0u);
  EXPECT_GE(stats.slot_map_loads, 1u);
}

TEST_F(ClusterRedisTest, FollowsAskDuringAMigrationAndMovedAfterIt) {
  TierThread tier;
  Client client(tier.io(), Options(0));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));

  const std::string key = "migrating:{m1}";
  const std::string slot = std::to_string(HashSlot(key));
  ASSERT_TRUE(Call(client, {"SET", key, "moving"}, key).ok());
  int source = Holder(key, "moving");
  ASSERT_GE(source, 0);
  int target = (source + 1) % 3;
  int other = (source + 2) % 3;
  std::string source_id = Id(source), target_id = Id(target);

  ASSERT_EQ(nodes_[target]->Cli({"CLUSTER", "SETSLOT", slot, "IMPORTING", source_id}), "OK");
  ASSERT_EQ(nodes_[source]->Cli({"CLUSTER", "SETSLOT", slot, "MIGRATING", target_id}), "OK");
  ASSERT_EQ(nodes_[source]->Cli(
                {"MIGRATE", "127.0.0.1", std::to_string(nodes_[target]->port()), key, "0", "5000"}),
            "OK");

  // The source no longer has the key: ASK, then ASKING + GET on the target.
  Result get = Call(client, {"GET", key}, key);
  ASSERT_TRUE(get.ok()) << get.error << get.reply.str;
  EXPECT_EQ(get.reply.str, "moving");
  EXPECT_GE(client.stats().redirects_ask, 1u);
  // A new key of the migrating slot is created on the target, through ASK.
  const std::string fresh = "fresh:{m1}";
  ASSERT_TRUE(Call(client, {"SET", fresh, "new"}, fresh).ok());
  EXPECT_EQ(client.stats().redirects_moved, 0u);

  // Finish the migration everywhere; the client's map still names the source: MOVED.
  for (int node : {target, source, other}) {
    ASSERT_EQ(nodes_[node]->Cli({"CLUSTER", "SETSLOT", slot, "NODE", target_id}), "OK");
  }
  EXPECT_EQ(Holder(fresh, "new"), target);
  Result moved = Call(client, {"GET", key}, key);
  ASSERT_TRUE(moved.ok()) << moved.error << moved.reply.str;
  EXPECT_EQ(moved.reply.str, "moving");
  EXPECT_GE(client.stats().redirects_moved, 1u);

  // The MOVED fixed that slot at once (and a map refresh follows): no more redirects.
  uint64_t redirects = client.stats().redirects_moved + client.stats().redirects_ask;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Call(client, {"GET", key}, key).reply.str, "moving");
    EXPECT_EQ(Call(client, {"GET", fresh}, fresh).reply.str, "new");
  }
  EXPECT_EQ(client.stats().redirects_moved + client.stats().redirects_ask, redirects);
  EXPECT_TRUE(WaitFor([&] { return client.stats().slot_map_loads >= 2; }, 2s));
}

TEST_F(ClusterRedisTest, EvalOnHashTaggedKeys) {
  TierThread tier;
  Client client(tier.io(), Options(2));
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  const std::string script =
      "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2]); "
      "return redis.call('MGET', KEYS[1], KEYS[2])";
  Result result = CallEval(client, script, {"{user7}:name", "{user7}:mail"}, {"ann", "a@x"});
  ASSERT_TRUE(result.ok()) << result.error << result.reply.str;
  ASSERT_EQ(result.reply.elements.size(), 2u);
  EXPECT_EQ(result.reply.elements[0].str, "ann");
  EXPECT_EQ(result.reply.elements[1].str, "a@x");
  int holder = Holder("{user7}:name", "ann");
  EXPECT_GE(holder, 0);
  EXPECT_EQ(Holder("{user7}:mail", "a@x"), holder);
  // Again, now through EVALSHA on the owner.
  Result again = CallEval(client, script, {"{user7}:name", "{user7}:mail"}, {"bob", "b@x"});
  ASSERT_TRUE(again.ok()) << again.error << again.reply.str;
  EXPECT_EQ(again.reply.elements[0].str, "bob");

  Result cross = CallEval(client, "return 1", {"{user7}:name", "{user8}:name"}, {});
  EXPECT_EQ(cross.status, Status::kOk);
  EXPECT_NE(cross.reply.str.find("CROSSSLOT"), std::string::npos);
}

TEST_F(ClusterRedisTest, SubscriberHearsAPublishSentToAnotherNode) {
  TierThread tier;
  std::atomic<int> subscribed{0};
  std::mutex mutex;
  std::vector<std::string> messages;
  Subscriber::Handlers handlers;
  handlers.message = [&](std::string_view channel, std::string_view message) {
    std::lock_guard lock(mutex);
    messages.emplace_back(std::string(channel) + "=" + std::string(message));
  };
  handlers.subscribed = [&] { subscribed++; };
  Subscriber subscriber(tier.io(), Options(0), {"corral:cluster"}, handlers);
  subscriber.Start();
  ASSERT_TRUE(WaitFor([&] { return subscribed.load() == 1; }));
  nodes_[2]->Cli({"PUBLISH", "corral:cluster", "from-node-2"});
  EXPECT_TRUE(WaitFor([&] {
    std::lock_guard lock(mutex);
    return messages.size() == 1 && messages[0] == "corral:cluster=from-node-2";
  }));
}

TEST_F(ClusterRedisTest, ForcedStandaloneDoesNotFollowRedirects) {
  TierThread tier;
  ClientOptions options = Options(0);
  options.cluster = ClientOptions::Cluster::kOff;
  Client client(tier.io(), options);
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  EXPECT_FALSE(client.cluster());
  // Some key of these is owned elsewhere: its MOVED comes back as the error reply it is.
  int moved = 0;
  for (int i = 0; i < 20; ++i) {
    std::string key = "standalone:" + std::to_string(i);
    Result result = Call(client, {"GET", key}, key);
    ASSERT_EQ(result.status, Status::kOk);
    if (result.reply.IsError() && result.reply.str.rfind("MOVED ", 0) == 0) moved++;
  }
  EXPECT_GT(moved, 0);
  EXPECT_EQ(client.stats().redirects_moved, 0u);
}

// Last in the file: it restarts a node (each test is its own process under ctest anyway).
TEST_F(ClusterRedisTest, ADeadMasterFailsFastWhileTheOthersServeAndIsUsedAgainAfterRestart) {
  TierThread tier;
  ClientOptions options = Options(0);
  options.timeout = 200ms;
  Client client(tier.io(), options);
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  // One key owned by each master.
  std::string key_on[3];
  for (int i = 0; i < 100 && (key_on[0].empty() || key_on[1].empty() || key_on[2].empty()); ++i) {
    std::string key = "dead:" + std::to_string(i);
    ASSERT_TRUE(Call(client, {"SET", key, key}, key).ok());
    int holder = Holder(key, key);
    ASSERT_GE(holder, 0);
    if (key_on[holder].empty()) key_on[holder] = key;
  }
  ASSERT_FALSE(key_on[0].empty() || key_on[1].empty() || key_on[2].empty());

  const int victim = 1;
  nodes_[victim]->Kill();
  // The others keep serving (the cluster itself notices only after cluster-node-timeout, 5 s).
  int downs_in_a_row = 0;
  for (int i = 0; i < 20 && downs_in_a_row < 3; ++i) {
    Clock::time_point start = Clock::now();
    Result dead = Call(client, {"GET", key_on[victim]}, key_on[victim]);
    auto elapsed = Clock::now() - start;
    EXPECT_NE(dead.status, Status::kOk);
    EXPECT_LT(elapsed, 200ms + kSlack);
    downs_in_a_row = (dead.status == Status::kDown && elapsed < 100ms) ? downs_in_a_row + 1 : 0;
    for (int alive : {0, 2}) {
      Result result = Call(client, {"GET", key_on[alive]}, key_on[alive]);
      EXPECT_TRUE(result.ok()) << result.error << result.reply.str;
    }
  }
  EXPECT_EQ(downs_in_a_row, 3);
  EXPECT_TRUE(client.up());  // two of three masters answer

  ASSERT_TRUE(nodes_[victim]->Start());  // same port and nodes.conf: it rejoins as itself
  EXPECT_TRUE(WaitFor(
      [&] {
        return Call(client, {"GET", key_on[victim]}, key_on[victim]).ok();
      },
      10s));
  EXPECT_GE(client.stats().reconnects, 1u);
  ASSERT_TRUE(WaitFor(
      [] {
        for (auto& node : nodes_) {
          if (node->Cli({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) {
            return false;
          }
        }
        return true;
      },
      20s));
}

}  // namespace
}  // namespace corral::tier

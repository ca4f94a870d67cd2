// tier::Client across a Redis Cluster failover: 3 masters + 3 replicas started by the test, a
// master killed; its replica is promoted and the client, which re-reads the slot map whenever a
// node fails, serves that master's keys from the new one.
#include <map>
#include <memory>
#include <string>

#include "tests/tier/redis_process.h"

namespace corral::tier {
namespace {

using namespace tiertest;
using Status = Result::Status;

class ClusterFailoverRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CORRAL_REQUIRE_REDIS();
    std::string create = "redis-cli --cluster create";
    for (auto& node : nodes_) {
      node = std::make_unique<RedisProcess>(
          std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file",
                                   "nodes.conf", "--cluster-node-timeout", "1000"},
          "", true);
      ASSERT_TRUE(node->Start());
      create += " " + node->address();
    }
    create += " --cluster-replicas 1 --cluster-yes >/dev/null 2>&1";
    ASSERT_EQ(std::system(create.c_str()), 0) << create;
    ASSERT_TRUE(WaitFor(
        [&] {
          for (auto& node : nodes_) {
            if (node->Cli({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) {
              return false;
            }
          }
          // Every replica has caught up with its master.
          for (auto& node : nodes_) {
            std::string info = node->Cli({"INFO", "replication"});
            if (info.find("role:slave") != std::string::npos &&
                info.find("master_link_status:up") == std::string::npos) {
              return false;
            }
          }
          return true;
        },
        20s));
  }

  std::unique_ptr<RedisProcess> nodes_[6];
};

TEST_F(ClusterFailoverRedisTest, KeysOfAKilledMasterAreServedByItsPromotedReplica) {
  TierThread tier;
  ClientOptions options;
  for (auto& node : nodes_) options.nodes.push_back(node->address());
  options.timeout = 200ms;
  options.reconnect_min = 20ms;
  options.reconnect_max = 200ms;
  Client client(tier.io(), options);
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.up(); }));
  ASSERT_TRUE(client.cluster());

  // A key, and the master that owns it (the one answering GET without a redirect).
  const std::string key = "failover:{f}";
  ASSERT_TRUE(Call(client, {"SET", key, "kept"}, key).ok());
  int master = -1;
  for (int i = 0; i < 6; ++i) {
    if (nodes_[i]->Cli({"GET", key}) == "kept") master = i;
  }
  ASSERT_GE(master, 0);
  // On the replica too. Asked of the master directly: through the client, a WAIT slower than its
  // 200 ms timeout (a sanitizer build) failed the test before it began.
  ASSERT_EQ(nodes_[master]->Cli({"WAIT", "1", "5000"}), "1");

  Clock::time_point killed = Clock::now();
  nodes_[master]->Kill();
  // Until the replica is promoted (node timeout 1 s + election) commands end fast, never hang;
  // then they succeed on the new master, found through a refreshed slot map.
  // Each distinct failure seen while waiting, with how often (for the message below).
  std::map<std::string, int> failures;
  bool served = WaitFor(
      [&] {
        Clock::time_point start = Clock::now();
        Result result = Call(client, {"GET", key}, key);
        EXPECT_LT(Clock::now() - start, 200ms + kSlack);
        if (result.ok() && result.reply.str == "kept") return true;
        ++failures[result.status == Result::Status::kOk
                       ? "answered '" + result.reply.str + "'"
                       : "status " + std::to_string(static_cast<int>(result.status)) + ": " +
                             result.error];
        return false;
      },
      15s);
  if (!served) {
    // What the cluster and the client thought (CI saw this once under load; not reproduced).
    std::string nodes;
    for (int i = 0; i < 6; ++i) {
      if (i != master) {
        nodes = nodes_[i]->Cli({"CLUSTER", "NODES"});
        break;
      }
    }
    Result last = Call(client, {"GET", key}, key);
    std::string seen;
    for (const auto& [what, times] : failures)
      seen += "  " + std::to_string(times) + "x " + what + "\n";
    FAIL() << "not served by the promoted replica within 15 s; slot map loads "
           << client.stats().slot_map_loads << ", a GET after: ok=" << last.ok() << " '"
           << last.reply.str << "' " << last.error << "; while waiting:\n"
           << seen << "CLUSTER NODES of a survivor:\n"
           << nodes;
  }
  std::printf(
      "served again %lld ms after the kill\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count()));
  EXPECT_TRUE(client.up());
  EXPECT_GE(client.stats().slot_map_loads, 2u);
  ASSERT_TRUE(Call(client, {"SET", key, "written-after"}, key).ok());
  EXPECT_EQ(Call(client, {"GET", key}, key).reply.str, "written-after");
}

}  // namespace
}  // namespace corral::tier

// Several corral nodes sharing a Redis tier (SPEC.md "Scale-out"), against the real PostgreSQL,
// a real redis-server and the Redis Cluster that deploy/run-tests.sh starts: one query per key
// across the fleet (counted with pg_stat_statements), invalidations that reach every node, and a
// Redis that dies under a herd.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/fault_proxy/fault_proxy.h"
#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"
#include "tests/tier/redis_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

template <class Pred>
bool WaitFor(Millis timeout, Pred pred) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(Millis(20));
  }
  return pred();
}

// Readers that GET `key` on each of `ports` until stopped (paced: a few thousand reads/s per
// node; unpaced readers starve two cores, and a tier that cannot answer within timeout_ms degrades
// to node-local, tested elsewhere), recording each version read and when its request was sent.
class VersionReaders {
 public:
  // An acknowledged write: from `at` on, no read may return a version below `version`.
  struct Ack {
    Clock::time_point at;
    int64_t version;
  };
  struct Verdict {
    size_t checked = 0;  // reads sent after some acknowledgement
    size_t old = 0;      // of those, reads older than the newest acknowledgement before them
    std::vector<std::string> examples;  // the first few old reads, described
  };

  VersionReaders(const std::vector<uint16_t>& ports, std::string key)
      : key_(std::move(key)), answered_sent_(ports.size()) {
    for (size_t r = 0; r < ports.size(); ++r) {
      threads_.emplace_back([this, port = ports[r], r] { Run(port, r); });
    }
  }
  ~VersionReaders() { Stop(); }

  // True once every reader has had an answer to a read sent at or after `t`.
  bool AnsweredSince(Clock::time_point t) const {
    for (const auto& a : answered_sent_) {
      if (a.load() < Ns(t)) return false;
    }
    return true;
  }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // After Stop().
  Verdict Check(const std::vector<Ack>& acks) const {
    Verdict v;
    for (const Read& r : reads_) {
      // The newest write acknowledged before this read was sent.
      int64_t floor = 0;
      Clock::time_point at;
      for (const Ack& a : acks) {
        if (a.at <= r.sent) {
          floor = a.version;
          at = a.at;
        }
      }
      if (floor == 0) continue;
      ++v.checked;
      if (r.version < floor) {
        ++v.old;
        if (v.examples.size() < 5) {
          v.examples.push_back(
              "reader " + std::to_string(r.reader) + " read version " + std::to_string(r.version) +
              " " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::microseconds>(r.sent - at).count()) +
              " us after version " + std::to_string(floor) + " was acknowledged");
        }
      }
    }
    return v;
  }
  size_t errors() const { return errors_.load(); }

 private:
  struct Read {
    Clock::time_point sent;
    int64_t version;
    size_t reader = 0;  // which of the ports
  };
  static int64_t Ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  void Run(uint16_t port, size_t r) {
    RedisConnection c = ConnectRedis(port);
    if (!c) {
      ADD_FAILURE() << "cannot connect to " << port;
      return;
    }
    std::vector<Read> mine;
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      Clock::time_point sent = Clock::now();
      RedisReplyPtr reply(static_cast<redisReply*>(redisCommand(c.get(), "GET %s", key_.c_str())));
      if (!reply) break;
      if (reply->type == REDIS_REPLY_STRING) {
        mine.push_back(Read{sent, std::atoll(reply->str), r});
      } else {
        ++errors_;  // -BUSY when invalidations void every load in a row: not an old value
      }
      answered_sent_[r] = Ns(sent);
    }
    std::lock_guard lock(mu_);
    reads_.insert(reads_.end(), mine.begin(), mine.end());
  }

  const std::string key_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> errors_{0};
  std::vector<std::atomic<int64_t>> answered_sent_;  // each reader's newest answered send time
  std::mutex mu_;
  std::vector<Read> reads_;
  std::vector<std::thread> threads_;
};

// `UPDATE users SET version = version + 1` for one row on the primary, through one libpq
// connection (a psql per write would be too slow for the races' rounds).
class VersionWriter {
 public:
  VersionWriter(const std::string& conn, int id)
      : pg_(PQconnectdb(conn.c_str()), PQfinish),
        update_("UPDATE users SET version = version + 1 WHERE id = " + std::to_string(id) +
                " RETURNING version") {}
  bool ok() const { return PQstatus(pg_.get()) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(pg_.get()); }
  // The new version, or -1.
  int64_t Bump() {
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(pg_.get(), update_.c_str()), PQclear);
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) return -1;
    return std::atoll(PQgetvalue(res.get(), 0, 0));
  }

 private:
  std::unique_ptr<PGconn, decltype(&PQfinish)> pg_;
  const std::string update_;
};

int RaceRounds(int default_rounds) {
  const char* r = std::getenv("CORRAL_TIER_RACE_ROUNDS");
  return r == nullptr ? default_rounds : std::max(1, std::atoi(r));
}

std::string Nodes(const std::vector<std::string>& nodes) {
  std::string json = "[";
  for (size_t i = 0; i < nodes.size(); ++i) json += (i ? ",\"" : "\"") + nodes[i] + "\"";
  return json + "]";
}

std::vector<std::string> ClusterNodes() {
  std::vector<std::string> nodes;
  const char* v = std::getenv("CORRAL_TEST_REDIS_CLUSTER_NODES");
  if (v == nullptr) return nodes;
  std::string s = v;
  size_t start = 0;
  while (start < s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) nodes.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return nodes;
}

class TierPgTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // Thousands of herd connections from this one process.
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 65536);
      setrlimit(RLIMIT_NOFILE, &lim);
    }
    static int run = 0;
    // Every test's keys and channels apart from any other's in the shared Redis.
    prefix_ = "t" + std::to_string(getpid()) + "_" + std::to_string(++run) + ":";
  }

  // The shared Redis of deploy/run-tests.sh.
  std::vector<std::string> SharedRedis() {
    const char* v = std::getenv("CORRAL_TEST_REDIS_PORT");
    if (v == nullptr) return {};
    return {"127.0.0.1:" + std::string(v)};
  }

  // `n` corral nodes sharing the tier at `redis_nodes`, each ready to use it.
  std::vector<std::unique_ptr<ServerProcess>> StartNodes(
      int n, const std::string& namespaces, const std::vector<std::string>& redis_nodes,
      const std::string& extra = "", const std::string& pg_extra = "") {
    std::vector<std::unique_ptr<ServerProcess>> nodes;
    std::string redis = "\"redis\": {\"nodes\": " + Nodes(redis_nodes) + ", \"prefix\": \"" +
                        prefix_ + "\", \"timeout_ms\": 1000}";
    for (int i = 0; i < n; ++i) {
      auto node = StartCorral(namespaces, redis + (extra.empty() ? "" : ", " + extra), pg_extra);
      if (node == nullptr) return {};
      if (!node->WaitForStderr("event=tier_ready", Millis(15000))) {
        ADD_FAILURE() << "node " << i << " never used the tier:\n" << node->Stderr();
        return {};
      }
      nodes.push_back(std::move(node));
    }
    return nodes;
  }

  double SumMetric(const std::vector<std::unique_ptr<ServerProcess>>& nodes,
                   const std::string& sample) {
    double sum = 0;
    for (const auto& n : nodes) sum += Metric(n->http_port(), sample);
    return sum;
  }

  // `per_node` clients of `key` on each node, all sent at once; every reply is checked against
  // `want`.
  std::vector<HerdReply> Herd(const std::vector<std::unique_ptr<ServerProcess>>& nodes,
                              const std::string& key, int per_node, const std::string& want) {
    std::vector<std::vector<HerdReply>> per(nodes.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < nodes.size(); ++i) {
      threads.emplace_back([&, i] {
        std::vector<std::vector<std::string>> commands(per_node, {"GET", key});
        per[i] = RespHerd(nodes[i]->resp_port(), commands);
      });
    }
    for (auto& t : threads) t.join();
    std::vector<HerdReply> all;
    for (auto& p : per) all.insert(all.end(), p.begin(), p.end());
    size_t wrong = 0;
    for (const HerdReply& r : all) wrong += RespValue(r.reply) == want ? 0 : 1;
    EXPECT_EQ(wrong, 0u) << "first reply: " << (all.empty() ? "" : all[0].reply);
    return all;
  }

  std::string prefix_;
};

// The herd of the issue: one cold key, a 200 ms query, 1000 clients on each of three nodes.
TEST_F(TierPgTest, ThreeNodesOneColdKeyCostOneQuery) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty()) << "CORRAL_TEST_REDIS_PORT unset: run through deploy/run-tests.sh";
  auto nodes = StartNodes(
      3,
      R"({"tk": {"query": "SELECT name AS tier_one_key FROM users, pg_sleep(0.2) WHERE id = $1::bigint"}})",
      redis);
  ASSERT_EQ(nodes.size(), 3u);
  pg_.ResetStatements();
  auto replies = Herd(nodes, "tk:42", 1000, "user 42");
  int64_t queries = pg_.Calls("tier_one_key");
  ReportHerd("tier: 3 nodes x 1000 clients, one cold key, 200 ms query", replies, queries);
  EXPECT_EQ(queries, 1) << "one query across the fleet";
  EXPECT_EQ(SumMetric(nodes, "corral_tier_lookups_total{result=\"won\"}"), 1);
  EXPECT_EQ(SumMetric(nodes, "corral_tier_leases_total{outcome=\"filled\"}"), 1);
  EXPECT_EQ(SumMetric(nodes, "corral_tier_fallbacks_total"), 0);
}

TEST_F(TierPgTest, ColdKeysSpreadOverThreeNodesCostOneQueryEach) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      3,
      // The node whose requests reach Redis first may win every key's lease and query all 200,
      // more than the default 64 allow; its pool runs them 16 at a time. This test is about
      // single flight across the fleet, not overload: a 5 s wait bound keeps the queue from
      // dropping loads under a sanitizer's slowdown (the herd's tier round trips eat the bound).
      R"({"tm": {"query": "SELECT name AS tier_many_keys FROM users, pg_sleep(0.05) WHERE id = $1::bigint", "max_inflight_loads": 256}})",
      redis, R"("lease": {"wait_timeout_ms": 5000})");
  ASSERT_EQ(nodes.size(), 3u);
  pg_.ResetStatements();
  // 200 keys x 10 clients: 4 per key on the first node, 3 on each other.
  std::vector<std::thread> threads;
  std::vector<std::vector<HerdReply>> per(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back(
        [&, i] { per[i] = ManyKeysHerd(nodes[i]->resp_port(), "tm", 1000, 200, i == 0 ? 4 : 3); });
  }
  for (auto& t : threads) t.join();
  int64_t queries = pg_.Calls("tier_many_keys");
  std::vector<HerdReply> all;
  for (auto& p : per) all.insert(all.end(), p.begin(), p.end());
  ReportHerd("tier: 3 nodes, 200 cold keys x 10 clients", all, queries);
  EXPECT_LE(queries, 200);
  EXPECT_GE(queries, 200) << "every key was cold";
}

// DEL through one node while the others read and fill: once the DEL is answered, no node serves
// the value it deleted (the readers check every read sent after the acknowledgement).
TEST_F(TierPgTest, DelOnOneNodeReachesEveryNodeBeforeItIsAnswered) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  // Loads read the primary, so replica lag (issue 13's) cannot bring an old row back: what is
  // checked is the tier's own invalidation path, round after round.
  auto nodes = StartNodes(
      3,
      R"({"tv": {"query": "SELECT version::text AS tier_race FROM users WHERE id = $1::bigint", "pool": "primary"}})",
      redis, "", R"("fallback_to_primary": true, "pools": {"primary": {"replicas": []}})");
  ASSERT_EQ(nodes.size(), 3u);
  const int id = 7001;
  const std::string key = "tv:" + std::to_string(id);
  const int rounds = RaceRounds(300);  // CORRAL_TIER_RACE_ROUNDS=10000 for the issue's figure
  VersionReaders readers({nodes[0]->resp_port(), nodes[2]->resp_port()}, key);
  RedisConnection del = ConnectRedis(nodes[1]->resp_port());
  ASSERT_TRUE(del);
  VersionWriter writer(pg_.primary, id);
  ASSERT_TRUE(writer.ok()) << writer.error();
  std::vector<VersionReaders::Ack> acks;
  for (int i = 0; i < rounds; ++i) {
    int64_t v = writer.Bump();
    ASSERT_GT(v, 0) << writer.error();
    RedisReplyPtr reply(static_cast<redisReply*>(redisCommand(del.get(), "DEL %s", key.c_str())));
    ASSERT_TRUE(reply);
    Clock::time_point at = Clock::now();
    acks.push_back({at, v});
    // A round ends once both readers have read after its DEL was answered, so every round races
    // a fill against the next DEL, and makes progress.
    EXPECT_TRUE(WaitFor(Millis(5000), [&] { return readers.AnsweredSince(at); }))
        << "the readers stopped getting answers";
  }
  readers.Stop();
  VersionReaders::Verdict verdict = readers.Check(acks);
  std::printf(
      "[figures] tier race: %d DELs on node 1, %zu reads on nodes 0 and 2 checked, %zu old, "
      "%zu busy\n",
      rounds, verdict.checked, verdict.old, readers.errors());
  EXPECT_GT(verdict.checked, static_cast<size_t>(rounds));
  EXPECT_EQ(verdict.old, 0u) << "a node served a value older than an acknowledged DEL: "
                             << testing::PrintToString(verdict.examples);
  if (HasFailure()) {
    for (auto& n : nodes) {
      std::printf("--- node stderr\n%s\n", n->Stderr().c_str());
      for (const char* m :
           {"corral_invalidations_total{source=\"tier\"}",
            "corral_invalidations_total{source=\"del\"}",
            "corral_requests_total{proto=\"resp\",result=\"hit\"}",
            "corral_requests_total{proto=\"resp\",result=\"miss\"}",
            "corral_requests_total{proto=\"resp\",result=\"stale\"}",
            "corral_tier_lookups_total{result=\"hit\"}",
            "corral_tier_lookups_total{result=\"won\"}",
            "corral_tier_leases_total{outcome=\"filled\"}",
            "corral_tier_leases_total{outcome=\"voided\"}", "corral_tier_fallbacks_total"}) {
        std::printf("%s %.0f\n", m, Metric(n->http_port(), m));
      }
    }
  }
}

// The same race through NOTIFY: the users table's trigger NOTIFYs `user:ID` at commit, every node
// hears it, deletes the L2 entry and voids the cluster lease. Once every node has counted the
// NOTIFY, no node serves the version before the update (fills in flight on any node included).
TEST_F(TierPgTest, NotifyReachesEveryNodeAndVoidsFillsInFlight) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      3,
      R"({"user": {"query": "SELECT version::text AS tier_notify FROM users WHERE id = $1::bigint", "pool": "primary"}})",
      redis, "", R"("fallback_to_primary": true, "pools": {"primary": {"replicas": []}})");
  ASSERT_EQ(nodes.size(), 3u);
  const int id = 7002;
  const std::string key = "user:" + std::to_string(id);
  const int rounds = RaceRounds(100);
  VersionReaders readers({nodes[0]->resp_port(), nodes[2]->resp_port()}, key);
  VersionWriter writer(pg_.primary, id);
  ASSERT_TRUE(writer.ok()) << writer.error();
  const std::string notified = "corral_invalidations_total{source=\"notify\"}";
  std::vector<VersionReaders::Ack> acks;
  for (int i = 0; i < rounds; ++i) {
    std::vector<double> before;
    for (auto& n : nodes) before.push_back(Metric(n->http_port(), notified));
    int64_t v = writer.Bump();
    ASSERT_GT(v, 0) << writer.error();
    ASSERT_TRUE(WaitFor(Millis(5000), [&] {
      for (size_t n = 0; n < nodes.size(); ++n) {
        if (Metric(nodes[n]->http_port(), notified) <= before[n]) return false;
      }
      return true;
    })) << "a node never heard the NOTIFY";
    acks.push_back({Clock::now(), v});
  }
  readers.Stop();
  VersionReaders::Verdict verdict = readers.Check(acks);
  std::printf(
      "[figures] tier NOTIFY race: %d updates, %zu reads on nodes 0 and 2 checked, %zu old\n",
      rounds, verdict.checked, verdict.old);
  EXPECT_GT(verdict.checked, static_cast<size_t>(rounds));
  EXPECT_EQ(verdict.old, 0u)
      << "a node served a version older than a NOTIFY every node had applied: "
      << testing::PrintToString(verdict.examples);
}

// One node cut off from Redis (a black-holed link) applies a DEL that the tier never saw. Once the
// link heals, that node starts a new epoch, which voids every L2 entry written before it and makes
// the other nodes treat their L1 as stale: no node serves the deleted version for the rest of its
// TTL. (While the node is cut off, the others cannot know; SPEC "Scale-out".)
TEST_F(TierPgTest, InvalidationTheTierMissedIsFencedByAnEpoch) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  uint16_t redis_port = static_cast<uint16_t>(std::atoi(redis[0].substr(10).c_str()));
  fault::FaultProxy proxy("127.0.0.1", redis_port);
  const std::string ns =
      R"({"te": {"query": "SELECT version::text AS tier_epoch FROM users WHERE id = $1::bigint", "pool": "primary"}})";
  const std::string pg = R"("fallback_to_primary": true, "pools": {"primary": {"replicas": []}})";
  auto direct = StartNodes(1, ns, redis, "", pg);
  auto cut = StartNodes(1, ns, {"127.0.0.1:" + std::to_string(proxy.port())}, "", pg);
  ASSERT_EQ(direct.size(), 1u);
  ASSERT_EQ(cut.size(), 1u);
  const int id = 7003;
  const std::string key = "te:" + std::to_string(id);
  auto get = [&](ServerProcess& node) {
    RedisConnection c = ConnectRedis(node.resp_port());
    RedisReplyPtr r(static_cast<redisReply*>(redisCommand(c.get(), "GET %s", key.c_str())));
    return r && r->type == REDIS_REPLY_STRING ? std::atoll(r->str) : -1;
  };
  int64_t v1 = get(*direct[0]);
  ASSERT_GT(v1, 0);
  EXPECT_EQ(get(*cut[0]), v1) << "an L2 hit";

  proxy.Blackhole();
  int64_t v2 = std::atoll(PgCluster::Sql(pg_.primary,
                                         "UPDATE users SET version = version + 1 "
                                         "WHERE id = " +
                                             std::to_string(id) + " RETURNING version")
                              .c_str());
  ASSERT_GT(v2, v1);
  RedisConnection c = ConnectRedis(cut[0]->resp_port());
  auto t0 = Clock::now();
  RedisReplyPtr del(static_cast<redisReply*>(redisCommand(c.get(), "DEL %s", key.c_str())));
  double del_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  ASSERT_TRUE(del);
  EXPECT_LT(del_ms, 1000 + 500) << "DEL waits on the tier at most timeout_ms";
  EXPECT_EQ(get(*cut[0]), v2) << "the node that applied the DEL reloads at once";

  proxy.Heal();
  EXPECT_TRUE(cut[0]->WaitForStderr("event=tier_epoch", Millis(10000)))
      << "the cut-off node never started a new epoch:\n"
      << cut[0]->Stderr();
  // The other node marks its L1 stale when it hears the new epoch: it may answer the stale
  // version once more while it reloads, then never again.
  EXPECT_TRUE(WaitFor(Millis(10000), [&] { return get(*direct[0]) == v2; }));
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(get(*direct[0]), v2);
    EXPECT_EQ(get(*cut[0]), v2);
  }
  std::printf(
      "[figures] tier epoch: DEL on a cut-off node answered in %.0f ms; after the heal "
      "every node serves the new version\n",
      del_ms);
}

// The Redis link breaks in each way the fault proxy can break it — answers slower than
// redis.timeout_ms, a half-open stall, connections reset in the middle of a reply, a trickle of
// bandwidth — while one node serves cold keys and DELs. No request waits past the tier's timeout
// plus one load, every answer is the row's value, and once the link heals the node goes back to
// the tier (a key another node loaded is an L2 hit again).
// An epoch announced after a node has subscribed but before it has joined and read the epoch
// (another node's bump in that window) is taken when the node reads the epoch, not before: the
// node then says tier_ready with it, and it was not usable before it was a member. 300 ms of
// latency on the node's Redis links holds its join and its GET back by 600 ms each, so the bump
// the test publishes right after the subscription lands inside the window every time. (Before
// 6b4c2c7 the node took the epoch from the message, counted as usable before joining, and never
// said tier_ready.)
TEST_F(TierPgTest, AnEpochAnnouncedBeforeTheJoinIsTakenWhenTheNodeHasJoined) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  const uint16_t redis_port = static_cast<uint16_t>(std::atoi(redis[0].substr(10).c_str()));
  fault::FaultProxy proxy("127.0.0.1", redis_port);
  proxy.SetLatency(Millis(300));
  auto node = StartCorral(
      R"({"te": {"query": "SELECT name AS tier_epoch_race FROM users WHERE id = $1::bigint"}})",
      "\"redis\": {\"nodes\": [\"127.0.0.1:" + std::to_string(proxy.port()) +
          "\"], \"prefix\": \"" + prefix_ + "\", \"timeout_ms\": 2000}");
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->WaitForStderr("event=tier_subscribed", Millis(15000))) << node->Stderr();
  EXPECT_EQ(node->Stderr().find("event=tier_ready"), std::string::npos)
      << "the join and the read take two round trips of 600 ms";
  RedisConnection r = ConnectRedis(redis_port);
  ASSERT_TRUE(r);
  RedisReplyPtr bumped = RedisCmd(r.get(), {"INCR", prefix_ + "epoch"});
  ASSERT_NE(bumped, nullptr);
  ASSERT_EQ(bumped->type, REDIS_REPLY_INTEGER) << ReplyText(bumped.get());
  const std::string epoch = std::to_string(bumped->integer);
  EXPECT_EQ(ReplyText(RedisCmd(r.get(), {"PUBLISH", prefix_ + "epoch", epoch}).get()), ":1");
  EXPECT_TRUE(node->WaitForStderr("event=tier_ready", Millis(15000))) << node->Stderr();
  EXPECT_NE(node->Stderr().find("event=tier_ready node="), std::string::npos);
  EXPECT_NE(node->Stderr().find(" epoch=" + epoch + " "), std::string::npos) << node->Stderr();
  // And it serves through the tier.
  RedisConnection c = ConnectRedis(node->resp_port(), Millis(10000));
  ASSERT_TRUE(c);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", "te:44"}).get()), "$user 44");
}

TEST_F(TierPgTest, RedisLinkFaultsNeverHoldARequestPastTheBound) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  uint16_t redis_port = static_cast<uint16_t>(std::atoi(redis[0].substr(10).c_str()));
  fault::FaultProxy proxy("127.0.0.1", redis_port);
  const std::string ns =
      R"({"tf": {"query": "SELECT name AS tier_link_fault FROM users WHERE id = $1::bigint"}})";
  auto direct = StartNodes(1, ns, redis);
  auto faulty = StartNodes(1, ns, {"127.0.0.1:" + std::to_string(proxy.port())});
  ASSERT_EQ(direct.size(), 1u);
  ASSERT_EQ(faulty.size(), 1u);
  RedisConnection c = ConnectRedis(faulty[0]->resp_port(), Millis(10000));
  ASSERT_TRUE(c);
  struct Fault {
    const char* name;
    std::function<void()> apply;
  };
  const std::vector<Fault> faults = {
      {"latency 1500 ms", [&] { proxy.SetLatency(Millis(1500)); }},
      {"half-open stall", [&] { proxy.StallHalfOpen(); }},
      {"reset mid-reply", [&] { proxy.ResetMidReply(40); }},
      {"bandwidth 100 B/s", [&] { proxy.SetBandwidth(100); }},
  };
  // timeout_ms (1000, StartNodes) for the tier, then the load itself, with room for a slow CI.
  constexpr double kBoundMs = 1000 + 1500;
  int id = 3300;
  for (const Fault& fault : faults) {
    fault.apply();
    double worst = 0;
    for (int i = 0; i < 8; ++i, ++id) {
      const std::string key = "tf:" + std::to_string(id);
      auto t0 = Clock::now();
      EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", key}).get()), "$user " + std::to_string(id))
          << fault.name;
      auto t1 = Clock::now();
      EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"DEL", key}).get()), ":1") << fault.name;
      auto t2 = Clock::now();
      worst = std::max({worst, std::chrono::duration<double, std::milli>(t1 - t0).count(),
                        std::chrono::duration<double, std::milli>(t2 - t1).count()});
    }
    EXPECT_LE(worst, kBoundMs) << fault.name;
    std::printf("[figures] Redis link %s: 8 cold GETs and 8 DELs, slowest %.0f ms\n", fault.name,
                worst);
    proxy.Heal();
    EXPECT_TRUE(WaitFor(Millis(15000), [&] {
      return Metric(faulty[0]->http_port(), "corral_tier_up") == 1;
    })) << fault.name;
    // Back in the tier: a key the other node loaded is an L2 hit here (the epoch a fault may have
    // started is read first: until then a load falls back).
    const std::string shared = "tf:" + std::to_string(id++);
    RedisConnection d = ConnectRedis(direct[0]->resp_port());
    ASSERT_TRUE(d);
    EXPECT_EQ(ReplyText(RedisCmd(d.get(), {"GET", shared}).get()).substr(0, 6), "$user ");
    EXPECT_TRUE(WaitFor(Millis(15000),
                        [&] {
                          const std::string hits = "corral_tier_lookups_total{result=\"hit\"}";
                          const double before = Metric(faulty[0]->http_port(), hits);
                          RedisConnection e = ConnectRedis(faulty[0]->resp_port());
                          const std::string probe = "tf:" + std::to_string(id++);
                          RedisCmd(d.get(), {"GET", probe});
                          RedisCmd(e.get(), {"GET", probe});
                          return Metric(faulty[0]->http_port(), hits) > before;
                        }))
        << fault.name << ": the node never read L2 again";
  }
}

// A node that stops (SIGTERM, a rolling restart) leaves the membership once it has stopped
// serving: a DEL on another node right after does not wait redis.timeout_ms for the gone node's
// acknowledgement, as it did while the gone node's last heartbeat counted (up to 3 s).
TEST_F(TierPgTest, ANodeThatStopsLeavesTheMembershipAtOnce) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      2, R"({"tm": {"query": "SELECT name AS tier_member FROM users WHERE id = $1::bigint"}})",
      redis);
  ASSERT_EQ(nodes.size(), 2u);
  RedisConnection c = ConnectRedis(nodes[0]->resp_port());
  ASSERT_TRUE(c);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", "tm:1"}).get()), "$user 1");
  ExitStatus stopped = nodes[1]->Stop();
  EXPECT_TRUE(stopped.exited && stopped.code == 0) << stopped.ToString();
  auto t0 = Clock::now();
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"DEL", "tm:1"}).get()), ":1");
  const double del_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::printf("[figures] DEL right after another node stopped: %.0f ms (timeout_ms 1000)\n",
              del_ms);
  EXPECT_LT(del_ms, 900) << "waited for the stopped node's acknowledgement";
  EXPECT_EQ(nodes[0]->Stderr().find("tier_broadcast_unacknowledged"), std::string::npos)
      << nodes[0]->Stderr();
}

// A node that crashes stays a member until its liveness expires (3 s), but its subscription ends
// with its process: a DEL elsewhere waits only for the nodes its broadcast reached, not for the
// dead one's acknowledgement (redis.timeout_ms), and the live ones still apply it before it
// answers.
TEST_F(TierPgTest, ADelDoesNotWaitForANodeThatCrashed) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      3, R"({"tc": {"query": "SELECT name AS tier_crash FROM users WHERE id = $1::bigint"}})",
      redis);
  ASSERT_EQ(nodes.size(), 3u);
  RedisConnection c = ConnectRedis(nodes[0]->resp_port());
  RedisConnection live = ConnectRedis(nodes[1]->resp_port());
  ASSERT_TRUE(c && live);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", "tc:1"}).get()), "$user 1");
  EXPECT_EQ(ReplyText(RedisCmd(live.get(), {"GET", "tc:1"}).get()), "$user 1");
  const int redis_port = std::atoi(std::getenv("CORRAL_TEST_REDIS_PORT"));
  const std::string channel = prefix_ + "invalidated";
  nodes[2]->Kill();
  // Redis drops the dead node's subscription once it reads the closed socket.
  ASSERT_TRUE(WaitFor(Millis(5000), [&] {
    return tier::tiertest::Cli(redis_port, {"PUBSUB", "NUMSUB", channel}) == channel + "\n2";
  })) << tier::tiertest::Cli(redis_port, {"PUBSUB", "NUMSUB", channel});
  auto t0 = Clock::now();
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"DEL", "tc:1"}).get()), ":1");
  const double del_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::printf("[figures] DEL right after another node crashed: %.0f ms (timeout_ms 1000)\n",
              del_ms);
  EXPECT_LT(del_ms, 900) << "waited for the crashed node's acknowledgement";
  EXPECT_EQ(nodes[0]->Stderr().find("tier_broadcast_unacknowledged"), std::string::npos)
      << nodes[0]->Stderr();
  // The live node applied it before the DEL answered.
  EXPECT_EQ(Metric(nodes[1]->http_port(), "corral_invalidations_total{source=\"tier\"}"), 1);
}

// Redis acknowledged a DEL, then lost it: killed and restarted from a snapshot taken before the
// DEL, it holds the deleted value again, at the epoch it was written in. Each node notices it is
// talking to another Redis process (its run_id changed) before it reads anything from it, and
// starts a new epoch, which voids that value: no read sent after the DEL was acknowledged returns
// the version it deleted, before, during or after the restart.
TEST_F(TierPgTest, RedisRestartedFromAnOlderSnapshotCannotBringADeletedValueBack) {
  tier::tiertest::RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  auto nodes = StartNodes(
      2,
      R"({"ts": {"query": "SELECT version::text AS tier_snapshot FROM users WHERE id = $1::bigint", "pool": "primary", "ttl_ms": 60000}})",
      {redis.address()}, "",
      R"("fallback_to_primary": true, "pools": {"primary": {"replicas": []}})");
  ASSERT_EQ(nodes.size(), 2u);
  const int id = 7004;
  const std::string key = "ts:" + std::to_string(id);
  const std::string l2_key = prefix_ + "{" + key + "}";
  std::vector<RedisConnection> conns;
  for (auto& n : nodes) {
    conns.push_back(ConnectRedis(n->resp_port()));
    ASSERT_TRUE(conns.back());
  }
  auto get = [&](size_t node) -> int64_t {
    RedisReplyPtr r(
        static_cast<redisReply*>(redisCommand(conns[node].get(), "GET %s", key.c_str())));
    return r && r->type == REDIS_REPLY_STRING ? std::atoll(r->str) : -1;
  };
  const int64_t v1 = get(0);
  ASSERT_GT(v1, 0);
  EXPECT_EQ(get(1), v1) << "an L2 hit";
  EXPECT_EQ(redis.Cli({"HGET", l2_key, "v"}), std::to_string(v1));
  ASSERT_EQ(redis.Cli({"SAVE"}), "OK");

  VersionWriter writer(pg_.primary, id);
  ASSERT_TRUE(writer.ok()) << writer.error();
  const int64_t v2 = writer.Bump();
  ASSERT_GT(v2, v1) << writer.error();
  {
    RedisReplyPtr del(
        static_cast<redisReply*>(redisCommand(conns[0].get(), "DEL %s", key.c_str())));
    ASSERT_TRUE(del);
  }
  EXPECT_EQ(redis.Cli({"EXISTS", l2_key}), "0") << "the DEL reached L2";

  // From here on every read must see v2. Read on both nodes through the restart.
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, old{0};
  std::thread reader([&] {
    while (!stop) {
      for (size_t n = 0; n < nodes.size(); ++n) {
        int64_t v = get(n);
        if (v < 0) continue;  // -BUSY or an error while Redis is away: not an old value
        ++reads;
        if (v < v2) ++old;
      }
      std::this_thread::sleep_for(Millis(2));
    }
  });
  redis.Kill();
  ASSERT_TRUE(redis.Start());  // same port and directory: it loads the snapshot, which holds v1
  // (Checked in its log, not by reading the key: a node may have refilled it already.)
  std::ifstream log(redis.dir() + "/redis.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("DB loaded from disk"), std::string::npos)
      << "the restarted Redis did not load the snapshot:\n"
      << text;
  for (auto& n : nodes) {
    EXPECT_TRUE(n->WaitForStderr("event=tier_writes_may_be_lost", Millis(15000))) << n->Stderr();
  }
  EXPECT_TRUE(WaitFor(Millis(15000), [&] { return SumMetric(nodes, "corral_tier_up") == 2; }));
  // The nodes marked their L1 stale when they resubscribed, so their reads went to L2, found
  // the lost DEL's value void, and refilled L2 at the new epoch. Then more reads.
  EXPECT_TRUE(WaitFor(Millis(15000), [&] {
    return redis.Cli({"HGET", l2_key, "v"}) == std::to_string(v2);
  })) << "L2 was never refilled with the new version";
  const int before = reads.load();
  EXPECT_TRUE(WaitFor(Millis(15000), [&] { return reads.load() >= before + 200; }));
  stop = true;
  reader.join();
  std::printf(
      "[figures] tier snapshot restart: %d reads after the DEL, %d old (the snapshot held "
      "v%lld)\n",
      reads.load(), old.load(), static_cast<long long>(v1));
  EXPECT_EQ(old.load(), 0) << "a node served the value Redis lost the DEL of";
  EXPECT_GT(reads.load(), 200);
  for (size_t n = 0; n < nodes.size(); ++n) EXPECT_EQ(get(n), v2);
}

// Redis dies while a herd waits on the tier: every request is answered within its wait bound by
// node-local single flight (at most one query per key per node), and once Redis is back the
// fleet is at one query per key again.
TEST_F(TierPgTest, RedisKilledMidHerdFallsBackThenReturns) {
  tier::tiertest::RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  auto nodes = StartNodes(
      3,
      R"({"tk": {"query": "SELECT name AS tier_redis_dies FROM users, pg_sleep(0.3) WHERE id = $1::bigint"}})",
      {redis.address()}, R"("lease": {"wait_timeout_ms": 3000})");
  ASSERT_EQ(nodes.size(), 3u);
  pg_.ResetStatements();
  const int keys = 20;
  std::vector<std::thread> threads;
  std::vector<std::vector<HerdReply>> per(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back(
        [&, i] { per[i] = ManyKeysHerd(nodes[i]->resp_port(), "tk", 2000, keys, 10); });
  }
  // Kill it while the loads are in flight.
  EXPECT_TRUE(WaitFor(Millis(5000), [&] { return SumMetric(nodes, "corral_leases") >= 1; }));
  redis.Kill();
  for (auto& t : threads) t.join();
  std::vector<HerdReply> all;
  for (auto& p : per) all.insert(all.end(), p.begin(), p.end());
  int64_t queries = pg_.Calls("tier_redis_dies");
  ReportHerd("tier: Redis killed mid-herd, 3 nodes x 20 keys x 10 clients", all, queries);
  EXPECT_LE(queries, 3 * keys) << "at most one query per key per node";
  for (const HerdReply& r : all) {
    EXPECT_GE(r.ms, 0) << "unanswered";
    EXPECT_LE(r.ms, 3000 + 300 + 1000) << "past the wait bound plus one load";
  }
  // Back: the nodes reconnect and resubscribe, and a cold key costs one query again.
  ASSERT_TRUE(redis.Start());  // on the same port
  EXPECT_TRUE(WaitFor(Millis(15000), [&] { return SumMetric(nodes, "corral_tier_up") == 3; }));
  for (auto& n : nodes) EXPECT_TRUE(n->WaitForStderr("event=tier_ready", Millis(5000)));
  pg_.ResetStatements();
  // The epoch read after resubscribing can take a moment: a key loaded meanwhile falls back.
  EXPECT_TRUE(WaitFor(Millis(10000), [&] {
    double before = SumMetric(nodes, "corral_tier_fallbacks_total");
    auto replies = Herd(nodes, "tk:3001", 10, "user 3001");
    return SumMetric(nodes, "corral_tier_fallbacks_total") == before;
  }));
  pg_.ResetStatements();
  Herd(nodes, "tk:3002", 50, "user 3002");
  EXPECT_EQ(pg_.Calls("tier_redis_dies"), 1) << "one query per key again";
}

// A hot key read on all three nodes across several expiries: one refresh per TTL fleet-wide,
// and readers never wait on it.
TEST_F(TierPgTest, HotKeyIsRefreshedOncePerTtlFleetWide) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      3,
      R"({"th": {"query": "SELECT name AS tier_hot FROM users, pg_sleep(0.02) WHERE id = $1::bigint", "ttl_ms": 1000, "ttl_jitter": 0.1, "stale_ms": 10000}})",
      redis);
  ASSERT_EQ(nodes.size(), 3u);
  Herd(nodes, "th:11", 1, "user 11");  // warm
  pg_.ResetStatements();
  auto start = Clock::now();
  std::vector<std::thread> readers;
  std::atomic<size_t> slow{0}, reads{0}, wrong{0};
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&, i] {
      RedisConnection c = ConnectRedis(nodes[i]->resp_port());
      ASSERT_TRUE(c);
      while (Clock::now() - start < Millis(4000)) {
        // Paced (about 1000 reads/s per node) so that three readers do not starve the nodes
        // and Redis of the two cores.
        std::this_thread::sleep_for(Millis(1));
        auto t0 = Clock::now();
        auto* reply = static_cast<redisReply*>(redisCommand(c.get(), "GET th:11"));
        if (reply == nullptr) break;
        if (reply->type != REDIS_REPLY_STRING || std::string(reply->str) != "user 11") ++wrong;
        freeReplyObject(reply);
        ++reads;
        if (Clock::now() - t0 > Millis(15)) ++slow;  // a wait on the 20 ms load would show
      }
    });
  }
  for (auto& t : readers) t.join();
  int64_t refreshes = pg_.Calls("tier_hot");
  double fallbacks = SumMetric(nodes, "corral_tier_fallbacks_total");
  std::printf(
      "[figures] tier hot key: 4 s, 3 nodes, %zu reads, %lld refreshes, %zu slow, %.0f "
      "fallbacks\n",
      reads.load(), static_cast<long long>(refreshes), slow.load(), fallbacks);
  EXPECT_EQ(fallbacks, 0) << "every refresh went through the tier";
  EXPECT_EQ(wrong.load(), 0u);
  // 4 s of a TTL drawn from [900, 1100] ms: at most 5 expiries.
  EXPECT_LE(refreshes, 5);
  EXPECT_GE(refreshes, 3) << "the key was refreshed";
  EXPECT_EQ(SumMetric(nodes, "corral_requests_total{proto=\"resp\",result=\"waited\"}"), 0);
}

// The holder of a cluster lease dies mid-load: another node takes the lease over once the dead
// node's liveness key expires, well before lease_ttl_ms.
TEST_F(TierPgTest, DeadHoldersLeaseIsTakenOver) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  const std::string ns =
      R"({"td": {"query": "SELECT name AS tier_dead FROM users, pg_sleep(0.8) WHERE id = $1::bigint"}})";
  const std::string extra = R"("lease": {"wait_timeout_ms": 15000, "lease_ttl_ms": 30000})";
  auto nodes = StartNodes(2, ns, redis, extra);
  ASSERT_EQ(nodes.size(), 2u);
  RedisConnection a = ConnectRedis(nodes[0]->resp_port());
  ASSERT_TRUE(a);
  redisAppendCommand(a.get(), "GET td:21");
  int done = 0;
  redisBufferWrite(a.get(), &done);
  ASSERT_TRUE(WaitFor(Millis(5000), [&] {
    return Metric(nodes[0]->http_port(), "corral_tier_lookups_total{result=\"won\"}") == 1;
  }));
  nodes[0]->Kill();
  auto t0 = Clock::now();
  auto replies = RespHerd(nodes[1]->resp_port(), {{"GET", "td:21"}}, Millis(20000));
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::printf("[figures] tier takeover: answered %.0f ms after the holder died (lease_ttl 30 s)\n",
              ms);
  EXPECT_EQ(RespValue(replies[0].reply), "user 21");
  EXPECT_LT(ms, 10000) << "taken over on liveness, not after lease_ttl_ms";
  EXPECT_EQ(Metric(nodes[1]->http_port(), "corral_tier_leases_total{outcome=\"taken_over\"}"), 1);
}

TEST_F(TierPgTest, RedisClusterThreeNodesOneColdKeyCostOneQuery) {
  std::vector<std::string> cluster = ClusterNodes();
  if (cluster.empty()) {
    if (std::getenv("CI") != nullptr) FAIL() << "CORRAL_TEST_REDIS_CLUSTER_NODES unset";
    GTEST_SKIP() << "no Redis Cluster (run through deploy/run-tests.sh)";
  }
  // As in ColdKeysSpreadOverThreeNodesCostOneQueryEach: one node may win all 100 keys' leases
  // below and run them 16 at a time, 200 ms each; a 5 s wait bound keeps the queue from dropping
  // loads (-BUSY) on a loaded machine. The test is about single flight, not overload.
  auto nodes = StartNodes(
      3,
      R"({"tc": {"query": "SELECT name AS tier_cluster FROM users, pg_sleep(0.2) WHERE id = $1::bigint", "max_inflight_loads": 256}})",
      cluster, R"("lease": {"wait_timeout_ms": 5000})");
  ASSERT_EQ(nodes.size(), 3u);
  for (auto& n : nodes) EXPECT_TRUE(n->WaitForStderr("cluster=true", Millis(1000)));
  pg_.ResetStatements();
  auto replies = Herd(nodes, "tc:43", 1000, "user 43");
  int64_t queries = pg_.Calls("tier_cluster");
  ReportHerd("tier: Redis Cluster, 3 nodes x 1000 clients, one cold key, 200 ms query", replies,
             queries);
  EXPECT_EQ(queries, 1);
  // And many keys, spread over every master's slots.
  pg_.ResetStatements();
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { ManyKeysHerd(nodes[i]->resp_port(), "tc", 5000, 100, 3); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(pg_.Calls("tier_cluster"), 100);
}

// A Redis Cluster master fails over (CLUSTER FAILOVER on its replica) while a herd waits on the
// tier: every request is answered right within its wait bound, the nodes follow MOVED to the
// promoted master, and a cold key costs one query fleet-wide afterwards.
TEST_F(TierPgTest, RedisClusterMasterFailoverMidHerd) {
  std::vector<std::string> cluster = ClusterNodes();
  const char* local = std::getenv("CORRAL_TEST_REDIS_CLUSTER_LOCAL");
  if (cluster.empty() || local == nullptr) {
    if (std::getenv("CI") != nullptr) FAIL() << "CORRAL_TEST_REDIS_CLUSTER_* unset";
    GTEST_SKIP() << "no Redis Cluster (run through deploy/run-tests.sh)";
  }
  auto nodes = StartNodes(
      3,
      R"({"tf": {"query": "SELECT name AS tier_failover FROM users, pg_sleep(0.3) WHERE id = $1::bigint", "max_inflight_loads": 256}})",
      cluster, R"("lease": {"wait_timeout_ms": 3000})");
  ASSERT_EQ(nodes.size(), 3u);
  // A seed that is a master now (an earlier run of this test, e.g. the sanitizer phase's against
  // the same cluster, swapped roles): its replica takes over its slots.
  std::string port;
  for (const std::string& seed : cluster) {
    std::string p = seed.substr(seed.rfind(':') + 1);
    if (RunProcess({"redis-cli", "-p", p, "ROLE"}, {}, Millis(5000)).out.rfind("master", 0) == 0) {
      port = p;
      break;
    }
  }
  ASSERT_FALSE(port.empty()) << "no seed is a master";
  pg_.ResetStatements();
  const int keys = 30;
  std::vector<std::thread> threads;
  std::vector<std::vector<HerdReply>> per(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back(
        [&, i] { per[i] = ManyKeysHerd(nodes[i]->resp_port(), "tf", 6000, keys, 10); });
  }
  EXPECT_TRUE(WaitFor(Millis(5000), [&] { return SumMetric(nodes, "corral_leases") >= 1; }));
  ProcessResult failover = RunProcess({local, "failover", port}, {}, Millis(30000));
  EXPECT_TRUE(failover.status.ok()) << failover.out << failover.err;
  for (auto& t : threads) t.join();
  std::vector<HerdReply> all;
  for (auto& p : per) all.insert(all.end(), p.begin(), p.end());
  int64_t queries = pg_.Calls("tier_failover");
  ReportHerd("tier: cluster master failed over mid-herd, 3 nodes x 30 keys x 10 clients", all,
             queries);
  EXPECT_LE(queries, 3 * keys) << "at most one query per key per node";
  for (const HerdReply& r : all) {
    EXPECT_GE(r.ms, 0) << "unanswered";
    EXPECT_LE(r.ms, 3000 + 300 + 1000) << "past the wait bound plus one load";
  }
  // Afterwards the nodes use the promoted master: one query per cold key again.
  EXPECT_TRUE(WaitFor(Millis(15000), [&] { return SumMetric(nodes, "corral_tier_up") == 3; }));
  int probe = 8000;
  EXPECT_TRUE(WaitFor(Millis(15000), [&] {
    double before = SumMetric(nodes, "corral_tier_fallbacks_total");
    ++probe;
    Herd(nodes, "tf:" + std::to_string(probe), 2, "user " + std::to_string(probe));
    return SumMetric(nodes, "corral_tier_fallbacks_total") == before;
  })) << "the nodes never left node-local fallback";
  pg_.ResetStatements();
  std::vector<std::thread> after;
  for (int i = 0; i < 3; ++i) {
    after.emplace_back([&, i] { ManyKeysHerd(nodes[i]->resp_port(), "tf", 9000, 50, 2); });
  }
  for (auto& t : after) t.join();
  EXPECT_EQ(pg_.Calls("tier_failover"), 50) << "one query per key across the fleet again";
}

// A starting node is not ready (/readyz 503) until it has joined the tier, so that after a
// restart its misses are L2 hits rather than queries; and it becomes ready without the tier after
// 10 x redis.timeout_ms if Redis does not answer, since corral serves without it.
TEST_F(TierPgTest, ReadinessWaitsForTheTierWithinABound) {
  const std::string ns =
      R"({"tr": {"query": "SELECT name AS tier_ready FROM users WHERE id = $1::bigint"}})";
  auto redis_section = [&](const std::string& address) {
    return "\"redis\": {\"nodes\": [\"" + address + "\"], \"prefix\": \"" + prefix_ +
           "\", \"timeout_ms\": 1000}";
  };
  auto readyz = [](ServerProcess& node) {
    return HttpHerd(node.http_port(), {"/readyz"}, Millis(2000))[0].reply;
  };
  tier::tiertest::RedisProcess redis;
  ASSERT_TRUE(redis.Start());
  redis.Pause();  // answers nothing: the node cannot join
  auto node = StartCorral(ns, redis_section(redis.address()));
  ASSERT_NE(node, nullptr);
  std::string joining = readyz(*node);
  EXPECT_EQ(joining.rfind("HTTP/1.1 503", 0), 0u) << joining;
  EXPECT_NE(joining.find("joining the Redis tier"), std::string::npos) << joining;
  redis.Resume();
  EXPECT_TRUE(WaitFor(Millis(10000), [&] { return readyz(*node).rfind("HTTP/1.1 200", 0) == 0; }))
      << node->Stderr();
  EXPECT_TRUE(node->WaitForStderr("event=tier_ready", Millis(1000)))
      << "ready before it joined the tier";

  // Redis gone for good: ready once the bound (10 s here) has passed, and it serves.
  const int dead_port = tier::tiertest::FreePort();
  auto alone = StartCorral(ns, redis_section("127.0.0.1:" + std::to_string(dead_port)));
  ASSERT_NE(alone, nullptr);
  auto t0 = Clock::now();
  EXPECT_TRUE(WaitFor(Millis(20000), [&] { return readyz(*alone).rfind("HTTP/1.1 200", 0) == 0; }));
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_LT(ms, 20000);
  RedisConnection c = ConnectRedis(alone->resp_port());
  RedisReplyPtr r(static_cast<redisReply*>(redisCommand(c.get(), "GET tr:3201")));
  ASSERT_TRUE(r);
  EXPECT_EQ(std::string(r->str, r->len), "user 3201") << "it serves without the tier";
}

// DEL counts the keys the fleet held, as Redis counts the keys it removed: a key another node
// loaded is in L2, though not in this node's L1.
TEST_F(TierPgTest, DelCountsKeysTheFleetHeld) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      2, R"({"td": {"query": "SELECT name AS tier_del_count FROM users WHERE id = $1::bigint"}})",
      redis);
  ASSERT_EQ(nodes.size(), 2u);
  RedisConnection a = ConnectRedis(nodes[0]->resp_port());
  RedisConnection b = ConnectRedis(nodes[1]->resp_port());
  ASSERT_TRUE(a && b);
  auto integer = [](RedisConnection& c, const char* command) -> long long {
    RedisReplyPtr r(static_cast<redisReply*>(redisCommand(c.get(), command)));
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  };
  RedisReplyPtr got(static_cast<redisReply*>(redisCommand(a.get(), "GET td:3101")));
  ASSERT_TRUE(got && got->type == REDIS_REPLY_STRING);
  EXPECT_EQ(integer(b, "EXISTS td:3101"), 0) << "not in the other node's L1";
  EXPECT_EQ(integer(b, "DEL td:3101 td:3102"), 1) << "one of the two was in L2";
  EXPECT_EQ(integer(b, "DEL td:3101"), 0) << "gone everywhere";
  EXPECT_EQ(integer(a, "EXISTS td:3101"), 0);
}

// Issue 13's experiment across the fleet: with both replicas paused, a DEL on node 1 carries the
// write's WAL position to L2 and to the other nodes. A reload on any node reads the old row from a
// lagging replica; L2 refuses to keep it (its fence) and no node caches it as fresh — every node
// serves it as STALE — and once the replicas have replayed the write every node serves the new
// row. Before positions travelled, one node's reload put the old row into L2 and the others took
// it from there as fresh, for the rest of its TTL.
TEST_F(TierPgTest, DelDuringReplicaLagIsFencedOnEveryNode) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      3,
      R"({"tlag": {"query": "SELECT version::text AS tier_lag FROM users WHERE id = $1::bigint", "ttl_ms": 600000}})",
      redis, R"("lease": {"wait_timeout_ms": 3000})",
      R"("health_check_interval_ms": 100, "max_replica_lag_ms": 60000)");
  ASSERT_EQ(nodes.size(), 3u);
  struct Read {
    std::string body, cache;
  };
  auto get = [&](size_t node, int id) {
    std::optional<HttpResponse> res =
        HttpRequestOnce(nodes[node]->http_port(), "GET", "/v1/cache/tlag/" + std::to_string(id));
    return res ? Read{res->body, res->Header("x-cache")} : Read{"(no answer)", ""};
  };
  for (int round = 0; round < 3; ++round) {
    const int id = 7100 + round;
    ASSERT_TRUE(pg_.WaitReplayed());
    const std::string before = std::to_string(pg_.UserVersion(id));
    for (size_t n = 0; n < nodes.size(); ++n) EXPECT_EQ(get(n, id).body, before);
    ASSERT_TRUE(pg_.PauseReplay());
    const std::string after = std::to_string(pg_.BumpUserVersion(id));
    RedisConnection del = ConnectRedis(nodes[1]->resp_port());
    ASSERT_TRUE(del);
    EXPECT_EQ(ReplyText(RedisCmd(del.get(), {"DEL", "tlag:" + std::to_string(id)}).get()), ":1");
    // Node 0 reloads first (its fill goes to L2, or is refused there), then 2, then 1.
    for (int i = 0; i < 3; ++i) {
      for (size_t n : {0u, 2u, 1u}) {
        Read r = get(n, id);
        EXPECT_EQ(r.body, before) << "node " << n << ": no replica has the write yet";
        EXPECT_EQ(r.cache, "STALE")
            << "node " << n << ", round " << round << ": the old row must never be served as fresh";
      }
    }
    pg_.ResumeReplay();
    ASSERT_TRUE(pg_.WaitReplayed());
    for (size_t n = 0; n < nodes.size(); ++n) {
      EXPECT_TRUE(WaitFor(Millis(5000),
                          [&] {
                            Read r = get(n, id);
                            if (r.body == before) EXPECT_EQ(r.cache, "STALE") << "node " << n;
                            return r.body == after;
                          }))
          << "node " << n << " never served the new row";
      Read r = get(n, id);
      EXPECT_EQ(r.body, after);
      EXPECT_NE(r.cache, "STALE");
    }
  }
  EXPECT_GE(SumMetric(nodes, "corral_fenced_fills_total{action=\"stale\"}"), 3);
}

// Read your writes across the tier: node 0 filled L2 before the write. The writer, on node 1,
// hands over its write's position and reads its own write (from the primary: the replicas are
// paused), never the older value L2 holds. With no invalidation sent, node 0's reader without a
// position keeps its cached value.
TEST_F(TierPgTest, ReadYourWritesSkipsAnOlderL2Value) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      2,
      R"({"tryw": {"query": "SELECT version::text AS tier_ryw FROM users WHERE id = $1::bigint", "ttl_ms": 600000}})",
      redis, R"("lease": {"wait_timeout_ms": 3000})",
      R"("health_check_interval_ms": 100, "max_replica_lag_ms": 60000, "fallback_to_primary": true)");
  ASSERT_EQ(nodes.size(), 2u);
  RedisConnection reader = ConnectRedis(nodes[0]->resp_port());
  RedisConnection writer = ConnectRedis(nodes[1]->resp_port());
  ASSERT_TRUE(reader && writer);
  for (int round = 0; round < 3; ++round) {
    const int id = 7200 + round;
    const std::string key = "tryw:" + std::to_string(id);
    ASSERT_TRUE(pg_.WaitReplayed());
    const std::string before = std::to_string(pg_.UserVersion(id));
    EXPECT_EQ(ReplyText(RedisCmd(reader.get(), {"GET", key}).get()), "$" + before);  // into L2
    pg_.PauseReplay();
    const std::string after = std::to_string(pg_.BumpUserVersion(id));
    const std::string lsn = pg_.FlushedPosition();
    ASSERT_EQ(ReplyText(RedisCmd(writer.get(), {"CORRAL.WRITTEN", lsn}).get()), "+OK");
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(ReplyText(RedisCmd(writer.get(), {"GET", key}).get()), "$" + after)
          << "round " << round << ": the writer read what preceded its own write";
    }
    // No invalidation was sent: node 0's readers keep the value they had.
    EXPECT_EQ(ReplyText(RedisCmd(reader.get(), {"GET", key}).get()), "$" + before);
    pg_.ResumeReplay();
  }
  EXPECT_GE(Metric(nodes[1]->http_port(), "corral_tier_lookups_total{result=\"won\"}"), 3)
      << "the writer's reads skipped L2's older value and loaded";
}

// An L2 hit: a key another node loaded costs this node one Redis round trip and no query.
TEST_F(TierPgTest, L2HitCostsOneRoundTripAndNoQuery) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes = StartNodes(
      2,
      R"({"tl": {"query": "SELECT name AS tier_l2 FROM users WHERE id = $1::bigint", "max_inflight_loads": 256}})",
      redis);
  ASSERT_EQ(nodes.size(), 2u);
  const int keys = 200;
  ManyKeysHerd(nodes[0]->resp_port(), "tl", 3000, keys, 1);
  pg_.ResetStatements();
  RedisConnection c = ConnectRedis(nodes[1]->resp_port());
  ASSERT_TRUE(c);
  std::vector<HerdReply> timed;
  for (int k = 1; k <= keys; ++k) {
    std::string key = "tl:" + std::to_string(3000 + k);
    auto t0 = Clock::now();
    auto* reply = static_cast<redisReply*>(redisCommand(c.get(), "GET %s", key.c_str()));
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(std::string(reply->str, reply->len), "user " + std::to_string(3000 + k));
    freeReplyObject(reply);
    timed.push_back(HerdReply{"", ms});
  }
  std::printf(
      "[figures] tier L2 hit (one node's L1 miss, filled by another): n=%d p50=%.3fms "
      "p99=%.3fms\n",
      keys, Percentile(timed, 50), Percentile(timed, 99));
  EXPECT_EQ(pg_.Calls("tier_l2"), 0) << "L2 hits run no query";
  EXPECT_EQ(Metric(nodes[1]->http_port(), "corral_tier_lookups_total{result=\"hit\"}"), keys);
}

// Pub/sub across the fleet: a PUBLISH on either node reaches the subscribers of both, each once
// (a node's own message coming back from Redis is dropped), in the order it was published; its
// count is the publishing node's own receivers, as Redis Cluster counts.
TEST_F(TierPgTest, PublishOnOneNodeReachesTheSubscribersOfEveryNode) {
  std::vector<std::string> redis = SharedRedis();
  ASSERT_FALSE(redis.empty());
  auto nodes =
      StartNodes(2, R"({"ps": {"query": "SELECT name FROM users WHERE id = $1::bigint"}})", redis);
  ASSERT_EQ(nodes.size(), 2u);
  auto Resp = [](const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return out;
  };
  auto Message = [](const std::string& text) {
    return "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$" + std::to_string(text.size()) + "\r\n" + text +
           "\r\n";
  };
  std::vector<std::unique_ptr<TcpClient>> subscribers;
  for (const auto& node : nodes) {
    auto c = TcpClient::Connect(node->resp_port());
    ASSERT_TRUE(c);
    const std::string confirmed = "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n";
    ASSERT_TRUE(c->Send(Resp({"SUBSCRIBE", "news"})));
    ASSERT_TRUE(c->ReadUntil(confirmed)) << c->received();
    EXPECT_EQ(c->Take(), confirmed);
    subscribers.push_back(std::move(c));
  }
  auto publisher_a = TcpClient::Connect(nodes[0]->resp_port());
  auto publisher_b = TcpClient::Connect(nodes[1]->resp_port());
  ASSERT_TRUE(publisher_a && publisher_b);
  const std::string one = "one from a";
  const std::string two = "two\r\nfrom b";  // any bytes
  ASSERT_TRUE(publisher_a->Send(Resp({"PUBLISH", "news", one})));
  ASSERT_TRUE(publisher_a->ReadUntil("\r\n"));
  EXPECT_EQ(publisher_a->Take(), ":1\r\n");  // node a's subscriber
  for (auto& s : subscribers) {
    ASSERT_TRUE(s->ReadUntil(Message(one))) << s->received();
  }
  ASSERT_TRUE(publisher_b->Send(Resp({"PUBLISH", "news", two})));
  ASSERT_TRUE(publisher_b->ReadUntil("\r\n"));
  EXPECT_EQ(publisher_b->Take(), ":1\r\n");
  // Each subscriber has exactly the two messages, in order: node a's own message did not come
  // back to it through Redis (it would have arrived before b's).
  for (auto& s : subscribers) {
    ASSERT_TRUE(s->ReadUntil(Message(two))) << s->received();
    EXPECT_EQ(s->Take(), Message(one) + Message(two));
  }
}

}  // namespace
}  // namespace corral::integration

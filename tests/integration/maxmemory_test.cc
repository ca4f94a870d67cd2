// CONFIG SET/GET maxmemory-policy and Redis's OOM refusals against the real corral-server through
// hiredis: the eight Redis names, noeviction refusing denyoom commands (reads and DEL still run,
// nothing is evicted), and Redis 7.0's MULTI/EXEC rules while out of memory (unit/multi.tcl's
// "DISCARD should not fail during OOM", "EXEC with only read commands should not be rejected
// when OOM", "EXEC with at least one use-memory command should fail").
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

constexpr char kOom[] = "-OOM command not allowed when used memory > 'maxmemory'.";

// One server (default configuration: memory.policy tinylfu) for both suites; each test starts
// from FLUSHALL and ends with the configured bound and policy back.
class MaxmemoryTest : public SharedClientTest {
 protected:
  void SetUp() override {
    SharedClientTest::SetUp();
    std::string error;
    other_ = ConnectRedis(server_->resp_port(), Millis(5000), &error);
    ASSERT_NE(other_, nullptr) << error;
  }
  void TearDown() override {
    if (conn_ == nullptr) return;
    EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
    EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"}), "+OK");
  }
  // A command on a second connection: another client.
  std::string Other(const std::vector<std::string>& args) {
    return ReplyText(RedisCmd(other_.get(), args).get());
  }
  std::string InfoField(const std::string& name) {
    RedisReplyPtr r = RedisCmd(conn_.get(), {"INFO", "all"});
    if (r == nullptr || r->type != REDIS_REPLY_STRING) return "";
    const std::string text(r->str, r->len);
    const size_t at = text.find("\r\n" + name + ":");
    if (at == std::string::npos) return "";
    const size_t from = at + 3 + name.size();
    return text.substr(from, text.find("\r\n", from) - from);
  }

  RedisConnection other_;
};

class RespMaxmemoryPolicyTest : public MaxmemoryTest {};
class TransactionsOomTest : public MaxmemoryTest {};

TEST_F(RespMaxmemoryPolicyTest, GetReportsTheConfiguredPolicyAndSetTakesEveryRedisName) {
  // memory.policy tinylfu (the default) is Redis's allkeys-lfu.
  EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory-policy"}), "[$maxmemory-policy, $allkeys-lfu]");
  EXPECT_EQ(InfoField("maxmemory_policy"), "allkeys-lfu");
  for (const char* name : {"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
                           "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", name}), "+OK");
    EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory-policy"}),
              std::string("[$maxmemory-policy, $") + name + "]");
    EXPECT_EQ(InfoField("maxmemory_policy"), name);
  }
  // Any case, as Redis takes it; reported in lower case.
  EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "AllKeys-LRU"}), "+OK");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory-policy"}), "[$maxmemory-policy, $allkeys-lru]");
}

TEST_F(RespMaxmemoryPolicyTest, TheLfuNamesSelectTinyLfuAndTheOthersClock) {
  ASSERT_EQ(Cmd({"SET", "k", "v"}), "+OK");
  ASSERT_EQ(Cmd({"GET", "k"}), "$v");
  // OBJECT FREQ answers only under an LFU policy, as in Redis.
  EXPECT_THAT(Cmd({"OBJECT", "FREQ", "k"}), ::testing::StartsWith(":"));
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"}), "+OK");
  EXPECT_THAT(Cmd({"OBJECT", "FREQ", "k"}), ::testing::StartsWith("-ERR An LFU maxmemory policy"));
  EXPECT_EQ(Cmd({"GET", "k"}), "$v") << "switching the algorithm lost a key";
  // noeviction keeps the algorithm it finds (CLOCK here).
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  EXPECT_THAT(Cmd({"OBJECT", "FREQ", "k"}), ::testing::StartsWith("-ERR An LFU maxmemory policy"));
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "volatile-lfu"}), "+OK");
  EXPECT_THAT(Cmd({"OBJECT", "FREQ", "k"}), ::testing::StartsWith(":"));
  EXPECT_EQ(Cmd({"GET", "k"}), "$v");
}

TEST_F(RespMaxmemoryPolicyTest, ABadNameIsRefusedWithRedisTextAndChangesNothing) {
  EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "lru"}),
            "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - "
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, "
            "volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction");
  // One bad pair refuses the whole CONFIG SET.
  EXPECT_THAT(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction", "maxmemory", "lots"}),
              HasSubstr("argument 'maxmemory'"));
  EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory-policy"}), "[$maxmemory-policy, $allkeys-lfu]");
}

TEST_F(RespMaxmemoryPolicyTest, NoEvictionRefusesWritesOverTheLimitWhileReadsAndDelRun) {
  const std::string evicted = InfoField("evicted_keys");
  ASSERT_FALSE(evicted.empty());
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "a", "1"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "b", "2"}), "+OK");
  // A bound below what is held evicts nothing under noeviction; writes are refused instead.
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(InfoField("evicted_keys"), evicted);
  EXPECT_EQ(Cmd({"SET", "c", "3"}), kOom);
  EXPECT_EQ(Cmd({"INCR", "a"}), kOom);
  EXPECT_EQ(Cmd({"MSET", "c", "3", "d", "4"}), kOom);
  EXPECT_EQ(Cmd({"APPEND", "a", "x"}), kOom);
  // Reads, DEL and the commands that take no memory still run.
  EXPECT_EQ(Cmd({"GET", "a"}), "$1");
  EXPECT_EQ(Cmd({"MGET", "a", "b", "c"}), "[$1, $2, (nil)]");
  EXPECT_EQ(Cmd({"EXISTS", "a", "b"}), ":2");
  EXPECT_EQ(Cmd({"DEL", "a"}), ":1");
  EXPECT_EQ(Cmd({"EXPIRE", "b", "100"}), ":1");
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
  EXPECT_EQ(Cmd({"DBSIZE"}), ":1");
  // Back under the bound, writes go in again at once.
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "c", "3"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "b"}), "$2");
}

TEST_F(RespMaxmemoryPolicyTest, NoEvictionFillsUpThenRefusesAndDelMakesRoom) {
  const std::string evicted = InfoField("evicted_keys");
  ASSERT_FALSE(evicted.empty());
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  // 64 shards of 400 bytes: each holds one entry of this size (104 + 8 + 200 bytes), not two.
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", std::to_string(64 * 400)}), "+OK");
  const std::string value(200, 'v');
  std::vector<std::string> stored;
  std::string refused;
  for (int i = 0; i < 1000 && refused.empty(); ++i) {
    const std::string key = "key:" + std::to_string(1000 + i);
    const std::string reply = Cmd({"SET", key, value});
    if (reply == "+OK") {
      stored.push_back(key);
    } else {
      ASSERT_EQ(reply, kOom);
      refused = key;
    }
  }
  ASSERT_FALSE(refused.empty()) << "1000 writes fitted 64 shards of one entry each";
  EXPECT_LE(stored.size(), 64u);
  // Nothing was evicted to make room: every key written is still there.
  for (const std::string& key : stored) EXPECT_EQ(Cmd({"STRLEN", key}), ":200") << key;
  EXPECT_EQ(InfoField("evicted_keys"), evicted);
  // Full: any write is refused now, even a small one to a shard with room.
  EXPECT_EQ(Cmd({"SET", "x", "1"}), kOom);
  // DEL frees room, and writes go in again at once.
  for (const std::string& key : stored) ASSERT_EQ(Cmd({"DEL", key}), ":1");
  EXPECT_EQ(Cmd({"SET", refused, value}), "+OK");
  EXPECT_EQ(Cmd({"SET", "x", "1"}), "+OK");
}

TEST_F(RespMaxmemoryPolicyTest, EvictingPoliciesEvictAndABoundTooSmallForAnyEntryIsOom) {
  // Redis answers OOM under any policy when eviction cannot make room; in corral that is a bound
  // whose shards are too small for any entry.
  const int64_t evicted = std::stoll("0" + InfoField("evicted_keys"));
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "a", "1"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Cmd({"EXISTS", "a"}), ":0");
  EXPECT_EQ(std::stoll("0" + InfoField("evicted_keys")), evicted + 1);
  EXPECT_EQ(Cmd({"SET", "a", "1"}), kOom);
  EXPECT_EQ(Cmd({"GET", "a"}), "(nil)");
  // Switching to noeviction and back: the store evicts again down to the bound.
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "b", "1"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Cmd({"EXISTS", "b"}), ":1");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "volatile-lru"}), "+OK");
  EXPECT_EQ(Cmd({"EXISTS", "b"}), ":0") << "corral's volatile-* evicts keys without a TTL too";
}

// unit/multi.tcl "DISCARD should not fail during OOM": a command queued while out of memory is
// refused, DISCARD still runs. Here under the default (evicting) policy, where maxmemory 1 is out
// of memory too.
TEST_F(TransactionsOomTest, DiscardDoesNotFailDuringOom) {
  ASSERT_EQ(Other({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "x", "1"}), kOom);
  // Inside MULTI every command is refused while out of memory, reads too (queueing takes memory).
  EXPECT_EQ(Cmd({"GET", "x"}), kOom);
  EXPECT_EQ(Cmd({"DISCARD"}), "+OK");
  ASSERT_EQ(Other({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
  EXPECT_EQ(Cmd({"EXISTS", "x"}), ":0");
}

// A command refused while queueing aborts the transaction, as any queueing error does.
TEST_F(TransactionsOomTest, ARefusalWhileQueueingAbortsExecLater) {
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "x", "1"}), "+QUEUED");
  ASSERT_EQ(Other({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "y", "1"}), kOom);
  ASSERT_EQ(Other({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  EXPECT_EQ(Cmd({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.");
  EXPECT_EQ(Cmd({"EXISTS", "x", "y"}), ":0");
}

// unit/multi.tcl "EXEC with only read commands should not be rejected when OOM".
TEST_F(TransactionsOomTest, ExecWithOnlyReadCommandsIsNotRejected) {
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "x", "value"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "x"}), "+QUEUED");
  EXPECT_EQ(Cmd({"PING"}), "+QUEUED");
  ASSERT_EQ(Other({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Other({"SET", "z", "1"}), kOom) << "not out of memory: the test proves nothing";
  EXPECT_EQ(Cmd({"EXEC"}), "[$value, +PONG]");
}

// unit/multi.tcl "EXEC with at least one use-memory command should fail": EXEC is refused, the
// transaction discarded, nothing of it run.
TEST_F(TransactionsOomTest, ExecWithAUseMemoryCommandFails) {
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "w", "1"}), "+OK");
  ASSERT_EQ(Cmd({"WATCH", "w"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "x", "1"}), "+QUEUED");
  EXPECT_EQ(Cmd({"DEL", "w"}), "+QUEUED");
  EXPECT_EQ(Cmd({"GET", "x"}), "+QUEUED");
  ASSERT_EQ(Other({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Cmd({"EXEC"}),
            "-EXECABORT Transaction discarded because of: OOM command not allowed when used "
            "memory > 'maxmemory'.");
  ASSERT_EQ(Other({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  EXPECT_EQ(Cmd({"EXEC"}), "-ERR EXEC without MULTI");
  EXPECT_EQ(Cmd({"EXISTS", "x"}), ":0");
  EXPECT_EQ(Cmd({"GET", "w"}), "$1");
  // Nothing is watched any more: a new transaction runs although w changes.
  ASSERT_EQ(Other({"SET", "w", "2"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "w"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[$2]");
}

}  // namespace
}  // namespace corral::integration

// MULTI, EXEC, DISCARD, WATCH and UNWATCH against the real corral-server (four I/O threads, so
// that clients run on different threads) through hiredis: Redis 7.0's replies and error texts,
// EXECABORT after a queueing error, WATCH aborting EXEC when another client, an expiry or
// FLUSHALL changes a key, and the guarantee itself: no other client's command runs between a
// transaction's commands.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

using ::testing::StartsWith;

class TransactionsTest : public SharedClientTest {
 protected:
  static void SetUpTestSuite() {
    ServerOptions options;
    options.config_json = R"({"threads": 4})";
    StartShared(options);
  }
  void SetUp() override {
    SharedClientTest::SetUp();
    other_ = Connect();
    ASSERT_NE(other_, nullptr);
  }
  static RedisConnection Connect() {
    std::string error;
    RedisConnection c = ConnectRedis(server_->resp_port(), Millis(5000), &error);
    EXPECT_NE(c, nullptr) << error;
    return c;
  }
  // A command on a second connection: another client.
  std::string Other(const std::vector<std::string>& args) {
    return ReplyText(RedisCmd(other_.get(), args).get());
  }

  RedisConnection other_;
};

TEST_F(TransactionsTest, QueuesThenRunsInOrder) {
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "a", "1"}), "+QUEUED");
  EXPECT_EQ(Cmd({"INCR", "a"}), "+QUEUED");
  EXPECT_EQ(Cmd({"GET", "a"}), "+QUEUED");
  EXPECT_EQ(Other({"GET", "a"}), "(nil)") << "a queued command ran before EXEC";
  EXPECT_EQ(Cmd({"EXEC"}), "[+OK, :2, $2]");
  EXPECT_EQ(Other({"GET", "a"}), "$2");
  // An empty transaction answers an empty array.
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"EXEC"}), "[]");
}

TEST_F(TransactionsTest, AnErrorWhileQueueingAbortsTheTransaction) {
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "a", "1"}), "+QUEUED");
  EXPECT_THAT(Cmd({"NOPE", "x"}), StartsWith("-ERR unknown command 'NOPE'"));
  EXPECT_EQ(Cmd({"INCR"}), "-ERR wrong number of arguments for 'incr' command");
  EXPECT_EQ(Cmd({"SET", "b", "1"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.");
  EXPECT_EQ(Cmd({"EXISTS", "a", "b"}), ":0") << "an aborted transaction ran a command";
  // The connection is out of MULTI again.
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
  EXPECT_EQ(Cmd({"EXEC"}), "-ERR EXEC without MULTI");
}

TEST_F(TransactionsTest, AnErrorWhileRunningIsOneElementOfTheReply) {
  EXPECT_EQ(Cmd({"SET", "s", "text"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"INCR", "s"}), "+QUEUED");
  EXPECT_EQ(Cmd({"SET", "t", "1"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[-ERR value is not an integer or out of range, +OK]");
  EXPECT_EQ(Cmd({"GET", "t"}), "$1");
}

TEST_F(TransactionsTest, MisplacedCommandsAreRefusedWithoutAborting) {
  EXPECT_EQ(Cmd({"EXEC"}), "-ERR EXEC without MULTI");
  EXPECT_EQ(Cmd({"DISCARD"}), "-ERR DISCARD without MULTI");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "-ERR MULTI calls can not be nested");
  EXPECT_EQ(Cmd({"WATCH", "x"}), "-ERR WATCH inside MULTI is not allowed");
  EXPECT_EQ(Cmd({"SET", "x", "1"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[+OK]");
}

TEST_F(TransactionsTest, DiscardForgetsTheQueueAndTheWatchedKeys) {
  EXPECT_EQ(Cmd({"SET", "x", "1"}), "+OK");
  EXPECT_EQ(Cmd({"WATCH", "x"}), "+OK");
  EXPECT_EQ(Other({"SET", "x", "10"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"DEL", "x"}), "+QUEUED");
  EXPECT_EQ(Cmd({"DISCARD"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "x"}), "$10");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"INCR", "x"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[:11]") << "DISCARD left the key watched";
}

TEST_F(TransactionsTest, AWatchedKeyAnotherClientChangesAbortsExec) {
  EXPECT_EQ(Cmd({"SET", "x", "30"}), "+OK");
  EXPECT_EQ(Cmd({"WATCH", "a", "b", "x", "k"}), "+OK");
  EXPECT_EQ(Other({"INCR", "x"}), ":31");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "x", "0"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "(nil)");
  EXPECT_EQ(Cmd({"GET", "x"}), "$31");
  // After EXEC (failed or not) nothing is watched.
  EXPECT_EQ(Other({"INCR", "x"}), ":32");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"PING"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[+PONG]");
  // A key nobody changed lets EXEC run; UNWATCH forgets a changed one.
  EXPECT_EQ(Cmd({"WATCH", "x"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"INCR", "x"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[:33]");
  EXPECT_EQ(Cmd({"WATCH", "x"}), "+OK");
  EXPECT_EQ(Other({"DEL", "x"}), ":1");
  EXPECT_EQ(Cmd({"UNWATCH"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"INCR", "x"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[:1]");
  // EXPIRE changes a key too.
  EXPECT_EQ(Cmd({"WATCH", "x"}), "+OK");
  EXPECT_EQ(Other({"EXPIRE", "x", "100"}), ":1");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"PING"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "(nil)");
}

TEST_F(TransactionsTest, AWatchedKeyThatExpiresAbortsExec) {
  EXPECT_EQ(Cmd({"SET", "x", "foo", "PX", "100"}), "+OK");
  EXPECT_EQ(Cmd({"WATCH", "x"}), "+OK");
  ASSERT_TRUE(WaitFor([&] { return Other({"EXISTS", "x"}) == ":0"; }, Millis(5000)));
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"PING"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "(nil)");
}

TEST_F(TransactionsTest, FlushAllChangesTheWatchedKeysThatExistedOnly) {
  EXPECT_EQ(Cmd({"SET", "x", "30"}), "+OK");
  EXPECT_EQ(Cmd({"WATCH", "x"}), "+OK");
  EXPECT_EQ(Other({"FLUSHALL"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"PING"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "(nil)");
  EXPECT_EQ(Cmd({"WATCH", "absent"}), "+OK");
  EXPECT_EQ(Other({"FLUSHALL"}), "+OK");
  EXPECT_EQ(Cmd({"MULTI"}), "+OK");
  EXPECT_EQ(Cmd({"PING"}), "+QUEUED");
  EXPECT_EQ(Cmd({"EXEC"}), "[+PONG]");
}

// The guarantee: a transaction that adds 1 twice is never seen half done by clients on other
// threads, and optimistic locking (WATCH, read, MULTI, write, EXEC, retry on nil) loses no
// increment among clients that race.
TEST_F(TransactionsTest, NoOtherClientsCommandRunsBetweenTheCommands) {
  constexpr int kTransactions = 2000;
  std::atomic<bool> done{false};
  std::atomic<int> odd{0}, reads{0}, errors{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      RedisConnection c = Connect();
      if (c == nullptr) return;
      while (!done) {
        RedisReplyPtr reply = RedisCmd(c.get(), {"MGET", "even", "pair"});
        if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
          ++errors;
          break;
        }
        ++reads;
        long long even =
            reply->element[0]->type == REDIS_REPLY_STRING ? std::atoll(reply->element[0]->str) : 0;
        long long pair =
            reply->element[1]->type == REDIS_REPLY_STRING ? std::atoll(reply->element[1]->str) : 0;
        if (even % 2 != 0 || pair != even) ++odd;
      }
    });
  }
  for (int i = 0; i < kTransactions; ++i) {
    ASSERT_EQ(Cmd({"MULTI"}), "+OK");
    ASSERT_EQ(Cmd({"INCR", "even"}), "+QUEUED");
    ASSERT_EQ(Cmd({"INCR", "even"}), "+QUEUED");
    ASSERT_EQ(Cmd({"INCRBY", "pair", "2"}), "+QUEUED");
    ASSERT_EQ(Cmd({"EXEC"}), "[:" + std::to_string(2 * i + 1) + ", :" + std::to_string(2 * i + 2) +
                                 ", :" + std::to_string(2 * i + 2) + "]");
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(odd.load(), 0) << "of " << reads.load() << " reads, some saw a transaction half done";

  constexpr int kClients = 4, kEach = 200;
  std::atomic<int> retries{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&] {
      RedisConnection c = Connect();
      if (c == nullptr) return;
      for (int i = 0; i < kEach;) {
        RedisCmd(c.get(), {"WATCH", "cas"});
        RedisReplyPtr v = RedisCmd(c.get(), {"GET", "cas"});
        long long n = v != nullptr && v->type == REDIS_REPLY_STRING ? std::atoll(v->str) : 0;
        RedisCmd(c.get(), {"MULTI"});
        RedisCmd(c.get(), {"SET", "cas", std::to_string(n + 1)});
        RedisReplyPtr r = RedisCmd(c.get(), {"EXEC"});
        if (r == nullptr) return;
        if (r->type == REDIS_REPLY_NIL) {
          ++retries;
        } else {
          ++i;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(Cmd({"GET", "cas"}), "$" + std::to_string(kClients * kEach));
  std::printf(
      "[figures] transactions: %d reads during %d transactions, %d half done; "
      "%d WATCH retries for %d increments\n",
      reads.load(), kTransactions, odd.load(), retries.load(), kClients * kEach);
}

TEST_F(TransactionsTest, CommandTableListsThem) {
  EXPECT_EQ(Cmd({"COMMAND", "INFO", "watch"}),
            "[[$watch, :-2, [+noscript, +loading, +stale, +fast], :1, :-1, :1, "
            "[+@fast, +@transaction], [], [[$flags, [+RW, +update], $begin_search, [$type, "
            "$index, $spec, [$index, :1]], $find_keys, [$type, $range, $spec, [$lastkey, :-1, "
            "$keystep, :1, $limit, :0]]]], []]]");
  EXPECT_THAT(Cmd({"ACL", "CAT", "transaction"}), ::testing::HasSubstr("$exec"));
}

}  // namespace
}  // namespace corral::integration

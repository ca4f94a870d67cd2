// The string family and key commands (INCR..., APPEND, SETRANGE, MSET, GETEX, SCAN, KEYS,
// RENAME, ...) against the real corral-server through hiredis and redis-cli: replies and
// Redis 7.0's error texts, atomicity under concurrent clients, SCAN's guarantee while the store
// grows, the rule for read-through keys, and — when CORRAL_TEST_REDIS_PORT names a redis-server
// 7.0 — the same command sequence answered byte for byte as Redis answers it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class StringCommandsTest : public SharedClientTest {
 protected:
  ProcessResult Cli(std::vector<std::string> args, std::string_view input = {}) {
    std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p",
                                     std::to_string(server_->resp_port())};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, input, Millis(20000));
  }
};

TEST_F(StringCommandsTest, IncrFamily) {
  EXPECT_EQ(Cmd({"INCR", "n"}), ":1");
  EXPECT_EQ(Cmd({"INCRBY", "n", "41"}), ":42");
  EXPECT_EQ(Cmd({"DECR", "n"}), ":41");
  EXPECT_EQ(Cmd({"DECRBY", "n", "-9"}), ":50");
  EXPECT_EQ(Cmd({"GET", "n"}), "$50");
  EXPECT_EQ(Cmd({"SET", "big", "9223372036854775807"}), "+OK");
  EXPECT_EQ(Cmd({"INCR", "big"}), "-ERR increment or decrement would overflow");
  EXPECT_EQ(Cmd({"SET", "small", "-9223372036854775808"}), "+OK");
  EXPECT_EQ(Cmd({"DECR", "small"}), "-ERR increment or decrement would overflow");
  EXPECT_EQ(Cmd({"DECRBY", "n", "-9223372036854775808"}), "-ERR decrement would overflow");
  EXPECT_EQ(Cmd({"SET", "s", " 1"}), "+OK");
  EXPECT_EQ(Cmd({"INCR", "s"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"INCRBY", "n", "1.5"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"INCRBY", "n", "99999999999999999999"}),
            "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"INCR"}), "-ERR wrong number of arguments for 'incr' command");
}

TEST_F(StringCommandsTest, IncrKeepsTheTtlSetClearsIt) {
  EXPECT_EQ(Cmd({"SET", "n", "1", "EX", "100"}), "+OK");
  EXPECT_EQ(Cmd({"INCR", "n"}), ":2");
  EXPECT_EQ(Cmd({"TTL", "n"}), ":100");
  EXPECT_EQ(Cmd({"APPEND", "n", "0"}), ":2");
  EXPECT_EQ(Cmd({"TTL", "n"}), ":100");
  EXPECT_EQ(Cmd({"GETSET", "n", "7"}), "$20");
  EXPECT_EQ(Cmd({"TTL", "n"}), ":-1");
}

TEST_F(StringCommandsTest, IncrByFloat) {
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "1"}), "$1");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "0.25"}), "$1.25");
  EXPECT_EQ(Cmd({"SET", "f", "17179869184"}), "+OK");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "1.5"}), "$17179869185.5");
  EXPECT_EQ(Cmd({"SET", "f", "10.5"}), "+OK");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "0.1"}), "$10.6");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "-10.6"}), "$0");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "5.0e3"}), "$5000");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "+inf"}), "-ERR increment would produce NaN or Infinity");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "nan"}), "-ERR value is not a valid float");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", " 1"}), "-ERR value is not a valid float");
  EXPECT_EQ(Cmd({"INCRBYFLOAT", "f", "abc"}), "-ERR value is not a valid float");
  EXPECT_EQ(Cmd({"GET", "f"}), "$5000");
}

TEST_F(StringCommandsTest, AppendStrlenGetRangeSetRange) {
  EXPECT_EQ(Cmd({"APPEND", "s", "Hello"}), ":5");
  EXPECT_EQ(Cmd({"APPEND", "s", " World"}), ":11");
  EXPECT_EQ(Cmd({"STRLEN", "s"}), ":11");
  EXPECT_EQ(Cmd({"STRLEN", "missing"}), ":0");
  EXPECT_EQ(Cmd({"GETRANGE", "s", "0", "4"}), "$Hello");
  EXPECT_EQ(Cmd({"GETRANGE", "s", "-5", "-1"}), "$World");
  EXPECT_EQ(Cmd({"GETRANGE", "s", "5", "2"}), "$");
  EXPECT_EQ(Cmd({"GETRANGE", "s", "0", "1000"}), "$Hello World");
  EXPECT_EQ(Cmd({"GETRANGE", "missing", "0", "-1"}), "$");
  EXPECT_EQ(Cmd({"GETRANGE", "s", "a", "1"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"SETRANGE", "s", "6", "Redis"}), ":11");
  EXPECT_EQ(Cmd({"GET", "s"}), "$Hello Redis");
  EXPECT_EQ(Cmd({"SETRANGE", "s", "0", ""}), ":11");
  EXPECT_EQ(Cmd({"SETRANGE", "missing", "0", ""}), ":0");
  EXPECT_EQ(Cmd({"EXISTS", "missing"}), ":0");
  RedisReplyPtr r = RedisCmd(conn_.get(), {"SETRANGE", "pad", "3", "ab"});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->integer, 5);
  r = RedisCmd(conn_.get(), {"GET", "pad"});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(std::string(r->str, r->len), std::string("\0\0\0ab", 5)) << "zero padding";
  EXPECT_EQ(Cmd({"SETRANGE", "s", "-1", "x"}), "-ERR offset is out of range");
  EXPECT_EQ(Cmd({"SETRANGE", "s", "536870911", "xx"}),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  EXPECT_EQ(Cmd({"SETRANGE", "s", "536870910", ""}), ":11") << "nothing written, no bound";
}

TEST_F(StringCommandsTest, MsetMsetnxSetnxSetexPsetex) {
  EXPECT_EQ(Cmd({"MSET", "a", "1", "b", "2"}), "+OK");
  EXPECT_EQ(Cmd({"MGET", "a", "b"}), "[$1, $2]");
  EXPECT_EQ(Cmd({"MSET", "a", "1", "b"}), "-ERR wrong number of arguments for 'mset' command");
  EXPECT_EQ(Cmd({"MSETNX", "a", "9", "c", "3"}), ":0");
  EXPECT_EQ(Cmd({"EXISTS", "c"}), ":0") << "MSETNX writes all or nothing";
  EXPECT_EQ(Cmd({"MSETNX", "c", "3", "d", "4"}), ":1");
  EXPECT_EQ(Cmd({"SETNX", "a", "x"}), ":0");
  EXPECT_EQ(Cmd({"SETNX", "e", "x"}), ":1");
  EXPECT_EQ(Cmd({"SETEX", "t", "100", "v"}), "+OK");
  EXPECT_EQ(Cmd({"TTL", "t"}), ":100");
  EXPECT_EQ(Cmd({"PSETEX", "t", "5000", "v"}), "+OK");
  EXPECT_EQ(Cmd({"TTL", "t"}), ":5");
  EXPECT_EQ(Cmd({"SETEX", "t", "0", "v"}), "-ERR invalid expire time in 'setex' command");
  EXPECT_EQ(Cmd({"PSETEX", "t", "-1", "v"}), "-ERR invalid expire time in 'psetex' command");
  EXPECT_EQ(Cmd({"SETEX", "t", "x", "v"}), "-ERR value is not an integer or out of range");
}

TEST_F(StringCommandsTest, GetexGetdelGetset) {
  EXPECT_EQ(Cmd({"GETEX", "missing"}), "(nil)");
  EXPECT_EQ(Cmd({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(Cmd({"GETEX", "k", "EX", "100"}), "$v");
  EXPECT_EQ(Cmd({"TTL", "k"}), ":100");
  EXPECT_EQ(Cmd({"GETEX", "k", "PERSIST"}), "$v");
  EXPECT_EQ(Cmd({"TTL", "k"}), ":-1");
  EXPECT_EQ(Cmd({"GETEX", "k", "PX", "3000"}), "$v");
  EXPECT_EQ(Cmd({"TTL", "k"}), ":3");
  EXPECT_EQ(Cmd({"GETEX", "k", "EXAT", "4000000000"}), "$v");
  EXPECT_EQ(Cmd({"EXPIRETIME", "k"}), ":4000000000");
  EXPECT_EQ(Cmd({"GETEX", "k", "PXAT", "1"}), "$v");
  EXPECT_EQ(Cmd({"EXISTS", "k"}), ":0") << "an absolute time in the past deletes";
  EXPECT_EQ(Cmd({"GETEX", "k", "EX", "1", "PX", "1"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"GETEX", "k", "PERSIST", "EX", "1"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"GETEX", "k", "EX"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"GETEX", "k", "EX", "0"}), "-ERR invalid expire time in 'getex' command");
  EXPECT_EQ(Cmd({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(Cmd({"GETDEL", "k"}), "$v");
  EXPECT_EQ(Cmd({"GETDEL", "k"}), "(nil)");
  EXPECT_EQ(Cmd({"GETSET", "k", "1"}), "(nil)");
  EXPECT_EQ(Cmd({"GETSET", "k", "2"}), "$1");
  EXPECT_EQ(Cmd({"GET", "k"}), "$2");
}

TEST_F(StringCommandsTest, KeyCommands) {
  EXPECT_EQ(Cmd({"MSET", "a", "1", "b", "2", "c", "3"}), "+OK");
  EXPECT_EQ(Cmd({"TYPE", "a"}), "+string");
  EXPECT_EQ(Cmd({"TYPE", "missing"}), "+none");
  EXPECT_EQ(Cmd({"TOUCH", "a", "b", "missing"}), ":2");
  EXPECT_EQ(Cmd({"EXPIRE", "a", "100"}), ":1");
  EXPECT_EQ(Cmd({"PERSIST", "a"}), ":1");
  EXPECT_EQ(Cmd({"PERSIST", "a"}), ":0");
  EXPECT_EQ(Cmd({"PERSIST", "missing"}), ":0");
  EXPECT_EQ(Cmd({"EXPIRETIME", "a"}), ":-1");
  EXPECT_EQ(Cmd({"PEXPIRETIME", "missing"}), ":-2");
  // The store keeps monotonic deadlines: a Unix time given in ms comes back within a few ms
  // (the wall clock and the monotonic one are read at slightly different moments).
  auto pexpiretime = [&](const std::string& key) {
    RedisReplyPtr r = RedisCmd(conn_.get(), {"PEXPIRETIME", key});
    return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
  };
  EXPECT_EQ(Cmd({"SET", "x", "v", "PXAT", "4000000000123"}), "+OK");
  EXPECT_NEAR(pexpiretime("x"), 4000000000123, 5);
  EXPECT_EQ(Cmd({"RENAME", "x", "y"}), "+OK");
  EXPECT_NEAR(pexpiretime("y"), 4000000000123, 5) << "RENAME keeps the TTL";
  EXPECT_EQ(Cmd({"EXPIRETIME", "y"}), ":4000000000") << "seconds: rounded to the nearest";
  EXPECT_EQ(Cmd({"EXISTS", "x"}), ":0");
  // EXPIREAT/PEXPIREAT take a Unix time; one already past deletes the key (Redis).
  EXPECT_EQ(Cmd({"SET", "at", "v"}), "+OK");
  EXPECT_EQ(Cmd({"PEXPIREAT", "at", "4000000000456"}), ":1");
  EXPECT_NEAR(pexpiretime("at"), 4000000000456, 5);
  EXPECT_EQ(Cmd({"EXPIREAT", "at", "4000000001", "LT"}), ":0") << "later: LT leaves it";
  EXPECT_EQ(Cmd({"EXPIREAT", "at", "3999999999", "LT"}), ":1");
  EXPECT_EQ(Cmd({"EXPIRETIME", "at"}), ":3999999999");
  EXPECT_EQ(Cmd({"PEXPIREAT", "at", "9223372036854770000"}), ":1");
  EXPECT_EQ(Cmd({"EXPIREAT", "at", "9223372036854776"}),
            "-ERR invalid expire time in 'expireat' command");
  EXPECT_EQ(Cmd({"PEXPIREAT", "at", "-9223372036854770000"}), ":1");
  EXPECT_EQ(Cmd({"EXISTS", "at"}), ":0");
  EXPECT_EQ(Cmd({"EXPIREAT", "at", "1"}), ":0") << "no key";
  EXPECT_EQ(Cmd({"EXPIREAT", "at", "x"}), "-ERR value is not an integer or out of range");
  // COPY: only database 0 exists here (Redis has 16).
  EXPECT_EQ(Cmd({"SET", "cp", "v"}), "+OK");
  EXPECT_EQ(Cmd({"COPY", "cp", "cp2", "DB", "1"}), "-ERR DB index is out of range");
  EXPECT_EQ(Cmd({"COPY", "cp", "cp2", "DB", "0"}), ":1");
  EXPECT_EQ(Cmd({"GET", "cp2"}), "$v");
  EXPECT_EQ(Cmd({"GET", "cp"}), "$v");
  EXPECT_EQ(Cmd({"DEL", "cp", "cp2"}), ":2");  // RANDOMKEY below picks among the others
  // TIME: Unix seconds and microseconds, as bulk strings.
  RedisReplyPtr time = RedisCmd(conn_.get(), {"TIME"});
  ASSERT_NE(time, nullptr);
  ASSERT_EQ(time->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(time->elements, 2u);
  const int64_t unix_s = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  EXPECT_NEAR(std::atoll(time->element[0]->str), unix_s, 2);
  EXPECT_GE(std::atoll(time->element[1]->str), 0);
  EXPECT_LT(std::atoll(time->element[1]->str), 1000000);
  EXPECT_EQ(Cmd({"RENAME", "x", "y"}), "-ERR no such key");
  EXPECT_EQ(Cmd({"RENAMENX", "y", "a"}), ":0");
  EXPECT_EQ(Cmd({"RENAMENX", "y", "z"}), ":1");
  EXPECT_EQ(Cmd({"RENAME", "z", "z"}), "+OK");
  EXPECT_EQ(Cmd({"RENAMENX", "z", "z"}), ":0");
  RedisReplyPtr r = RedisCmd(conn_.get(), {"RANDOMKEY"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_STRING);
  EXPECT_TRUE(std::set<std::string>({"a", "b", "c", "z"}).count(std::string(r->str, r->len)));
  EXPECT_EQ(Cmd({"FLUSHALL"}), "+OK");
  EXPECT_EQ(Cmd({"RANDOMKEY"}), "(nil)");
}

TEST_F(StringCommandsTest, KeysAndScanMatch) {
  EXPECT_EQ(Cmd({"MSET", "user1", "x", "user2", "x", "usera", "x", "other", "x", "", "x"}), "+OK");
  auto sorted = [&](const std::vector<std::string>& args) {
    RedisReplyPtr r = RedisCmd(conn_.get(), args);
    std::set<std::string> keys;
    if (r != nullptr && r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) keys.emplace(r->element[i]->str, r->element[i]->len);
    }
    return keys;
  };
  EXPECT_EQ(sorted({"KEYS", "*"}), (std::set<std::string>{"user1", "user2", "usera", "other", ""}));
  EXPECT_EQ(sorted({"KEYS", "user[0-9]"}), (std::set<std::string>{"user1", "user2"}));
  EXPECT_EQ(sorted({"KEYS", "user[^1]"}), (std::set<std::string>{"user2", "usera"}));
  EXPECT_EQ(sorted({"KEYS", "?ther"}), (std::set<std::string>{"other"}));
  EXPECT_EQ(sorted({"KEYS", "user1"}), (std::set<std::string>{"user1"}));
  EXPECT_EQ(sorted({"KEYS", "nomatch*"}), (std::set<std::string>{}));

  std::set<std::string> scanned;
  std::string cursor = "0";
  int calls = 0;
  do {
    RedisReplyPtr r =
        RedisCmd(conn_.get(), {"SCAN", cursor, "MATCH", "user*", "COUNT", "2", "TYPE", "string"});
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << ReplyText(r.get());
    ASSERT_EQ(r->elements, 2u);
    cursor.assign(r->element[0]->str, r->element[0]->len);
    for (size_t i = 0; i < r->element[1]->elements; ++i) {
      scanned.emplace(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
    }
  } while (cursor != "0" && ++calls < 10000);
  EXPECT_EQ(scanned, (std::set<std::string>{"user1", "user2", "usera"}));
  EXPECT_EQ(Cmd({"SCAN", "0", "TYPE", "list", "COUNT", "1000"}), "[$0, []]");
  EXPECT_EQ(Cmd({"SCAN", "abc"}), "-ERR invalid cursor");
  EXPECT_EQ(Cmd({"SCAN", "-1"}), "-ERR invalid cursor");
  EXPECT_EQ(Cmd({"SCAN", "0", "COUNT", "0"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"SCAN", "0", "COUNT", "x"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"SCAN", "0", "MATCH"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"SCAN", "0", "FOO", "1"}), "-ERR syntax error");
}

// SCAN's guarantee with the store growing from another connection between the calls.
TEST_F(StringCommandsTest, ScanReturnsEveryStableKeyWhileAnotherClientWrites) {
  std::set<std::string> stable;
  for (int i = 0; i < 2000; ++i) {
    stable.insert("stable:" + std::to_string(i));
    ASSERT_EQ(Cmd({"SET", "stable:" + std::to_string(i), "v"}), "+OK");
  }
  RedisConnection writer = ConnectRedis(server_->resp_port());
  ASSERT_NE(writer, nullptr);
  std::set<std::string> got;
  std::string cursor = "0";
  int next = 0;
  do {
    RedisReplyPtr r = RedisCmd(conn_.get(), {"SCAN", cursor, "COUNT", "20"});
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    cursor.assign(r->element[0]->str, r->element[0]->len);
    for (size_t i = 0; i < r->element[1]->elements; ++i) {
      got.emplace(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
    }
    for (int i = 0; i < 30; ++i) {  // grow: the shards' indexes double under the scan
      RedisCmd(writer.get(), {"SET", "new:" + std::to_string(next++), "v"});
    }
    RedisCmd(writer.get(), {"DEL", "new:" + std::to_string(next / 2)});
  } while (cursor != "0");
  for (const std::string& k : stable) EXPECT_TRUE(got.count(k)) << k;
}

// 8 connections x 1000 INCR on one key: no increment is lost (the read-modify-write holds the
// shard lock); MSETNX raced by 8 connections on one shared key lets exactly one in.
TEST_F(StringCommandsTest, ConcurrentIncrementsAndMsetnx) {
  constexpr int kClients = 8, kEach = 1000;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&] {
      RedisConnection c = ConnectRedis(server_->resp_port());
      if (c == nullptr) {
        ++errors;
        return;
      }
      for (int i = 0; i < kEach; ++i) {
        RedisReplyPtr r = RedisCmd(c.get(), {"INCR", "counter"});
        if (r == nullptr || r->type != REDIS_REPLY_INTEGER) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(Cmd({"GET", "counter"}), "$" + std::to_string(kClients * kEach));

  std::atomic<int> won{0};
  threads.clear();
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      RedisConnection c = ConnectRedis(server_->resp_port());
      if (c == nullptr) return;
      RedisReplyPtr r = RedisCmd(
          c.get(), {"MSETNX", "own:" + std::to_string(t), "x", "shared", std::to_string(t)});
      if (r != nullptr && r->type == REDIS_REPLY_INTEGER && r->integer == 1) ++won;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
}

TEST_F(StringCommandsTest, CommandTableReportsTheNewCommands) {
  EXPECT_EQ(Cmd({"COMMAND", "INFO", "incr"}),
            "[[$incr, :2, [+write, +denyoom, +fast], :1, :1, :1, [+@write, +@string, +@fast], "
            "[], [[$flags, [+RW, +update], $begin_search, [$type, $index, $spec, [$index, :1]], "
            "$find_keys, [$type, $range, $spec, [$lastkey, :0, $keystep, :1, $limit, :0]]]], []]]");
  EXPECT_THAT(Cmd({"COMMAND", "INFO", "mset"}),
              StartsWith("[[$mset, :-3, [+write, +denyoom], :1, :-1, :2, "
                         "[+@write, +@string, +@slow]"));
  EXPECT_THAT(Cmd({"COMMAND", "INFO", "keys"}),
              StartsWith("[[$keys, :2, [+readonly], :0, :0, :0, "
                         "[+@keyspace, +@read, +@slow, +@dangerous]"));
  EXPECT_THAT(Cmd({"COMMAND", "INFO", "rename"}),
              StartsWith("[[$rename, :3, [+write], :1, :2, :1, [+@keyspace, +@write, +@slow]"));
  EXPECT_THAT(Cmd({"COMMAND", "DOCS", "getex"}), HasSubstr("$group, $string"));
  RedisReplyPtr count = RedisCmd(conn_.get(), {"COMMAND", "COUNT"});
  RedisReplyPtr all = RedisCmd(conn_.get(), {"COMMAND"});
  ASSERT_NE(count, nullptr);
  ASSERT_NE(all, nullptr);
  EXPECT_EQ(static_cast<size_t>(count->integer), all->elements);
  std::set<std::string> names;
  for (size_t i = 0; i < all->elements; ++i) names.emplace(all->element[i]->element[0]->str);
  for (const char* name :
       {"incr",     "decr",     "incrby",    "decrby",    "incrbyfloat", "append",      "strlen",
        "getrange", "setrange", "mset",      "msetnx",    "setnx",       "setex",       "psetex",
        "getex",    "getdel",   "getset",    "scan",      "keys",        "type",        "touch",
        "persist",  "rename",   "renamenx",  "randomkey", "expiretime",  "pexpiretime", "function",
        "script",   "expireat", "pexpireat", "time"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
}

TEST_F(StringCommandsTest, FunctionAndScriptFlushAreNoOps) {
  EXPECT_EQ(Cmd({"FUNCTION", "FLUSH"}), "+OK");
  EXPECT_EQ(Cmd({"SCRIPT", "FLUSH", "ASYNC"}), "+OK");
  EXPECT_EQ(Cmd({"FUNCTION", "LIST"}), "-ERR unknown subcommand 'LIST'. Try FUNCTION HELP.");
  EXPECT_EQ(Cmd({"SCRIPT", "FLUSH", "LATER"}), "-ERR syntax error");
}

// Every new command through redis-cli, as a user types them (stdin, one per line); the output
// is what redis-cli prints against redis-server 7.0 for the same lines.
TEST_F(StringCommandsTest, RedisCliRunsEveryNewCommand) {
  ASSERT_TRUE(InPath("redis-cli"));
  const std::string input =
      "incr c\nincrby c 9\ndecr c\ndecrby c 2\nincrbyfloat c 0.5\nappend s ab\nappend s cd\n"
      "strlen s\ngetrange s 1 2\nsetrange s 1 XY\nget s\nmset m1 a m2 b\nmsetnx m1 x m3 y\n"
      "setnx m1 z\nsetex e 100 v\npsetex p 100000 v\ngetex e persist\ngetdel m2\ngetset m1 q\n"
      "type m1\ntouch m1 m2\npersist e\nrename m1 r1\nrenamenx r1 s\nexpiretime r1\n"
      "pexpiretime nope\nkeys r?\nscan 0 match r* count 1000\nincr s\nrename nope x\n"
      "function flush\n";
  ProcessResult r = Cli({}, input);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << " " << r.err;
  EXPECT_EQ(r.out,
            "1\n10\n9\n7\n7.5\n2\n4\n4\nbc\n4\naXYd\nOK\n0\n0\nOK\nOK\nv\nb\na\nstring\n1\n0\n"
            "OK\n0\n-1\n-2\nr1\n0\nr1\n"
            "ERR value is not an integer or out of range\n\nERR no such key\n\nOK\n");
}

// Read-through keys (a configured namespace; the database is never reached): reads see what is
// cached without loading, SETNX/SETEX/PSETEX act as SET, every other write is refused.
TEST(StringCommandsNamespaceTest, OneRuleForReadThroughKeys) {
  ServerOptions options;
  // A namespace whose database is unreachable: nothing here may try to load.
  options.config_json = R"({
    "postgres": {"primary": "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1",
                 "fallback_to_primary": true},
    "namespaces": {"user": {"query": "SELECT $1::text"}}
  })";
  std::string error;
  std::unique_ptr<ServerProcess> server = ServerProcess::Start(options, &error);
  ASSERT_NE(server, nullptr) << error;
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  auto cmd = [&](const std::vector<std::string>& args) {
    return ReplyText(RedisCmd(c.get(), args).get());
  };
  auto refused = [](const std::string& key, const std::string& name) {
    return "-ERR read-through key '" + key + "': " + name + " is not supported on namespace keys";
  };
  // Writes that would change a row-derived value in place are refused, before any load.
  EXPECT_EQ(cmd({"INCR", "user:1"}), refused("user:1", "INCR"));
  EXPECT_EQ(cmd({"DECRBY", "user:1", "2"}), refused("user:1", "DECRBY"));
  EXPECT_EQ(cmd({"INCRBYFLOAT", "user:1", "2"}), refused("user:1", "INCRBYFLOAT"));
  EXPECT_EQ(cmd({"APPEND", "user:1", "x"}), refused("user:1", "APPEND"));
  EXPECT_EQ(cmd({"SETRANGE", "user:1", "0", "x"}), refused("user:1", "SETRANGE"));
  EXPECT_EQ(cmd({"MSET", "plain", "1", "user:1", "x"}), refused("user:1", "MSET"));
  EXPECT_EQ(cmd({"EXISTS", "plain"}), ":0") << "MSET refused as a whole";
  EXPECT_EQ(cmd({"MSETNX", "user:1", "x"}), refused("user:1", "MSETNX"));
  EXPECT_EQ(cmd({"GETEX", "user:1", "PERSIST"}), refused("user:1", "GETEX"));
  EXPECT_EQ(cmd({"GETDEL", "user:1"}), refused("user:1", "GETDEL"));
  EXPECT_EQ(cmd({"GETSET", "user:1", "x"}), refused("user:1", "GETSET"));
  EXPECT_EQ(cmd({"PERSIST", "user:1"}), refused("user:1", "PERSIST"));
  EXPECT_EQ(cmd({"SET", "plain", "v"}), "+OK");
  EXPECT_EQ(cmd({"RENAME", "plain", "user:9"}), refused("user:9", "RENAME"));
  EXPECT_EQ(cmd({"RENAMENX", "user:9", "plain2"}), refused("user:9", "RENAMENX"));
  // SETNX / SETEX / PSETEX are SET NX / EX / PX: stored, as SET stores namespace keys.
  EXPECT_EQ(cmd({"SETEX", "user:2", "100", "row"}), "+OK");
  EXPECT_EQ(cmd({"SETNX", "user:2", "other"}), ":0");
  EXPECT_EQ(cmd({"SETNX", "user:3", "row3"}), ":1");
  EXPECT_EQ(cmd({"PSETEX", "user:4", "100000", "row4"}), "+OK");
  EXPECT_EQ(cmd({"GET", "user:2"}), "$row");
  EXPECT_EQ(cmd({"TTL", "user:2"}), ":100");
  // Reads see the cache and never load: a key that is not cached is simply absent.
  EXPECT_EQ(cmd({"STRLEN", "user:2"}), ":3");
  EXPECT_EQ(cmd({"STRLEN", "user:404"}), ":0");
  EXPECT_EQ(cmd({"GETRANGE", "user:2", "0", "1"}), "$ro");
  EXPECT_EQ(cmd({"GETRANGE", "user:404", "0", "1"}), "$");
  EXPECT_EQ(cmd({"TYPE", "user:2"}), "+string");
  EXPECT_EQ(cmd({"TYPE", "user:404"}), "+none");
  EXPECT_EQ(cmd({"TOUCH", "user:2", "user:404"}), ":1");
  EXPECT_EQ(cmd({"EXPIRETIME", "user:404"}), ":-2");
  RedisReplyPtr keys = RedisCmd(c.get(), {"KEYS", "user:*"});
  ASSERT_NE(keys, nullptr);
  EXPECT_EQ(keys->elements, 3u) << ReplyText(keys.get());
  EXPECT_EQ(cmd({"SCAN", "0", "MATCH", "user:40?", "COUNT", "1000"}), "[$0, []]");
  // Nothing above went to the database: no load was started (counted or not, admitted or shed).
  std::optional<HttpResponse> metrics = HttpRequestOnce(server->http_port(), "GET", "/metrics");
  ASSERT_TRUE(metrics.has_value());
  std::istringstream lines(metrics->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("corral_db_loads_total{", 0) == 0) {
      EXPECT_EQ(line.substr(line.rfind(' ') + 1), "0") << line;
    }
  }
  ExitStatus status = server->Stop();
  EXPECT_TRUE(status.ok()) << status.ToString();
}

// With CORRAL_TEST_REDIS_PORT (a redis-server 7.0): the same commands, the same replies. The
// script runs in database 9, flushed first: other tests (the herd, the tier) use database 0 of the
// same Redis at the same time, and a FLUSHALL there would take their keys.
TEST_F(StringCommandsTest, RepliesMatchRedis) {
  const char* port = std::getenv("CORRAL_TEST_REDIS_PORT");
  if (port == nullptr) GTEST_SKIP() << "set CORRAL_TEST_REDIS_PORT to compare with redis-server";
  RedisConnection redis = ConnectRedis(static_cast<uint16_t>(std::atoi(port)));
  ASSERT_NE(redis, nullptr);
  ASSERT_EQ(ReplyText(RedisCmd(redis.get(), {"SELECT", "9"}).get()), "+OK");
  ASSERT_EQ(ReplyText(RedisCmd(redis.get(), {"FLUSHDB"}).get()), "+OK");
  const std::vector<std::vector<std::string>> script = {
      {"INCR", "n"},
      {"INCRBY", "n", "-5"},
      {"DECRBY", "n", "9223372036854775807"},
      {"DECRBY", "n", "9223372036854775807"},
      {"DECR", "n"},
      {"INCRBY", "n", "x"},
      {"SET", "f", "1.1"},
      {"INCRBYFLOAT", "f", "0.25"},
      {"INCRBYFLOAT", "f", "1e3"},
      {"INCRBYFLOAT", "f", "-1351.35"},
      {"INCRBYFLOAT", "f", "3.0e-3"},
      {"INCRBYFLOAT", "f", "inf"},
      {"INCRBYFLOAT", "f", "1 "},
      {"INCRBYFLOAT", "f", "0x10"},
      {"INCRBYFLOAT", "f", "1.5e10"},
      {"INCRBYFLOAT", "f", "-2.5e-5"},
      {"INCRBYFLOAT", "n", "1"},
      {"APPEND", "s", "hello"},
      {"GETRANGE", "s", "-100", "100"},
      {"GETRANGE", "s", "-1", "-2"},
      {"GETRANGE", "s", "3", "-100"},
      {"GETRANGE", "s", "9223372036854775807", "1"},
      {"SETRANGE", "s", "10", "x"},
      {"GET", "s"},
      {"SETRANGE", "s", "0", ""},
      {"SETRANGE", "s", "-1", ""},
      {"SETRANGE", "s", "536870912", "x"},
      {"STRLEN", "s"},
      {"INCR", "s"},
      {"MSET", "a", "1", "a", "2"},
      {"GET", "a"},
      {"MSET", "a"},
      {"MSETNX", "a", "1", "b", "2"},
      {"MSETNX", "b", "1", "c", "2", "b", "3"},
      {"MGET", "b", "c"},
      {"SETNX", "b", "z"},
      {"SETEX", "e", "-5", "v"},
      {"SETEX", "e", "9223372036854775807", "v"},
      {"PSETEX", "e", "9223372036854775807", "v"},
      {"SETEX", "e", "50", "v"},
      {"TTL", "e"},
      {"GETEX", "e"},
      {"GETEX", "e", "ex", "10", "ex", "20"},
      {"TTL", "e"},
      {"GETEX", "e", "persist", "persist"},
      {"GETEX", "e", "keepttl"},
      {"GETEX", "e", "EXAT", "-1"},
      {"GETEX", "nope", "PX", "10"},
      {"GETDEL", "e"},
      {"GETSET", "e", "v2"},
      {"TYPE", "e"},
      {"TOUCH", "e", "e", "x"},
      {"PERSIST", "e"},
      {"RENAME", "e", "e2"},
      {"RENAME", "e", "e2"},
      {"RENAMENX", "e2", "a"},
      {"RENAMENX", "e2", "e3"},
      {"EXPIRETIME", "e3"},
      {"PEXPIRETIME", "zz"},
      {"COPY", "e3", "c1"},
      {"COPY", "e3", "c1"},
      {"COPY", "e3", "c1", "REPLACE"},
      {"COPY", "e3", "c1", "DB", "0", "REPLACE"},
      {"COPY", "e3", "c1", "DB", "x"},
      {"COPY", "e3", "c1", "DB"},
      {"COPY", "e3", "c1", "NOPE"},
      {"COPY", "e3", "e3"},
      {"COPY", "missing", "c2"},
      {"GET", "c1"},
      {"EXPIREAT", "c1", "4000000000"},
      {"COPY", "c1", "c3"},
      {"EXPIRETIME", "c3"},
      {"EXPIREAT", "c3", "1"},
      {"EXISTS", "c3"},
      {"PEXPIREAT", "c1", "x"},
      {"EXPIREAT", "c1", "9223372036854776"},
      {"PEXPIREAT", "c1", "4000000000000", "NX"},
      {"PEXPIREAT", "c1", "4000000000000", "XX", "GT"},
      {"PEXPIREAT", "c1", "4000000000000", "NX", "GT"},
      {"PEXPIREAT", "c1", "-9223372036854770000"},
      {"EXISTS", "c1"},
      {"KEYS", "e[0-9]"},
      {"KEYS", "[^abcfns]*"},
      {"SCAN", "0", "MATCH", "e*", "COUNT", "1000"},
      {"SCAN", "0", "TYPE", "hash", "COUNT", "1000"},
      {"SCAN", "0", "COUNT", "0"},
      {"SCAN", "x"},
      {"SCAN", "0", "MATCH"},
      {"TYPE", "missing"},
      {"INCR"},
      {"GETRANGE", "s", "1"},
      {"MSETNX", "a", "1", "b"},
  };
  for (const auto& args : script) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    EXPECT_EQ(Cmd(args), ReplyText(RedisCmd(redis.get(), args).get())) << line;
  }
  // COMMAND INFO: arity, first/last key, step and ACL categories as Redis 7.0's; corral's flags
  // are a subset of Redis's (it models fewer).
  for (const char* name :
       {"incr",     "decr",      "incrby",   "decrby",    "incrbyfloat", "append",      "strlen",
        "getrange", "setrange",  "mset",     "msetnx",    "setnx",       "setex",       "psetex",
        "getex",    "getdel",    "getset",   "scan",      "keys",        "type",        "touch",
        "persist",  "rename",    "renamenx", "randomkey", "expiretime",  "pexpiretime", "copy",
        "expireat", "pexpireat", "time"}) {
    RedisReplyPtr ours = RedisCmd(conn_.get(), {"COMMAND", "INFO", name});
    RedisReplyPtr theirs = RedisCmd(redis.get(), {"COMMAND", "INFO", name});
    ASSERT_NE(ours, nullptr);
    ASSERT_NE(theirs, nullptr);
    const redisReply* o = ours->element[0];
    const redisReply* t = theirs->element[0];
    EXPECT_EQ(ReplyText(o->element[1]), ReplyText(t->element[1])) << name << " arity";
    for (size_t i : {3, 4, 5}) {
      EXPECT_EQ(ReplyText(o->element[i]), ReplyText(t->element[i])) << name << " key " << i;
    }
    EXPECT_EQ(ReplyText(o->element[6]), ReplyText(t->element[6])) << name << " ACL categories";
    std::set<std::string> redis_flags;
    for (size_t i = 0; i < t->element[2]->elements; ++i)
      redis_flags.insert(t->element[2]->element[i]->str);
    for (size_t i = 0; i < o->element[2]->elements; ++i) {
      EXPECT_TRUE(redis_flags.count(o->element[2]->element[i]->str))
          << name << " flag " << o->element[2]->element[i]->str;
    }
  }
}

}  // namespace
}  // namespace corral::integration

// Redis 7.0's introspection commands against the real corral-server: CLIENT LIST / KILL /
// NO-EVICT across several connections, SLOWLOG, LATENCY, MEMORY, ROLE, OBJECT REFCOUNT and
// ENCODING, with their replies, arity and subcommand errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The fixture's name starts with "Resp" so that `ctest -R Resp` runs it with the RESP suite.
class RespIntrospectionTest : public SharedClientTest {
 protected:
  void TearDown() override {
    // Every test leaves the shared server's logging as it found it (Redis's defaults).
    if (conn_ == nullptr) return;
    Cmd({"CONFIG", "SET", "slowlog-log-slower-than", "10000", "slowlog-max-len", "128",
         "latency-monitor-threshold", "0", "latency-tracking", "no"});
  }

  RedisConnection Connect() {
    std::string error;
    RedisConnection c = ConnectRedis(server_->resp_port(), Millis(5000), &error);
    EXPECT_NE(c, nullptr) << error;
    return c;
  }
  static std::string On(redisContext* c, const std::vector<std::string>& args) {
    return ReplyText(RedisCmd(c, args).get());
  }
  static int64_t IdOf(redisContext* c) {
    RedisReplyPtr r = RedisCmd(c, {"CLIENT", "ID"});
    return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  }
  // The CLIENT INFO line of connection `c`.
  static std::string InfoOf(redisContext* c) {
    RedisReplyPtr r = RedisCmd(c, {"CLIENT", "INFO"});
    return r != nullptr && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
  }
  // The value of `field` in a CLIENT LIST / INFO line ("" if absent).
  static std::string Field(const std::string& line, const std::string& field) {
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      if (word.rfind(field + "=", 0) == 0) return word.substr(field.size() + 1);
    }
    return "";
  }
  // CLIENT LIST's lines (with `args` after LIST) on this test's connection.
  std::vector<std::string> ListLines(const std::vector<std::string>& args = {}) {
    std::vector<std::string> cmd = {"CLIENT", "LIST"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    RedisReplyPtr r = RedisCmd(conn_.get(), cmd);
    std::vector<std::string> lines;
    if (r == nullptr || r->type != REDIS_REPLY_STRING) {
      ADD_FAILURE() << "CLIENT LIST answered " << ReplyText(r.get());
      return lines;
    }
    std::istringstream text(std::string(r->str, r->len));
    std::string line;
    while (std::getline(text, line)) lines.push_back(line);
    return lines;
  }
  std::string LineOf(int64_t id) {
    for (const std::string& line : ListLines()) {
      if (Field(line, "id") == std::to_string(id)) return line;
    }
    return "";
  }
  // A connection that the server has closed answers no command.
  static bool Closed(redisContext* c) { return RedisCmd(c, {"PING"}) == nullptr; }
};

TEST_F(RespIntrospectionTest, RoleIsAPrimaryWithoutReplicas) {
  EXPECT_EQ(Cmd({"ROLE"}), "[$master, :0, []]");
  EXPECT_EQ(Cmd({"ROLE", "x"}), "-ERR wrong number of arguments for 'role' command");
  EXPECT_EQ(Cmd({"COMMAND", "INFO", "role"}),
            "[[$role, :1, [+noscript, +loading, +stale, +fast], :0, :0, :0, "
            "[+@admin, +@fast, +@dangerous], [], [], []]]");
}

TEST_F(RespIntrospectionTest, ObjectRefcountAndEncoding) {
  const std::string s44(44, 'a'), s45(45, 'a');
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"int", "12345"},
                                                        {"min", "-9223372036854775808"},
                                                        {"toolong", "12345678901234567890"},
                                                        {"zero", "0123"},
                                                        {"s44", s44},
                                                        {"s45", s45}}) {
    ASSERT_EQ(Cmd({"SET", key, value}), "+OK");
  }
  EXPECT_EQ(Cmd({"OBJECT", "ENCODING", "int"}), "$int");
  EXPECT_EQ(Cmd({"OBJECT", "ENCODING", "min"}), "$int");
  EXPECT_EQ(Cmd({"OBJECT", "ENCODING", "toolong"}), "$embstr") << "beyond int64";
  EXPECT_EQ(Cmd({"OBJECT", "encoding", "zero"}), "$embstr") << "a leading zero is no integer";
  EXPECT_EQ(Cmd({"OBJECT", "ENCODING", "s44"}), "$embstr");
  EXPECT_EQ(Cmd({"OBJECT", "ENCODING", "s45"}), "$raw");
  EXPECT_EQ(Cmd({"OBJECT", "ENCODING", "missing"}), "(nil)");
  EXPECT_EQ(Cmd({"OBJECT", "REFCOUNT", "s45"}), ":1");
  EXPECT_EQ(Cmd({"OBJECT", "REFCOUNT", "missing"}), "(nil)");
  EXPECT_EQ(Cmd({"OBJECT", "REFCOUNT"}),
            "-ERR wrong number of arguments for 'object|refcount' command");
  EXPECT_EQ(Cmd({"OBJECT", "ENCODING", "a", "b"}),
            "-ERR wrong number of arguments for 'object|encoding' command");
  const std::string help = Cmd({"OBJECT", "HELP"});
  EXPECT_THAT(help, HasSubstr("+REFCOUNT <key>"));
  EXPECT_THAT(help, HasSubstr("+ENCODING <key>"));
}

TEST_F(RespIntrospectionTest, MemoryUsage) {
  ASSERT_EQ(Cmd({"SET", "small", "x"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "big", std::string(10000, 'x')}), "+OK");
  const int64_t small = Int({"MEMORY", "USAGE", "small"});
  const int64_t big = Int({"MEMORY", "USAGE", "big"});
  EXPECT_GT(small, 6) << "key and value at least";
  EXPECT_GE(big, 10003);
  EXPECT_EQ(big - small, (3 + 10000) - (5 + 1)) << "the same overhead per entry";
  EXPECT_EQ(Int({"MEMORY", "USAGE", "big", "SAMPLES", "0"}), big);
  EXPECT_EQ(Cmd({"MEMORY", "USAGE", "missing"}), "(nil)");
  EXPECT_EQ(Cmd({"MEMORY", "USAGE", "big", "SAMPLES", "-1"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"MEMORY", "USAGE", "big", "SAMPLES", "x"}),
            "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"MEMORY", "USAGE", "big", "FOO"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"MEMORY", "USAGE"}), "-ERR wrong number of arguments for 'memory|usage' command");
  EXPECT_EQ(Cmd({"MEMORY", "STATS", "x"}),
            "-ERR wrong number of arguments for 'memory|stats' command");
  EXPECT_EQ(Cmd({"MEMORY", "NOPE"}), "-ERR unknown subcommand 'NOPE'. Try MEMORY HELP.");
  EXPECT_EQ(Cmd({"MEMORY"}), "-ERR wrong number of arguments for 'memory' command");
  EXPECT_THAT(Cmd({"MEMORY", "HELP"}), HasSubstr("+USAGE <key> [SAMPLES <count>]"));
  const std::string stats = Cmd({"MEMORY", "STATS"});
  EXPECT_THAT(stats, HasSubstr("$keys.count, :2"));
  EXPECT_THAT(stats, HasSubstr("$dataset.bytes, :" + std::to_string(small + big)));
  EXPECT_THAT(Cmd({"MEMORY", "DOCTOR"}), HasSubstr("No memory problem found"));
  EXPECT_EQ(Cmd({"MEMORY", "PURGE"}), "+OK");
  // The allocator, as Redis reports it: jemalloc in the release build, glibc's in the sanitizer
  // builds (which bring their own).
#if CORRAL_SERVER_JEMALLOC
  EXPECT_THAT(Cmd({"INFO", "memory"}), HasSubstr("mem_allocator:jemalloc-5."));
  EXPECT_THAT(Cmd({"MEMORY", "MALLOC-STATS"}), HasSubstr("___ Begin jemalloc statistics ___"));
#else
  EXPECT_THAT(Cmd({"INFO", "memory"}), HasSubstr("mem_allocator:libc\r\n"));
  EXPECT_EQ(Cmd({"MEMORY", "MALLOC-STATS"}), "$Stats not supported for the current allocator");
#endif
}

TEST_F(RespIntrospectionTest, SlowlogLogsEveryCommandAtZero) {
  ASSERT_EQ(Cmd({"CLIENT", "SETNAME", "slow-one"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "slowlog-log-slower-than", "0"}), "+OK");
  ASSERT_EQ(Cmd({"SLOWLOG", "RESET"}), "+OK");
  EXPECT_EQ(Int({"SLOWLOG", "LEN"}), 1) << "RESET itself is logged once it has run";
  ASSERT_EQ(Cmd({"SET", "slow:k", "v"}), "+OK");
  ASSERT_EQ(Cmd({"GET", "slow:k"}), "$v");
  ASSERT_EQ(Cmd({"NOSUCHCOMMAND"}).substr(0, 4), "-ERR");  // never runs: not logged

  RedisReplyPtr r = RedisCmd(conn_.get(), {"SLOWLOG", "GET", "2"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << ReplyText(r.get());
  ASSERT_EQ(r->elements, 2u) << ReplyText(r.get());
  const std::string addr = Field(InfoOf(conn_.get()), "addr");
  const redisReply* get = r->element[0];  // newest first
  const redisReply* set = r->element[1];
  ASSERT_EQ(get->elements, 6u);
  EXPECT_EQ(ReplyText(get->element[3]), "[$GET, $slow:k]");
  EXPECT_EQ(ReplyText(set->element[3]), "[$SET, $slow:k, $v]");
  EXPECT_EQ(get->element[0]->integer, set->element[0]->integer + 1) << "ids count up";
  EXPECT_NEAR(get->element[1]->integer, static_cast<double>(std::time(nullptr)), 5);
  EXPECT_GE(get->element[2]->integer, 0);
  EXPECT_EQ(ReplyText(get->element[4]), "$" + addr);
  EXPECT_EQ(ReplyText(get->element[5]), "$slow-one");

  // Each command of a transaction is logged, then EXEC (as Redis's call() does for each).
  ASSERT_EQ(Cmd({"MULTI"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "slow:t", "1"}), "+QUEUED");
  ASSERT_EQ(Cmd({"INCR", "slow:t"}), "+QUEUED");
  ASSERT_EQ(Cmd({"EXEC"}), "[+OK, :2]");
  r = RedisCmd(conn_.get(), {"SLOWLOG", "GET", "4"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->elements, 4u) << ReplyText(r.get());
  EXPECT_EQ(ReplyText(r->element[0]->element[3]), "[$EXEC]");
  EXPECT_EQ(ReplyText(r->element[1]->element[3]), "[$INCR, $slow:t]");
  EXPECT_EQ(ReplyText(r->element[2]->element[3]), "[$SET, $slow:t, $1]");
  EXPECT_EQ(ReplyText(r->element[3]->element[3]), "[$MULTI]");
  EXPECT_GE(r->element[0]->element[2]->integer,
            r->element[1]->element[2]->integer + r->element[2]->element[2]->integer)
      << "EXEC's time holds its commands'";

  // Redis's truncation: 32 arguments at most, 128 bytes each; passwords redacted.
  std::vector<std::string> many = {"EXISTS"};
  for (int i = 0; i < 39; ++i) many.push_back("k" + std::to_string(i));
  ASSERT_EQ(Int(many), 0);
  ASSERT_EQ(Cmd({"ECHO", std::string(200, 'e')}).size(), 201u);
  ASSERT_THAT(Cmd({"AUTH", "secret-password"}), StartsWith("-ERR AUTH"));
  r = RedisCmd(conn_.get(), {"SLOWLOG", "GET", "3"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->elements, 3u) << ReplyText(r.get());
  EXPECT_EQ(ReplyText(r->element[0]->element[3]), "[$AUTH, $(redacted)]");
  EXPECT_EQ(ReplyText(r->element[1]->element[3]),
            "[$ECHO, $" + std::string(128, 'e') + "... (72 more bytes)]");
  const redisReply* args = r->element[2]->element[3];
  ASSERT_EQ(args->elements, 32u);
  EXPECT_EQ(ReplyText(args->element[30]), "$k29");
  EXPECT_EQ(ReplyText(args->element[31]), "$... (9 more arguments)");

  // A bound on the length drops the oldest; a negative threshold logs nothing.
  ASSERT_EQ(Cmd({"CONFIG", "SET", "slowlog-max-len", "2"}), "+OK");
  EXPECT_EQ(Int({"SLOWLOG", "LEN"}), 2);
  EXPECT_EQ(Cmd({"CONFIG", "GET", "slowlog-max-len"}), "[$slowlog-max-len, $2]");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "slowlog-log-slower-than", "-1"}), "+OK");
  ASSERT_EQ(Cmd({"SLOWLOG", "RESET"}), "+OK");
  ASSERT_EQ(Cmd({"GET", "slow:k"}), "$v");
  EXPECT_EQ(Int({"SLOWLOG", "LEN"}), 0);
  EXPECT_EQ(Cmd({"SLOWLOG", "GET"}), "[]");
}

TEST_F(RespIntrospectionTest, SlowlogAndConfigErrors) {
  EXPECT_EQ(Cmd({"CONFIG", "GET", "slowlog-log-slower-than"}),
            "[$slowlog-log-slower-than, $10000]");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "latency-monitor-threshold"}),
            "[$latency-monitor-threshold, $0]");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "slowlog-log-slower-than", "-2"}),
            "-ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - "
            "argument must be between -1 and 9223372036854775807 inclusive");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "slowlog-max-len", "x"}),
            "-ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument "
            "couldn't be parsed into an integer");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "latency-monitor-threshold", "-1"}),
            "-ERR CONFIG SET failed (possibly related to argument 'latency-monitor-threshold') - "
            "argument must be between 0 and 9223372036854775807 inclusive");
  EXPECT_EQ(Cmd({"SLOWLOG", "GET", "-2"}), "-ERR count should be greater than or equal to -1");
  EXPECT_EQ(Cmd({"SLOWLOG", "GET", "x"}), "-ERR count should be greater than or equal to -1");
  EXPECT_EQ(Cmd({"SLOWLOG", "Get", "1", "2"}),
            "-ERR unknown subcommand or wrong number of arguments for 'Get'. Try SLOWLOG HELP.");
  EXPECT_EQ(Cmd({"SLOWLOG", "LEN", "x"}),
            "-ERR wrong number of arguments for 'slowlog|len' command");
  EXPECT_EQ(Cmd({"SLOWLOG", "NOPE"}), "-ERR unknown subcommand 'NOPE'. Try SLOWLOG HELP.");
  EXPECT_EQ(Cmd({"SLOWLOG"}), "-ERR wrong number of arguments for 'slowlog' command");
  EXPECT_THAT(Cmd({"SLOWLOG", "HELP"}), HasSubstr("+GET [<count>]"));
}

// A command that takes at least 1 ms: KEYS over 100000 keys (MGET of them for "fast-command").
// Tried again until the monitor has seen one, within a deadline.
TEST_F(RespIntrospectionTest, LatencyMonitorRecordsSpikes) {
  EXPECT_THAT(Cmd({"LATENCY", "DOCTOR"}), HasSubstr("disabled"));
  std::vector<std::string> mset = {"MSET"}, mget = {"MGET"};
  for (int i = 0; i < 100000; ++i) {
    mset.push_back("lat:" + std::to_string(i));
    mset.push_back("v");
    mget.push_back("lat:" + std::to_string(i));
  }
  ASSERT_EQ(Cmd(mset), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "latency-monitor-threshold", "1"}), "+OK");
  Cmd({"LATENCY", "RESET"});  // from a clean slate
  EXPECT_EQ(Cmd({"LATENCY", "LATEST"}), "[]");
  auto has_event = [&](const std::string& event) {
    RedisReplyPtr r = RedisCmd(conn_.get(), {"LATENCY", "HISTORY", event});
    return r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
  };
  EXPECT_TRUE(WaitFor(
      [&] {
        RedisCmd(conn_.get(), {"KEYS", "lat:*"});
        return has_event("command");
      },
      Millis(20000), Millis(0)));
  EXPECT_TRUE(WaitFor(
      [&] {
        RedisCmd(conn_.get(), mget);
        return has_event("fast-command");
      },
      Millis(20000), Millis(0)));

  RedisReplyPtr latest = RedisCmd(conn_.get(), {"LATENCY", "LATEST"});
  ASSERT_NE(latest, nullptr);
  ASSERT_EQ(latest->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(latest->elements, 2u) << ReplyText(latest.get());
  for (size_t i = 0; i < 2; ++i) {
    const redisReply* e = latest->element[i];
    ASSERT_EQ(e->elements, 4u);
    EXPECT_EQ(ReplyText(e->element[0]), i == 0 ? "$command" : "$fast-command");
    EXPECT_NEAR(e->element[1]->integer, static_cast<double>(std::time(nullptr)), 30);
    EXPECT_GE(e->element[2]->integer, 1) << "at least the threshold";
    EXPECT_GE(e->element[3]->integer, e->element[2]->integer) << "max >= latest";
  }
  RedisReplyPtr history = RedisCmd(conn_.get(), {"LATENCY", "HISTORY", "command"});
  ASSERT_NE(history, nullptr);
  ASSERT_GE(history->elements, 1u);
  EXPECT_EQ(history->element[0]->elements, 2u);
  EXPECT_GE(history->element[0]->element[1]->integer, 1);
  EXPECT_EQ(Cmd({"LATENCY", "HISTORY", "nosuch"}), "[]");
  EXPECT_THAT(Cmd({"LATENCY", "DOCTOR"}), HasSubstr("command: "));
  // GRAPH: Redis's sparkline. Title, 80 dashes, four rows of '_' 'o' '#' '|' (one column per
  // sample, each at least '_' in the bottom row), a blank row, then each sample's age downwards.
  RedisReplyPtr graph = RedisCmd(conn_.get(), {"LATENCY", "GRAPH", "command"});
  ASSERT_NE(graph, nullptr);
  ASSERT_EQ(graph->type, REDIS_REPLY_STRING) << ReplyText(graph.get());
  std::vector<std::string> rows;
  {
    std::istringstream text(std::string(graph->str, graph->len));
    for (std::string row; std::getline(text, row);) rows.push_back(row);
  }
  ASSERT_GE(rows.size(), 8u) << graph->str;
  EXPECT_THAT(rows[0], StartsWith("command - high "));
  EXPECT_THAT(rows[0], HasSubstr(" ms (all time high "));
  EXPECT_EQ(rows[1], std::string(80, '-'));
  const size_t columns = history->elements;
  for (size_t r = 2; r < 6; ++r) {
    EXPECT_EQ(rows[r].size(), columns) << "row " << r;
    EXPECT_EQ(rows[r].find_first_not_of(" _o#|"), std::string::npos) << rows[r];
  }
  EXPECT_EQ(rows[5].find(' '), std::string::npos) << "every column has its bottom row";
  EXPECT_EQ(rows[6], std::string(columns, ' '));
  EXPECT_EQ(rows.back().back(), 's') << "ages under a minute end in 's'";
  EXPECT_EQ(Cmd({"LATENCY", "GRAPH", "nosuch"}), "-ERR No samples available for event 'nosuch'");
  EXPECT_EQ(Cmd({"LATENCY", "GRAPH"}),
            "-ERR wrong number of arguments for 'latency|graph' command");

  EXPECT_EQ(Int({"LATENCY", "RESET", "nosuch"}), 0);
  EXPECT_EQ(Int({"LATENCY", "RESET", "command"}), 1);
  EXPECT_EQ(Cmd({"LATENCY", "HISTORY", "command"}), "[]");
  EXPECT_EQ(Int({"LATENCY", "RESET"}), 1);
  EXPECT_EQ(Cmd({"LATENCY", "LATEST"}), "[]");

  EXPECT_EQ(Cmd({"LATENCY", "HISTORY"}),
            "-ERR wrong number of arguments for 'latency|history' command");
  EXPECT_EQ(Cmd({"LATENCY", "LATEST", "x"}),
            "-ERR wrong number of arguments for 'latency|latest' command");
  EXPECT_EQ(Cmd({"LATENCY", "NOPE"}), "-ERR unknown subcommand 'NOPE'. Try LATENCY HELP.");
  EXPECT_THAT(Cmd({"LATENCY", "HELP"}), HasSubstr("+HISTORY <event>"));
}

// LATENCY HISTOGRAM: with latency-tracking on, every command that ran is counted (a container's
// subcommand by its full name, a transaction's commands as EXEC runs them); off, nothing more.
TEST_F(RespIntrospectionTest, LatencyHistogramCountsEveryCommand) {
  EXPECT_EQ(Cmd({"CONFIG", "GET", "latency-tracking"}), "[$latency-tracking, $no]");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "latency-tracking", "maybe"}),
            "-ERR CONFIG SET failed (possibly related to argument 'latency-tracking') - argument "
            "must be 'yes' or 'no'");
  // Only this test turns tracking on, so the counts on the shared server are this test's.
  ASSERT_EQ(Cmd({"CONFIG", "SET", "latency-tracking", "yes"}), "+OK");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "latency-tracking"}), "[$latency-tracking, $yes]");
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Cmd({"SET", "hist:a", std::to_string(i)}), "+OK");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Cmd({"GET", "hist:a"}), "$4");
  ASSERT_EQ(Cmd({"CONFIG", "GET", "maxmemory"}).substr(0, 11), "[$maxmemory");
  ASSERT_EQ(Cmd({"MULTI"}), "+OK");
  ASSERT_EQ(Cmd({"INCR", "hist:n"}), "+QUEUED");
  ASSERT_EQ(Cmd({"EXEC"}), "[:1]");
  ASSERT_EQ(Cmd({"UNKNOWNCMD"}).substr(0, 21), "-ERR unknown command ");

  // name -> (calls, [(bound, cumulative count)...]), from the RESP2 reply (a flat array).
  struct Histogram {
    int64_t calls = -1;
    std::vector<std::pair<int64_t, int64_t>> buckets;
  };
  auto histograms = [&](const std::vector<std::string>& names) {
    std::vector<std::string> cmd = {"LATENCY", "HISTOGRAM"};
    cmd.insert(cmd.end(), names.begin(), names.end());
    RedisReplyPtr r = RedisCmd(conn_.get(), cmd);
    std::map<std::string, Histogram> out;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
      ADD_FAILURE() << "LATENCY HISTOGRAM answered " << ReplyText(r.get());
      return out;
    }
    for (size_t i = 0; i < r->elements; i += 2) {
      const redisReply* body = r->element[i + 1];
      EXPECT_EQ(body->elements, 4u) << ReplyText(body);
      if (body->elements != 4) continue;
      EXPECT_EQ(ReplyText(body->element[0]), "$calls");
      EXPECT_EQ(ReplyText(body->element[2]), "$histogram_usec");
      Histogram& h = out[std::string(r->element[i]->str, r->element[i]->len)];
      h.calls = body->element[1]->integer;
      const redisReply* b = body->element[3];
      for (size_t j = 0; j + 1 < b->elements; j += 2) {
        h.buckets.emplace_back(b->element[j]->integer, b->element[j + 1]->integer);
      }
    }
    return out;
  };
  // Cumulative counts that grow at rising power-of-two bounds (1 024 << b ns in whole us) and
  // end at the calls.
  std::set<int64_t> bounds;
  for (int b = 0; b <= 20; ++b) bounds.insert((int64_t{1024} << b) / 1000);
  auto consistent = [&](const Histogram& h) {
    if (h.buckets.empty() || h.buckets.back().second != h.calls) return false;
    for (size_t j = 0; j < h.buckets.size(); ++j) {
      const auto [bound, count] = h.buckets[j];
      if (bounds.count(bound) == 0) return false;
      if (j > 0 && (bound <= h.buckets[j - 1].first || count <= h.buckets[j - 1].second)) {
        return false;
      }
    }
    return true;
  };
  auto all = histograms({});
  ASSERT_TRUE(all.count("set") && all.count("get")) << Cmd({"LATENCY", "HISTOGRAM"});
  EXPECT_EQ(all["set"].calls, 5);
  EXPECT_EQ(all["get"].calls, 3);
  EXPECT_EQ(all["incr"].calls, 1) << "counted as EXEC ran it";
  EXPECT_EQ(all["multi"].calls, 1);
  EXPECT_EQ(all["exec"].calls, 1);
  EXPECT_EQ(all["config|get"].calls, 2);
  EXPECT_EQ(all.count("config"), 0u) << "a container's calls are its subcommands'";
  EXPECT_EQ(all.count("unknowncmd"), 0u);
  for (const auto& [name, h] : all) EXPECT_TRUE(consistent(h)) << name;

  // Named: in the order asked, a container standing for its subcommands, unknown names skipped.
  auto some = histograms({"GET", "nosuch", "config"});
  EXPECT_EQ(some.size(), 2u);
  EXPECT_EQ(some["get"].calls, 3);
  EXPECT_EQ(some["config|get"].calls, 2);
  EXPECT_EQ(histograms({"config|get"}).size(), 1u);
  EXPECT_EQ(Cmd({"LATENCY", "HISTOGRAM", "nosuch"}), "[]");

  // Off: the counts stay, nothing more is counted.
  ASSERT_EQ(Cmd({"CONFIG", "SET", "latency-tracking", "no"}), "+OK");
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Cmd({"GET", "hist:a"}), "$4");
  auto after = histograms({"get"});
  EXPECT_EQ(after["get"].calls, 3);
}

TEST_F(RespIntrospectionTest, ClientListAcrossConnections) {
  RedisConnection named = Connect(), multi = Connect(), sub = Connect(), tracking = Connect();
  ASSERT_TRUE(named && multi && sub && tracking);
  ASSERT_EQ(On(named.get(), {"CLIENT", "SETNAME", "listed"}), "+OK");
  ASSERT_EQ(On(named.get(), {"CLIENT", "NO-EVICT", "on"}), "+OK");
  const int64_t multi_id = IdOf(multi.get());
  ASSERT_EQ(On(multi.get(), {"MULTI"}), "+OK");
  ASSERT_EQ(On(multi.get(), {"CLIENT", "ID"}), "+QUEUED");
  ASSERT_EQ(On(tracking.get(), {"CLIENT", "TRACKING", "on", "BCAST"}), "+OK");
  const int64_t named_id = IdOf(named.get()), sub_id = IdOf(sub.get());
  const int64_t tracking_id = IdOf(tracking.get()), self_id = Int({"CLIENT", "ID"});
  ASSERT_EQ(On(sub.get(), {"SUBSCRIBE", "ch1", "ch2"}), "[$subscribe, $ch1, :1]");
  void* second = nullptr;
  ASSERT_EQ(redisGetReply(sub.get(), &second), REDIS_OK);
  EXPECT_EQ(ReplyText(RedisReplyPtr(static_cast<redisReply*>(second)).get()),
            "[$subscribe, $ch2, :2]");
  ASSERT_EQ(On(sub.get(), {"PSUBSCRIBE", "p*"}), "[$psubscribe, $p*, :3]");

  // Earlier tests' connections may still be closing: wait for exactly these five.
  EXPECT_TRUE(WaitFor([&] { return ListLines().size() == 5; })) << ListLines().size();
  const std::string named_line = LineOf(named_id);
  EXPECT_EQ(Field(named_line, "name"), "listed");
  EXPECT_EQ(Field(named_line, "flags"), "e");
  EXPECT_EQ(Field(named_line, "multi"), "-1");
  const std::string sub_line = LineOf(sub_id);
  EXPECT_EQ(Field(sub_line, "flags"), "P");
  EXPECT_EQ(Field(sub_line, "sub"), "2");
  EXPECT_EQ(Field(sub_line, "psub"), "1");
  EXPECT_EQ(Field(LineOf(tracking_id), "flags"), "tB");
  const std::string self_line = LineOf(self_id);
  EXPECT_EQ(Field(self_line, "flags"), "N");
  EXPECT_EQ(Field(self_line, "laddr"), "127.0.0.1:" + std::to_string(server_->resp_port()));
  EXPECT_EQ(Field(self_line, "addr"), Field(InfoOf(conn_.get()), "addr"));

  // The MULTI connection: x, with one command queued (its CLIENT ID above).
  std::string multi_line;
  for (const std::string& line : ListLines()) {
    if (Field(line, "multi") != "-1") multi_line = line;
  }
  EXPECT_EQ(Field(multi_line, "id"), std::to_string(multi_id));
  EXPECT_EQ(Field(multi_line, "flags"), "x");
  EXPECT_EQ(Field(multi_line, "multi"), "1");

  // Filters: TYPE, and ID in the order given (unknown ids left out).
  std::vector<std::string> pubsub = ListLines({"TYPE", "pubsub"});
  ASSERT_EQ(pubsub.size(), 1u);
  EXPECT_EQ(Field(pubsub[0], "id"), std::to_string(sub_id));
  EXPECT_EQ(ListLines({"TYPE", "normal"}).size(), 4u);
  EXPECT_TRUE(ListLines({"TYPE", "master"}).empty());
  EXPECT_TRUE(ListLines({"TYPE", "replica"}).empty());
  std::vector<std::string> by_id =
      ListLines({"ID", std::to_string(tracking_id), "999999", std::to_string(self_id)});
  ASSERT_EQ(by_id.size(), 2u);
  EXPECT_EQ(Field(by_id[0], "id"), std::to_string(tracking_id));
  EXPECT_EQ(Field(by_id[1], "id"), std::to_string(self_id));

  EXPECT_EQ(Cmd({"CLIENT", "LIST", "TYPE", "bogus"}), "-ERR Unknown client type 'bogus'");
  EXPECT_EQ(Cmd({"CLIENT", "LIST", "ID", "abc"}), "-ERR Invalid client ID");
  EXPECT_EQ(Cmd({"CLIENT", "LIST", "TYPE"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"CLIENT", "LIST", "foo", "bar"}), "-ERR syntax error");

  // A connection that closes is gone from the list.
  sub.reset();
  EXPECT_TRUE(WaitFor([&] { return LineOf(sub_id).empty(); }));
  EXPECT_EQ(On(multi.get(), {"EXEC"}), "[:" + std::to_string(multi_id) + "]");
}

// Redis 7.0's fields, in its order (then lib-name and lib-ver, Redis 7.2's), with what corral
// knows of each: buffers, the last command, the tracking redirect.
TEST_F(RespIntrospectionTest, ClientListHasRedisFieldsInRedisOrder) {
  const std::vector<std::string> redis_fields = {
      "id",        "addr", "laddr", "fd",   "name",     "age",    "idle",      "flags",
      "db",        "sub",  "psub",  "ssub", "multi",    "qbuf",   "qbuf-free", "argv-mem",
      "multi-mem", "rbs",  "rbp",   "obl",  "oll",      "omem",   "tot-mem",   "events",
      "cmd",       "user", "redir", "resp", "lib-name", "lib-ver"};
  const std::string self = InfoOf(conn_.get());
  std::vector<std::string> names;
  std::istringstream words(self);
  for (std::string word; words >> word;) names.push_back(word.substr(0, word.find('=')));
  EXPECT_EQ(names, redis_fields) << self;
  EXPECT_EQ(Field(self, "cmd"), "client|info");
  EXPECT_EQ(Field(self, "argv-mem"), "10") << "CLIENT INFO: 6 + 4 bytes";
  EXPECT_GT(std::stoi(Field(self, "fd")), 2);
  EXPECT_EQ(Field(self, "events"), "r");
  EXPECT_EQ(Field(self, "redir"), "-1");
  EXPECT_EQ(Field(self, "ssub"), "0");
  EXPECT_GT(std::stoll(Field(self, "tot-mem")), 0);

  // Another connection's last command, and half of its next one in its query buffer.
  std::unique_ptr<TcpClient> raw = TcpClient::Connect(server_->resp_port());
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Send("CLIENT ID\r\n"));
  ASSERT_TRUE(raw->ReadUntil("\r\n"));
  const std::string raw_id = raw->Take().substr(1, std::string::npos);
  // A container's subcommand is shown for another connection too, as Redis shows it.
  EXPECT_EQ(Field(LineOf(std::stoll(raw_id)), "cmd"), "client|id");
  ASSERT_TRUE(raw->Send("GET k\r\nGE"));
  ASSERT_TRUE(raw->ReadUntil("$-1\r\n"));
  std::string line;
  EXPECT_TRUE(WaitFor([&] {
    line = LineOf(std::stoll(raw_id));
    return Field(line, "qbuf") == "2";
  })) << line;
  EXPECT_EQ(Field(line, "cmd"), "get") << "no subcommand left over from CLIENT ID";
  EXPECT_EQ(Field(line, "argv-mem"), "0") << "between commands";
  EXPECT_GE(std::stoll(Field(line, "rbs")), 2);
  EXPECT_LE(std::stoll(Field(line, "qbuf-free")) + 2, std::stoll(Field(line, "rbs"))) << line;

  // MULTI's queued bytes, and a tracking redirect.
  RedisConnection multi = Connect(), tracking = Connect();
  ASSERT_TRUE(multi && tracking);
  ASSERT_EQ(On(multi.get(), {"MULTI"}), "+OK");
  ASSERT_EQ(On(multi.get(), {"SET", "key", "value"}), "+QUEUED");
  EXPECT_EQ(Field(LineOf(IdOf(tracking.get())), "redir"), "-1");
  const int64_t self_id = Int({"CLIENT", "ID"});
  ASSERT_EQ(On(tracking.get(), {"CLIENT", "TRACKING", "on", "REDIRECT", std::to_string(self_id)}),
            "+OK");
  EXPECT_EQ(Field(LineOf(IdOf(tracking.get())), "redir"), std::to_string(self_id));
  std::string multi_line;
  for (const std::string& l : ListLines()) {
    if (Field(l, "multi") == "1") multi_line = l;
  }
  EXPECT_EQ(Field(multi_line, "multi-mem"), "11") << multi_line << ": SET key value";
}

// In RESP3, CLIENT LIST is verbatim text, as CLIENT INFO.
TEST_F(RespIntrospectionTest, ClientListInResp3) {
  std::unique_ptr<TcpClient> c = TcpClient::Connect(server_->resp_port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send("HELLO 3\r\n"));
  ASSERT_TRUE(c->ReadUntil("modules"));
  ASSERT_TRUE(c->ReadUntil("*0\r\n"));
  c->Take();
  ASSERT_TRUE(c->Send("CLIENT LIST\r\n"));
  ASSERT_TRUE(c->ReadUntil("resp=3"));
  EXPECT_THAT(c->received(), StartsWith("="));
  EXPECT_THAT(c->received(), HasSubstr("txt:id="));
}

TEST_F(RespIntrospectionTest, ClientKillByIdAddrAndOldForm) {
  RedisConnection a = Connect(), b = Connect(), c = Connect(), d = Connect();
  ASSERT_TRUE(a && b && c && d);
  const int64_t a_id = IdOf(a.get());
  EXPECT_EQ(Int({"CLIENT", "KILL", "ID", std::to_string(a_id)}), 1);
  EXPECT_TRUE(Closed(a.get())) << "the killed connection is closed";
  EXPECT_EQ(LineOf(a_id), "");
  EXPECT_EQ(Int({"CLIENT", "KILL", "ID", std::to_string(a_id)}), 0) << "already gone";

  const std::string b_info = InfoOf(b.get());
  EXPECT_EQ(Int({"CLIENT", "KILL", "ADDR", Field(b_info, "addr")}), 1);
  EXPECT_TRUE(Closed(b.get()));

  // LADDR together with ID: both must match.
  const std::string c_info = InfoOf(c.get());
  EXPECT_EQ(Int({"CLIENT", "KILL", "LADDR", "127.0.0.1:1", "ID", Field(c_info, "id")}), 0);
  EXPECT_EQ(On(c.get(), {"PING"}), "+PONG");
  EXPECT_EQ(Int({"CLIENT", "KILL", "LADDR", Field(c_info, "laddr"), "ID", Field(c_info, "id")}), 1);
  EXPECT_TRUE(Closed(c.get()));

  // The old form: +OK, or an error when no connection has that address.
  EXPECT_EQ(Cmd({"CLIENT", "KILL", Field(InfoOf(d.get()), "addr")}), "+OK");
  EXPECT_TRUE(Closed(d.get()));
  EXPECT_EQ(Cmd({"CLIENT", "KILL", "10.0.0.1:1"}), "-ERR No such client");
  EXPECT_EQ(Cmd({"PING"}), "+PONG") << "the killer is alive";

  EXPECT_EQ(Cmd({"CLIENT", "KILL", "ID", "0"}), "-ERR client-id should be greater than 0");
  EXPECT_EQ(Cmd({"CLIENT", "KILL", "ID", "x"}), "-ERR client-id should be greater than 0");
  EXPECT_EQ(Cmd({"CLIENT", "KILL", "TYPE", "bogus"}), "-ERR Unknown client type 'bogus'");
  EXPECT_EQ(Cmd({"CLIENT", "KILL", "SKIPME", "maybe"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"CLIENT", "KILL", "ID", "1", "2"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"CLIENT", "KILL", "FOO", "bar"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"CLIENT", "KILL"}), "-ERR wrong number of arguments for 'client|kill' command");
}

TEST_F(RespIntrospectionTest, ClientKillByUserTypeAndSkipme) {
  ASSERT_EQ(Cmd({"ACL", "SETUSER", "victim", "on", ">pw", "~*", "+@all"}), "+OK");
  RedisConnection as_victim = Connect(), sub = Connect(), other = Connect();
  ASSERT_TRUE(as_victim && sub && other);
  ASSERT_EQ(On(as_victim.get(), {"AUTH", "victim", "pw"}), "+OK");
  EXPECT_EQ(Cmd({"CLIENT", "KILL", "USER", "nosuch"}), "-ERR No such user 'nosuch'");
  EXPECT_EQ(Int({"CLIENT", "KILL", "USER", "victim"}), 1);
  EXPECT_TRUE(Closed(as_victim.get()));
  EXPECT_EQ(On(other.get(), {"PING"}), "+PONG") << "the default user's connection stays";

  ASSERT_EQ(On(sub.get(), {"SUBSCRIBE", "kill-me"}), "[$subscribe, $kill-me, :1]");
  EXPECT_GE(Int({"CLIENT", "KILL", "TYPE", "pubsub"}), 1);
  EXPECT_TRUE(Closed(sub.get()));
  EXPECT_EQ(Int({"CLIENT", "KILL", "TYPE", "master"}), 0);

  // SKIPME yes (the default) spares the caller; SKIPME no closes it after the reply.
  const std::string self = std::to_string(Int({"CLIENT", "ID"}));
  EXPECT_EQ(Int({"CLIENT", "KILL", "ID", self}), 0);
  EXPECT_EQ(Int({"CLIENT", "KILL", "ID", self, "SKIPME", "yes"}), 0);
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
  const std::string other_id = std::to_string(IdOf(other.get()));
  EXPECT_EQ(On(other.get(), {"CLIENT", "KILL", "ID", other_id, "SKIPME", "no"}), ":1")
      << "the reply comes first";
  EXPECT_TRUE(Closed(other.get()));
  EXPECT_EQ(Cmd({"ACL", "DELUSER", "victim"}), ":1");
}

TEST_F(RespIntrospectionTest, ClientNoEvict) {
  EXPECT_EQ(Cmd({"CLIENT", "NO-EVICT", "on"}), "+OK");
  EXPECT_EQ(Field(InfoOf(conn_.get()), "flags"), "e");
  EXPECT_EQ(Cmd({"CLIENT", "NO-EVICT", "OFF"}), "+OK");
  EXPECT_EQ(Field(InfoOf(conn_.get()), "flags"), "N");
  EXPECT_EQ(Cmd({"CLIENT", "NO-EVICT", "maybe"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"CLIENT", "NO-EVICT"}),
            "-ERR wrong number of arguments for 'client|no-evict' command");
}

// With CORRAL_TEST_REDIS_PORT (a redis-server 7.0): the same commands, the same replies, for what
// does not depend on the server's state. The script runs in database 9, flushed first, so that
// the herd and tier tests' keys in database 0 of the same Redis stay.
TEST_F(RespIntrospectionTest, RepliesMatchRedis) {
  const char* port = std::getenv("CORRAL_TEST_REDIS_PORT");
  if (port == nullptr) GTEST_SKIP() << "set CORRAL_TEST_REDIS_PORT to compare with redis-server";
  RedisConnection redis = ConnectRedis(static_cast<uint16_t>(std::atoi(port)));
  ASSERT_NE(redis, nullptr);
  ASSERT_EQ(On(redis.get(), {"SELECT", "9"}), "+OK");
  ASSERT_EQ(On(redis.get(), {"FLUSHDB"}), "+OK");
  const std::vector<std::vector<std::string>> script = {
      {"ROLE"},
      {"ROLE", "x"},
      {"SET", "i", "12345"},
      {"SET", "neg", "-42"},
      {"SET", "lead", "0123"},
      {"SET", "s44", std::string(44, 's')},
      {"SET", "s45", std::string(45, 's')},
      {"OBJECT", "ENCODING", "i"},
      {"OBJECT", "ENCODING", "neg"},
      {"OBJECT", "ENCODING", "lead"},
      {"OBJECT", "ENCODING", "s44"},
      {"OBJECT", "ENCODING", "s45"},
      {"OBJECT", "ENCODING", "missing"},
      {"OBJECT", "REFCOUNT", "s45"},
      {"OBJECT", "REFCOUNT", "i"},
      {"OBJECT", "REFCOUNT", "missing"},
      {"OBJECT", "REFCOUNT"},
      {"OBJECT", "ENCODING", "a", "b"},
      {"OBJECT", "NOPE", "x"},
      {"MEMORY", "USAGE", "missing"},
      {"MEMORY", "USAGE", "i", "SAMPLES", "-1"},
      {"MEMORY", "USAGE", "i", "SAMPLES", "x"},
      {"MEMORY", "USAGE", "i", "FOO"},
      {"MEMORY", "USAGE"},
      {"MEMORY", "STATS", "x"},
      {"MEMORY", "NOPE"},
      {"MEMORY", "HELP"},
      {"SLOWLOG", "HELP"},
      {"SLOWLOG", "GET", "-2"},
      {"SLOWLOG", "GET", "x"},
      {"SLOWLOG", "GET", "1", "2"},
      {"SLOWLOG", "LEN", "x"},
      {"SLOWLOG", "NOPE"},
      {"SLOWLOG"},
      {"LATENCY", "HISTORY", "nosuch"},
      {"LATENCY", "RESET", "nosuch"},
      {"LATENCY", "HISTORY"},
      {"LATENCY", "LATEST", "x"},
      {"LATENCY", "NOPE"},
      {"CLIENT", "KILL", "ID", "0"},
      {"CLIENT", "KILL", "ID", "x"},
      {"CLIENT", "KILL", "ID", "999999"},
      {"CLIENT", "KILL", "10.0.0.1:1"},
      {"CLIENT", "KILL", "TYPE", "bogus"},
      {"CLIENT", "KILL", "TYPE", "master"},
      {"CLIENT", "KILL", "USER", "nosuch"},
      {"CLIENT", "KILL", "SKIPME", "maybe"},
      {"CLIENT", "KILL", "FOO", "bar"},
      {"CLIENT", "KILL", "ID", "1", "2"},
      {"CLIENT", "KILL"},
      {"CLIENT", "LIST", "TYPE", "bogus"},
      {"CLIENT", "LIST", "TYPE", "master"},
      {"CLIENT", "LIST", "ID", "abc"},
      {"CLIENT", "LIST", "ID", "999999"},
      {"CLIENT", "LIST", "TYPE"},
      {"CLIENT", "LIST", "foo", "bar"},
      {"CLIENT", "NO-EVICT", "maybe"},
      {"CLIENT", "NO-EVICT", "on"},
      {"CLIENT", "NO-EVICT", "off"},
      {"CLIENT", "NO-EVICT"},
      {"CONFIG", "SET", "slowlog-log-slower-than", "-2"},
      {"CONFIG", "SET", "slowlog-max-len", "x"},
      {"CONFIG", "SET", "latency-monitor-threshold", "-1"},
      {"CONFIG", "GET", "slowlog-max-len"},
      {"CONFIG", "GET", "latency-monitor-threshold"},
  };
  for (const auto& args : script) {
    std::string line;
    for (const auto& a : args) line += a.substr(0, 20) + " ";
    EXPECT_EQ(Cmd(args), On(redis.get(), args)) << line;
  }
}

}  // namespace
}  // namespace corral::integration

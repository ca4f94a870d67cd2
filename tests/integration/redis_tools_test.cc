// The real Redis tools (redis-cli, redis-benchmark from Debian's redis-tools) against
// corral-server: they must work unchanged, as SPEC.md "RESP endpoint" promises.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class RedisToolsTest : public SharedServerTest {
 protected:
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    for (const char* tool : {"redis-cli", "redis-benchmark"}) {
      ASSERT_TRUE(InPath(tool)) << tool << " is not in PATH: run deploy/install-deps.sh "
                                << "(Debian package redis-tools)";
    }
  }

  std::string Port() const { return std::to_string(server_->resp_port()); }

  ProcessResult Cli(std::vector<std::string> args, std::string_view input = {}) {
    std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", Port()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, input, Millis(20000));
  }

  // Runs redis-benchmark and checks that every test reports a throughput and nothing reports
  // an error. Returns the names of the tests that reported "requests per second".
  std::set<std::string> Benchmark(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"redis-benchmark", "-h", "127.0.0.1", "-p", Port(), "-t",
                                     "ping,set,get",    "-n", "20000",     "-c", "50",   "-q"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ProcessResult r = RunProcess(argv, {}, Millis(90000));
    EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\nstdout:\n"
                               << r.out << "\nstderr:\n"
                               << r.err;
    EXPECT_EQ(Lower(r.out + r.err).find("error"), std::string::npos) << "stdout:\n"
                                                                     << r.out << "\nstderr:\n"
                                                                     << r.err;
    // redis-benchmark prints this when CONFIG GET save/appendonly fails.
    EXPECT_EQ(Lower(r.out + r.err).find("warning"), std::string::npos) << "stdout:\n"
                                                                       << r.out << "\nstderr:\n"
                                                                       << r.err;
    // Quiet mode prints progress lines ending in \r and one final line per test, e.g.
    // "SET: 81967.21 requests per second, p50=0.295 msec".
    std::set<std::string> reported;
    static const std::regex kLine(R"(([A-Z_]+): ([0-9.]+) requests per second)");
    std::string text = r.out;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), kLine);
         it != std::sregex_iterator(); ++it) {
      if (std::stod((*it)[2].str()) > 0) reported.insert((*it)[1].str());
    }
    // Every benchmark connection is released once the tool has gone (INFO counts this one).
    RedisConnection c = ConnectRedis(server_->resp_port());
    EXPECT_NE(c, nullptr);
    if (c != nullptr) {
      std::string last;
      EXPECT_TRUE(WaitFor([&] {
        RedisReplyPtr info = RedisCmd(c.get(), {"INFO", "clients"});
        last = info != nullptr && info->type == REDIS_REPLY_STRING
                   ? std::string(info->str, info->len)
                   : ReplyText(info.get());
        return last.find("connected_clients:1\r\n") != std::string::npos;
      })) << last;
    }
    return reported;
  }
};

TEST_F(RedisToolsTest, CliPing) {
  ProcessResult r = Cli({"ping"});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << " " << r.err;
  EXPECT_EQ(r.out, "PONG\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(RedisToolsTest, CliSetGet) {
  ProcessResult set = Cli({"set", "tools:k", "some value"});
  EXPECT_TRUE(set.status.ok()) << set.status.ToString() << " " << set.err;
  EXPECT_EQ(set.out, "OK\n");
  ProcessResult get = Cli({"get", "tools:k"});
  EXPECT_TRUE(get.status.ok()) << get.status.ToString() << " " << get.err;
  EXPECT_EQ(get.out, "some value\n");
  ProcessResult missing = Cli({"get", "tools:missing"});
  EXPECT_EQ(missing.out, "\n") << "redis-cli prints nil as an empty line when not on a tty";
  ProcessResult unknown = Cli({"nosuchcommand", "x"});
  EXPECT_THAT(unknown.out, HasSubstr("ERR unknown command 'nosuchcommand'"));
}

TEST_F(RedisToolsTest, CliReadsCommandsFromStdin) {
  ProcessResult r = Cli({}, "set tools:a 1\nget tools:a\nincr_unknown tools:a\ndbsize\n");
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << " " << r.err;
  // Byte for byte what redis-cli prints against redis-server 7.0 (an error reply is followed by
  // an empty line), except the key count.
  const std::string expected_prefix =
      "OK\n1\nERR unknown command 'incr_unknown', with args beginning with: 'tools:a' \n\n";
  ASSERT_EQ(r.out.substr(0, expected_prefix.size()), expected_prefix) << r.out;
  std::string dbsize = r.out.substr(expected_prefix.size());
  EXPECT_TRUE(std::regex_match(dbsize, std::regex("[1-9][0-9]*\n"))) << dbsize;
}

TEST_F(RedisToolsTest, CliInfoAndConfig) {
  ProcessResult info = Cli({"info", "server"});
  EXPECT_TRUE(info.status.ok());
  EXPECT_THAT(info.out, HasSubstr("redis_version:"));
  ProcessResult config = Cli({"config", "get", "maxmemory"});
  EXPECT_TRUE(config.status.ok());
  EXPECT_EQ(config.out, "maxmemory\n268435456\n");
}

TEST_F(RedisToolsTest, Benchmark) {
  std::set<std::string> reported = Benchmark({});
  EXPECT_EQ(reported, (std::set<std::string>{"PING_INLINE", "PING_MBULK", "SET", "GET"}));
}

TEST_F(RedisToolsTest, BenchmarkPipelined) {
  std::set<std::string> reported = Benchmark({"-P", "16"});
  EXPECT_EQ(reported, (std::set<std::string>{"PING_INLINE", "PING_MBULK", "SET", "GET"}));
}

}  // namespace
}  // namespace corral::integration

// corral-server's command line: --check-config on good and bad files (the error names the JSON
// path), bad flag values, and flags overriding the config file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "cache-server/build_info.h"
#include "cache-server/config.h"
#include "tests/cache-server/config_walk.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A config file in a private temporary directory, removed at the end of the test.
class ConfigCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/corral-cli-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    for (const auto& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }

  // Runs corral-server with `args`. A server that wrongly starts serving is killed by the
  // timeout, which the caller sees as status.timed_out.
  static ProcessResult Server(std::vector<std::string> args) {
    args.insert(args.begin(), ServerBinary());
    return RunProcess(args, {}, Millis(10000));
  }

  std::string dir_;
  std::vector<std::string> files_;
};

constexpr char kGoodConfig[] = R"({
  "listen": { "resp": "127.0.0.1:0", "http": "127.0.0.1:0" },
  "threads": 2,
  "memory": { "max_bytes": 268435456 },
  "postgres": {
    "primary": "host=127.0.0.1 port=5432 dbname=app user=app password=hunter2",
    "replicas": ["host=127.0.0.1 port=5433 dbname=app user=app"],
    "pools": { "default": { "replicas": "all", "connections": 8 } },
    "statement_timeout_ms": 1000,
    "max_replica_lag_ms": 5000,
    "fallback_to_primary": false,
    "invalidation_channel": "corral_invalidate"
  },
  "namespaces": {
    "user": {
      "query": "SELECT row_to_json(u)::text FROM users u WHERE u.id = $1",
      "pool": "default",
      "ttl_ms": 60000, "ttl_jitter": 0.1,
      "stale_ms": 300000, "negative_ttl_ms": 5000,
      "max_inflight_loads": 64, "max_loads_per_s": 0, "blocked": false
    }
  },
  "lease": { "wait_timeout_ms": 2000, "lease_ttl_ms": 10000, "error_holdoff_ms": 1000 },
  "shedding": { "max_pending_loads": 10000, "max_clients": 10000 }
})";

TEST_F(ConfigCliTest, GoodConfigPasses) {
  ProcessResult r = Server({"--check-config", Write("good.json", kGoodConfig)});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.out << r.err;
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("hunter2"))) << "a password was printed";

  ProcessResult empty = Server({"--check-config", Write("empty.json", "{}")});
  EXPECT_TRUE(empty.status.ok()) << empty.status.ToString() << "\n" << empty.err;
}

struct BadConfig {
  const char* name;
  std::string json;
  std::string path;  // the JSON path the error must name
};

TEST_F(ConfigCliTest, BadConfigsNameTheField) {
  const BadConfig cases[] = {
      {"unknown top-level field", R"({"thread": 2})", "thread"},
      {"unknown nested field", R"({"listen": {"resp": "127.0.0.1:0", "bogus": 1}})",
       "listen.bogus"},
      {"wrong type", R"({"threads": "two"})", "threads"},
      {"wrong nested type", R"({"shedding": {"max_clients": true}})", "shedding.max_clients"},
      {"out of range", R"({"threads": 0})", "threads"},
      {"bad listen address", R"({"listen": {"resp": "localhost:99999"}})", "listen.resp"},
      {"namespace field type",
       R"({"postgres": {"primary": "host=x", "replicas": ["host=y"]},
           "namespaces": {"user": {"query": "SELECT $1", "ttl_ms": "abc"}}})",
       "namespaces.user.ttl_ms"},
      {"namespace without query",
       R"({"postgres": {"primary": "host=x", "replicas": ["host=y"]},
           "namespaces": {"user": {"ttl_ms": 5}}})",
       "namespaces.user.query"},
      {"array element", R"({"postgres": {"primary": "host=x", "replicas": ["host=y", 5]}})",
       "postgres.replicas[1]"},
      {"no replicas", R"({"postgres": {"primary": "host=x"}})", "postgres.replicas"},
  };
  for (const BadConfig& c : cases) {
    SCOPED_TRACE(c.name);
    ProcessResult r = Server({"--check-config", Write("bad.json", c.json)});
    EXPECT_FALSE(r.status.timed_out);
    EXPECT_TRUE(r.status.exited && r.status.code != 0) << r.status.ToString();
    EXPECT_THAT(r.err, HasSubstr("config error: " + c.path + ": ")) << r.err;
  }
}

// For every validated field (the parser's own field list, so a new field is walked too), each
// invalid value is rejected by --check-config naming the field's path, and start-up with --config
// refuses the field's first invalid value the same way, before listening: the two cannot disagree.
TEST_F(ConfigCliTest, EveryInvalidFieldIsRejectedByCheckAndAtStartUp) {
  size_t walked = 0;
  for (const server::ConfigField& field : server::ConfigFields()) {
    const std::string path = server::config_walk::ConcretePath(field.path);
    for (const std::string& bad : field.invalid) {
      SCOPED_TRACE(path + " = " + bad);
      const std::string file = Write("walk.json", server::config_walk::ConfigWith(path, bad));
      ++walked;
      ProcessResult check = Server({"--check-config", file});
      EXPECT_TRUE(check.status.exited && check.status.code == 2) << check.status.ToString();
      EXPECT_THAT(check.err, HasSubstr("config error: " + path)) << check.err;
      if (bad != field.invalid.front()) continue;

      ProcessResult start =
          Server({"--config", file, "--resp", "127.0.0.1:0", "--http", "127.0.0.1:0"});
      EXPECT_TRUE(start.status.exited && start.status.code == 2) << start.status.ToString();
      EXPECT_THAT(start.err, HasSubstr("config error: " + path)) << start.err;
      EXPECT_THAT(start.err, Not(HasSubstr("event=listening")));
    }
  }
  EXPECT_GT(walked, 80u);
}

TEST_F(ConfigCliTest, UnreadableOrInvalidFiles) {
  ProcessResult missing = Server({"--check-config", dir_ + "/does-not-exist.json"});
  EXPECT_TRUE(missing.status.exited && missing.status.code != 0) << missing.status.ToString();
  EXPECT_THAT(missing.err, HasSubstr("config error: "));
  EXPECT_THAT(missing.err, HasSubstr("does-not-exist.json"));

  ProcessResult syntax = Server({"--check-config", Write("syntax.json", "{\"threads\": 2,")});
  EXPECT_TRUE(syntax.status.exited && syntax.status.code != 0) << syntax.status.ToString();
  EXPECT_THAT(syntax.err, HasSubstr("config error: "));

  ProcessResult not_object = Server({"--check-config", Write("array.json", "[1, 2]")});
  EXPECT_TRUE(not_object.status.exited && not_object.status.code != 0);
  EXPECT_THAT(not_object.err, HasSubstr("config error: "));

  // Starting with a bad file fails the same way, without listening.
  ProcessResult start = Server({"--config", Write("bad-start.json", R"({"threads": "x"})"),
                                "--resp", "127.0.0.1:0", "--http", "127.0.0.1:0"});
  EXPECT_TRUE(start.status.exited && start.status.code != 0) << start.status.ToString();
  EXPECT_THAT(start.err, HasSubstr("config error: threads: "));
  EXPECT_THAT(start.err, Not(HasSubstr("event=listening")));
}

TEST_F(ConfigCliTest, BadFlagValues) {
  const std::vector<std::vector<std::string>> cases = {
      {"--resp", "notaport", "--http", "127.0.0.1:0"},
      {"--resp", "70000", "--http", "127.0.0.1:0"},
      {"--resp", "127.0.0.1:", "--http", "127.0.0.1:0"},
      {"--resp", "127.0.0.1:0", "--http", "-1"},
      {"--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--threads", "0"},
      {"--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--threads", "many"},
      {"--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-level", "chatty"},
      {"--resp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--no-such-flag"},
  };
  for (const auto& args : cases) {
    SCOPED_TRACE(testing::PrintToString(args));
    ProcessResult r = Server(args);
    EXPECT_FALSE(r.status.timed_out) << "the server started despite a bad flag";
    EXPECT_TRUE(r.status.exited && r.status.code != 0) << r.status.ToString();
    EXPECT_THAT(r.err, Not(HasSubstr("event=listening")));
    EXPECT_FALSE(r.err.empty()) << "no explanation on stderr";
  }
  ProcessResult r = Server({"--resp", "notaport", "--http", "127.0.0.1:0"});
  EXPECT_THAT(r.err, HasSubstr("config error: --resp: "));
}

TEST_F(ConfigCliTest, FlagsOverrideTheConfigFile) {
  // The file asks for fixed ports; the flags (port 0) win, so the test never binds a fixed port.
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = R"({"listen": {"resp": "127.0.0.1:1", "http": "127.0.0.1:2"},
                                       "threads": 3, "log_level": "error"})",
                    .extra_args = {"--threads", "1", "--log-level", "info"}},
      &error);
  ASSERT_NE(server, nullptr) << error;
  EXPECT_NE(server->resp_port(), 1);
  EXPECT_NE(server->http_port(), 2);
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  RedisReplyPtr r = RedisCmd(c.get(), {"CONFIG", "GET", "io-threads"});
  EXPECT_EQ(ReplyText(r.get()), "[$io-threads, $1]");
  EXPECT_TRUE(server->Stop().ok());
}

TEST_F(ConfigCliTest, HelpExitsZero) {
  ProcessResult r = Server({"--help"});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_THAT(r.out, HasSubstr("--check-config"));
  EXPECT_THAT(r.out, HasSubstr("--version"));
}

// --version prints one line, "corral-server X.Y.Z (commit C)", and exits 0 without reading a
// config. Built from a git checkout, C is the 12-digit commit (with -dirty for a changed tree).
TEST_F(ConfigCliTest, VersionNamesTheCommit) {
  ProcessResult r = Server({"--version"});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.err;
  EXPECT_EQ(r.out, server::VersionLine("corral-server") + "\n");
  EXPECT_TRUE(std::regex_match(
      r.out, std::regex(R"(corral-server [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9A-Za-z._-]+\)\n)")))
      << r.out;
  const std::string commit(server::BuildCommit());
  if (access(CORRAL_SOURCE_DIR "/.git", F_OK) == 0) {
    EXPECT_TRUE(std::regex_match(commit, std::regex("[0-9a-f]{12}(-dirty)?"))) << commit;
  }
  EXPECT_EQ(r.err, "");
}

}  // namespace
}  // namespace corral::integration

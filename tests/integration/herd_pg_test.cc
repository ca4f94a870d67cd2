// corral-herd (bench/herd/) against the real servers: --self-test, per-scenario overrides
// (--storm-*, --vc-*) in one invocation, and flag checking. The tool runs as a child process with a
// deadline; its exit code, stdout and results.json are the evidence.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The herd scenarios' query: 50 ms per load, so a cold key's herd piles up behind one load.
constexpr const char* kHerdQuery = "SELECT name FROM users, pg_sleep(0.05) WHERE id = $1::bigint";
// The steady scenarios' queries read herd.delay_s, which corral-herd sets on every node. Their
// texts differ (" * 1") so that pg_stat_statements and corral-herd's referee count them apart.
constexpr const char* kStormQuery =
    "SELECT name FROM users, pg_sleep(current_setting('herd.delay_s', true)::float8) "
    "WHERE id = $1::bigint";
constexpr const char* kCycleQuery =
    "SELECT name FROM users, pg_sleep(current_setting('herd.delay_s', true)::float8 * 1) "
    "WHERE id = $1::bigint";

// Well over what each invocation needs (a few seconds, ~15 s for the steady scenarios), well under
// ctest's timeout: a hung corral-herd is killed and the test fails with what it printed.
constexpr Millis kSelfTestDeadline{40000};
constexpr Millis kSteadyDeadline{55000};
constexpr Millis kFlagDeadline{10000};

std::string HerdBinary() { return CORRAL_HERD_PATH; }

// corral-herd ARGS..., killed (with its process group) at `deadline`.
ProcessResult RunHerd(const std::vector<std::string>& args, Millis deadline) {
  std::vector<std::string> argv = {HerdBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, {}, deadline);
}

// For failure messages: how it ended and everything it printed.
std::string Describe(const ProcessResult& r) {
  return "corral-herd: " + r.status.ToString() + "\n--- stdout\n" + r.out + "\n--- stderr\n" +
         r.err;
}

// The Redis port from CORRAL_TEST_REDIS_PORT (set by deploy/run-tests.sh); 0 when unset or bad.
int RedisPort() {
  const char* v = std::getenv("CORRAL_TEST_REDIS_PORT");
  if (v == nullptr) return 0;
  int port = std::atoi(v);
  return port > 0 && port < 65536 ? port : 0;
}

std::string Loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

// Namespace names unique to this process, so that keys a run leaves in the shared Redis (for their
// TTL) can never be mistaken for a later run's.
std::string UniqueNs(const std::string& stem) { return stem + std::to_string(getpid()); }

// A fresh directory for --out; removed at the end unless the test failed (then its path is
// printed, for the SVGs and results.json).
class OutDir {
 public:
  OutDir() {
    std::string pattern = (fs::temp_directory_path() / "corral-herd-test.XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~OutDir() {
    if (path_.empty()) return;
    if (::testing::Test::HasFailure()) {
      std::printf("[herd] corral-herd's output kept in %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  OutDir(const OutDir&) = delete;
  OutDir& operator=(const OutDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// results.json parsed; a discarded value (is_discarded()) when missing or malformed.
Json ReadResults(const std::string& dir) {
  return Json::parse(ReadFile(dir + "/results.json"), nullptr, /*allow_exceptions=*/false);
}

// Runs corral-herd with `args`, plus --redis when there is a Redis, echoes its one summary line
// per run, and returns how it ended.
ProcessResult RunHerdWithRedis(std::vector<std::string> args, Millis deadline) {
  if (RedisPort() != 0) {
    args.push_back("--redis");
    args.push_back(Loopback(RedisPort()));
  }
  ProcessResult r = RunHerd(args, deadline);
  std::printf("%s", r.err.c_str());
  return r;
}

// Typed field reads that never throw: a missing or mistyped field reads as a value no assertion
// expects (-1, NaN, "<missing>").
int64_t Int(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : -1;
}
double Num(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>()
                                          : std::numeric_limits<double>::quiet_NaN();
}
std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "<missing>";
}
const Json& Obj(const Json& j, const char* key) {
  static const Json kEmpty = Json::object();
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : kEmpty;
}

// The run of `scenario` × `target` (round 1) in results.json, or nullptr.
const Json* FindRun(const Json& doc, const std::string& scenario, const std::string& target) {
  auto runs = doc.find("runs");
  if (runs == doc.end() || !runs->is_array()) return nullptr;
  for (const Json& r : *runs) {
    if (Str(r, "scenario") == scenario && Str(r, "target") == target && Int(r, "round") == 1) {
      return &r;
    }
  }
  return nullptr;
}

size_t RunCount(const Json& doc) {
  auto runs = doc.find("runs");
  return runs != doc.end() && runs->is_array() ? runs->size() : 0;
}

std::string RunName(const Json& run) { return Str(run, "scenario") + "/" + Str(run, "target"); }

// <dir>/<scenario>.svg exists and is an SVG document.
void ExpectSvg(const std::string& dir, const std::string& scenario) {
  const std::string path = dir + "/" + scenario + ".svg";
  std::string svg = ReadFile(path);
  ASSERT_FALSE(svg.empty()) << path << " missing or empty";
  EXPECT_TRUE(svg.rfind("<svg", 0) == 0 || svg.rfind("<?xml", 0) == 0)
      << path << " starts with: " << svg.substr(0, 80);
  EXPECT_NE(svg.find("</svg>"), std::string::npos) << path << " is cut short";
}

// ---- Against corral, PostgreSQL and Redis -------------------------------------------------------

class HerdPgTest : public PgTest {
 protected:
  // Runs `corral-herd --self-test` against corral (namespace ns, kHerdQuery) and `targets`, and
  // checks what every target must show: exit 0, "self-test: PASS", one run per scenario × target
  // with every request answered and no wrong answer, corral with one query per key, and the SVGs.
  // Returns results.json for target-specific checks (a discarded value on failure).
  Json SelfTest(const std::vector<std::string>& targets) {
    const std::string ns = UniqueNs("herd");
    auto server = StartCorral(Json{{ns, {{"query", kHerdQuery}}}}.dump());
    if (server == nullptr) return Json(Json::value_t::discarded);
    OutDir out;
    if (out.path().empty()) {
      ADD_FAILURE() << "mkdtemp failed";
      return Json(Json::value_t::discarded);
    }
    std::string target_list;
    for (const auto& t : targets) target_list += (target_list.empty() ? "" : ",") + t;
    // clang-format off
    std::vector<std::string> args = {
        "--self-test",
        "--targets", target_list,
        "--corral", Loopback(server->resp_port()),
        "--pg-primary", pg_.primary,
        "--pg-replicas", Replicas(),
        "--namespace", ns,
        "--query", kHerdQuery,
        "--drain", "15",
        "--out", out.path()};
    // clang-format on
    ProcessResult r = RunHerdWithRedis(args, kSelfTestDeadline);
    EXPECT_TRUE(r.status.ok()) << Describe(r);
    EXPECT_NE(r.out.find("self-test: PASS"), std::string::npos) << Describe(r);

    Json doc = ReadResults(out.path());
    if (doc.is_discarded()) {
      ADD_FAILURE() << "results.json missing or malformed in " << out.path() << "\n" << Describe(r);
      return doc;
    }
    // --self-test shrinks the herds to 50 clients on one key and 5 keys x 4 clients.
    const Json& opts = Obj(doc, "options");
    EXPECT_EQ(Int(opts, "clients"), 50);
    EXPECT_EQ(Int(opts, "keys"), 5);
    EXPECT_EQ(Int(opts, "clients_per_key"), 4);
    EXPECT_EQ(RunCount(doc), 2 * targets.size());
    for (const std::string scenario : {"cold", "keys"}) {
      for (const auto& target : targets) {
        const Json* run = FindRun(doc, scenario, target);
        if (run == nullptr) {
          ADD_FAILURE() << "no " << scenario << "/" << target << " run in results.json";
          continue;
        }
        const int64_t requests = scenario == "cold" ? 50 : 20;
        EXPECT_EQ(Int(*run, "requests"), requests) << RunName(*run);
        EXPECT_EQ(Int(*run, "answers"), requests) << RunName(*run) << ": " << run->dump();
        EXPECT_EQ(Int(*run, "errors"), 0) << RunName(*run) << ": " << Str(*run, "first_error");
        EXPECT_EQ(Int(*run, "wrong"), 0) << RunName(*run);
        EXPECT_GE(Int(*run, "db_queries"), 1) << RunName(*run) << ": the referee counted nothing";
      }
      ExpectSvg(out.path(), scenario);
    }
    // corral: one query per cold key, however many clients asked.
    if (const Json* cold = FindRun(doc, "cold", "corral")) {
      EXPECT_EQ(Int(*cold, "db_queries"), 1) << "50 clients on one cold key";
    }
    if (const Json* keys = FindRun(doc, "keys", "corral")) {
      EXPECT_EQ(Int(*keys, "db_queries"), 5) << "5 cold keys x 4 clients";
    }
    std::string csv = ReadFile(out.path() + "/results.csv");
    EXPECT_EQ(csv.rfind("scenario,target,", 0), 0u) << "results.csv: " << csv.substr(0, 80);
    return doc;
  }

  std::string Replicas() const {
    std::string out;
    for (const auto& r : pg_.replicas) out += (out.empty() ? "" : ";") + r;
    return out;
  }
};

TEST_F(HerdPgTest, SelfTestCorralPassesWithOneQueryPerKey) { SelfTest({"corral"}); }

// The same self-test with the cache-aside Redis clients beside corral: they pass too (every answer
// right), and the naive one shows the herd corral prevents.
TEST_F(HerdPgTest, SelfTestCacheAsideRedisTargetsPass) {
  if (RedisPort() == 0) {
    GTEST_SKIP() << "redis-naive/redis-lock need Redis: set CORRAL_TEST_REDIS_PORT "
                    "(deploy/run-tests.sh does)";
  }
  Json doc = SelfTest({"corral", "redis-naive", "redis-lock"});
  if (doc.is_discarded()) return;
  const Json* naive = FindRun(doc, "cold", "redis-naive");
  ASSERT_NE(naive, nullptr);
  // 50 clients miss at once and each loads: one query per client in principle; >= 10 leaves room
  // for a slow machine where some clients find the value already SET.
  EXPECT_GE(Int(*naive, "db_queries"), 10) << naive->dump();
}

// ---- Per-scenario overrides ---------------------------------------------------------------------

// One invocation runs expiry-storm and vicious-cycle, each with its own namespace, query, TTL, hot
// set and load (--storm-*, --vc-*), while the plain values stay what hit would use.
TEST_F(HerdPgTest, StormAndCycleOverridesApplyToTheirScenarioAlone) {
  const std::string herd_ns = UniqueNs("herd"), storm_ns = UniqueNs("storm"),
                    cycle_ns = UniqueNs("cycle");
  Json namespaces = {{herd_ns, {{"query", kHerdQuery}}},
                     {storm_ns, {{"query", kStormQuery}, {"ttl_ms", 2000}}},
                     {cycle_ns, {{"query", kCycleQuery}, {"ttl_ms", 1000}}}};
  auto server = StartCorral(namespaces.dump());
  ASSERT_NE(server, nullptr);
  OutDir out;
  ASSERT_FALSE(out.path().empty()) << "mkdtemp failed";

  std::vector<std::string> targets = {"corral"};
  if (RedisPort() != 0) {
    targets.push_back("redis-naive");
  } else {
    std::printf("[herd] CORRAL_TEST_REDIS_PORT unset: corral only, no redis-naive\n");
  }
  // clang-format off
  std::vector<std::string> args = {
      "--scenario", "expiry-storm,vicious-cycle",
      "--targets", targets.size() == 1 ? "corral" : "corral,redis-naive",
      "--corral", Loopback(server->resp_port()),
      "--pg-primary", pg_.primary,
      "--pg-replicas", Replicas(),
      // The plain namespace (hit's): neither scenario may use it.
      "--namespace", herd_ns,
      "--query", kHerdQuery,
      // expiry-storm: 5 keys filled at once; their 2 s TTL runs out during 3 s of traffic.
      "--storm-namespace", storm_ns,
      "--storm-query", kStormQuery,
      "--storm-ttl-ms", "2000",
      "--storm-hot-keys", "5",
      "--storm-rate", "200",
      "--storm-clients", "20",
      "--duration", "3",
      // vicious-cycle: 1 s at the normal DB delay, 1 s at 10x, 1 s normal again.
      "--vc-namespace", cycle_ns,
      "--vc-query", kCycleQuery,
      "--vc-ttl-ms", "1000",
      "--vc-hot-keys", "20",
      "--vc-rate", "200",
      "--vc-clients", "20",
      "--vc-warm", "1",
      "--vc-slow", "1",
      "--vc-recover", "1",
      "--drain", "15",
      "--out", out.path()};
  // clang-format on
  ProcessResult r = RunHerdWithRedis(args, kSteadyDeadline);
  ASSERT_TRUE(r.status.ok()) << Describe(r);
  Json doc = ReadResults(out.path());
  ASSERT_FALSE(doc.is_discarded()) << "results.json missing or malformed\n" << Describe(r);

  // The options as the tool understood them.
  const Json& opts = Obj(doc, "options");
  const Json& storm = Obj(opts, "expiry_storm");
  EXPECT_EQ(Str(storm, "namespace"), storm_ns);
  EXPECT_EQ(Str(storm, "query"), kStormQuery);
  EXPECT_EQ(Int(storm, "ttl_ms"), 2000);
  EXPECT_EQ(Int(storm, "hot_keys"), 5);
  EXPECT_EQ(Num(storm, "rate"), 200);
  EXPECT_EQ(Int(storm, "clients"), 20);
  EXPECT_EQ(Num(storm, "duration_s"), 3);
  const Json& cycle = Obj(opts, "vicious_cycle");
  EXPECT_EQ(Str(cycle, "namespace"), cycle_ns);
  EXPECT_EQ(Str(cycle, "query"), kCycleQuery);
  EXPECT_EQ(Int(cycle, "ttl_ms"), 1000);
  EXPECT_EQ(Int(cycle, "hot_keys"), 20);
  EXPECT_EQ(Num(cycle, "rate"), 200);
  EXPECT_EQ(Int(cycle, "clients"), 20);
  EXPECT_EQ(cycle.value("phases_s", Json()), Json::array({1.0, 1.0, 1.0}));
  // The overrides did not leak into the plain values (hit's).
  const Json& plain = Obj(opts, "hit");
  EXPECT_EQ(Str(plain, "namespace"), herd_ns);
  EXPECT_EQ(Str(plain, "query"), kHerdQuery);
  EXPECT_EQ(Int(plain, "ttl_ms"), 5000);
  EXPECT_EQ(Int(plain, "hot_keys"), 1000);
  EXPECT_EQ(Num(plain, "rate"), 2000);
  EXPECT_EQ(Int(plain, "clients"), 400);

  // Every run: traffic on its own namespace's keys, right answers, queries the referee saw.
  EXPECT_EQ(RunCount(doc), 2 * targets.size());
  for (const std::string scenario : {"expiry-storm", "vicious-cycle"}) {
    const std::string ns = scenario == "expiry-storm" ? storm_ns : cycle_ns;
    for (const auto& target : targets) {
      const Json* run = FindRun(doc, scenario, target);
      if (run == nullptr) {
        ADD_FAILURE() << "no " << scenario << "/" << target << " run in results.json";
        continue;
      }
      EXPECT_GT(Int(*run, "requests"), 0) << RunName(*run) << ": " << Str(*run, "note");
      EXPECT_GT(Int(*run, "answers"), 0) << RunName(*run) << ": " << Str(*run, "first_error");
      EXPECT_EQ(Int(*run, "wrong"), 0) << RunName(*run);
      EXPECT_EQ(Str(*run, "keys").rfind(ns + ":", 0), 0u)
          << RunName(*run) << " used keys " << Str(*run, "keys");
      // Every TTL runs out during the traffic, so each run reloads (TTL 2 s or 1 s, 3 s of it).
      EXPECT_GE(Int(*run, "db_queries"), 1) << RunName(*run) << ": the referee counted nothing";
      EXPECT_EQ(Str(*run, "note").find("skipped"), std::string::npos) << Str(*run, "note");
    }
    ExpectSvg(out.path(), scenario);
  }
  // The fill asks for each of the 5 hot keys once: 5 loads, counted apart from the window.
  for (const auto& target : targets) {
    const Json* run = FindRun(doc, "expiry-storm", target);
    if (run == nullptr) continue;
    EXPECT_EQ(Int(*run, "fill_db_queries"), 5)
        << RunName(*run) << ": " << run->dump(-1).substr(0, 600);
    EXPECT_TRUE(Obj(*run, "extra").contains("expiry_at_s")) << RunName(*run);
  }
  for (const auto& target : targets) {
    const Json* run = FindRun(doc, "vicious-cycle", target);
    if (run == nullptr) continue;
    EXPECT_TRUE(Obj(*run, "extra").contains("recovery_ratio")) << RunName(*run);
  }
}

// burst: distinct cold keys at once on a pool with the defaults. corral loads each key once,
// every client gets its answer, and with --corral-http the run carries corral's limit over time
// and the most queries running at once, which never exceeds that pool's ceiling.
TEST_F(HerdPgTest, BurstReportsPeakRunningAndCorralsLimit) {
  const std::string ns = UniqueNs("burst");
  auto server = StartCorral(Json{{ns, {{"query", kHerdQuery}, {"pool", "burst"}}}}.dump(), "",
                            "\"pools\": {\"default\": {}, \"burst\": {\"connections\": 2}}");
  ASSERT_NE(server, nullptr);
  OutDir out;
  ASSERT_FALSE(out.path().empty()) << "mkdtemp failed";
  // clang-format off
  std::vector<std::string> args = {
      "--scenario", "burst",
      "--targets", "corral",
      "--corral", Loopback(server->resp_port()),
      "--corral-http", Loopback(server->http_port()),
      "--pg-primary", pg_.primary,
      "--pg-replicas", Replicas(),
      "--namespace", ns,
      "--query", kHerdQuery,
      "--burst-keys", "20",
      "--burst-clients-per-key", "3",
      "--burst-pool", "burst",
      "--burst-capacity", "80",
      "--drain", "15",
      "--out", out.path()};
  // clang-format on
  ProcessResult r = RunHerdWithRedis(args, kSteadyDeadline);
  ASSERT_TRUE(r.status.ok()) << Describe(r);
  Json doc = ReadResults(out.path());
  ASSERT_FALSE(doc.is_discarded()) << "results.json missing or malformed\n" << Describe(r);
  const Json* run = FindRun(doc, "burst", "corral");
  ASSERT_NE(run, nullptr) << "no burst/corral run in results.json";
  EXPECT_EQ(Int(*run, "requests"), 60);
  EXPECT_EQ(Int(*run, "answers"), 60) << Str(*run, "first_error");
  EXPECT_EQ(Int(*run, "wrong"), 0);
  EXPECT_EQ(Int(*run, "db_queries"), 20) << "20 cold keys x 3 clients";
  const Json& extra = Obj(*run, "extra");
  EXPECT_EQ(Num(extra, "keys_served"), 20);
  EXPECT_EQ(Num(extra, "capacity"), 80);
  // 2 connections x the replicas: the pool's ceiling, and what the database may run at once
  // (one more may show: the referee reads the nodes one after the other).
  const double ceiling = 2.0 * static_cast<double>(pg_.replicas.size());
  EXPECT_GE(Num(extra, "limit_max"), 1);
  EXPECT_LE(Num(extra, "limit_max"), ceiling);
  EXPECT_GE(Int(*run, "peak_db_running"), 1);
  EXPECT_LE(Int(*run, "peak_db_running"), ceiling + 1);
  const Json& series = run->value("corral_metrics_series", Json::object());
  ASSERT_TRUE(series.contains("rows")) << "no /metrics series: " << run->dump(-1).substr(0, 400);
  EXPECT_GE(series["rows"].size(), 1u);
  EXPECT_NE(std::find(series["columns"].begin(), series["columns"].end(),
                      Json("corral_concurrency_limit{pool=\"burst\"}")),
            series["columns"].end())
      << series["columns"].dump();
}

// ---- Flag checking (no database needed) ---------------------------------------------------------

// The flags every invocation needs, so that the flag under test is what fails. Port 1: nothing
// listens there, so if parsing ever let a bad flag through, Setup would fail with "referee: ..."
// instead of the message expected.
std::vector<std::string> RequiredFlags() {
  // clang-format off
  return {"--pg-primary", "host=127.0.0.1 port=1 dbname=none connect_timeout=1",
          "--namespace", "n",
          "--query", kHerdQuery};
  // clang-format on
}

void ExpectRejected(const std::vector<std::string>& bad, const std::vector<std::string>& named) {
  std::vector<std::string> args = RequiredFlags();
  args.insert(args.end(), bad.begin(), bad.end());
  ProcessResult r = RunHerd(args, kFlagDeadline);
  std::string given;
  for (const auto& a : bad) given += " " + a;
  EXPECT_TRUE(r.status.exited && r.status.code == 2) << given << "\n" << Describe(r);
  for (const auto& n : named) {
    EXPECT_NE(r.err.find(n), std::string::npos) << given << ": stderr does not name " << n << "\n"
                                                << Describe(r);
  }
  EXPECT_EQ(r.err.find("referee"), std::string::npos) << given << ": got past option checking\n"
                                                      << Describe(r);
}

TEST(HerdFlagsTest, BadFlagsExitTwoNamingTheFlag) {
  ExpectRejected({"--storm-namespace", "x"}, {"--storm-namespace", "--storm-query"});
  ExpectRejected({"--vc-namespace", "x"}, {"--vc-namespace", "--vc-query"});
  ExpectRejected({"--vc-rate", "0"}, {"--vc-rate"});
  ExpectRejected({"--storm-hot-keys", "0"}, {"--storm-hot-keys"});
  ExpectRejected({"--storm-query", "SELECT 1"}, {"--storm-namespace", "--storm-query"});
  ExpectRejected({"--scenario", "nope"}, {"--scenario", "'nope'"});
  ExpectRejected({"--scenario", "cold,nope"}, {"--scenario", "'nope'"});
  ExpectRejected({"--burst-namespace", "x"}, {"--burst-namespace", "--burst-query"});
  ExpectRejected({"--burst-keys", "0"}, {"--burst-keys"});
  ExpectRejected({"--burst-keys", "20000", "--burst-clients-per-key", "4"},
                 {"--burst-keys", "--burst-clients-per-key"});
}

// The control for the above: --help exits 0 and documents the per-scenario flags.
TEST(HerdFlagsTest, HelpListsPerScenarioFlags) {
  ProcessResult r = RunHerd({"--help"}, kFlagDeadline);
  ASSERT_TRUE(r.status.ok()) << Describe(r);
  for (const char* flag : {"--storm-namespace", "--storm-query", "--storm-ttl-ms", "--vc-rate",
                           "--vc-hot-keys", "--self-test", "--burst-keys",
                           "--burst-clients-per-key", "--burst-capacity", "--vc-pool"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << " not in --help";
  }
}

}  // namespace
}  // namespace corral::integration

// The metrics module: the registry (kFamilies) is what /metrics renders, no more and no less, with
// the declared types and label names; promtool accepts the output; INFO and /v1/stats read the
// same counters; README.md's metrics table lists exactly the registry.
#include "cache-server/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cache-server/cache_service.h"
#include "lease/clock.h"
#include "lease/lease_table.h"
#include "lease/random.h"
#include "lease/store.h"

namespace corral::server {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

std::vector<std::string> SplitLabels(std::string_view labels) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : labels) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// One parsed exposition: # TYPE per family, and per family the label-name sets its samples use.
struct Exposition {
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> helps;
  std::map<std::string, std::set<std::vector<std::string>>> label_names;
  std::map<std::string, double> samples;  // by the sample's full name{labels}
  std::vector<std::string> errors;
};

// The label names of `name{a="x",b="y\"z"}`, in order (le dropped), and the family name.
Exposition Parse(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?)re");
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream f(line.substr(7));
      std::string name, type;
      f >> name >> type;
      e.types[name] = type;
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      e.helps[rest.substr(0, rest.find(' '))] = rest.substr(rest.find(' ') + 1);
      continue;
    }
    std::smatch m;
    if (!std::regex_match(line, m, kSample)) {
      e.errors.push_back("unparsable: " + line);
      continue;
    }
    std::string name = m[1];
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      std::string base = name.substr(0, name.size() - std::min(name.size(), suffix.size()));
      if (name.ends_with(suffix) && e.types[base] == "histogram") name = base;
    }
    std::vector<std::string> names;
    std::string labels = m[3];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), kLabel);
         it != std::sregex_iterator(); ++it) {
      if ((*it)[1] != "le") names.push_back((*it)[1]);
    }
    e.label_names[name].insert(names);
    e.samples[std::string(m[1]) + (m[2].matched ? std::string(m[2]) : "")] = std::stod(m[4]);
  }
  return e;
}

class MetricsTest : public ::testing::Test {
 protected:
  MetricsTest() { metrics_.db_loads.Declare({{"item", "default"}, {"we\"ird\\ns\nx", "po\"ol"}}); }

  MetricSources Sources() {
    MetricSources s;
    s.metrics = &metrics_;
    s.store = &store_;
    s.leases = &leases_;
    s.connected_clients = 3;
    s.replicas = {{"replica0", true, 0.25, true, 2, 5}, {"odd\"re\\pl", false, 0, false, 0, 0}};
    s.pools = {{"default", 8, 8, 3}, {"reports", 0, 1, 0}};
    s.position_markers = 2;
    s.position_marker_bytes = 210;
    s.tracking_clients = 2;
    s.tracking_keys = 5;
    s.tracking_items = 7;
    s.tracking_prefixes = 1;
    s.wal = MetricSources::Wal{true, 4096, 0.5, 1};  // postgres.invalidation logical
    s.tier = true;  // a Redis tier configured, so corral_tier_up has its sample
    s.tier_up = true;
    s.started_unix = std::time(nullptr) - 90'000;
    s.resp_port = 6390;
    s.io_threads = 2;
    s.max_clients = 100;
    s.max_bytes = 1 << 20;
    s.redis_version = "7.0.0";
    s.corral_version = "0.1.0";
    s.corral_commit = "0123456789ab";
    return s;
  }

  // One waiter on another's lease: the coalesced event, counted once, by the lease table.
  void Coalesce(const std::string& key) {
    lease::LeaseTable::Acquired holder = leases_.AcquireOrWait(key, [](lease::WaitOutcome) {});
    ASSERT_TRUE(holder.leader);
    lease::LeaseTable::Acquired waiter = leases_.AcquireOrWait(key, [](lease::WaitOutcome) {});
    ASSERT_FALSE(waiter.leader);
    // The holder waiting on its own lease is not a coalesced request.
    ASSERT_FALSE(leases_
                     .AcquireOrWait(
                         key, [](lease::WaitOutcome) {}, 0, holder.token)
                     .leader);
    leases_.Complete(key, holder.token, lease::LoadResult{lease::LoadResult::Kind::kValue, "v"});
  }

  lease::FakeClock clock_;
  lease::FakeRandom random_{{0.5}};
  lease::Store store_{lease::StoreOptions{.max_bytes = 1 << 20, .shards = 4}, clock_, random_};
  lease::LeaseTable leases_{lease::LeaseTableOptions{}, clock_};
  Metrics metrics_;
};

TEST(MetricsRegistryTest, NamesTypesAndLabelsAreWellFormed) {
  std::set<std::string_view> names;
  static const std::regex kName("corral_[a-z0-9_]+");
  static const std::regex kLabelName("[a-z_][a-z0-9_]*");
  for (size_t i = 0; i < kFamilyCount; ++i) {
    const FamilySpec& f = kFamilies[i];
    EXPECT_EQ(static_cast<size_t>(f.id), i) << f.name;
    EXPECT_TRUE(std::regex_match(std::string(f.name), kName)) << f.name;
    EXPECT_TRUE(names.insert(f.name).second) << "declared twice: " << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_EQ(f.help.find('\n'), std::string_view::npos) << f.name;
    EXPECT_EQ(f.type == MetricType::kCounter, f.name.ends_with("_total")) << f.name;
    for (const std::string& l : SplitLabels(f.labels)) {
      EXPECT_TRUE(std::regex_match(l, kLabelName)) << f.name << ": " << l;
      EXPECT_NE(l, "le") << f.name;
      EXPECT_NE(l, "key") << "never a key as a label";
    }
  }
}

TEST_F(MetricsTest, RendersExactlyTheRegistry) {
  Exposition e = Parse(RenderPrometheus(Sources()));
  EXPECT_TRUE(e.errors.empty()) << testing::PrintToString(e.errors);
  EXPECT_EQ(e.types.size(), kFamilyCount);
  for (const FamilySpec& f : kFamilies) {
    std::string name(f.name);
    ASSERT_TRUE(e.types.count(name)) << "not rendered: " << name;
    EXPECT_EQ(e.types[name], MetricTypeName(f.type)) << name;
    EXPECT_EQ(e.helps[name], f.help) << name;
    // With namespaces, replicas and a tier declared every family has samples, all with the declared
    // label names in the declared order.
    ASSERT_TRUE(e.label_names.count(name)) << "no samples: " << name;
    EXPECT_EQ(e.label_names[name], std::set<std::vector<std::string>>{SplitLabels(f.labels)})
        << name;
  }
  for (const auto& [family, _] : e.label_names) {
    EXPECT_TRUE(e.types.count(family)) << "sample of an undeclared family: " << family;
  }
}

TEST_F(MetricsTest, WithoutNamespacesOrReplicasEveryFamilyIsStillDeclared) {
  Metrics bare;
  MetricSources s = Sources();
  s.metrics = &bare;
  s.replicas.clear();
  Exposition e = Parse(RenderPrometheus(s));
  EXPECT_TRUE(e.errors.empty()) << testing::PrintToString(e.errors);
  EXPECT_EQ(e.types.size(), kFamilyCount);
  EXPECT_FALSE(e.label_names.count("corral_db_loads_total"));
  EXPECT_FALSE(e.label_names.count("corral_replica_up"));
  EXPECT_EQ(e.samples["corral_requests_total{proto=\"http\",result=\"hit\"}"], 0);
}

TEST_F(MetricsTest, PoolsShowTheirLimitAndQueue) {
  Exposition e = Parse(RenderPrometheus(Sources()));
  EXPECT_EQ(e.samples["corral_concurrency_limit{pool=\"default\"}"], 8);
  EXPECT_EQ(e.samples["corral_load_queue{pool=\"default\"}"], 3);
  EXPECT_EQ(e.samples["corral_concurrency_limit{pool=\"reports\"}"], 0);
  std::string info = RenderInfo(Sources(), {"stats"});
  EXPECT_NE(info.find("corral_pool_default_concurrency_limit:8\r\n"), std::string::npos) << info;
  EXPECT_NE(info.find("corral_pool_default_inflight_loads:8\r\n"), std::string::npos) << info;
  EXPECT_NE(info.find("corral_pool_default_queued_loads:3\r\n"), std::string::npos) << info;
}

// Each request is observed once, under its result; the per-protocol histogram is their sum.
TEST_F(MetricsTest, RequestTimesAreKeptPerResultAndSummedPerProtocol) {
  metrics_.CountRequest(Proto::kResp, Outcome::kHit, 0.00001);
  metrics_.CountRequest(Proto::kResp, Outcome::kShed, 0.00002);
  metrics_.CountRequest(Proto::kResp, Outcome::kWaited, 0.2);
  metrics_.CountRequest(Proto::kHttp, Outcome::kShed, 0.003);
  Exposition e = Parse(RenderPrometheus(Sources()));
  ASSERT_TRUE(e.errors.empty()) << testing::PrintToString(e.errors);
  EXPECT_EQ(e.samples["corral_request_result_seconds_count{proto=\"resp\",result=\"hit\"}"], 1);
  EXPECT_EQ(e.samples["corral_request_result_seconds_count{proto=\"resp\",result=\"shed\"}"], 1);
  EXPECT_EQ(e.samples["corral_request_result_seconds_bucket{proto=\"resp\",result=\"waited\","
                      "le=\"0.1\"}"],
            0);
  EXPECT_EQ(e.samples["corral_request_result_seconds_bucket{proto=\"resp\",result=\"waited\","
                      "le=\"0.25\"}"],
            1);
  EXPECT_EQ(e.samples["corral_request_result_seconds_count{proto=\"http\",result=\"hit\"}"], 0);
  EXPECT_EQ(e.samples["corral_request_seconds_count{proto=\"resp\"}"], 3);
  EXPECT_EQ(e.samples["corral_request_seconds_bucket{proto=\"resp\",le=\"0.001\"}"], 2);
  EXPECT_NEAR(e.samples["corral_request_seconds_sum{proto=\"resp\"}"], 0.20003, 1e-9);
  EXPECT_EQ(e.samples["corral_request_seconds_count{proto=\"http\"}"], 1);
}

TEST_F(MetricsTest, CountsAppearUnderTheirEnumLabels) {
  metrics_.CountRequest(Proto::kHttp, Outcome::kStale, 0.002);
  metrics_.CountRequest(Proto::kResp, Outcome::kHit, 0.00001);
  metrics_.CountRequest(Proto::kResp, Outcome::kHit, 0.00001);
  metrics_.db_loads.Add(0, LoadOutcome::kNotFound);
  metrics_.db_loads.Add(1, LoadOutcome::kError);
  metrics_.db_loads.Add(7, LoadOutcome::kError);  // not declared: ignored
  metrics_.db_load_seconds.Observe(0.003);
  metrics_.shed.Add(ShedReasonOf(lease::Admission::kRate));
  metrics_.shed.Add(ShedReason::kPoolInflight, 2);
  metrics_.refreshes.Add(RefreshResult::kHeldOff);
  metrics_.invalidations.Add(InvalidationSource::kNotify);
  ASSERT_TRUE(store_.Set("k", "value", std::nullopt) == lease::SetResult::kStored);
  Coalesce("user:1");

  Exposition e = Parse(RenderPrometheus(Sources()));
  ASSERT_TRUE(e.errors.empty()) << testing::PrintToString(e.errors);
  EXPECT_EQ(e.samples["corral_requests_total{proto=\"resp\",result=\"hit\"}"], 2);
  EXPECT_EQ(e.samples["corral_requests_total{proto=\"http\",result=\"stale\"}"], 1);
  EXPECT_EQ(e.samples["corral_request_seconds_count{proto=\"resp\"}"], 2);
  EXPECT_EQ(e.samples["corral_request_seconds_bucket{proto=\"resp\",le=\"0.001\"}"], 2);
  EXPECT_EQ(e.samples["corral_request_seconds_bucket{proto=\"http\",le=\"0.001\"}"], 0);
  EXPECT_EQ(e.samples["corral_request_seconds_bucket{proto=\"http\",le=\"+Inf\"}"], 1);
  EXPECT_EQ(
      e.samples["corral_db_loads_total{namespace=\"item\",pool=\"default\",outcome=\"not_found\"}"],
      1);
  EXPECT_EQ(e.samples["corral_db_loads_total{namespace=\"we\\\"ird\\\\ns\\nx\",pool=\"po\\\"ol\","
                      "outcome=\"error\"}"],
            1);
  EXPECT_EQ(e.samples["corral_db_load_seconds_count"], 1);
  EXPECT_EQ(e.samples["corral_shed_total{reason=\"max_loads_per_s\"}"], 1);
  EXPECT_EQ(e.samples["corral_shed_total{reason=\"pool_max_inflight_loads\"}"], 2);
  EXPECT_EQ(e.samples["corral_shed_total{reason=\"blocked\"}"], 0);
  EXPECT_FALSE(e.samples.count("corral_shed_total{reason=\"admitted\"}"));
  // A load's shed reason is the name lease/ gives its admission.
  for (lease::Admission a :
       {lease::Admission::kBlocked, lease::Admission::kInflight, lease::Admission::kRate,
        lease::Admission::kPending, lease::Admission::kPoolInflight}) {
    EXPECT_EQ(LabelValues<ShedReason>::Name(ShedReasonOf(a)), lease::AdmissionReason(a));
  }
  EXPECT_EQ(e.samples["corral_refreshes_total{result=\"held_off\"}"], 1);
  EXPECT_EQ(e.samples["corral_invalidations_total{source=\"notify\"}"], 1);
  EXPECT_EQ(e.samples["corral_coalesced_requests_total"], 1);
  EXPECT_EQ(e.samples["corral_entries"], 1);
  EXPECT_GT(e.samples["corral_memory_bytes"], 0);
  EXPECT_EQ(e.samples["corral_connected_clients"], 3);
  EXPECT_EQ(e.samples["corral_replica_up{replica=\"replica0\"}"], 1);
  EXPECT_EQ(e.samples["corral_replica_up{replica=\"odd\\\"re\\\\pl\"}"], 0);
  EXPECT_EQ(e.samples["corral_replica_catching_up{replica=\"replica0\"}"], 1);
  EXPECT_EQ(e.samples["corral_replica_catching_up{replica=\"odd\\\"re\\\\pl\"}"], 0);
  EXPECT_EQ(e.samples["corral_replica_lag_seconds{replica=\"replica0\"}"], 0.25);
  EXPECT_EQ(e.samples["corral_replica_inflight_loads{replica=\"replica0\"}"], 2);
  EXPECT_EQ(e.samples["corral_replica_queued_loads{replica=\"replica0\"}"], 5);

  // The typed counters also answer by their rendered label set (what tests and tools see).
  EXPECT_EQ(metrics_.shed.Value("reason=\"max_loads_per_s\""), 1u);
  EXPECT_EQ(metrics_.db_loads.Value("namespace=\"item\",pool=\"default\",outcome=\"not_found\""),
            1u);
  EXPECT_EQ(metrics_.db_loads.Value(0, LoadOutcome::kValue), 0u);
  EXPECT_EQ(metrics_.invalidations.Value("source=\"nope\""), 0u);
}

TEST_F(MetricsTest, RedeclaringTheSameNamespacesKeepsTheCounts) {
  metrics_.db_loads.Add(0, LoadOutcome::kValue);
  metrics_.db_loads.Declare({{"item", "default"}, {"we\"ird\\ns\nx", "po\"ol"}});
  EXPECT_EQ(metrics_.db_loads.Value(0, LoadOutcome::kValue), 1u);
  metrics_.db_loads.Declare({{"other", "p"}});
  EXPECT_EQ(metrics_.db_loads.size(), 1u);
  EXPECT_EQ(metrics_.db_loads.Value(0, LoadOutcome::kValue), 0u);
}

TEST_F(MetricsTest, PromtoolAcceptsTheExposition) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not in PATH (Debian package prometheus): check not run";
  }
  metrics_.CountRequest(Proto::kResp, Outcome::kMiss, 0.01);
  metrics_.db_loads.Add(1, LoadOutcome::kValue);
  Coalesce("user:2");
  std::string text = RenderPrometheus(Sources());
  std::filesystem::path file = std::filesystem::temp_directory_path() /
                               ("corral_metrics_test_" + std::to_string(getpid()) + ".prom");
  {
    std::ofstream out(file);
    out << text;
  }
  std::string command = "promtool check metrics < " + file.string() + " 2>&1";
  std::string output;
  FILE* p = popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) output.append(buf, n);
  int status = pclose(p);
  std::filesystem::remove(file);
  EXPECT_EQ(status, 0) << output << "\n--- exposition ---\n" << text;
}

TEST_F(MetricsTest, InfoReadsTheSameCounters) {
  metrics_.CountRequest(Proto::kResp, Outcome::kHit, 0.001);
  metrics_.CountRequest(Proto::kHttp, Outcome::kStale, 0.001);
  metrics_.CountRequest(Proto::kResp, Outcome::kWaited, 0.001);
  metrics_.connections.Add(2);
  ASSERT_TRUE(store_.Set("k", "value", std::nullopt) == lease::SetResult::kStored);
  Coalesce("user:3");

  MetricSources sources = Sources();
  sources.command_calls = {{"get", 3, 1, 0}, {"incr", 1, 0, 1}};
  std::string all = RenderInfo(sources, {});
  for (std::string_view section :
       {"# Server\r\n", "# Clients\r\n", "# Memory\r\n", "# Stats\r\n", "# Keyspace\r\n"}) {
    EXPECT_THAT(all, HasSubstr(section));
  }
  // Every section again, commandstats too (RSS, uptime and CPU may move between the renders).
  std::string everything = RenderInfo(sources, {"EVERYTHING"});
  auto stats_of = [](const std::string& text) {
    size_t at = text.find("# Stats");
    return text.substr(at, text.find("# Replication") - at);
  };
  EXPECT_EQ(stats_of(everything), stats_of(all));
  EXPECT_THAT(everything, HasSubstr("cmdstat_get:"));
  EXPECT_THAT(all, Not(HasSubstr("cmdstat_get:")));
  EXPECT_LT(everything.find("# Server"), everything.find("# Clients"));
  EXPECT_LT(everything.find("# Clients"), everything.find("# Memory"));
  EXPECT_LT(everything.find("# Memory"), everything.find("# Stats"));
  EXPECT_THAT(all, HasSubstr("redis_version:7.0.0\r\n"));
  EXPECT_THAT(all, HasSubstr("\r\ncorral_version:0.1.0\r\ncorral_commit:0123456789ab\r\n"));
  EXPECT_THAT(all, HasSubstr("tcp_port:6390\r\n"));
  EXPECT_THAT(all, HasSubstr("uptime_in_days:1\r\n"));
  EXPECT_THAT(all, HasSubstr("io_threads_active:1\r\n"));
  EXPECT_THAT(all, HasSubstr("connected_clients:3\r\nmaxclients:100\r\n"));
  EXPECT_THAT(all, HasSubstr("blocked_clients:0\r\ntracking_clients:2\r\n"));
  EXPECT_THAT(all, HasSubstr("maxmemory:1048576\r\n"));
  EXPECT_THAT(all, HasSubstr("db0:keys=1,expires=0,avg_ttl=0\r\n"));

  std::string stats = RenderInfo(sources, {"Stats"});
  EXPECT_EQ(stats,
            "# Stats\r\n"
            "total_connections_received:2\r\n"
            "total_commands_processed:4\r\n"
            "rejected_connections:0\r\n"
            "expired_keys:0\r\n"
            "evicted_keys:0\r\n"
            "keyspace_hits:2\r\n"
            "keyspace_misses:1\r\n"
            "tracking_total_keys:5\r\n"
            "tracking_total_items:7\r\n"
            "tracking_total_prefixes:1\r\n"
            "coalesced_requests:1\r\n"
            "corral_pool_default_concurrency_limit:8\r\n"
            "corral_pool_default_inflight_loads:8\r\n"
            "corral_pool_default_queued_loads:3\r\n"
            "corral_pool_reports_concurrency_limit:0\r\n"
            "corral_pool_reports_inflight_loads:1\r\n"
            "corral_pool_reports_queued_loads:0\r\n"
            "corral_position_markers:2\r\n"
            "corral_position_marker_bytes:210\r\n"
            "\r\n");
  EXPECT_EQ(RenderInfo(Sources(), {"nosuchsection"}), "");
}

// As Redis 7.0's INFO (and its unit/info-command): no argument or "default" leaves out
// commandstats, "all" and "everything" add it, several names give each section once, in order.
TEST_F(MetricsTest, InfoChoosesSectionsAsRedisDoes) {
  MetricSources sources = Sources();
  sources.command_calls = {{"get", 3, 1, 0}, {"incr", 1, 0, 1}};
  auto headers = [&](const std::vector<std::string_view>& names) {
    std::string text = RenderInfo(sources, names), found;
    for (size_t at = text.find("# "); at != std::string::npos; at = text.find("\r\n# ", at + 1)) {
      size_t start = text[at] == '#' ? at + 2 : at + 4;
      found += text.substr(start, text.find("\r\n", start) - start) + " ";
    }
    return found;
  };
  const std::string kDefault =
      "Server Clients Memory Persistence Stats Replication CPU Cluster Keyspace ";
  const std::string kAll =
      "Server Clients Memory Persistence Stats Replication CPU Commandstats Cluster Keyspace ";
  EXPECT_EQ(headers({}), kDefault);
  EXPECT_EQ(headers({"default"}), kDefault);
  EXPECT_EQ(headers({"all"}), kAll);
  EXPECT_EQ(headers({"everything"}), kAll);
  EXPECT_EQ(headers({"cpu", "sentinel"}), "CPU ");
  EXPECT_EQ(headers({"keyspace", "CPU", "cpu", "server"}), "Server CPU Keyspace ");
  EXPECT_EQ(headers({"cpu", "all"}), kAll);
  EXPECT_EQ(headers({"cpu", "default"}), kDefault);
  EXPECT_EQ(headers({"commandSTATS"}), "Commandstats ");

  EXPECT_EQ(RenderInfo(sources, {"commandstats"}),
            "# Commandstats\r\n"
            "cmdstat_get:calls=3,rejected_calls=1,failed_calls=0\r\n"
            "cmdstat_incr:calls=1,rejected_calls=0,failed_calls=1\r\n"
            "\r\n");
  EXPECT_THAT(RenderInfo(sources, {"stats"}), HasSubstr("\r\ntotal_commands_processed:4\r\n"));
  const std::string cpu = RenderInfo(sources, {"cpu"});
  EXPECT_THAT(cpu, MatchesRegex("# CPU\r\nused_cpu_sys:[0-9]+\\.[0-9]{6}\r\n"
                                "used_cpu_user:[0-9]+\\.[0-9]{6}\r\n"
                                "used_cpu_sys_children:[0-9]+\\.[0-9]{6}\r\n"
                                "used_cpu_user_children:[0-9]+\\.[0-9]{6}\r\n\r\n"));
  EXPECT_THAT(RenderInfo(sources, {"replication"}),
              HasSubstr("role:master\r\nconnected_slaves:0\r\n"));
}

TEST_F(MetricsTest, StatsJsonReadsTheSameCounters) {
  metrics_.CountRequest(Proto::kHttp, Outcome::kNotFound, 0.001);
  Coalesce("user:4");
  Coalesce("user:5");
  std::string body = RenderStatsJson(Sources());
  ASSERT_TRUE(body.ends_with("\n"));
  nlohmann::json j = nlohmann::json::parse(body);
  EXPECT_EQ(j["entries"], 0);
  EXPECT_EQ(j["max_bytes"], 1 << 20);
  EXPECT_EQ(j["connected_clients"], 3);
  EXPECT_GE(j["uptime_s"].get<int64_t>(), 90'000);
  EXPECT_EQ(j["requests"]["http"]["not_found"], 1);
  EXPECT_EQ(j["requests"]["resp"]["hit"], 0);
  EXPECT_EQ(j["requests"]["resp"].size(), kOutcomeCount);
  EXPECT_EQ(j["coalesced_requests"], 2);
  for (const char* key : {"memory_bytes", "evictions", "expirations"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

// README.md's "## Metrics" table, row by row: name | type | labels | meaning.
struct ReadmeRow {
  std::string type;
  std::vector<std::string> labels;
};

std::string Unticked(std::string s) {
  std::string out;
  for (char c : s) {
    if (c != '`' && c != ' ') out += c;
  }
  return out;
}

std::map<std::string, ReadmeRow> ReadmeMetrics(std::vector<std::string>* problems) {
  std::ifstream in(std::string(CORRAL_SOURCE_DIR) + "/README.md");
  std::map<std::string, ReadmeRow> rows;
  if (!in) {
    problems->push_back("cannot read README.md under " CORRAL_SOURCE_DIR);
    return rows;
  }
  std::string line;
  bool in_section = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      in_section = line == "## Metrics";
      continue;
    }
    if (!in_section || line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    std::string cell;
    for (char c : line.substr(1)) {
      if (c == '|') {
        cells.push_back(cell);
        cell.clear();
      } else {
        cell += c;
      }
    }
    if (cells.size() != 4) {
      problems->push_back("not 4 cells: " + line);
      continue;
    }
    std::string name = Unticked(cells[0]);
    std::string labels = Unticked(cells[2]);
    if (labels == "—" || labels == "-") labels.clear();
    if (!rows.emplace(name, ReadmeRow{Unticked(cells[1]), SplitLabels(labels)}).second) {
      problems->push_back("listed twice: " + name);
    }
  }
  return rows;
}

TEST(MetricsReadmeTest, TableListsExactlyTheRegistry) {
  std::vector<std::string> problems;
  std::map<std::string, ReadmeRow> readme = ReadmeMetrics(&problems);
  EXPECT_TRUE(problems.empty()) << testing::PrintToString(problems);
  ASSERT_FALSE(readme.empty()) << "README.md has no \"## Metrics\" table";
  for (const FamilySpec& f : kFamilies) {
    auto it = readme.find(std::string(f.name));
    if (it == readme.end()) {
      ADD_FAILURE() << "README.md's metrics table lacks " << f.name;
      continue;
    }
    EXPECT_EQ(it->second.type, MetricTypeName(f.type)) << f.name;
    EXPECT_EQ(it->second.labels, SplitLabels(f.labels)) << f.name;
  }
  for (const auto& [name, row] : readme) {
    bool known = false;
    for (const FamilySpec& f : kFamilies) known = known || f.name == name;
    EXPECT_TRUE(known) << "README.md lists " << name << ", which the code does not export";
  }
}

}  // namespace
}  // namespace corral::server

// Network faults between corral and PostgreSQL (issue 11): a FaultProxy in front of each node, and
// corral given the proxies' ports. A replica link that goes slow or black is skipped within the
// health checks' bound, a reset mid-batch fails over once, a silent primary does not stall
// invalidation, no request waits past its bound, and every answer is checked against the database.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pg-loader/listener.h"
#include "tests/fault_proxy/fault_proxy.h"
#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;
using fault::FaultProxy;

// corral's settings in these tests, and the bounds derived from them.
constexpr int64_t kStatementTimeoutMs = 500;
constexpr int64_t kHealthIntervalMs = 200;
constexpr int64_t kWaitTimeoutMs = 1000;
// A health check gets max(statement timeout, 1 s), and the watchdog cuts a silent one after that
// much again (pg-loader/loader.cc), so a replica that stops answering is marked down within
// interval + 2 s. The margin covers scheduling on a loaded 2-core machine.
constexpr Millis kDetectBound(kHealthIntervalMs + 2000 + 1500);
// No request may wait longer than lease.wait_timeout_ms plus this scheduling margin.
constexpr Millis kWaitMargin(500);
// The listener pings a quiet connection after kListenerPingIdleMs and gives the ping
// kListenerPingTimeoutMs; the margin covers scheduling.
constexpr Millis kListenerDetectBound(pg::kListenerPingIdleMs + pg::kListenerPingTimeoutMs + 2000);

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// host=/port= of a key=value connection string (the form deploy/pg-local.sh writes).
std::string Param(const std::string& conninfo, const std::string& key) {
  std::smatch m;
  if (std::regex_search(conninfo, m, std::regex("(^|\\s)" + key + "\\s*=\\s*(\\S+)"))) {
    return m[2];
  }
  return "";
}

// The same connection string with host and port pointing at `port` on loopback.
std::string ViaPort(const std::string& conninfo, uint16_t port) {
  std::string out =
      std::regex_replace(conninfo, std::regex("(^|\\s)(host|hostaddr|port)\\s*=\\s*\\S+"), "");
  return out + " host=127.0.0.1 port=" + std::to_string(port);
}

std::unique_ptr<FaultProxy> ProxyFor(const std::string& conninfo) {
  std::string host = Param(conninfo, "host");
  if (host.empty() || host.front() == '/') host = "127.0.0.1";
  const std::string port = Param(conninfo, "port");
  return std::make_unique<FaultProxy>(host, static_cast<uint16_t>(std::atoi(port.c_str())));
}

int Occurrences(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// users.name for ids [first, last], read from the primary: what every answer is checked against.
std::map<int, std::string> NamesFromDatabase(const PgCluster& pg, int first, int last) {
  const std::string out =
      PgCluster::Sql(pg.primary,
                     "SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM users WHERE id "
                     "BETWEEN " +
                         std::to_string(first) + " AND " + std::to_string(last));
  std::map<int, std::string> names;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find(',', pos);
    if (end == std::string::npos) end = out.size();
    const std::string item = out.substr(pos, end - pos);
    const size_t eq = item.find('=');
    if (eq != std::string::npos) names[std::atoi(item.c_str())] = item.substr(eq + 1);
    pos = end + 1;
  }
  return names;
}

// What one answer was, judged against the database.
enum class Verdict { kRight, kRefused, kWrong };

// A right value, or an explicit refusal (BUSY after the wait bound, or the upstream error when
// nothing stale exists): both are allowed under a fault. Anything else is a wrong answer.
Verdict Judge(const std::string& reply, const std::string& expected) {
  if (reply.starts_with("-BUSY") || reply.starts_with("-ERR upstream")) return Verdict::kRefused;
  return RespValue(reply) == expected ? Verdict::kRight : Verdict::kWrong;
}

// Steady read traffic from a few clients over RESP, each request timed and judged; runs until
// Stop(). Ids cycle through a range large enough that most requests miss and load.
class Traffic {
 public:
  struct Sample {
    Clock::time_point start;
    double ms;
    Verdict verdict;
    std::string reply;
    int id;
  };

  Traffic(uint16_t port, std::string ns, std::map<int, std::string> names, int clients)
      : port_(port), ns_(std::move(ns)), names_(std::move(names)) {
    for (const auto& [id, name] : names_) ids_.push_back(id);
    for (int i = 0; i < clients; ++i) threads_.emplace_back([this, i] { Run(i); });
  }
  ~Traffic() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  std::vector<Sample> Samples() const {
    std::lock_guard lock(mu_);
    return samples_;
  }
  // Samples of requests started in [from, to).
  std::vector<Sample> Between(Clock::time_point from, Clock::time_point to) const {
    std::vector<Sample> out;
    for (const Sample& s : Samples()) {
      if (s.start >= from && s.start < to) out.push_back(s);
    }
    return out;
  }

  static int Count(const std::vector<Sample>& samples, Verdict v) {
    return static_cast<int>(std::count_if(samples.begin(), samples.end(),
                                          [v](const Sample& s) { return s.verdict == v; }));
  }
  static double Worst(const std::vector<Sample>& samples) {
    double worst = 0;
    for (const Sample& s : samples) worst = std::max(worst, s.ms);
    return worst;
  }

 private:
  void Run(int client) {
    RedisConnection c;
    size_t next = static_cast<size_t>(client) * 7919;
    while (!stop_.load()) {
      if (!c) {
        c = ConnectRedis(port_, Millis(10000));
        if (!c) continue;
      }
      const int id = ids_[next++ % ids_.size()];
      const auto start = Clock::now();
      RedisReplyPtr r = RedisCmd(c.get(), {"GET", ns_ + ":" + std::to_string(id)});
      const double ms = MsSince(start);
      std::string reply;
      if (r == nullptr) {
        reply = "(io error)";
        c.reset();
      } else if (r->type == REDIS_REPLY_STRING) {
        reply = "$" + std::to_string(r->len) + "\r\n" + std::string(r->str, r->len) + "\r\n";
      } else if (r->type == REDIS_REPLY_ERROR) {
        reply = "-" + std::string(r->str, r->len);
      } else {
        reply = ReplyText(r.get());
      }
      Sample s{start, ms, Judge(reply, names_.at(id)), reply, id};
      std::lock_guard lock(mu_);
      samples_.push_back(std::move(s));
    }
  }

  const uint16_t port_;
  const std::string ns_;
  const std::map<int, std::string> names_;
  std::vector<int> ids_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Sample> samples_;
  std::vector<std::thread> threads_;
};

class FaultPgTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(pg_.replicas.size(), 2u) << "these tests want a primary and two replicas";
    primary_proxy_ = ProxyFor(pg_.primary);
    for (const std::string& replica : pg_.replicas) replica_proxies_.push_back(ProxyFor(replica));
  }

  // corral in front of the proxies (the primary's and each replica's), and ready.
  std::unique_ptr<ServerProcess> StartBehindProxies(const std::string& namespaces,
                                                    const std::string& pg_extra,
                                                    int64_t wait_timeout_ms,
                                                    const std::string& top_extra = "") {
    PgCluster via = pg_;
    via.primary = ViaPort(pg_.primary, primary_proxy_->port());
    for (size_t i = 0; i < via.replicas.size(); ++i) {
      via.replicas[i] = ViaPort(pg_.replicas[i], replica_proxies_[i]->port());
    }
    ServerOptions options;
    options.config_json = "{" + top_extra +
                          "\"threads\": 2, \"postgres\": " + via.PostgresJson(pg_extra) +
                          ", \"namespaces\": " + namespaces +
                          ", \"lease\": {\"wait_timeout_ms\": " + std::to_string(wait_timeout_ms) +
                          ", \"error_holdoff_ms\": 100}}";
    std::string error;
    auto server = ServerProcess::Start(options, &error);
    EXPECT_NE(server, nullptr) << error;
    if (server != nullptr && !WaitReady(server->http_port())) {
      ADD_FAILURE() << "corral never became ready:\n" << server->Stderr();
      return nullptr;
    }
    // Loads that raced the listener's connection would have their fills dropped (it voids every
    // lease when it connects), and the tests count queries.
    if (server != nullptr && !WaitInvalidationConnected(*server)) {
      ADD_FAILURE() << "corral's invalidation listener never connected:\n" << server->Stderr();
      return nullptr;
    }
    return server;
  }

  static std::string PgSettings(int64_t health_interval_ms) {
    return "\"statement_timeout_ms\": " + std::to_string(kStatementTimeoutMs) +
           ", \"health_check_interval_ms\": " + std::to_string(health_interval_ms);
  }

  static bool ReplicaUp(uint16_t http_port, int index) {
    return Metric(http_port,
                  "corral_replica_up{replica=\"replica" + std::to_string(index) + "\"}") == 1;
  }

  // Sum of the rows returned, on one node, by statements whose text contains `needle`.
  static int64_t RowsOn(const std::string& conn, const std::string& needle) {
    return std::atoll(PgCluster::Sql(conn,
                                     "SELECT coalesce(sum(rows), 0) FROM pg_stat_statements "
                                     "WHERE query LIKE '%" +
                                         needle +
                                         "%' AND query NOT LIKE "
                                         "'%pg_stat_statements%'")
                          .c_str());
  }

  std::unique_ptr<FaultProxy> primary_proxy_;
  std::vector<std::unique_ptr<FaultProxy>> replica_proxies_;
};

// Short-lived entries and no stale serving, so steady traffic keeps loading from the replicas and
// every answer is a row just read.
constexpr const char* kNameNamespaces =
    "{\"fname\": {\"query\": \"SELECT name AS fault_name FROM users WHERE id = $1::bigint\", "
    "\"ttl_ms\": 200, \"stale_ms\": 0}}";

// How one fault phase on replica0's link went.
struct Phase {
  const char* name;
  double detect_ms = -1;
};

// Case 1 and 4: replica0's link goes slow (3 s a chunk, above every health and load deadline), is
// healed, then goes black, is healed, then stalls half-open. Each time the health checks mark it
// down within kDetectBound while steady traffic keeps being answered by replica1; no request waits
// past its bound; 0 wrong.
TEST_F(FaultPgTest, SlowBlackOrStalledReplicaLinkIsSkippedWithinTheBound) {
  auto server = StartBehindProxies(kNameNamespaces, PgSettings(kHealthIntervalMs), kWaitTimeoutMs);
  ASSERT_NE(server, nullptr);
  const uint16_t http = server->http_port();
  ASSERT_TRUE(WaitFor([&] { return ReplicaUp(http, 0) && ReplicaUp(http, 1); }, Millis(10000)));
  Traffic traffic(server->resp_port(), "fname", NamesFromDatabase(pg_, 2001, 6000), 3);
  ASSERT_TRUE(WaitFor([&] { return traffic.Samples().size() >= 50; }, Millis(10000)));

  FaultProxy& link = *replica_proxies_[0];
  std::vector<Phase> phases;
  std::vector<std::pair<Clock::time_point, Clock::time_point>> skipped;  // replica0 down
  for (const char* fault : {"slow", "black", "stalled"}) {
    Phase phase{fault};
    const auto t0 = Clock::now();
    if (std::string(fault) == "slow") {
      link.SetLatency(Millis(3000));
    } else if (std::string(fault) == "black") {
      link.Blackhole();
    } else {
      link.StallHalfOpen();
    }
    ASSERT_TRUE(WaitFor([&] { return !ReplicaUp(http, 0); }, kDetectBound))
        << fault << ": replica0 still up after " << kDetectBound.count() << " ms\n"
        << server->Stderr();
    phase.detect_ms = MsSince(t0);
    const auto detected = Clock::now();
    // Loads already on replica0 are cut by the watchdog (statement timeout + 1 s); after that,
    // every read goes to replica1. Watch a while: replica0 stays skipped, reads are answered.
    const auto settled = detected + Millis(kStatementTimeoutMs + 1000 + 200);
    ASSERT_TRUE(WaitFor([&] { return Clock::now() >= settled + Millis(1500); }, Millis(10000)));
    EXPECT_FALSE(ReplicaUp(http, 0)) << fault;
    EXPECT_TRUE(ReplicaUp(http, 1)) << fault;
    skipped.emplace_back(settled, Clock::now());
    phases.push_back(phase);
    link.Heal();
    ASSERT_TRUE(WaitFor([&] { return ReplicaUp(http, 0); }, Millis(15000)))
        << fault << ": replica0 did not come back after the link healed\n"
        << server->Stderr();
  }
  // Healed: replica0 serves loads again.
  const int64_t replica0_before = PgCluster::CallsOn(pg_.replicas[0], "fault_name");
  ASSERT_TRUE(
      WaitFor([&] { return PgCluster::CallsOn(pg_.replicas[0], "fault_name") > replica0_before; },
              Millis(10000)));
  traffic.Stop();

  const auto all = traffic.Samples();
  int shown = 0;
  for (const auto& s : all) {
    if (s.verdict == Verdict::kWrong && shown++ < 5) {
      ADD_FAILURE() << "wrong answer for fname:" << s.id << ": " << s.reply;
    }
  }
  EXPECT_EQ(Traffic::Count(all, Verdict::kWrong), 0);
  const double worst = Traffic::Worst(all);
  EXPECT_LE(worst, static_cast<double>(kWaitTimeoutMs + kWaitMargin.count()))
      << "a request waited past lease.wait_timeout_ms + " << kWaitMargin.count() << " ms";
  // While replica0 was skipped, replica1 answered every read.
  for (const auto& [from, to] : skipped) {
    const auto window = traffic.Between(from, to);
    EXPECT_GT(Traffic::Count(window, Verdict::kRight), 10);
    EXPECT_EQ(Traffic::Count(window, Verdict::kRefused), 0)
        << "reads refused while replica1 was healthy and replica0 skipped";
  }
  for (const Phase& p : phases) {
    EXPECT_GT(p.detect_ms, 0);
    std::printf("[figures] replica link %s: marked down after %.0f ms (bound %lld ms)\n", p.name,
                p.detect_ms, static_cast<long long>(kDetectBound.count()));
  }
  std::printf(
      "[figures] replica link faults: %zu requests, %d right, %d refused (BUSY/upstream), %d "
      "wrong; worst wait %.0f ms (bound %lld ms + %lld ms margin)\n",
      all.size(), Traffic::Count(all, Verdict::kRight), Traffic::Count(all, Verdict::kRefused),
      Traffic::Count(all, Verdict::kWrong), worst, static_cast<long long>(kWaitTimeoutMs),
      static_cast<long long>(kWaitMargin.count()));
}

constexpr const char* kBatchNamespaces =
    "{\"fbatch\": {\"query\": \"SELECT name AS fault_batch FROM users WHERE id = $1::bigint\", "
    "\"batch_query\": \"SELECT id::text, name AS fault_batch FROM users WHERE id = "
    "ANY($1::bigint[])\", \"batch_max\": 64, \"batch_window_us\": 20000}}";

// Case 2: replica0's link resets every reply 40 bytes in (mid-reply) while a herd of 64 cold keys
// is loaded in batches on both replicas. Each batch cut on replica0 fails over once, to replica1:
// every waiter gets its row, and replica1 returned each key's row exactly once.
TEST_F(FaultPgTest, ResetMidBatchFailsOverOnce) {
  // One worker per replica, and health checks far apart so that the reset hits loads.
  auto server = StartBehindProxies(
      kBatchNamespaces,
      PgSettings(10000) + ", \"pools\": {\"default\": {\"replicas\": \"all\", \"connections\": 1}}",
      3000);
  ASSERT_NE(server, nullptr);
  // Warm both workers' connections (round robin sends these loads to both replicas), so the
  // reset lands in a batch's reply rather than in a connection's start-up.
  const auto warm_names = NamesFromDatabase(pg_, 7001, 7008);
  std::vector<std::vector<std::string>> warm;
  for (const auto& [id, name] : warm_names) warm.push_back({"GET", "fbatch:" + std::to_string(id)});
  for (const HerdReply& r : RespHerd(server->resp_port(), warm)) ASSERT_EQ(r.reply[0], '$');
  ASSERT_GE(PgCluster::CallsOn(pg_.replicas[0], "fault_batch"), 1);
  ASSERT_GE(PgCluster::CallsOn(pg_.replicas[1], "fault_batch"), 1);
  pg_.ResetStatements();

  replica_proxies_[0]->ResetMidReply(40);
  const auto names = NamesFromDatabase(pg_, 7101, 7164);
  ASSERT_EQ(names.size(), 64u);
  std::vector<std::vector<std::string>> herd;
  std::vector<int> ids;
  for (int copy = 0; copy < 2; ++copy) {
    for (const auto& [id, name] : names) {
      herd.push_back({"GET", "fbatch:" + std::to_string(id)});
      ids.push_back(id);
    }
  }
  const auto replies = RespHerd(server->resp_port(), herd);
  int right = 0;
  double worst = 0;
  for (size_t i = 0; i < replies.size(); ++i) {
    EXPECT_EQ(RespValue(replies[i].reply), names.at(ids[i])) << "fbatch:" << ids[i];
    right += RespValue(replies[i].reply) == names.at(ids[i]) ? 1 : 0;
    worst = std::max(worst, replies[i].ms < 0 ? 1e9 : replies[i].ms);
  }
  EXPECT_LE(worst, 3000.0 + static_cast<double>(kWaitMargin.count()));
  const int64_t resets = replica_proxies_[0]->counters().resets;
  EXPECT_GE(resets, 1) << "no reply from replica0 was cut";
  // The failover: replica1 returned each of the 64 rows exactly once (its own half, and
  // replica0's half retried there once); a second retry or a lost key would change the sum.
  const int64_t rows1 = RowsOn(pg_.replicas[1], "fault_batch");
  EXPECT_EQ(rows1, 64);
  EXPECT_GE(PgCluster::CallsOn(pg_.replicas[1], "ANY("), 1) << "replica1 ran no batch";
  std::printf(
      "[figures] reset mid-batch: %zu waiters on 64 keys, %d right, %lld replies cut on replica0, "
      "%lld rows from replica1; worst wait %.0f ms (bound 3000 ms + %lld ms margin)\n",
      replies.size(), right, static_cast<long long>(resets), static_cast<long long>(rows1), worst,
      static_cast<long long>(kWaitMargin.count()));
}

constexpr const char* kVersionNamespaces =
    "{\"user\": {\"query\": \"SELECT version::text AS fault_version FROM users WHERE id = "
    "$1::bigint\"}}";

// One HTTP read of user:ID: the value, its X-Cache, and how long it took.
struct Read {
  std::string value;
  std::string x_cache;
  double ms = 0;
};

class SilentPrimaryTest : public FaultPgTest {
 protected:
  Read Get(uint16_t http, int id) {
    const auto start = Clock::now();
    auto r = HttpRequestOnce(http, "GET", "/v1/cache/user/" + std::to_string(id));
    Read read;
    read.ms = MsSince(start);
    worst_ = std::max(worst_, read.ms);
    if (r) {
      read.value = r->status == 200 ? r->body : "HTTP " + std::to_string(r->status);
      read.x_cache = r->Header("x-cache");
    }
    return read;
  }
  // Reads until the value is `version` (as served, HIT or not); false at the deadline.
  bool ReadsVersion(uint16_t http, int id, int64_t version, Millis timeout) {
    return WaitFor(
        [&] {
          last_ = Get(http, id);
          return last_.value == std::to_string(version);
        },
        timeout);
  }
  // The last read ReadsVersion made, for failure messages.
  std::string LastRead() const { return last_.value + " (X-Cache " + last_.x_cache + ")"; }
  // For failure messages: the replicas', refreshes' and fence's series from /metrics, and the
  // server's log.
  static std::string Diagnosis(uint16_t http, ServerProcess& server) {
    std::string out = "metrics:\n";
    if (auto r = HttpRequestOnce(http, "GET", "/metrics")) {
      std::istringstream lines(r->body);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("corral_replica", 0) == 0 || line.rfind("corral_refresh", 0) == 0 ||
            line.rfind("corral_fenced", 0) == 0 || line.rfind("corral_db_loads", 0) == 0 ||
            line.rfind("corral_pool", 0) == 0) {
          out += line + "\n";
        }
      }
    }
    return out + "stderr:\n" + server.Stderr();
  }

  // The listener's connection to the primary goes silent (`fault`), is noticed, entries turn
  // stale, the link heals, the listener reconnects and NOTIFY invalidations flow again.
  void Run(const char* what, const std::function<void(FaultProxy&)>& fault, int id) {
    // Debug logging (each fill and fence check) so a failure's stderr shows what was loaded.
    auto server = StartBehindProxies(kVersionNamespaces, PgSettings(kHealthIntervalMs),
                                     kWaitTimeoutMs, "\"log_level\": \"debug\", ");
    ASSERT_NE(server, nullptr);
    const uint16_t http = server->http_port();
    const std::string connected = "event=invalidation_listener_connected";
    const std::string lost = "event=invalidation_listener_disconnected";
    ASSERT_TRUE(server->WaitForStderr(connected, Millis(10000)));
    const int64_t v1 = pg_.UserVersion(id);
    ASSERT_TRUE(ReadsVersion(http, id, v1, Millis(5000)));
    ASSERT_TRUE(WaitFor([&] { return Get(http, id).x_cache == "HIT"; }, Millis(5000)));

    // The link goes silent, and the row changes meanwhile: its NOTIFY is lost on the silent link.
    const auto t0 = Clock::now();
    fault(*primary_proxy_);
    const int64_t v2 = pg_.BumpUserVersion(id);
    ASSERT_EQ(v2, v1 + 1);
    ASSERT_TRUE(pg_.WaitReplayed());
    // The listener notices within its ping bound.
    ASSERT_TRUE(
        WaitFor([&] { return Occurrences(server->Stderr(), lost) == 1; }, kListenerDetectBound))
        << what << ": the listener did not notice within " << kListenerDetectBound.count()
        << " ms\n"
        << server->Stderr();
    const double detect_ms = MsSince(t0);
    // From then on every entry is stale until reloaded: the cached v1 is not served as fresh, and
    // the change whose NOTIFY was lost is read after one reload.
    const Read after = Get(http, id);
    EXPECT_NE(after.x_cache, "HIT") << what << ": served as fresh after the listener dropped\n"
                                    << Diagnosis(http, *server);
    EXPECT_TRUE(after.value == std::to_string(v1) || after.value == std::to_string(v2))
        << after.value;
    EXPECT_TRUE(ReadsVersion(http, id, v2, Millis(5000)))
        << what << ": still serving " << LastRead() << ", not v" << v2
        << ", after the listener dropped\n"
        << Diagnosis(http, *server);
    EXPECT_EQ(Occurrences(server->Stderr(), connected), 1) << "reconnected through a dead link?";

    // Healed: the listener reconnects (back-off at most 2 s, plus a connection attempt).
    const auto t1 = Clock::now();
    primary_proxy_->Heal();
    ASSERT_TRUE(WaitFor([&] { return Occurrences(server->Stderr(), connected) == 2; },
                        Millis(2000 + 2000 + 4000)))
        << what << ": the listener did not reconnect\n"
        << server->Stderr();
    const double reconnect_ms = MsSince(t1);
    // NOTIFY flows again: a cached, fresh v2 is replaced by v3 through the invalidation alone (the
    // TTL is 60 s).
    ASSERT_TRUE(WaitFor(
        [&] {
          const Read r = Get(http, id);
          last_ = r;
          return r.x_cache == "HIT" && r.value == std::to_string(v2);
        },
        Millis(5000)))
        << what << ": after reconnecting, still serving " << LastRead() << ", not a fresh v" << v2
        << "\n"
        << Diagnosis(http, *server);
    const int64_t v3 = pg_.BumpUserVersion(id);
    ASSERT_TRUE(pg_.WaitReplayed());
    const auto t2 = Clock::now();
    EXPECT_TRUE(ReadsVersion(http, id, v3, Millis(3000)))
        << what << ": the NOTIFY after reconnecting did not invalidate";
    const double notify_ms = MsSince(t2);
    EXPECT_LE(worst_, static_cast<double>(kWaitTimeoutMs + kWaitMargin.count()))
        << what << ": a request waited past lease.wait_timeout_ms + " << kWaitMargin.count()
        << " ms\n"
        << Diagnosis(http, *server);
    std::printf(
        "[figures] %s primary: listener noticed after %.0f ms (bound %lld ms), reconnected %.0f "
        "ms after healing, NOTIFY read after %.0f ms; worst wait %.0f ms (bound %lld ms + %lld "
        "ms margin)\n",
        what, detect_ms, static_cast<long long>(kListenerDetectBound.count()), reconnect_ms,
        notify_ms, worst_, static_cast<long long>(kWaitTimeoutMs),
        static_cast<long long>(kWaitMargin.count()));
  }

  double worst_ = 0;
  Read last_;
};

// Case 3: a blackholed primary does not stall invalidation forever.
TEST_F(SilentPrimaryTest, BlackholedPrimaryIsNoticedAndInvalidationResumes) {
  Run(
      "blackholed", [](FaultProxy& p) { p.Blackhole(); }, 8101);
}

// Case 3, separately: the link to the primary stalls half-open.
TEST_F(SilentPrimaryTest, HalfOpenStalledPrimaryIsNoticedAndInvalidationResumes) {
  Run(
      "half-open stalled", [](FaultProxy& p) { p.StallHalfOpen(); }, 8102);
}

}  // namespace
}  // namespace corral::integration

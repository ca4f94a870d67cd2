// Load shedding against the real PostgreSQL primary + 2 replicas (SPEC rule 8, issue 5): a herd of
// 10 000 cold keys under max_inflight_loads, max_loads_per_s, `blocked` and their run-time changes,
// HTTP 503 + Retry-After, and batching. Concurrency is measured at the database (pg_stat_activity).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"
#include "tests/sanitizer.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kHerdKeys = 10000;
// The herd's 50 ms load. Each test's query names its column (ovl_herd, ovl_rate, ...): that name
// is what pg_stat_statements and pg_stat_activity are searched for.
constexpr const char* kHerdQuery =
    "SELECT name AS ovl_herd FROM users, pg_sleep(0.05) WHERE id = $1::bigint";

// Raises this process's soft limit on open files to at least `want` (corral-server, started
// later, inherits it). False when the hard limit does not allow it.
bool RaiseFileLimit(rlim_t want) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  if (lim.rlim_cur >= want) return true;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < want) return false;
  lim.rlim_cur = want;
  return setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

bool IsBusy(const std::string& reply) { return reply.rfind("-BUSY ", 0) == 0; }

// Watches one replica from inside the server: a DO block that, every 10 ms, notes which backends
// are running a statement containing `needle` (state active) and since when (query_start), until
// a statement containing "ovl_sampler_stop" shows up on that server. Sampling in the server keeps
// the period exact however busy the test machine is.
class ActivitySampler {
 public:
  // One backend seen active at time `seen_us` running a statement that started at `start_us`
  // (microseconds since the epoch, the server's clock): it was active during [start_us, seen_us].
  struct Sighting {
    int64_t pid, start_us, seen_us;
  };

  ActivitySampler(std::string conn, std::string needle)
      : conn_(std::move(conn)), needle_(std::move(needle)) {}
  ~ActivitySampler() { Stop(); }

  // Starts the DO block and waits until it runs on the server. False if it does not start.
  bool Start() {
    // The block's text holds the marker "ovl_sampler_loop" so Start can see it running. The
    // needle is split in two: pg_stat_statements records the DO statement verbatim, and it must
    // not count as one of the statements the test is counting.
    const std::string needle = "'" + needle_.substr(0, 1) + "' || '" + needle_.substr(1) + "'";
    const std::string matches = "state = 'active' AND strpos(query, " + needle + ") > 0";
    std::string sql =
        "DO $ovl$ DECLARE samples text[] := '{}'; n int := 0; peak int := 0; t timestamptz;"
        " k int; seen text; stop_seen int := 0; BEGIN /* ovl_sampler_loop */"
        " WHILE stop_seen = 0 AND clock_timestamp() < now() + interval '110 seconds' LOOP"
        "   t := clock_timestamp();"
        "   PERFORM pg_stat_clear_snapshot();"
        "   SELECT count(*) FILTER (WHERE " +
        matches +
        "),"
        "     string_agg(pid || ':' || (extract(epoch FROM query_start) * 1000000)::bigint, ',')"
        "       FILTER (WHERE " +
        matches +
        "),"
        "     count(*) FILTER (WHERE strpos(query, 'ovl_sampler' || '_stop') > 0)"
        "     INTO k, seen, stop_seen FROM pg_stat_activity"
        "     WHERE pid <> pg_backend_pid() AND backend_type = 'client backend';"
        "   n := n + 1;"
        "   IF k > 0 THEN"
        "     peak := greatest(peak, k);"
        "     samples := samples || ((extract(epoch FROM t) * 1000000)::bigint || '=' || seen);"
        "   END IF;"
        "   PERFORM pg_sleep(0.01);"
        " END LOOP;"
        " RAISE NOTICE 'ovl_samples n=% peak=% data=%', n, peak, array_to_string(samples, ';');"
        " END $ovl$";
    thread_ = std::thread([this, sql] {
      result_ = RunProcess({"psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                            conn_ + " connect_timeout=3", "-c", sql},
                           {}, Millis(120000));
    });
    return WaitFor(
        [&] {
          return PgCluster::Sql(conn_,
                                "SELECT count(*) FROM pg_stat_activity WHERE pid <> "
                                "pg_backend_pid() AND strpos(query, 'ovl_sampler_loop') > 0") ==
                 "1";
        },
        Millis(10000));
  }

  // Ends the sampling (a statement with the stop marker, long enough to be seen) and parses what
  // it saw. False if the block failed or printed nothing.
  bool Stop() {
    if (!thread_.joinable()) return parsed_;
    PgCluster::Sql(conn_, "SELECT 'ovl_sampler_stop', pg_sleep(0.1)");
    thread_.join();
    size_t at = result_.err.find("ovl_samples n=");
    if (!result_.status.ok() || at == std::string::npos) {
      error_ = result_.status.ToString() + ": " + result_.err;
      return false;
    }
    std::string line = result_.err.substr(at);
    line = line.substr(0, line.find('\n'));
    samples_ = std::atoll(line.c_str() + line.find("n=") + 2);
    peak_ = std::atoi(line.c_str() + line.find("peak=") + 5);
    std::string data = line.substr(line.find("data=") + 5);
    std::stringstream entries(data);
    std::string entry;
    while (std::getline(entries, entry, ';')) {
      size_t eq = entry.find('=');
      if (eq == std::string::npos) continue;
      int64_t seen = std::atoll(entry.c_str());
      std::stringstream backends(entry.substr(eq + 1));
      std::string backend;
      while (std::getline(backends, backend, ',')) {
        size_t colon = backend.find(':');
        if (colon == std::string::npos) continue;
        sightings_.push_back(
            {std::atoll(backend.c_str()), std::atoll(backend.c_str() + colon + 1), seen});
      }
    }
    parsed_ = true;
    return true;
  }

  int64_t samples() const { return samples_; }
  int peak() const { return peak_; }  // most backends seen active in one sample on this server
  const std::vector<Sighting>& sightings() const { return sightings_; }
  const std::string& error() const { return error_; }

 private:
  std::string conn_;
  std::string needle_;
  std::thread thread_;
  ProcessResult result_;
  bool parsed_ = false;
  std::string error_;
  int64_t samples_ = 0;
  int peak_ = 0;
  std::vector<Sighting> sightings_;
};

// The most statements known to have run at the same instant across several servers. Each
// (server, pid, query_start) seen active at time t was active during all of [query_start, t], so
// the overlap of these intervals is a lower bound of the true concurrency: it never exceeds it,
// and with 10 ms samples of 50 ms statements it misses little.
int MaxConcurrent(const std::vector<const ActivitySampler*>& samplers) {
  std::map<std::tuple<size_t, int64_t, int64_t>, int64_t> last_seen;
  for (size_t s = 0; s < samplers.size(); ++s) {
    for (const auto& x : samplers[s]->sightings()) {
      if (x.start_us > x.seen_us) continue;  // started after the sample's timestamp
      int64_t& last = last_seen[{s, x.pid, x.start_us}];
      last = std::max(last, x.seen_us);
    }
  }
  std::vector<std::pair<int64_t, int>> events;  // (time, +1 start / -1 end)
  for (const auto& [id, last] : last_seen) {
    events.emplace_back(std::get<2>(id), +1);
    events.emplace_back(last, -1);
  }
  std::sort(events.begin(), events.end());  // at equal times ends (-1) come first
  int now = 0, max = 0;
  for (const auto& e : events) {
    now += e.second;
    max = std::max(max, now);
  }
  return max;
}

class OverloadPgTest : public PgTest {
 protected:
  static std::string Command(uint16_t port, const std::vector<std::string>& args) {
    return RespHerd(port, {args}, Millis(5000))[0].reply;
  }

  // GET ns:first .. ns:first+n-1, all at once, one connection each.
  static std::vector<HerdReply> Herd(uint16_t port, const std::string& ns, int first, int n,
                                     Millis timeout = Millis(20000)) {
    std::vector<std::vector<std::string>> commands;
    commands.reserve(n);
    for (int i = 0; i < n; ++i) commands.push_back({"GET", ns + ":" + std::to_string(first + i)});
    return RespHerd(port, commands, timeout);
  }

  // Counts a herd's answers; every one must be key i's right value or BUSY.
  struct Tally {
    int values = 0, busy = 0, other = 0;
    std::string first_other;
    std::vector<HerdReply> value_replies, busy_replies;
  };
  static Tally Count(const std::vector<HerdReply>& replies, int first_id) {
    Tally t;
    for (size_t i = 0; i < replies.size(); ++i) {
      const HerdReply& r = replies[i];
      if (RespValue(r.reply) == "user " + std::to_string(first_id + static_cast<int>(i))) {
        ++t.values;
        t.value_replies.push_back(r);
      } else if (IsBusy(r.reply)) {
        ++t.busy;
        t.busy_replies.push_back(r);
      } else if (t.other++ == 0) {
        t.first_other = "client " + std::to_string(i) + " (" + std::to_string(r.ms) +
                        " ms): " + (r.ms < 0 ? "no reply" : r.reply);
      }
    }
    return t;
  }
};

// Issue 5: 10 000 distinct cold keys at once, each a 50 ms query, max_inflight_loads 16. The pool
// has 2 x 32 connections, so only the namespace's admission bound can hold the database to 16.
TEST_F(OverloadPgTest, TenThousandColdKeysNeverExceedInflightBound) {
  // 10 000 client sockets here and as many in corral, plus pipes and database connections.
  if (!RaiseFileLimit(kHerdKeys + 2048)) {
    GTEST_SKIP() << "the open-file hard limit is below " << kHerdKeys + 2048 << " (ulimit -Hn)";
  }
  auto server = StartCorral(
      std::string("{\"herd\": {\"query\": \"") + kHerdQuery + "\", \"max_inflight_loads\": 16}}",
      "\"lease\": {\"wait_timeout_ms\": 10000}, "
      "\"shedding\": {\"max_clients\": 12000, \"max_pending_loads\": 10000}",
      "\"pools\": {\"default\": {\"replicas\": \"all\", \"connections\": 32}}");
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<ActivitySampler>> samplers;
  for (const auto& replica : pg_.replicas) {
    samplers.push_back(std::make_unique<ActivitySampler>(replica, "ovl_herd"));
    ASSERT_TRUE(samplers.back()->Start()) << "the pg_stat_activity sampler did not start";
  }
  int64_t rss_before = server->RssBytes();

  auto start = Clock::now();
  std::vector<HerdReply> replies = Herd(server->resp_port(), "herd", 1, kHerdKeys);
  double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  int64_t rss_after = server->RssBytes();
  std::string ping = Command(server->resp_port(), {"PING"});
  // The herd's connections are closed; once corral has let them go, memory should stay put.
  bool clients_gone = WaitFor(
      [&] { return Metric(server->http_port(), "corral_connected_clients") <= 1; }, Millis(10000));
  int64_t rss_idle = server->RssBytes();
  Tally t = Count(replies, 1);
  int64_t queries = pg_.Calls("ovl_herd");
  // A second herd reuses what the first one grew: memory that keeps growing is a leak.
  Tally second = Count(Herd(server->resp_port(), "herd", 1, kHerdKeys), 1);
  int64_t rss_second = server->RssBytes();

  std::vector<const ActivitySampler*> watched;
  for (auto& s : samplers) {
    ASSERT_TRUE(s->Stop()) << s->error();
    watched.push_back(s.get());
  }
  int concurrent = MaxConcurrent(watched);

  std::printf(
      "[figures] 10000 cold keys, max_inflight_loads 16: %d values, %d BUSY, %d other; "
      "%lld queries; herd wall %.0f ms\n",
      t.values, t.busy, t.other, static_cast<long long>(queries), wall_ms);
  std::printf(
      "[figures]   value latency p50=%.1f p99=%.1f max=%.1f ms; BUSY latency p50=%.1f "
      "p99=%.1f max=%.1f ms\n",
      Percentile(t.value_replies, 50), Percentile(t.value_replies, 99),
      Percentile(t.value_replies, 100), Percentile(t.busy_replies, 50),
      Percentile(t.busy_replies, 99), Percentile(t.busy_replies, 100));
  for (size_t i = 0; i < samplers.size(); ++i) {
    std::printf("[figures]   replica%zu: %lld samples, at most %d active in one sample\n", i,
                static_cast<long long>(samplers[i]->samples()), samplers[i]->peak());
  }
  std::printf("[figures]   most loads active at once across both replicas: %d\n", concurrent);
  std::printf(
      "[figures]   corral RSS before %.1f MiB, right after %.1f MiB, clients gone %.1f MiB\n",
      rss_before / 1048576.0, rss_after / 1048576.0, rss_idle / 1048576.0);
  std::printf(
      "[figures]   a second herd: %d values (hits or loads), %d BUSY; RSS after it %.1f MiB\n",
      second.values, second.busy, rss_second / 1048576.0);

  EXPECT_EQ(t.other, 0) << "every answer must be the right value or -BUSY; first: "
                        << t.first_other;
  EXPECT_EQ(t.values + t.busy, kHerdKeys);
  EXPECT_GT(t.values, 0);
  EXPECT_GT(t.busy, kHerdKeys / 2) << "the excess must be shed";
  // Each value is one load and each BUSY none: anything else means a shed request still queried.
  // The one exception: a load let through because its estimated finish was in time can still end
  // after its waiters gave up (the estimate is the shortest recent load time), and then queried
  // for a BUSY answer. A few, not a share: seen once in 3 348 under ASan, 7 in 3 072 on a CI
  // machine that was also compiling; at most 1% (and 5) here.
  EXPECT_GE(queries, t.values);
  EXPECT_LE(queries, t.values + std::max(5, t.values / 100)) << "shed requests queried";
  for (const auto& s : samplers) EXPECT_LE(s->peak(), 16);
  EXPECT_LE(concurrent, 16) << "PostgreSQL ran more than max_inflight_loads loads at once";
  EXPECT_GE(concurrent, 2) << "the sampler saw no concurrent loads: it measured nothing";
  // Dropped early: a queued load that cannot finish within the 10 s bound is dropped once its
  // estimated start says so (1.4 s at p99 here, 4.5 s under ASan), not when the bound runs out.
  EXPECT_LT(Percentile(t.busy_replies, 99), 9000);
  EXPECT_GE(rss_before, 0);
  EXPECT_TRUE(clients_gone) << "corral still counts the herd's closed connections";
  EXPECT_EQ(second.other, 0) << second.first_other;
  if (corral::sanitizer::kSanitized) {
    std::printf("[note] RSS bounds not checked: %s\n", corral::sanitizer::kSanitizerSkipReason);
  } else {
    EXPECT_LT(rss_after - rss_before, 256LL << 20) << "corral's memory grew without bound";
    EXPECT_LT(rss_idle - rss_before, 256LL << 20);
    EXPECT_LT(rss_second - rss_idle, 64LL << 20) << "memory grows with every herd: a leak";
  }
  EXPECT_EQ(ping, "+PONG\r\n");
}

// Issue 15: defaults (one replica, the default pool of 8 connections, max_inflight_loads 64, the
// 2 s wait bound), 200 cold keys x 10 clients, a 50 ms query. The pool can run all 200 loads in
// about 1.25 s: every client gets its row, none gets -BUSY, each key is loaded once.
TEST_F(OverloadPgTest, DefaultsServeABurstTheDatabaseCanFinishInTime) {
  auto server = StartCorral(
      "{\"burst\": {\"query\": \"SELECT name AS ovl_burst FROM users, pg_sleep(0.05) WHERE id = "
      "$1::bigint\"}}",
      "", "\"pools\": {\"default\": {\"replicas\": [0]}}");
  ASSERT_NE(server, nullptr);
  auto start = Clock::now();
  std::vector<HerdReply> replies = ManyKeysHerd(server->resp_port(), "burst", 5000, 200, 10);
  double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  int busy = 0;
  for (const HerdReply& r : replies) busy += IsBusy(r.reply) ? 1 : 0;
  int64_t queries = pg_.Calls("ovl_burst");
  std::printf(
      "[figures] defaults, 200 cold keys x 10 clients, 50 ms query, 8 connections: %d BUSY of "
      "%zu, %lld queries, p50=%.1f p99=%.1f ms, herd wall %.0f ms\n",
      busy, replies.size(), static_cast<long long>(queries), Percentile(replies, 50),
      Percentile(replies, 99), wall_ms);
  EXPECT_EQ(replies.size(), 2000u);
  EXPECT_EQ(busy, 0) << "a burst the pool could finish in time was shed";
  EXPECT_EQ(queries, 200);
  EXPECT_EQ(Metric(server->http_port(), "corral_concurrency_limit{pool=\"default\"}"), 8);
  EXPECT_EQ(Metric(server->http_port(), "corral_load_queue{pool=\"default\"}"), 0);
}

// Issue 15: the same burst with a 300 ms query cannot be finished in the 2 s bound: 8 loads at a
// time, about 6 rounds. The pool serves about what it can (a benchmark figure; here it must serve
// more than a quarter of its capacity and never more than 7 rounds), the database never runs more
// than 8 at once, -BUSY comes only for loads that were never run, and nearly every query that ran
// answered someone.
TEST_F(OverloadPgTest, ABurstPastWhatThePoolCanFinishServesItsCapacityAndShedsTheRest) {
  auto server = StartCorral(
      "{\"slowb\": {\"query\": \"SELECT name AS ovl_slowburst FROM users, pg_sleep(0.3) WHERE "
      "id = $1::bigint\"}}",
      "", "\"pools\": {\"default\": {\"replicas\": [0]}}");
  ASSERT_NE(server, nullptr);
  ActivitySampler sampler(pg_.replicas[0], "ovl_slowburst");
  ASSERT_TRUE(sampler.Start()) << "the pg_stat_activity sampler did not start";
  std::vector<std::vector<std::string>> commands;
  std::vector<int> ids;
  for (int c = 0; c < 10; ++c) {
    for (int k = 1; k <= 200; ++k) {
      ids.push_back(6000 + k);
      commands.push_back({"GET", "slowb:" + std::to_string(ids.back())});
    }
  }
  std::vector<HerdReply> replies = RespHerd(server->resp_port(), commands, Millis(20000));
  ASSERT_TRUE(sampler.Stop()) << sampler.error();
  std::set<int> served;
  int values = 0, busy = 0, other = 0;
  std::string first_other;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (RespValue(replies[i].reply) == "user " + std::to_string(ids[i])) {
      ++values;
      served.insert(ids[i]);
    } else if (IsBusy(replies[i].reply)) {
      ++busy;
    } else if (other++ == 0) {
      first_other = replies[i].reply;
    }
  }
  int64_t queries = pg_.Calls("ovl_slowburst");
  std::printf(
      "[figures] 200 cold keys x 10 clients, 300 ms query, 8 connections, 2 s bound: %zu keys "
      "served (capacity about 8 x 2000 / 300 = 53), %d values, %d BUSY, %lld queries, at most "
      "%d at once; BUSY p50=%.1f ms\n",
      served.size(), values, busy, static_cast<long long>(queries), sampler.peak(),
      Percentile(replies, 50));
  EXPECT_EQ(other, 0) << first_other;
  EXPECT_EQ(values + busy, 2000);
  EXPECT_GT(served.size(), 13u) << "the queue served less than a quarter of what the pool can";
  EXPECT_LE(served.size(), 56u) << "more than 7 rounds of 8 in 2 s";
  EXPECT_LE(sampler.peak(), 8) << "PostgreSQL ran more loads at once than the pool's limit";
  EXPECT_GE(sampler.peak(), 2) << "the sampler saw no concurrent loads: it measured nothing";
  EXPECT_GE(queries, static_cast<int64_t>(served.size()));
  EXPECT_LE(queries, static_cast<int64_t>(served.size()) + 8)
      << "queries ran whose answers nobody waited for";
}

// Issue 15: priorities share one pool of 4 connections. A flood of low-priority cold keys (300 ms
// each) never holds more than three quarters of the limit at the database, and high-priority keys
// asked during the flood go first from the queue: all of them are served within the wait bound,
// while most of the flood is shed.
TEST_F(OverloadPgTest, HighPriorityGoesFirstAndKeepsAQuarterOfThePool) {
  auto server = StartCorral(
      "{\"lo\": {\"query\": \"SELECT name AS ovl_prio_lo FROM users, pg_sleep(0.3) WHERE id = "
      "$1::bigint\", \"priority\": \"low\"},"
      // (Another expression than lo's: pg_stat_statements ignores column names when it groups.)
      " \"hi\": {\"query\": \"SELECT name || '' AS ovl_prio_hi FROM users, pg_sleep(0.3) WHERE "
      "id = $1::bigint\", \"priority\": \"high\"}}",
      "", "\"pools\": {\"default\": {\"replicas\": [0], \"connections\": 4}}");
  ASSERT_NE(server, nullptr);
  ActivitySampler sampler(pg_.replicas[0], "ovl_prio_lo");
  ASSERT_TRUE(sampler.Start()) << "the pg_stat_activity sampler did not start";
  std::vector<HerdReply> flood;
  std::thread flooder([&] { flood = Herd(server->resp_port(), "lo", 7001, 100); });
  // High-priority misses arrive while the flood waits in the queue.
  bool queued = WaitFor(
      [&] { return Metric(server->http_port(), "corral_load_queue{pool=\"default\"}") >= 50; },
      Millis(10000), Millis(5));
  Tally hi = Count(Herd(server->resp_port(), "hi", 7201, 12), 7201);
  flooder.join();
  ASSERT_TRUE(sampler.Stop()) << sampler.error();
  Tally lo = Count(flood, 7001);
  std::printf(
      "[figures] one pool of 4, 100 low-priority cold keys then 12 high (300 ms each): high %d "
      "served, %d BUSY (p99 %.0f ms); low %d served, %d BUSY; low at once at most %d\n",
      hi.values, hi.busy, Percentile(hi.value_replies, 99), lo.values, lo.busy, sampler.peak());
  EXPECT_TRUE(queued) << "the flood never queued";
  EXPECT_EQ(hi.other + lo.other, 0) << hi.first_other << lo.first_other;
  EXPECT_EQ(hi.values, 12) << "high priority was not served first";
  EXPECT_GT(lo.busy, 50) << "the flood should mostly be shed";
  EXPECT_LE(sampler.peak(), 3) << "low priority took the quarter kept for high";
  EXPECT_GE(sampler.peak(), 2) << "the sampler saw no concurrent loads: it measured nothing";
  EXPECT_EQ(pg_.Calls("ovl_prio_hi"), 12);
}

// Issue 5: max_loads_per_s 20 over 2 s of steady distinct-key traffic: the database sees at most
// 20 x 2 plus the burst (20) loads; every other miss is BUSY.
TEST_F(OverloadPgTest, RateLimitBoundsLoadsPerSecond) {
  constexpr double kRate = 20;
  auto server = StartCorral(
      "{\"rate\": {\"query\": \"SELECT name AS ovl_rate FROM users WHERE id = $1::bigint\","
      " \"max_loads_per_s\": 20}}");
  ASSERT_NE(server, nullptr);
  constexpr int kClients = 4;
  std::atomic<int> values{0}, busy{0}, other{0};
  std::string first_other;
  std::vector<std::thread> clients;
  auto start = Clock::now();
  const auto end = start + Millis(2000);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      RedisConnection conn = ConnectRedis(server->resp_port());
      if (!conn) {
        ++other;
        return;
      }
      // Distinct keys: client c asks for c+1, c+1+kClients, ...; past the seeded 10 000 rows the
      // answer is nil, which is a load too.
      for (int id = c + 1; Clock::now() < end; id += kClients) {
        std::string text =
            ReplyText(RedisCmd(conn.get(), {"GET", "rate:" + std::to_string(id)}).get());
        std::string want = id <= 10000 ? "$user " + std::to_string(id) : "(nil)";
        if (text == want) {
          ++values;
        } else if (text.rfind("-BUSY ", 0) == 0) {
          ++busy;
        } else if (other++ == 0) {
          first_other = text;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  int64_t queries = pg_.Calls("ovl_rate");
  std::printf("[figures] max_loads_per_s 20 over %.2f s: %d loaded, %d BUSY, %lld queries\n",
              seconds, values.load(), busy.load(), static_cast<long long>(queries));
  EXPECT_EQ(other.load(), 0) << first_other;
  EXPECT_LE(queries, static_cast<int64_t>(kRate * seconds + kRate) + 1);
  EXPECT_GE(queries, static_cast<int64_t>(kRate * 1.5)) << "the limit admitted too little";
  EXPECT_EQ(queries, values.load());
  EXPECT_GT(busy.load(), values.load()) << "the traffic never exceeded the rate: no test";
  EXPECT_GE(Metric(server->http_port(), "corral_shed_total{reason=\"max_loads_per_s\"}"),
            busy.load());
}

// Issue 5: a blocked namespace answers every miss BUSY at once and the database sees none of
// its queries; unblocking with CONFIG SET works at once, without a restart.
TEST_F(OverloadPgTest, BlockedNamespaceIsShedAndCanBeUnblockedAtRunTime) {
  auto server = StartCorral(
      "{\"blk\": {\"query\": \"SELECT name AS ovl_blk FROM users WHERE id = $1::bigint\","
      " \"blocked\": true}}");
  ASSERT_NE(server, nullptr);
  uint16_t port = server->resp_port();
  Tally blocked = Count(Herd(port, "blk", 1, 200), 1);
  std::printf("[figures] blocked namespace: 200 misses -> %d BUSY, BUSY p99=%.1f ms\n",
              blocked.busy, Percentile(blocked.busy_replies, 99));
  EXPECT_EQ(blocked.busy, 200) << blocked.first_other;
  EXPECT_LT(Percentile(blocked.busy_replies, 100), 2000);
  ASSERT_FALSE(blocked.busy_replies.empty());
  EXPECT_NE(blocked.busy_replies[0].reply.find("blocked"), std::string::npos)
      << blocked.busy_replies[0].reply;
  EXPECT_EQ(pg_.Calls("ovl_blk"), 0);
  EXPECT_EQ(Metric(server->http_port(), "corral_shed_total{reason=\"blocked\"}"), 200);

  EXPECT_EQ(Command(port, {"CONFIG", "SET", "namespace.blk.blocked", "no"}), "+OK\r\n");
  Tally open = Count(Herd(port, "blk", 1001, 50), 1001);
  EXPECT_EQ(open.values, 50) << open.first_other;
  EXPECT_EQ(pg_.Calls("ovl_blk"), 50);

  EXPECT_EQ(Command(port, {"CONFIG", "SET", "namespace.blk.blocked", "yes"}), "+OK\r\n");
  Tally again = Count(Herd(port, "blk", 2001, 20), 2001);
  EXPECT_EQ(again.busy, 20) << again.first_other;
  EXPECT_EQ(pg_.Calls("ovl_blk"), 50);
  // Cached values stay readable while the namespace is blocked: only loads are refused.
  EXPECT_EQ(RespValue(Command(port, {"GET", "blk:1001"})), "user 1001");
  EXPECT_EQ(Command(port, {"CONFIG", "SET", "namespace.nosuch.blocked", "yes"}).rfind("-ERR", 0),
            0u);
}

// Issue 5: max_inflight_loads changed with CONFIG SET applies to the next misses, both ways.
TEST_F(OverloadPgTest, InflightBoundChangesAtRunTime) {
  auto server = StartCorral(
      "{\"cap\": {\"query\": \"SELECT name AS ovl_cap FROM users, pg_sleep(0.3) WHERE id = "
      "$1::bigint\", \"max_inflight_loads\": 64}}",
      "", "\"pools\": {\"default\": {\"replicas\": \"all\", \"connections\": 32}}");
  ASSERT_NE(server, nullptr);
  uint16_t port = server->resp_port();
  EXPECT_EQ(Command(port, {"CONFIG", "SET", "namespace.cap.max_inflight_loads", "3"}), "+OK\r\n");
  // 40 misses arrive within a few ms; each load takes 300 ms and 3 run at a time, the rest wait
  // in the queue: within the 2 s wait bound at most 7 rounds of 3 can finish, and the rest are
  // BUSY (dropped from the queue once they could no longer finish in time).
  Tally narrow = Count(Herd(port, "cap", 1, 40), 1);
  EXPECT_EQ(narrow.other, 0) << narrow.first_other;
  EXPECT_GT(narrow.values, 3) << "loads past the cap were shed at once instead of queued";
  EXPECT_LE(narrow.values, 21) << "more than 3 loads at a time";
  EXPECT_EQ(narrow.values + narrow.busy, 40);
  // A load admitted just in time may finish after its readers' deadline (they get BUSY): at most
  // one round of 3 such queries.
  const int64_t narrow_queries = pg_.Calls("ovl_cap");
  EXPECT_GE(narrow_queries, narrow.values);
  EXPECT_LE(narrow_queries, narrow.values + 3);

  EXPECT_EQ(Command(port, {"CONFIG", "SET", "namespace.cap.max_inflight_loads", "64"}), "+OK\r\n");
  Tally wide = Count(Herd(port, "cap", 101, 40), 101);
  EXPECT_EQ(wide.values, 40) << wide.first_other;
  EXPECT_EQ(pg_.Calls("ovl_cap"), narrow_queries + 40);
  std::printf(
      "[figures] max_inflight_loads 3 -> %d of 40 loaded in the 2 s bound; 64 -> %d of 40\n",
      narrow.values, wide.values);
}

// Issue 5: over HTTP a shed request is 503 with Retry-After, an integer 1..3 that varies (jitter)
// so that shed clients do not all come back in the same second.
TEST_F(OverloadPgTest, HttpShedIs503WithJitteredRetryAfter) {
  auto server = StartCorral(
      "{\"blk\": {\"query\": \"SELECT name AS ovl_http FROM users WHERE id = $1::bigint\","
      " \"blocked\": true}}");
  ASSERT_NE(server, nullptr);
  std::vector<std::string> targets;
  for (int i = 1; i <= 200; ++i) targets.push_back("/v1/cache/blk/" + std::to_string(i));
  std::vector<HerdReply> replies = HttpHerd(server->http_port(), targets);
  std::map<std::string, int> retry_after;
  for (const auto& r : replies) {
    ASSERT_EQ(r.reply.rfind("HTTP/1.1 503", 0), 0u) << r.reply;
    size_t at = r.reply.find("\r\nRetry-After: ");
    ASSERT_NE(at, std::string::npos) << r.reply;
    at += 15;
    std::string value = r.reply.substr(at, r.reply.find("\r\n", at) - at);
    ASSERT_TRUE(value == "1" || value == "2" || value == "3") << "Retry-After: " << value;
    ++retry_after[value];
  }
  std::printf("[figures] Retry-After over 200 shed requests:");
  for (const auto& [value, n] : retry_after) std::printf(" %s s x%d", value.c_str(), n);
  std::printf("\n");
  EXPECT_GE(retry_after.size(), 2u) << "Retry-After is not jittered";
  EXPECT_EQ(pg_.Calls("ovl_http"), 0);
}

// Issue 15: admission counts database calls, not keys. One MGET of 50 cold keys of a batched
// namespace allowed one call at a time is one batch query, not 50 queries one after another.
TEST_F(OverloadPgTest, AnMgetOfFiftyColdKeysIsOneDatabaseCall) {
  auto server = StartCorral(
      "{\"mb\": {\"query\": \"SELECT name AS ovl_mget FROM users WHERE id = $1::bigint\","
      " \"batch_query\": \"SELECT id::text, name AS ovl_mget FROM users WHERE id = "
      "ANY($1::bigint[])\", \"max_inflight_loads\": 1}}");
  ASSERT_NE(server, nullptr);
  std::vector<std::string> mget{"MGET"};
  std::string expected = "*50\r\n";
  for (int i = 1; i <= 50; ++i) {
    mget.push_back("mb:" + std::to_string(i));
    const std::string value = "user " + std::to_string(i);
    expected += "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  }
  EXPECT_EQ(Command(server->resp_port(), mget), expected);
  EXPECT_EQ(pg_.Calls("ovl_mget"), 1) << "50 keys, one database call";
  EXPECT_EQ(pg_.Calls("ANY($1::bigint[])"), 1);
}

// Issue 5: with a batch_query, concurrent misses of different keys share database calls, so
// 10 000 cold keys under max_inflight_loads 16 cost far fewer calls than the keys they load.
// Admission counts calls (issue 15): misses that wait for one of the 16 slots join one call of up
// to batch_max keys. A 20 ms gathering window lets the loader's own batching fill calls too.
TEST_F(OverloadPgTest, BatchQueryLoadsManyKeysPerDatabaseCall) {
  if (!RaiseFileLimit(kHerdKeys + 2048)) {
    GTEST_SKIP() << "the open-file hard limit is below " << kHerdKeys + 2048 << " (ulimit -Hn)";
  }
  auto server = StartCorral(
      "{\"bat\": {\"query\": \"SELECT name AS ovl_batch FROM users WHERE id = $1::bigint\","
      " \"batch_query\": \"SELECT id::text, name AS ovl_batch FROM users WHERE id = "
      "ANY($1::bigint[])\", \"max_inflight_loads\": 16, \"batch_window_us\": 20000}}",
      "\"lease\": {\"wait_timeout_ms\": 10000}, \"shedding\": {\"max_clients\": 12000}");
  ASSERT_NE(server, nullptr);
  Tally t = Count(Herd(server->resp_port(), "bat", 1, kHerdKeys), 1);
  int64_t calls = pg_.Calls("ovl_batch");
  int64_t batch_calls = pg_.Calls("ANY($1::bigint[])");
  double per_call = calls > 0 ? static_cast<double>(t.values) / static_cast<double>(calls) : 0;
  std::printf(
      "[figures] batch_query, 10000 cold keys, max_inflight_loads 16: %d values, %d BUSY, "
      "%d other; %lld database calls (%lld batch queries), %.1f keys per call\n",
      t.values, t.busy, t.other, static_cast<long long>(calls), static_cast<long long>(batch_calls),
      per_call);
  EXPECT_EQ(t.other, 0) << t.first_other;
  EXPECT_EQ(t.values + t.busy, kHerdKeys);
  EXPECT_GT(t.values, 0);
  EXPECT_GE(batch_calls, 1) << "the batch query never ran";
  // Without batching every loaded key is one call (exactly 1 key per call).
  EXPECT_GE(per_call, 3) << "batching should load several keys per database call";
  EXPECT_LE(calls * 10, kHerdKeys) << "the call count should be far below the key count";
  EXPECT_GT(per_call, 16) << "admission counts calls: a call is not capped at the 16 in flight";
}

}  // namespace
}  // namespace corral::integration

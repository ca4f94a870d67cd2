// Replica isolation and replica outages against the real cluster (SPEC rule 9, issue 5): separate
// pools keep a low-priority flood off high-priority reads; a replica that hangs, dies, comes back
// or lags is routed around. These pause, kill and delay PostgreSQL nodes, so ctest runs them
// alone (RUN_SERIAL).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// p-th percentile (0..100) of `ms`.
double Pct(std::vector<double> ms, double p) {
  if (ms.empty()) return -1;
  std::sort(ms.begin(), ms.end());
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(ms.size() - 1) + 0.5);
  return ms[std::min(idx, ms.size() - 1)];
}

// A query whose every key is a distinct cold key with a known answer: key N reads user
// (N mod 10000) + 1 of the 10 000 seeded rows, so readers never run out of cold keys.
std::string ModQuery(const std::string& marker) {
  return "SELECT name AS " + marker + " FROM users WHERE id = ($1::bigint % 10000) + 1";
}
std::string ModValue(int64_t n) { return "user " + std::to_string(n % 10000 + 1); }

class OutageIsolationPgTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (!IsSkipped() && (pg_.pg_local.empty() || pg_.replicas.size() < 2)) {
      GTEST_SKIP() << "needs CORRAL_TEST_PG_LOCAL and two replicas";
    }
  }
  // Whatever happened, leave every node running and replaying for the next test.
  void TearDown() override { RestoreNodes(); }

  // `n` sequential GETs of ns:first .. ns:first+n-1 on one connection; the latency of each in ms.
  // Every answer must be ModValue(id); *wrong counts the others and *first_wrong shows one.
  static std::vector<double> TimedReads(uint16_t port, const std::string& ns, int64_t first, int n,
                                        int* wrong, std::string* first_wrong) {
    std::vector<double> ms;
    RedisConnection c = ConnectRedis(port, Millis(10000));
    if (!c) {
      *wrong += n;
      *first_wrong = "cannot connect";
      return ms;
    }
    for (int64_t id = first; id < first + n; ++id) {
      auto start = Clock::now();
      std::string text = ReplyText(RedisCmd(c.get(), {"GET", ns + ":" + std::to_string(id)}).get());
      ms.push_back(MsSince(start));
      if (text != "$" + ModValue(id) && (*wrong)++ == 0)
        *first_wrong = std::to_string(id) + " -> " + text;
    }
    return ms;
  }
};

// Issue 5: high- and low-priority namespaces on separate pools ("hi" on replica index 0, "lo" on
// index 1). A flood of expensive low-priority misses must not push high-priority reads out of
// their normal range. This guards isolation (separate replicas, pools and workers), not speed:
// the bound is generous, and what it catches is high-priority loads queued behind low-priority
// ones or shed with them.
TEST_F(OutageIsolationPgTest, LowPriorityFloodDoesNotSlowHighPriority) {
  auto server = StartCorral(
      "{\"hi\": {\"query\": \"" + ModQuery("iso_hi") +
          "\", \"pool\": \"hi\"},"
          " \"lo\": {\"query\": \"SELECT name AS iso_lo FROM users, pg_sleep(0.5) WHERE id = "
          "$1::bigint\", \"pool\": \"lo\", \"max_inflight_loads\": 64}}",
      "\"lease\": {\"wait_timeout_ms\": 2000}",
      "\"pools\": {\"hi\": {\"replicas\": [0], \"connections\": 4},"
      " \"lo\": {\"replicas\": [1], \"connections\": 16}}");
  ASSERT_NE(server, nullptr);
  constexpr int kReads = 400;
  int wrong = 0;
  std::string first_wrong;
  TimedReads(server->resp_port(), "hi", 1000000, 50, &wrong, &first_wrong);  // connections warm
  std::vector<double> baseline =
      TimedReads(server->resp_port(), "hi", 2000000, kReads, &wrong, &first_wrong);

  // The flood: herds of 300 distinct cold low-priority keys, one after another.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> lo_values{0}, lo_busy{0};
  std::thread flood([&] {
    for (int round = 0; !stop; ++round) {
      std::vector<std::vector<std::string>> commands;
      for (int i = 1; i <= 300; ++i) {
        commands.push_back({"GET", "lo:" + std::to_string((round * 300 + i) % 10000 + 1)});
      }
      for (const auto& r : RespHerd(server->resp_port(), commands, Millis(10000))) {
        if (r.reply.rfind("$", 0) == 0) ++lo_values;
        if (r.reply.rfind("-BUSY", 0) == 0) ++lo_busy;
      }
    }
  });
  // Measure only once the low-priority replica is busy with the flood.
  bool flooding = WaitFor(
      [&] {
        return std::atoi(PgCluster::Sql(pg_.replicas[1],
                                        "SELECT count(*) FROM pg_stat_activity WHERE state = "
                                        "'active' AND query LIKE '%iso_lo%' AND pid <> "
                                        "pg_backend_pid()")
                             .c_str()) >= 8;
      },
      Millis(10000));
  std::vector<double> during =
      TimedReads(server->resp_port(), "hi", 3000000, kReads, &wrong, &first_wrong);
  int64_t lo_running = std::atoll(PgCluster::Sql(pg_.replicas[1],
                                                 "SELECT count(*) FROM pg_stat_activity WHERE "
                                                 "state = 'active' AND query LIKE '%iso_lo%' AND "
                                                 "pid <> pg_backend_pid()")
                                      .c_str());
  stop = true;
  flood.join();

  double base_p50 = Pct(baseline, 50), base_p99 = Pct(baseline, 99);
  double flood_p50 = Pct(during, 50), flood_p99 = Pct(during, 99);
  std::printf("[figures] high priority alone: p50=%.2f p99=%.2f max=%.2f ms (%d cold keys)\n",
              base_p50, base_p99, Pct(baseline, 100), kReads);
  std::printf(
      "[figures] high priority during the low-priority flood: p50=%.2f p99=%.2f max=%.2f "
      "ms; flood: %lld loaded, %lld BUSY, %lld low-priority queries running at the end\n",
      flood_p50, flood_p99, Pct(during, 100), static_cast<long long>(lo_values.load()),
      static_cast<long long>(lo_busy.load()), static_cast<long long>(lo_running));
  EXPECT_TRUE(flooding) << "the low-priority replica never got busy: the flood did not happen";
  EXPECT_EQ(wrong, 0) << first_wrong;
  EXPECT_EQ(during.size(), static_cast<size_t>(kReads));
  EXPECT_LT(flood_p99, base_p99 * 5 + 50) << "high-priority latency left its normal range";
  // The pools kept to their replicas.
  EXPECT_EQ(PgCluster::CallsOn(pg_.replicas[1], "iso_hi"), 0);
  EXPECT_EQ(PgCluster::CallsOn(pg_.replicas[0], "iso_lo"), 0);
  EXPECT_GT(PgCluster::CallsOn(pg_.replicas[1], "iso_lo"), 0);
}

// One read as the outage readers record it.
struct Read {
  int phase;
  double ms;
  enum { kValue, kBusy, kOther } kind;
};

// Issue 5: replica1 (corral's replica0) SIGSTOPped, then killed, then restarted while readers
// keep reading cold keys: every read is answered within wait_timeout_ms (plus slack) with the
// right value or BUSY, most succeed through replica2, and replica1 serves loads again afterwards.
TEST_F(OutageIsolationPgTest, ReplicaPausedKilledRestartedWhileReading) {
  constexpr int64_t kWaitMs = 2000;
  auto server = StartCorral("{\"u\": {\"query\": \"" + ModQuery("iso_fail") + "\"}}",
                            "\"lease\": {\"wait_timeout_ms\": 2000}",
                            "\"statement_timeout_ms\": 500, \"health_check_interval_ms\": 200");
  ASSERT_NE(server, nullptr);
  const char* kPhases[] = {"healthy", "paused", "killed", "restarted"};
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> values{0};
  std::mutex mu;
  std::vector<Read> reads;  // guarded by mu
  std::string first_other;  // guarded by mu
  constexpr int kReaders = 4;
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      RedisConnection c = ConnectRedis(server->resp_port(), Millis(kWaitMs + 10000));
      for (int64_t id = r; c && !stop; id += kReaders) {
        auto start = Clock::now();
        std::string text = ReplyText(RedisCmd(c.get(), {"GET", "u:" + std::to_string(id)}).get());
        Read read{phase.load(), MsSince(start), Read::kOther};
        if (text == "$" + ModValue(id)) {
          read.kind = Read::kValue;
          ++values;
        } else if (text.rfind("-BUSY", 0) == 0) {
          read.kind = Read::kBusy;
        }
        std::lock_guard lock(mu);
        if (read.kind == Read::kOther && first_other.empty()) {
          first_other =
              std::string(kPhases[read.phase]) + ": u:" + std::to_string(id) + " -> " + text;
        }
        reads.push_back(read);
        if (text == "(io error)") return;  // the connection is gone: stop this reader
      }
    });
  }
  auto values_grow = [&](int64_t by) {
    int64_t from = values.load();
    return WaitFor([&] { return values.load() >= from + by; }, Millis(20000));
  };
  auto replica_up = [&] {
    return Metric(server->http_port(), "corral_replica_up{replica=\"replica0\"}");
  };
  EXPECT_TRUE(values_grow(100));

  ASSERT_TRUE(pg_.Node("pause-node", "replica1"));
  phase = 1;
  auto paused_at = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return replica_up() == 0; }, Millis(20000)))
      << "the hung replica was never marked down";
  double detect_ms = MsSince(paused_at);
  EXPECT_TRUE(values_grow(200)) << "reads stalled while replica1 hung";

  ASSERT_TRUE(pg_.Node("kill-node", "replica1"));
  phase = 2;
  EXPECT_TRUE(values_grow(200)) << "reads stalled after replica1 died";

  ASSERT_TRUE(pg_.Node("start-node", "replica1"));
  phase = 3;
  auto restarted_at = Clock::now();
  PgCluster::Sql(pg_.replicas[0], "SELECT pg_stat_statements_reset()");
  bool used_again =
      WaitFor([&] { return PgCluster::CallsOn(pg_.replicas[0], "iso_fail") > 0; }, Millis(30000));
  double back_ms = MsSince(restarted_at);
  EXPECT_TRUE(values_grow(100));
  stop = true;
  for (auto& t : readers) t.join();

  std::lock_guard lock(mu);
  int total_other = 0;
  double worst = 0;
  for (int p = 0; p < 4; ++p) {
    int n = 0, ok = 0, busy = 0, other = 0;
    std::vector<double> ms;
    for (const Read& read : reads) {
      if (read.phase != p) continue;
      ++n;
      ms.push_back(read.ms);
      if (read.kind == Read::kValue) ++ok;
      if (read.kind == Read::kBusy) ++busy;
      if (read.kind == Read::kOther) ++other;
    }
    total_other += other;
    worst = std::max(worst, Pct(ms, 100));
    std::printf(
        "[figures] replica1 %-9s: %5d reads, %5d right, %3d BUSY, %d other; p50=%.1f "
        "p99=%.1f max=%.1f ms\n",
        kPhases[p], n, ok, busy, other, Pct(ms, 50), Pct(ms, 99), Pct(ms, 100));
    if (p > 0 && n > 0) {
      EXPECT_GT(ok * 2, n) << "most reads should succeed through replica2 while replica1 is "
                           << kPhases[p];
    }
  }
  std::printf(
      "[figures] hung replica marked down after %.0f ms; restarted replica served loads "
      "again %.0f ms after start-node returned\n",
      detect_ms, back_ms);
  EXPECT_EQ(total_other, 0) << "every read must be the right value or BUSY; first: " << first_other;
  EXPECT_LT(worst, kWaitMs + 1000) << "a read took longer than wait_timeout_ms allows";
  EXPECT_TRUE(used_again) << "replica1 never served a load after it restarted";
}

// Issue 5: a replica delayed past max_replica_lag_ms (replay paused while the primary writes) is
// skipped: new loads all go to the other replica. When replay resumes it is used again.
TEST_F(OutageIsolationPgTest, LaggingReplicaIsSkippedUntilItCatchesUp) {
  auto server = StartCorral("{\"u\": {\"query\": \"" + ModQuery("iso_lag") + "\"}}",
                            "\"lease\": {\"wait_timeout_ms\": 2000}",
                            "\"max_replica_lag_ms\": 1000, \"health_check_interval_ms\": 200");
  ASSERT_NE(server, nullptr);
  const std::string lag = "corral_replica_lag_seconds{replica=\"replica0\"}";
  ASSERT_EQ(PgCluster::Sql(pg_.replicas[0], "SELECT pg_wal_replay_pause()").rfind("ERROR", 0),
            std::string::npos);
  auto paused_at = Clock::now();
  ASSERT_EQ(PgCluster::Sql(pg_.primary, "UPDATE users SET version = version + 1 WHERE id = 1")
                .rfind("ERROR", 0),
            std::string::npos);
  ASSERT_TRUE(WaitFor([&] { return Metric(server->http_port(), lag) > 1.0; }, Millis(20000)))
      << "corral never saw replica0's lag";
  double seen_ms = MsSince(paused_at);
  double lag_seen = Metric(server->http_port(), lag);

  for (const auto& replica : pg_.replicas) {
    PgCluster::Sql(replica, "SELECT pg_stat_statements_reset()");
  }
  constexpr int kReads = 200;
  int wrong = 0;
  std::string first_wrong;
  TimedReads(server->resp_port(), "u", 5000000, kReads, &wrong, &first_wrong);
  int64_t on_lagging = PgCluster::CallsOn(pg_.replicas[0], "iso_lag");
  int64_t on_other = PgCluster::CallsOn(pg_.replicas[1], "iso_lag");
  std::printf(
      "[figures] replay paused on replica1: corral saw lag %.1f s after %.0f ms; %d cold "
      "reads -> %lld loads on the lagging replica, %lld on the other\n",
      lag_seen, seen_ms, kReads, static_cast<long long>(on_lagging),
      static_cast<long long>(on_other));
  EXPECT_EQ(wrong, 0) << first_wrong;
  EXPECT_EQ(on_lagging, 0) << "loads went to a replica lagging past max_replica_lag_ms";
  EXPECT_EQ(on_other, kReads);

  ASSERT_EQ(PgCluster::Sql(pg_.replicas[0], "SELECT pg_wal_replay_resume()").rfind("ERROR", 0),
            std::string::npos);
  auto resumed_at = Clock::now();
  int64_t next = 6000000;
  bool used_again = WaitFor(
      [&] {
        TimedReads(server->resp_port(), "u", next, 20, &wrong, &first_wrong);
        next += 20;
        return PgCluster::CallsOn(pg_.replicas[0], "iso_lag") > 0;
      },
      Millis(20000));
  std::printf("[figures] replay resumed: replica1 served loads again after %.0f ms\n",
              MsSince(resumed_at));
  EXPECT_TRUE(used_again) << "the replica was not used again after catching up";
  EXPECT_EQ(wrong, 0) << first_wrong;
}

}  // namespace
}  // namespace corral::integration

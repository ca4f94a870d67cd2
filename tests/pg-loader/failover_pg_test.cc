// Node outages against a real PostgreSQL (deploy/pg-local.sh): a replica stopped under load, replay
// paused on a replica (lag), the primary restarted under the Listener. These stop, pause and start
// nodes, so ctest runs them RUN_SERIAL. pg-local.sh's "replica1" is the loader's "replica0".
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "pg-loader/listener.h"
#include "pg-loader/loader.h"
#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::LoadSync;
using testing::PgEnv;
using testing::RunLocal;
using testing::RunSql;
using testing::WaitFor;
using Kind = LoadOutcome::Kind;

const std::vector<Statement> kStatements = {
    testing::MakeStatement("row_json", "SELECT row_to_json(u)::text FROM users u WHERE u.id = $1")};

class FailoverPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = PgEnv::FromEnvironment();
    CORRAL_REQUIRE_PG(env_, true);
  }

  LoaderOptions Options() const {
    LoaderOptions options;
    options.primary = env_.primary;
    options.replicas = {env_.replicas[0], env_.replicas[1]};
    options.pools = {{"default", PoolOptions{{0, 1}, 4}}};
    options.health_check_interval_ms = 100;
    return options;
  }

  bool BothUp(const Loader& loader) const {
    const auto status = loader.Status();
    return status[0].up && !status[0].lagging && status[1].up && !status[1].lagging;
  }

  // Waits until some load is served by `replica`.
  bool EventuallyServedBy(Loader& loader, const std::string& replica) {
    return WaitFor([&] { return LoadSync(loader, 0, "5").replica == replica; });
  }

  PgEnv env_;
};

// Runs `undo` when the test ends, however it ends, so one failure does not leave a node down.
class Cleanup {
 public:
  explicit Cleanup(std::function<void()> undo) : undo_(std::move(undo)) {}
  ~Cleanup() {
    if (undo_) undo_();
  }
  void Dismiss() { undo_ = nullptr; }

 private:
  std::function<void()> undo_;
};

TEST_F(FailoverPgTest, StoppedReplicaIsSkippedWithoutErrorsAndUsedAgainAfterRestart) {
  Loader loader(Options(), kStatements);
  loader.Start();
  ASSERT_TRUE(WaitFor([&] { return BothUp(loader); }));

  // Steady traffic from several threads, so loads are in flight when the replica goes away.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::mutex errors_mu;
  std::vector<std::string> errors;
  std::vector<std::thread> traffic;
  for (int t = 0; t < 4; ++t) {
    traffic.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        LoadOutcome outcome = LoadSync(loader, 0, std::to_string(1 + (t * 1000 + i) % 10000));
        if (outcome.kind == Kind::kValue) {
          ok.fetch_add(1);
        } else {
          // With what the loader thought of each replica just after, to tell a failure of the
          // stopped replica from one of the healthy replica marked down under load.
          std::string seen;
          for (const ReplicaStatus& status : loader.Status()) {
            seen += " " + status.name + (status.up ? " up" : " down") +
                    (status.lagging ? " lagging" : "");
          }
          std::lock_guard lock(errors_mu);
          errors.push_back(outcome.replica + ": " + outcome.data + " (then:" + seen + ")");
        }
      }
    });
  }
  Cleanup join_traffic([&] {
    stop.store(true);
    for (std::thread& thread : traffic) thread.join();
  });
  ASSERT_TRUE(WaitFor([&] { return ok.load() > 50; }));

  Cleanup restart([&] { RunLocal(env_, "start-node", "replica1"); });
  RunLocal(env_, "stop-node", "replica1");
  ASSERT_TRUE(WaitFor([&] { return !loader.Status()[0].up; }));
  const int ok_after_stop = ok.load();
  ASSERT_TRUE(WaitFor([&] { return ok.load() > ok_after_stop + 200; }));
  for (int i = 0; i < 20; ++i) {
    LoadOutcome outcome = LoadSync(loader, 0, "11");
    EXPECT_EQ(outcome.kind, Kind::kValue) << outcome.data;
    EXPECT_EQ(outcome.replica, "replica1");
  }
  EXPECT_TRUE(loader.Ready());  // one replica of the pool is enough

  RunLocal(env_, "start-node", "replica1");
  restart.Dismiss();
  ASSERT_TRUE(WaitFor([&] { return loader.Status()[0].up; }));
  EXPECT_TRUE(EventuallyServedBy(loader, "replica0"));
  const int ok_after_start = ok.load();
  ASSERT_TRUE(WaitFor([&] { return ok.load() > ok_after_start + 50; }));

  stop.store(true);
  for (std::thread& thread : traffic) thread.join();
  join_traffic.Dismiss();
  std::lock_guard lock(errors_mu);
  std::string listed;
  for (size_t i = 0; i < errors.size() && i < 5; ++i) listed += "\n  " + errors[i];
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed loads:" << listed;
}

TEST_F(FailoverPgTest, FrozenReplicaIsCutOffByTheDeadlineAndLoadsMoveOn) {
  // SIGSTOP: the replica's sockets stay open but nothing answers, so its own statement_timeout
  // cannot fire; the loader's watchdog must turn the silence into a broken connection.
  LoaderOptions options = Options();
  options.statement_timeout_ms = 200;
  Loader loader(options, kStatements);
  loader.Start();
  ASSERT_TRUE(WaitFor([&] { return BothUp(loader); }));
  for (int i = 0; i < 8; ++i) ASSERT_EQ(LoadSync(loader, 0, "3").kind, Kind::kValue);

  Cleanup resume([&] { RunLocal(env_, "resume-node", "replica1"); });
  RunLocal(env_, "pause-node", "replica1");
  // Every load succeeds: one sent to the frozen replica waits out the deadline, then is retried.
  for (int i = 0; i < 8; ++i) {
    LoadOutcome outcome = LoadSync(loader, 0, std::to_string(20 + i));
    EXPECT_EQ(outcome.kind, Kind::kValue) << outcome.replica << ": " << outcome.data;
    EXPECT_EQ(outcome.replica, "replica1");
  }
  ASSERT_TRUE(WaitFor([&] { return !loader.Status()[0].up; }));

  RunLocal(env_, "resume-node", "replica1");
  resume.Dismiss();
  ASSERT_TRUE(WaitFor([&] { return loader.Status()[0].up; }));
  EXPECT_TRUE(EventuallyServedBy(loader, "replica0"));
}

TEST_F(FailoverPgTest, LaggingReplicaIsSkippedUntilItCatchesUp) {
  LoaderOptions options = Options();
  options.max_replica_lag_ms = 300;
  Loader loader(options, kStatements);
  loader.Start();
  ASSERT_TRUE(WaitFor([&] { return BothUp(loader); }));

  Cleanup resume([&] { RunSql(env_.replicas[0], "SELECT pg_wal_replay_resume()"); });
  RunSql(env_.replicas[0], "SELECT pg_wal_replay_pause()");
  ASSERT_TRUE(WaitFor([&] {
    return RunSql(env_.replicas[0], "SELECT pg_get_wal_replay_pause_state()") == "paused";
  }));
  // A write that changes nothing but still ships a commit the paused replica cannot replay.
  RunSql(env_.primary, "UPDATE users SET name = name WHERE id = 9998");

  ASSERT_TRUE(WaitFor([&] { return loader.Status()[0].lagging; }));
  ReplicaStatus lagging = loader.Status()[0];
  EXPECT_TRUE(lagging.up);
  EXPECT_GT(lagging.lag_seconds, 0.3);
  EXPECT_FALSE(loader.Status()[1].lagging);
  EXPECT_TRUE(loader.Ready());
  for (int i = 0; i < 20; ++i) {
    LoadOutcome outcome = LoadSync(loader, 0, std::to_string(100 + i));
    EXPECT_EQ(outcome.kind, Kind::kValue) << outcome.data;
    EXPECT_EQ(outcome.replica, "replica1");
  }

  RunSql(env_.replicas[0], "SELECT pg_wal_replay_resume()");
  resume.Dismiss();
  ASSERT_TRUE(WaitFor([&] { return !loader.Status()[0].lagging; }));
  EXPECT_LT(loader.Status()[0].lag_seconds, 0.3);
  EXPECT_TRUE(EventuallyServedBy(loader, "replica0"));
}

TEST_F(FailoverPgTest, ListenerReportsAPrimaryRestartAndListensAgain) {
  std::mutex mu;
  std::vector<std::string> payloads;
  std::atomic<int> connects{0}, disconnects{0};
  Listener listener(
      env_.primary, "corral_invalidate",
      [&](std::string_view payload) {
        std::lock_guard lock(mu);
        payloads.emplace_back(payload);
      },
      [&] { disconnects.fetch_add(1); }, [&] { connects.fetch_add(1); });
  auto received = [&](const std::string& payload) {
    std::lock_guard lock(mu);
    return std::find(payloads.begin(), payloads.end(), payload) != payloads.end();
  };
  listener.Start();
  ASSERT_TRUE(WaitFor([&] { return listener.connected(); }));
  RunSql(env_.primary, "UPDATE users SET name = name WHERE id = 9997");
  ASSERT_TRUE(WaitFor([&] { return received("user:9997"); }));

  Cleanup restart([&] { RunLocal(env_, "start-node", "primary"); });
  RunLocal(env_, "stop-node", "primary");
  ASSERT_TRUE(WaitFor([&] { return disconnects.load() == 1; }));
  EXPECT_FALSE(listener.connected());
  RunLocal(env_, "start-node", "primary");
  restart.Dismiss();
  ASSERT_TRUE(WaitFor([&] { return connects.load() == 2 && listener.connected(); }));
  EXPECT_EQ(disconnects.load(), 1);  // once per loss, however many reconnect attempts failed

  RunSql(env_.primary, "UPDATE users SET name = name WHERE id = 9996");
  EXPECT_TRUE(WaitFor([&] { return received("user:9996"); }));
  listener.Stop();
  EXPECT_EQ(disconnects.load(), 1);  // Stop() is not a loss
}

}  // namespace
}  // namespace corral::pg

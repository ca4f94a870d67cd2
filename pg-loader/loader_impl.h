// The Loader's insides, shared by the files that implement it, one idea each: loader.cc (building
// and the public calls), dispatch.cc (routing with panic mode), failover.cc (a lost connection),
// batch_runner.cc (the workers) and health_loop.cc (the health checkers). Private to pg-loader/.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pg-loader/loader.h"
#include "pg-loader/replay_lag.h"
#include "pg-loader/replica.h"
#include "pg-loader/replier.h"
#include "pg-loader/session.h"
#include "pg-loader/watchdog.h"

namespace corral::pg {

inline constexpr size_t kNone = std::numeric_limits<size_t>::max();
inline constexpr int64_t kReconnectFirstMs = 100;
inline constexpr int64_t kReconnectMaxMs = 2000;
// A health check gets at least this long; loads and checks get this much extra past their
// statement timeout before the watchdog cuts the socket of a server that no longer answers.
inline constexpr int64_t kMinHealthTimeoutMs = 1000;
inline constexpr int64_t kMinWatchdogGraceMs = 1000;
// A lag reading above the bound is confirmed by a second one this soon after (at most), because
// receive != replay for an instant after every write makes the formula jump on an idle replica.
inline constexpr int64_t kLagConfirmMs = 100;
// Checks asked for (RequestCheck: a fill or a read is waiting for a replica to replay an
// invalidation) come at most this often per server: every such read asks.
inline constexpr int64_t kMinRecheckMs = 10;

inline LoadOutcome Error(std::string reason, std::string replica = {}) {
  LoadOutcome outcome;
  outcome.kind = LoadOutcome::Kind::kError;
  outcome.data = std::move(reason);
  outcome.replica = std::move(replica);
  return outcome;
}

struct Loader::Impl {
  struct Pool {
    std::string name;
    std::vector<size_t> members;  // node indices
    Routing routing = Routing::kRoundRobin;
    std::atomic<uint64_t> ticket{0};
  };
  // A database server: a replica, or the primary (last node, only with fallback_to_primary).
  struct Node {
    Node(std::string name, std::string conninfo_in, size_t max_queued, int64_t max_lag_ms)
        : state(std::move(name), max_queued, max_lag_ms), conninfo(std::move(conninfo_in)) {}
    ReplicaState state;
    std::string conninfo;
    int workers = 0;
    std::vector<std::thread> threads;
  };
  enum class Phase { kCreated, kRunning, kStopping, kStopped };

  LoaderOptions options;
  std::vector<Statement> statements;
  std::vector<size_t> statement_pool;  // statement index → pool index
  std::vector<BatchRule> batch_rules;  // statement index → how its loads are batched
  std::vector<std::unique_ptr<Pool>> pools;
  std::vector<std::unique_ptr<Node>> nodes;
  size_t primary = kNone;        // node index of the primary, or kNone without fallback
  std::string primary_conninfo;  // for CurrentPosition, with or without fallback

  std::mutex phase_mu;
  std::atomic<Phase> phase{Phase::kCreated};
  Replier replier;
  Watchdog watchdog;

  // loader.cc: checks options and statements (throws std::invalid_argument), then builds nodes,
  // pools and batch rules from them.
  void Validate();
  void Build();

  // dispatch.cc. A usable server of `statement`'s pool other than `exclude` (the primary as a
  // fallback; in panic mode any server of the pool), or kNone with *why saying what to answer.
  // `min_position` > 0 prefers servers known to have replayed it (Loader::Load).
  size_t PickTarget(size_t statement, size_t exclude, uint64_t min_position, std::string* why);
  // Sends `job` to a usable server of its pool other than `exclude`. On success `job` is moved
  // from; else it is left intact and *why says what to answer.
  bool TryDispatch(Job& job, size_t exclude, std::string* why);
  // Answers `job` with `outcome`, inline when already on a loader thread, else via the replier.
  void Finish(Job& job, LoadOutcome outcome, bool on_loader_thread);

  // failover.cc. A call on `node` lost its connection: mark the node down, move its queue, and
  // send `jobs` (one load, or one batch of a statement) together to one other server; loads
  // already retried once are answered with the error instead.
  void HandleLost(size_t node, std::vector<Job> jobs, const std::string& reason);
  void RerouteQueue(size_t node);

  // batch_runner.cc. A worker: pops batches of its node's queue and runs them on its own session.
  void WorkerLoop(size_t node);
  // Runs one popped batch (possibly of one load) on `session` and answers every load in it.
  void RunBatch(size_t node, Session& session, std::vector<Job> jobs);

  // position.cc. Answers CurrentPosition() requests, batched, on the primary's connection.
  void PositionLoop();
  // The newest position any server has reported (when the primary cannot be asked).
  uint64_t NewestKnownPosition() const;
  struct PositionRequests {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::function<void(uint64_t)>> waiting;
    bool closed = false;
    std::thread thread;
  } positions;
  // The primary's position over time (PositionLoop samples it every health-check interval):
  // the health loops measure each replica's replay against it. Built in Build().
  std::unique_ptr<PrimaryPositions> primary_positions;

  // The highest position ReplayedEverywhere() has returned, which a replica returning from down
  // or lagging catches up to. Under `mu`, so that no call forgets markers past a replica whose
  // return it did not see, and no return misses a call's position.
  struct ForgottenMarkers {
    std::mutex mu;
    uint64_t upto = 0;
  };
  mutable ForgottenMarkers forgotten;

  // health_loop.cc. A node's health checker: checks, marks up or down, and waits.
  void HealthLoop(size_t node);
  HealthResult CheckOnce(Session& session, size_t node);

  int64_t HealthTimeoutMs() const {
    return std::max(options.statement_timeout_ms, kMinHealthTimeoutMs);
  }
  // Arms the watchdog on `fd` for a call bounded by `timeout_ms` (plus grace); 0 (no timeout)
  // arms nothing. Returns what Unwatch takes.
  uint64_t Watch(int fd, int64_t timeout_ms) {
    if (timeout_ms <= 0) return 0;
    return watchdog.Arm(
        fd, Watchdog::Clock::now() +
                std::chrono::milliseconds(timeout_ms + std::max(timeout_ms, kMinWatchdogGraceMs)));
  }
  // Stops watching; true if the deadline had fired (the socket is cut).
  bool Unwatch(uint64_t watch) { return watch != 0 && watchdog.Disarm(watch); }
};

}  // namespace corral::pg

// The loader's threads and routing: per-server workers that own one connection each (and run
// batches), a health checker per server, the retry after a broken connection, and a replier thread
// that answers rejected loads off the caller's thread.
#include "pg-loader/loader.h"
#include "pg-loader/replay_lag.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>
#include <utility>

#include "pg-loader/batch.h"
#include "pg-loader/conninfo.h"
#include "pg-loader/replica.h"
#include "pg-loader/routing.h"
#include "pg-loader/session.h"
#include "pg-loader/watchdog.h"

namespace corral::pg {
namespace {

using Kind = LoadOutcome::Kind;
using std::chrono::milliseconds;

constexpr size_t kNone = std::numeric_limits<size_t>::max();
constexpr char kDefaultPool[] = "default";
constexpr int64_t kReconnectFirstMs = 100;
constexpr int64_t kReconnectMaxMs = 2000;
// A health check gets at least this long; loads and checks get this much extra past their
// statement timeout before the watchdog cuts the socket of a server that no longer answers.
constexpr int64_t kMinHealthTimeoutMs = 1000;
constexpr int64_t kMinWatchdogGraceMs = 1000;
// A lag reading above the bound is confirmed by a second one this soon after (at most), because
// receive != replay for an instant after every write makes the formula jump on an idle replica.
constexpr int64_t kLagConfirmMs = 100;

LoadOutcome Error(std::string reason, std::string replica = {}) {
  LoadOutcome outcome;
  outcome.kind = Kind::kError;
  outcome.data = std::move(reason);
  outcome.replica = std::move(replica);
  return outcome;
}

// Answers rejected loads on its own thread, so a caller's callback never runs inside Load().
class Replier {
 public:
  void Start() {
    std::lock_guard lock(mu_);
    running_ = true;
    thread_ = std::thread([this] { Run(); });
  }

  // Runs everything still posted, then joins. Later Post()s run inline.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      if (!running_) return;
      running_ = false;
    }
    cv_.notify_all();
    thread_.join();
  }

  void Post(LoadCallback done, LoadOutcome outcome) {
    {
      std::lock_guard lock(mu_);
      if (running_) {
        queue_.emplace_back(std::move(done), std::move(outcome));
        cv_.notify_one();
        return;
      }
    }
    done(std::move(outcome));
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return !running_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopped and drained
      auto [done, outcome] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      done(std::move(outcome));
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<LoadCallback, LoadOutcome>> queue_;
  bool running_ = false;
  std::thread thread_;
};

}  // namespace

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
  size_t primary = kNone;  // node index of the primary, or kNone without fallback

  std::mutex phase_mu;
  std::atomic<Phase> phase{Phase::kCreated};
  Replier replier;
  Watchdog watchdog;

  void Validate();
  void Build();

  // A usable server of `statement`'s pool other than `exclude` (the primary as a fallback), or
  // kNone with *why saying what to answer.
  size_t PickTarget(size_t statement, size_t exclude, std::string* why);
  // Sends `job` to a usable server of its pool other than `exclude`. On success `job` is moved
  // from; else it is left intact and *why says what to answer.
  bool TryDispatch(Job& job, size_t exclude, std::string* why);
  // Answers `job` with `outcome`, inline when already on a loader thread, else via the replier.
  void Finish(Job& job, LoadOutcome outcome, bool on_loader_thread);
  // A call on `node` lost its connection: mark the node down, move its queue, and send `jobs` (one
  // load, or one batch of a statement) together to one other server; loads already retried once
  // are answered with the error instead.
  void HandleLost(size_t node, std::vector<Job> jobs, const std::string& reason);
  void RerouteQueue(size_t node);
  // Runs one popped batch (possibly of one load) on `session` and answers every load in it.
  void RunBatch(size_t node, Session& session, std::vector<Job> jobs);

  void WorkerLoop(size_t node);
  void HealthLoop(size_t node);
  HealthResult CheckOnce(Session& session, size_t node);
  int64_t HealthTimeoutMs() const {
    return std::max(options.statement_timeout_ms, kMinHealthTimeoutMs);
  }
  static Watchdog::Clock::time_point Deadline(int64_t timeout_ms) {
    return Watchdog::Clock::now() +
           milliseconds(timeout_ms + std::max(timeout_ms, kMinWatchdogGraceMs));
  }
};

void Loader::Impl::Validate() {
  auto fail = [](const std::string& what) { throw std::invalid_argument("pg loader: " + what); };
  if (options.statement_timeout_ms <= 0) fail("statement_timeout_ms must be positive");
  if (options.max_replica_lag_ms <= 0) fail("max_replica_lag_ms must be positive");
  if (options.health_check_interval_ms <= 0) fail("health_check_interval_ms must be positive");
  if (options.connect_timeout_ms <= 0) fail("connect_timeout_ms must be positive");
  if (options.max_queued_per_replica == 0) fail("max_queued_per_replica must be positive");
  if (options.fallback_to_primary) {
    if (options.primary.empty()) fail("fallback_to_primary needs a primary");
    if (options.primary_connections <= 0) fail("primary_connections must be positive");
  }
  if (options.pools.empty()) {
    PoolOptions all;
    all.name = kDefaultPool;
    options.pools.push_back(all);
  }
  std::unordered_set<std::string> names;
  for (PoolOptions& pool : options.pools) {
    if (pool.name.empty()) fail("a pool has no name");
    if (!names.insert(pool.name).second) fail("pool '" + pool.name + "' is defined twice");
    if (pool.connections <= 0) fail("pool '" + pool.name + "': connections must be positive");
    if (pool.replicas.empty()) {
      for (size_t i = 0; i < options.replicas.size(); ++i) pool.replicas.push_back(i);
    }
    std::unordered_set<size_t> seen;
    for (size_t index : pool.replicas) {
      if (index >= options.replicas.size()) {
        fail("pool '" + pool.name + "': replica index " + std::to_string(index) +
             " is out of range (" + std::to_string(options.replicas.size()) + " replicas)");
      }
      if (!seen.insert(index).second) {
        fail("pool '" + pool.name + "': replica " + std::to_string(index) + " listed twice");
      }
    }
    if (pool.replicas.empty() && !options.fallback_to_primary) {
      fail("pool '" + pool.name + "' has no replicas and fallback_to_primary is off");
    }
  }
  for (size_t i = 0; i < options.replicas.size(); ++i) {
    if (options.replicas[i].empty()) fail("replica " + std::to_string(i) + " is empty");
  }
  for (Statement& statement : statements) {
    if (statement.pool.empty()) statement.pool = kDefaultPool;
    if (statement.sql.empty()) fail("statement '" + statement.name + "' has no sql");
    if (!statement.batch_sql.empty()) {
      if (statement.batch_max <= 0) {
        fail("statement '" + statement.name + "': batch_max must be positive");
      }
      if (statement.batch_window_us < 0) {
        fail("statement '" + statement.name + "': batch_window_us must not be negative");
      }
    }
    if (!names.contains(statement.pool)) {
      fail("statement '" + statement.name + "' names unknown pool '" + statement.pool + "'");
    }
  }
}

void Loader::Impl::Build() {
  const ConnParams defaults = {
      // libpq takes whole seconds; at least 1 (libpq itself raises 1 to 2).
      {"connect_timeout",
       std::to_string(std::max<int64_t>(1, (options.connect_timeout_ms + 999) / 1000))},
      {"keepalives", "1"},
      {"keepalives_idle", "10"},
      {"keepalives_interval", "5"},
      {"keepalives_count", "3"},
      {"application_name", "corral"},
  };
  for (size_t i = 0; i < options.replicas.size(); ++i) {
    nodes.push_back(std::make_unique<Node>(
        "replica" + std::to_string(i), WithDefaultParams(options.replicas[i], defaults),
        options.max_queued_per_replica, options.max_replica_lag_ms));
  }
  if (options.fallback_to_primary) {
    primary = nodes.size();
    nodes.push_back(std::make_unique<Node>("primary", WithDefaultParams(options.primary, defaults),
                                           options.max_queued_per_replica,
                                           // The primary has no replay lag to speak of.
                                           std::numeric_limits<int64_t>::max() / 2));
    nodes.back()->workers = options.primary_connections;
  }
  for (const PoolOptions& options_pool : options.pools) {
    auto pool = std::make_unique<Pool>();
    pool->name = options_pool.name;
    pool->members = options_pool.replicas;
    pool->routing = options_pool.routing;
    // A replica shared by several pools gets the largest of their connection counts.
    for (size_t index : pool->members) {
      nodes[index]->workers = std::max(nodes[index]->workers, options_pool.connections);
    }
    pools.push_back(std::move(pool));
  }
  for (const Statement& statement : statements) {
    for (size_t p = 0; p < pools.size(); ++p) {
      if (pools[p]->name == statement.pool) statement_pool.push_back(p);
    }
    BatchRule rule;
    if (!statement.batch_sql.empty()) {
      rule.max = static_cast<size_t>(statement.batch_max);
      rule.window = std::chrono::microseconds(statement.batch_window_us);
    }
    batch_rules.push_back(rule);
  }
}

size_t Loader::Impl::PickTarget(size_t statement, size_t exclude, std::string* why) {
  if (phase.load(std::memory_order_acquire) == Phase::kStopping) {
    *why = "shutting down";
    return kNone;
  }
  Pool& pool = *pools[statement_pool[statement]];
  // Pools are small (a handful of replicas); a fixed buffer keeps Load() allocation-free here.
  constexpr size_t kInline = 16;
  Candidate inline_candidates[kInline];
  std::vector<Candidate> heap_candidates;
  std::span<Candidate> candidates;
  if (pool.members.size() <= kInline) {
    candidates = std::span<Candidate>(inline_candidates, pool.members.size());
  } else {
    heap_candidates.resize(pool.members.size());
    candidates = heap_candidates;
  }
  for (size_t i = 0; i < pool.members.size(); ++i) {
    const size_t node = pool.members[i];
    candidates[i].usable = node != exclude && nodes[node]->state.Usable();
    candidates[i].load = pool.routing == Routing::kLeastLoaded ? nodes[node]->state.Load() : 0;
  }
  const uint64_t ticket = pool.ticket.fetch_add(1, std::memory_order_relaxed);
  size_t target = kNone;
  if (auto pick = PickReplica(candidates, pool.routing, ticket)) {
    target = pool.members[*pick];
  } else if (primary != kNone && primary != exclude && nodes[primary]->state.Usable()) {
    target = primary;
  } else {
    // Panic mode (as load balancers do when no host looks healthy): every replica of the pool is
    // marked down or lagging. A health check can fail for reasons other than a dead server (a
    // starved checker, one slow answer), and failing every load on that account turns a blip
    // into an outage. So try the replicas anyway: a dead one refuses the connection at once and
    // the load is retried once elsewhere; a lagging one still answers, fresher than any stale
    // value. /readyz keeps reporting the pool as not ready.
    for (size_t i = 0; i < pool.members.size(); ++i) {
      candidates[i].usable = pool.members[i] != exclude;
    }
    if (auto pick = PickReplica(candidates, pool.routing, ticket)) target = pool.members[*pick];
  }
  if (target == kNone) *why = "no healthy replica for pool " + pool.name;
  return target;
}

bool Loader::Impl::TryDispatch(Job& job, size_t exclude, std::string* why) {
  const size_t target = PickTarget(job.statement, exclude, why);
  if (target == kNone) return false;
  ReplicaState& state = nodes[target]->state;
  switch (state.Push(job)) {
    case ReplicaState::PushResult::kOk:
      return true;
    case ReplicaState::PushResult::kFull:
      *why = "queue full for " + state.name();
      return false;
    case ReplicaState::PushResult::kClosed:
      *why = "shutting down";
      return false;
  }
  return false;
}

void Loader::Impl::Finish(Job& job, LoadOutcome outcome, bool on_loader_thread) {
  LoadCallback done = std::move(job.done);
  if (on_loader_thread) {
    done(std::move(outcome));
  } else {
    replier.Post(std::move(done), std::move(outcome));
  }
}

void Loader::Impl::RerouteQueue(size_t node) {
  for (Job& job : nodes[node]->state.TakeAll()) {
    std::string why;
    if (!TryDispatch(job, node, &why)) Finish(job, Error(std::move(why)), true);
  }
}

void Loader::Impl::HandleLost(size_t node, std::vector<Job> jobs, const std::string& reason) {
  ReplicaState& state = nodes[node]->state;
  if (state.MarkDown()) {
    state.RequestCheck();  // the health checker starts probing for its return now
    RerouteQueue(node);
  }
  const std::string lost = "connection to " + state.name() + " lost: " + reason;
  // One target for the whole batch, so it is batched again there rather than split up.
  std::string why;
  const size_t target = PickTarget(jobs.front().statement, node, &why);
  for (Job& job : jobs) {
    if (job.retried) {
      Finish(job, Error(lost, state.name()), true);
      continue;
    }
    job.retried = true;
    if (target == kNone) {
      Finish(job, Error(lost + "; " + why, state.name()), true);
      continue;
    }
    ReplicaState& retry = nodes[target]->state;
    switch (retry.Push(job)) {
      case ReplicaState::PushResult::kOk:
        break;
      case ReplicaState::PushResult::kFull:
        Finish(job, Error(lost + "; queue full for " + retry.name(), state.name()), true);
        break;
      case ReplicaState::PushResult::kClosed:
        Finish(job, Error(lost + "; shutting down", state.name()), true);
        break;
    }
  }
}

void Loader::Impl::WorkerLoop(size_t index) {
  Node& node = *nodes[index];
  Session session(node.conninfo);
  uint64_t session_epoch = 0;
  while (true) {
    std::vector<Job> jobs = node.state.PopBatch(batch_rules);
    if (jobs.empty()) break;  // closed
    // A connection opened before the server was last marked down is likely dead too (a restart
    // kills them all); replacing it up front saves a doomed round trip and a needless retry.
    if (session.is_open() && session_epoch != node.state.epoch()) session.Close();
    if (!session.is_open()) {
      const uint64_t epoch = node.state.epoch();
      std::string error = session.Connect();
      if (!error.empty()) {
        node.state.FinishCall();  // a failed connection attempt; no query ran
        HandleLost(index, std::move(jobs), error);
        continue;
      }
      session_epoch = epoch;
    }
    RunBatch(index, session, std::move(jobs));
  }
}

void Loader::Impl::RunBatch(size_t index, Session& session, std::vector<Job> jobs) {
  Node& node = *nodes[index];
  const size_t statement_index = jobs.front().statement;
  const Statement& statement = statements[statement_index];
  const BatchPlan plan = PlanBatch(jobs);
  const int64_t timeout_ms = options.statement_timeout_ms;
  const uint64_t watch = watchdog.Arm(session.socket(), Deadline(timeout_ms));
  SessionBatchResult result;
  if (plan.ids.size() == 1) {
    // One distinct id (a lone load, or duplicates of one): the single query answers it.
    SessionResult single = session.Load(statement_index, statement.sql, plan.ids.front(),
                                        timeout_ms, options.prepared_statements);
    result.micros = single.micros;
    if (single.connection_lost) {
      result.connection_lost = true;
      result.lost_reason = std::move(single.data);
    } else {
      result.answers.push_back(KeyAnswer{single.kind, std::move(single.data)});
    }
  } else {
    result = session.LoadBatch(statement_index, statement.batch_sql, plan.ids, timeout_ms,
                               options.prepared_statements);
  }
  bool cut = watchdog.Disarm(watch);
  if (result.data_error && !cut) {
    // One bad id (say "abc" for a bigint column) fails the whole batch with a data exception.
    // Ask each id alone so that only the bad one fails: the others must not inherit its error
    // (and its hold-off). Statement-level errors and timeouts are not re-run: every single query
    // would fail the same way, and under overload that would multiply the load.
    for (size_t i = 0; i < plan.ids.size() && !result.connection_lost && !cut; ++i) {
      const uint64_t one = watchdog.Arm(session.socket(), Deadline(timeout_ms));
      SessionResult single = session.Load(statement_index, statement.sql, plan.ids[i], timeout_ms,
                                          options.prepared_statements);
      cut = watchdog.Disarm(one);
      result.micros += single.micros;
      if (single.connection_lost) {
        result.connection_lost = true;
        result.lost_reason = std::move(single.data);
      } else {
        result.answers[i] = KeyAnswer{single.kind, std::move(single.data)};
      }
    }
  }
  node.state.FinishCall(jobs.size());
  if (result.connection_lost || cut) {
    session.Close();
    HandleLost(index, std::move(jobs), cut ? "no answer within the deadline" : result.lost_reason);
    return;
  }
  std::vector<LoadOutcome> outcomes =
      FanOut(plan, result.answers, node.state.name(), result.micros);
  for (size_t i = 0; i < jobs.size(); ++i) Finish(jobs[i], std::move(outcomes[i]), true);
}

HealthResult Loader::Impl::CheckOnce(Session& session, size_t index) {
  HealthResult health;
  if (!session.is_open()) {
    health.error = session.Connect();
    if (!health.error.empty()) return health;
  }
  const int64_t timeout_ms = HealthTimeoutMs();
  const uint64_t watch = watchdog.Arm(session.socket(), Deadline(timeout_ms));
  health = session.CheckHealth(timeout_ms);
  if (watchdog.Disarm(watch)) {
    health.ok = false;
    health.error = "no answer within the deadline";
  }
  if (!health.ok) session.Close();
  return health;
}

void Loader::Impl::HealthLoop(size_t index) {
  using SteadyClock = std::chrono::steady_clock;
  Node& node = *nodes[index];
  Session session(node.conninfo);
  Backoff backoff(kReconnectFirstMs, kReconnectMaxMs);
  const int64_t interval_ms = options.health_check_interval_ms;
  ReplayLagTracker lag_tracker;
  struct Checked {
    HealthResult health;
    double lag_seconds = 0;
  };
  auto check = [&] {
    Checked c{CheckOnce(session, index)};
    if (c.health.ok) {
      c.lag_seconds = lag_tracker.Observe(SteadyClock::now(), c.health.in_recovery,
                                          c.health.receive_lsn, c.health.replay_lsn);
    }
    return c;
  };
  while (true) {
    Checked checked = check();
    if (checked.health.ok && node.state.LagTooHigh(checked.lag_seconds) &&
        !node.state.Snapshot().lagging) {
      const int64_t confirm_ms = std::min(kLagConfirmMs, interval_ms / 2);
      if (node.state.WaitForCheck(milliseconds(confirm_ms)) == ReplicaState::Wake::kClosed) break;
      checked = check();
    }
    const HealthResult& health = checked.health;
    int64_t delay_ms;
    if (health.ok) {
      node.state.MarkUp(checked.lag_seconds);
      backoff.Reset();
      delay_ms = interval_ms;
    } else {
      if (node.state.MarkDown()) RerouteQueue(index);
      delay_ms = std::min(backoff.NextMs(), interval_ms * 2);
    }
    if (node.state.WaitForCheck(milliseconds(delay_ms)) == ReplicaState::Wake::kClosed) break;
  }
}

Loader::Loader(LoaderOptions options, std::vector<Statement> statements)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->statements = std::move(statements);
  impl_->Validate();
  impl_->Build();
}

Loader::~Loader() { Stop(); }

void Loader::Start() {
  std::lock_guard lock(impl_->phase_mu);
  if (impl_->phase.load() != Impl::Phase::kCreated) return;
  impl_->replier.Start();
  impl_->watchdog.Start();
  for (size_t i = 0; i < impl_->nodes.size(); ++i) {
    Impl::Node& node = *impl_->nodes[i];
    node.threads.emplace_back([this, i] { impl_->HealthLoop(i); });
    for (int w = 0; w < node.workers; ++w) {
      node.threads.emplace_back([this, i] { impl_->WorkerLoop(i); });
    }
  }
  impl_->phase.store(Impl::Phase::kRunning);
}

void Loader::Stop() {
  std::lock_guard lock(impl_->phase_mu);
  if (impl_->phase.load() == Impl::Phase::kStopped) return;
  impl_->phase.store(Impl::Phase::kStopping);
  for (auto& node : impl_->nodes) node->state.Close();
  for (auto& node : impl_->nodes) {
    for (std::thread& thread : node->threads) thread.join();
    node->threads.clear();
  }
  // Still on the replier while it runs (before Start() it never did, and Post() runs inline).
  for (auto& node : impl_->nodes) {
    for (Job& job : node->state.TakeAll()) impl_->Finish(job, Error("shutting down"), false);
  }
  impl_->watchdog.Stop();
  impl_->replier.Stop();
  impl_->phase.store(Impl::Phase::kStopped);
}

void Loader::Load(size_t statement, std::string id, LoadCallback done) {
  Job job;
  job.statement = statement;
  job.id = std::move(id);
  job.done = std::move(done);
  switch (impl_->phase.load(std::memory_order_acquire)) {
    case Impl::Phase::kCreated:
      job.done(Error("loader not started"));
      return;
    case Impl::Phase::kStopped:
      job.done(Error("shutting down"));
      return;
    case Impl::Phase::kRunning:
    case Impl::Phase::kStopping:
      break;  // a closed queue or the replier answers "shutting down"
  }
  if (statement >= impl_->statements.size()) {
    impl_->Finish(job, Error("unknown statement " + std::to_string(statement)), false);
    return;
  }
  std::string why;
  if (!impl_->TryDispatch(job, kNone, &why)) impl_->Finish(job, Error(std::move(why)), false);
}

std::vector<ReplicaStatus> Loader::Status() const {
  std::vector<ReplicaStatus> status;
  status.reserve(impl_->nodes.size());
  for (const auto& node : impl_->nodes) status.push_back(node->state.Snapshot());
  return status;
}

bool Loader::Ready() const {
  const bool primary_ok =
      impl_->primary != kNone && impl_->nodes[impl_->primary]->state.ConfirmedUsable();
  for (const auto& pool : impl_->pools) {
    const bool ok = std::any_of(pool->members.begin(), pool->members.end(), [&](size_t node) {
      return impl_->nodes[node]->state.ConfirmedUsable();
    });
    if (!ok && !primary_ok) return false;
  }
  return true;
}

}  // namespace corral::pg

// The Loader's construction (options checked by options.h's Validate, then servers, pools and batch
// rules built) and its public calls: Start, Stop, Load, Status, Ready.
#include <stdexcept>

#include "pg-loader/conninfo.h"
#include "pg-loader/loader_impl.h"

namespace corral::pg {

void Loader::Impl::Validate() {
  auto fail = [](const options::OptionError& error) {
    throw std::invalid_argument("pg loader: " + error.path + ": " + error.problem);
  };
  if (auto error = pg::Validate(options, "")) fail(*error);
  for (const Statement& statement : statements) {
    if (auto error = pg::Validate(statement, options::JoinPath("", statement.name), options, "")) {
      fail(*error);
    }
  }
  AddDefaultPool(options);
  for (Statement& statement : statements) {
    if (statement.pool.empty()) statement.pool = kDefaultPool;
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
  primary_conninfo = WithDefaultParams(options.primary, defaults);
  // Long enough that a replica behind every kept sample is past max_replica_lag_ms.
  primary_positions = std::make_unique<PrimaryPositions>(std::chrono::milliseconds(
      2 * options.max_replica_lag_ms + 2 * options.health_check_interval_ms + 10'000));
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
  for (const auto& [name, options_pool] : options.pools) {
    auto pool = std::make_unique<Pool>();
    pool->name = name;
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
    if (!statement.batch_query.empty()) {
      rule.max = static_cast<size_t>(statement.batch_max);
      rule.window = std::chrono::microseconds(statement.batch_window_us);
    }
    batch_rules.push_back(rule);
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
  impl_->positions.thread = std::thread([this] { impl_->PositionLoop(); });
  impl_->phase.store(Impl::Phase::kRunning);
}

void Loader::Stop() {
  std::lock_guard lock(impl_->phase_mu);
  if (impl_->phase.load() == Impl::Phase::kStopped) return;
  impl_->phase.store(Impl::Phase::kStopping);
  for (auto& node : impl_->nodes) node->state.Close();
  {
    std::lock_guard positions_lock(impl_->positions.mu);
    impl_->positions.closed = true;
  }
  impl_->positions.cv.notify_all();
  // Nobody waits for a call still in the database now (the server has stopped serving): cut
  // them, so that a query stuck for its statement_timeout does not hold up the exit.
  impl_->watchdog.CutAll();
  if (impl_->positions.thread.joinable()) impl_->positions.thread.join();
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

void Loader::Load(size_t statement, std::string id, LoadCallback done, uint64_t min_position) {
  Job job;
  job.statement = statement;
  job.min_position = min_position;
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

void Loader::LoadMany(size_t statement, std::vector<Request> requests) {
  if (requests.size() == 1) {
    Request& one = requests.front();
    return Load(statement, std::move(one.id), std::move(one.done), one.min_position);
  }
  std::vector<Job> jobs(requests.size());
  uint64_t min_position = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    jobs[i].statement = statement;
    jobs[i].id = std::move(requests[i].id);
    jobs[i].done = std::move(requests[i].done);
    jobs[i].min_position = requests[i].min_position;
    min_position = std::max(min_position, requests[i].min_position);
  }
  std::string why;
  size_t pushed = 0;
  const Impl::Phase phase = impl_->phase.load(std::memory_order_acquire);
  if (phase == Impl::Phase::kCreated || phase == Impl::Phase::kStopped) {
    why = phase == Impl::Phase::kCreated ? "loader not started" : "shutting down";
    for (Job& job : jobs) job.done(Error(why));
    return;
  }
  if (statement >= impl_->statements.size()) {
    why = "unknown statement " + std::to_string(statement);
  } else if (const size_t target = impl_->PickTarget(statement, kNone, min_position, &why);
             target != kNone) {
    ReplicaState& state = impl_->nodes[target]->state;
    bool closed = false;
    pushed = state.PushAll(jobs, &closed);
    why = closed ? "shutting down" : "queue full for " + state.name();
  }
  for (size_t i = pushed; i < jobs.size(); ++i) impl_->Finish(jobs[i], Error(why), false);
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

void Loader::CurrentPosition(std::function<void(uint64_t)> done) {
  {
    std::lock_guard lock(impl_->positions.mu);
    if (!impl_->positions.closed && impl_->phase.load() == Impl::Phase::kRunning) {
      impl_->positions.waiting.push_back(std::move(done));
      impl_->positions.cv.notify_one();
      return;
    }
  }
  done(impl_->NewestKnownPosition());
}

bool Loader::CanRead(size_t statement, uint64_t position) const {
  if (statement >= impl_->statement_pool.size()) return false;
  if (impl_->primary != kNone && impl_->nodes[impl_->primary]->state.Usable()) return true;
  const Impl::Pool& pool = *impl_->pools[impl_->statement_pool[statement]];
  return std::any_of(pool.members.begin(), pool.members.end(), [&](size_t node) {
    const ReplicaState& state = impl_->nodes[node]->state;
    return state.Usable() && state.position() >= position;
  });
}

void Loader::RefreshPositions(size_t statement) {
  if (statement >= impl_->statement_pool.size()) return;
  for (size_t node : impl_->pools[impl_->statement_pool[statement]]->members) {
    impl_->nodes[node]->state.RequestCheck();
  }
}

uint64_t Loader::ReplayedEverywhere() const {
  uint64_t lowest = 0;
  bool any = false;
  std::lock_guard lock(impl_->forgotten.mu);
  for (size_t i = 0; i < impl_->nodes.size(); ++i) {
    if (i == impl_->primary) continue;
    const ReplicaState& state = impl_->nodes[i]->state;
    if (!state.HoldsMarkers()) continue;
    lowest = any ? std::min(lowest, state.position()) : state.position();
    any = true;
  }
  impl_->forgotten.upto = std::max(impl_->forgotten.upto, lowest);
  return lowest;
}

}  // namespace corral::pg

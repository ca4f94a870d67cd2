// Queue, health state and counters for one database server of the loader.
#include "pg-loader/replica.h"

#include <algorithm>
#include <utility>

namespace corral::pg {

ReplicaState::ReplicaState(std::string name, size_t max_queued, int64_t max_lag_ms)
    : name_(std::move(name)), max_queued_(max_queued), max_lag_ms_(max_lag_ms) {}

ReplicaState::PushResult ReplicaState::PushLocked(Job& job, bool* queued) {
  if (closed_) return PushResult::kClosed;
  // A worker gathering this statement takes the job at once: idle workers would otherwise each
  // start a batch of one while the gatherer waits in vain.
  for (Gatherer* gatherer : gatherers_) {
    if (gatherer->statement != job.statement || gatherer->batch->size() >= gatherer->max) {
      continue;
    }
    gatherer->batch->push_back(std::move(job));
    if (gatherer->batch->size() >= gatherer->max) gather_cv_.notify_all();
    return PushResult::kOk;
  }
  if (queue_.size() >= max_queued_) return PushResult::kFull;
  queue_.push_back(std::move(job));
  *queued = true;
  return PushResult::kOk;
}

ReplicaState::PushResult ReplicaState::Push(Job& job) {
  bool queued = false;
  PushResult result;
  {
    std::lock_guard lock(mu_);
    result = PushLocked(job, &queued);
  }
  if (queued) queue_cv_.notify_one();
  return result;
}

size_t ReplicaState::PushAll(std::span<Job> jobs, bool* closed) {
  bool queued = false;
  size_t pushed = 0;
  *closed = false;
  {
    std::lock_guard lock(mu_);
    for (; pushed < jobs.size(); ++pushed) {
      const PushResult result = PushLocked(jobs[pushed], &queued);
      if (result == PushResult::kOk) continue;
      *closed = result == PushResult::kClosed;
      break;
    }
  }
  // One worker pops them all (up to its batch's max); another may take what is left.
  if (queued) queue_cv_.notify_all();
  return pushed;
}

std::optional<Job> ReplicaState::Pop() {
  std::vector<Job> batch = PopBatch({});
  if (batch.empty()) return std::nullopt;
  return std::move(batch.front());
}

std::vector<Job> ReplicaState::PopBatch(std::span<const BatchRule> rules) {
  std::vector<Job> batch;
  std::unique_lock lock(mu_);
  queue_cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
  if (closed_) return batch;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  // Counted before the lock is released so Load() never sees the job in neither place.
  inflight_.fetch_add(1, std::memory_order_relaxed);
  const size_t statement = batch.front().statement;
  if (statement >= rules.size() || rules[statement].max <= 1) return batch;
  const BatchRule& rule = rules[statement];
  const auto popped_at = std::chrono::steady_clock::now();
  batch.reserve(std::min<size_t>(rule.max, 256));
  TakeQueuedLocked(&batch, rule.max);
  if (batch.size() >= rule.max || rule.window.count() <= 0) return batch;
  Gatherer self{statement, rule.max, &batch};
  gatherers_.push_back(&self);
  gather_cv_.wait_until(lock, popped_at + rule.window,
                        [&] { return closed_ || batch.size() >= rule.max; });
  gatherers_.erase(std::find(gatherers_.begin(), gatherers_.end(), &self));
  return batch;
}

void ReplicaState::TakeQueuedLocked(std::vector<Job>* batch, size_t max) {
  const size_t statement = batch->front().statement;
  // One pass that moves matching jobs out and closes the gaps, keeping the rest in order.
  size_t kept = 0;
  size_t i = 0;
  for (; i < queue_.size() && batch->size() < max; ++i) {
    if (queue_[i].statement == statement) {
      batch->push_back(std::move(queue_[i]));
    } else {
      if (kept != i) queue_[kept] = std::move(queue_[i]);
      ++kept;
    }
  }
  if (kept == i) return;  // nothing taken
  std::move(queue_.begin() + i, queue_.end(), queue_.begin() + kept);
  queue_.resize(queue_.size() - (i - kept));
}

size_t ReplicaState::HeldLocked() const {
  // A gathering batch's first job is the call in flight; the others still wait.
  size_t held = 0;
  for (const Gatherer* gatherer : gatherers_) held += gatherer->batch->size() - 1;
  return held;
}

std::vector<Job> ReplicaState::TakeAll() {
  std::lock_guard lock(mu_);
  std::vector<Job> jobs;
  jobs.reserve(queue_.size());
  for (Job& job : queue_) jobs.push_back(std::move(job));
  queue_.clear();
  return jobs;
}

void ReplicaState::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  queue_cv_.notify_all();
  gather_cv_.notify_all();
  health_cv_.notify_all();
}

bool ReplicaState::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

bool ReplicaState::Usable() const {
  std::lock_guard lock(mu_);
  return health_ != Health::kDown && !lagging_ && !catching_up_;
}

bool ReplicaState::ConfirmedUsable() const {
  std::lock_guard lock(mu_);
  return health_ == Health::kUp && !lagging_ && !catching_up_;
}

bool ReplicaState::HoldsMarkers() const {
  std::lock_guard lock(mu_);
  return health_ != Health::kDown && !lagging_;
}

int64_t ReplicaState::Load() const {
  size_t queued;
  {
    std::lock_guard lock(mu_);
    queued = queue_.size() + HeldLocked();
  }
  return static_cast<int64_t>(queued) + inflight_.load(std::memory_order_relaxed);
}

bool ReplicaState::MarkDown() {
  std::lock_guard lock(mu_);
  if (health_ == Health::kDown) return false;
  health_ = Health::kDown;
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

void ReplicaState::MarkUp(double lag_seconds, uint64_t catch_up_to) {
  std::lock_guard lock(mu_);
  // Unknown (never checked) is not a return: no marker can have been forgotten past it.
  const bool returning = health_ == Health::kDown || lagging_;
  health_ = Health::kUp;
  lag_seconds_ = lag_seconds;
  lagging_ = LagTooHigh(lag_seconds);
  if (lagging_) {
    catching_up_ = false;  // re-armed, with a newer target, when the lag falls again
  } else if (returning && catch_up_to > 0) {
    catching_up_ = true;
    catch_up_to_ = catch_up_to;
  }
  if (catching_up_ && position() >= catch_up_to_) catching_up_ = false;
}

bool ReplicaState::LagTooHigh(double lag_seconds) const {
  return lag_seconds * 1000.0 > static_cast<double>(max_lag_ms_);
}

Health ReplicaState::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

ReplicaState::Wake ReplicaState::WaitForCheck(std::chrono::milliseconds delay,
                                              std::chrono::milliseconds min_gap) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  health_cv_.wait_for(lock, delay, [&] { return closed_ || recheck_; });
  if (closed_) return Wake::kClosed;
  if (recheck_) {
    health_cv_.wait_until(lock, start + min_gap, [&] { return closed_; });
    if (closed_) return Wake::kClosed;
    recheck_ = false;
    return Wake::kRecheck;
  }
  return Wake::kTimeout;
}

void ReplicaState::RequestCheck() {
  {
    std::lock_guard lock(mu_);
    recheck_ = true;
  }
  health_cv_.notify_all();
}

ReplicaStatus ReplicaState::Snapshot() const {
  ReplicaStatus status;
  status.name = name_;
  {
    std::lock_guard lock(mu_);
    status.up = health_ == Health::kUp;
    status.lag_seconds = lag_seconds_;
    status.lagging = lagging_;
    status.catching_up = catching_up_;
    status.queued = queue_.size() + HeldLocked();
  }
  status.inflight = inflight_.load(std::memory_order_relaxed);
  status.loads = loads_.load(std::memory_order_relaxed);
  status.batches = batches_.load(std::memory_order_relaxed);
  status.batched_loads = batched_loads_.load(std::memory_order_relaxed);
  return status;
}

}  // namespace corral::pg

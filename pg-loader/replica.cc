// Queue, health state and counters for one database server of the loader.
#include "pg-loader/replica.h"

#include <utility>

namespace corral::pg {

ReplicaState::ReplicaState(std::string name, size_t max_queued, int64_t max_lag_ms)
    : name_(std::move(name)), max_queued_(max_queued), max_lag_ms_(max_lag_ms) {}

ReplicaState::PushResult ReplicaState::Push(Job& job) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return PushResult::kClosed;
    if (queue_.size() >= max_queued_) return PushResult::kFull;
    queue_.push_back(std::move(job));
  }
  queue_cv_.notify_one();
  return PushResult::kOk;
}

std::optional<Job> ReplicaState::Pop() {
  std::unique_lock lock(mu_);
  queue_cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
  if (closed_) return std::nullopt;
  Job job = std::move(queue_.front());
  queue_.pop_front();
  // Counted before the lock is released so Load() never sees the job in neither place.
  inflight_.fetch_add(1, std::memory_order_relaxed);
  return job;
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
  health_cv_.notify_all();
}

bool ReplicaState::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

bool ReplicaState::Usable() const {
  std::lock_guard lock(mu_);
  return health_ != Health::kDown && !lagging_;
}

bool ReplicaState::ConfirmedUsable() const {
  std::lock_guard lock(mu_);
  return health_ == Health::kUp && !lagging_;
}

int64_t ReplicaState::Load() const {
  size_t queued;
  {
    std::lock_guard lock(mu_);
    queued = queue_.size();
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

void ReplicaState::MarkUp(double lag_seconds) {
  std::lock_guard lock(mu_);
  health_ = Health::kUp;
  lag_seconds_ = lag_seconds;
  lagging_ = LagTooHigh(lag_seconds);
}

bool ReplicaState::LagTooHigh(double lag_seconds) const {
  return lag_seconds * 1000.0 > static_cast<double>(max_lag_ms_);
}

Health ReplicaState::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

ReplicaState::Wake ReplicaState::WaitForCheck(std::chrono::milliseconds delay) {
  std::unique_lock lock(mu_);
  health_cv_.wait_for(lock, delay, [&] { return closed_ || recheck_; });
  if (closed_) return Wake::kClosed;
  if (recheck_) {
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
    status.queued = queue_.size();
  }
  status.inflight = inflight_.load(std::memory_order_relaxed);
  status.loads = loads_.load(std::memory_order_relaxed);
  return status;
}

}  // namespace corral::pg

// See replier.h.
#include "pg-loader/replier.h"

namespace corral::pg {

void Replier::Start() {
  std::lock_guard lock(mu_);
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Replier::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    running_ = false;
  }
  cv_.notify_all();
  thread_.join();
}

void Replier::Post(LoadCallback done, LoadOutcome outcome) {
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

void Replier::Run() {
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

}  // namespace corral::pg

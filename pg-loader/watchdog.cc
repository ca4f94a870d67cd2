// Deadline watcher for blocking libpq calls: shutdown(2) on the socket once the deadline passes.
#include "pg-loader/watchdog.h"

#include <sys/socket.h>

#include <algorithm>

namespace corral::pg {

void Watchdog::Start() {
  std::lock_guard lock(mu_);
  if (running_) return;
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Watchdog::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    running_ = false;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t Watchdog::Arm(int fd, Clock::time_point deadline) {
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    entries_.emplace(id, Entry{fd, deadline});
  }
  cv_.notify_all();
  return id;
}

void Watchdog::CutAll() {
  std::lock_guard lock(mu_);
  for (const auto& [id, entry] : entries_) {
    if (entry.fd >= 0) ::shutdown(entry.fd, SHUT_RDWR);
  }
  entries_.clear();
}

bool Watchdog::Disarm(uint64_t id) {
  std::lock_guard lock(mu_);
  // Entries leave the map only here or when they fire, so a missing one has fired.
  return entries_.erase(id) == 0;
}

void Watchdog::Run() {
  std::unique_lock lock(mu_);
  while (running_) {
    auto earliest = Clock::time_point::max();
    const auto now = Clock::now();
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.deadline <= now) {
        // Under the lock, so Disarm() cannot return (and the owner close the fd) meanwhile.
        if (it->second.fd >= 0) ::shutdown(it->second.fd, SHUT_RDWR);
        it = entries_.erase(it);
      } else {
        earliest = std::min(earliest, it->second.deadline);
        ++it;
      }
    }
    if (earliest == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, earliest);
    }
  }
}

}  // namespace corral::pg

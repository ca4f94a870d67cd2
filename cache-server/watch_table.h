// WATCH (docs/protocol.md "Transactions"): which connections watch which keys, so that a change
// to a key marks its watchers' transactions to abort at EXEC. Touch() is called for every key a
// write command names and every invalidation; with nothing watched it is one relaxed load.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace corral::server {

class WatchTable;

// One connection's watch: the keys it watches and whether one of them changed since.
class Watcher {
 public:
  explicit Watcher(WatchTable& table) : table_(table) {}
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  bool dirty() const { return dirty_.load(std::memory_order_acquire); }
  // The keys watched, each with whether it existed when WATCH ran (an existing key that is gone
  // at EXEC expired or was evicted in between: that is a change too, as in Redis).
  struct Key {
    std::string key;
    bool existed;
  };
  const std::vector<Key>& keys() const { return keys_; }

 private:
  friend class WatchTable;
  WatchTable& table_;
  std::atomic<bool> dirty_{false};
  std::vector<Key> keys_;  // written under table_.mu_
};

class WatchTable {
 public:
  // `w` watches `key` from now on (again: no change).
  void Watch(Watcher& w, std::string_view key, bool exists);
  // `w` watches nothing any more; its dirty mark is cleared.
  void Unwatch(Watcher& w);
  // `key` changed: every watcher of it will abort its EXEC.
  void Touch(std::string_view key) {
    if (watched_.load(std::memory_order_seq_cst) == 0) return;
    TouchSlow(key);
  }
  // Every watched key for which `exists` is true changed (FLUSHALL: a key that did not exist is
  // not touched by it, as in Redis).
  template <typename Exists>
  void TouchIf(Exists&& exists) {
    if (watched_.load(std::memory_order_seq_cst) == 0) return;
    std::lock_guard lock(mu_);
    for (auto& [key, watchers] : keys_) {
      if (!exists(key)) continue;
      for (Watcher* w : watchers) w->dirty_.store(true, std::memory_order_release);
    }
  }
  size_t watched_keys() const { return watched_.load(std::memory_order_seq_cst); }

 private:
  void TouchSlow(std::string_view key);

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<Watcher*>> keys_;
  std::atomic<size_t> watched_{0};  // keys_.size()
};

}  // namespace corral::server

// See watch_table.h.
#include "cache-server/watch_table.h"

#include <algorithm>

namespace corral::server {

Watcher::~Watcher() { table_.Unwatch(*this); }

void WatchTable::Watch(Watcher& w, std::string_view key, bool exists) {
  std::lock_guard lock(mu_);
  for (const Watcher::Key& k : w.keys_) {
    if (k.key == key) return;
  }
  w.keys_.push_back({std::string(key), exists});
  auto [it, inserted] = keys_.try_emplace(std::string(key));
  it->second.push_back(&w);
  if (inserted) watched_.store(keys_.size(), std::memory_order_seq_cst);
}

void WatchTable::Unwatch(Watcher& w) {
  std::lock_guard lock(mu_);
  for (const Watcher::Key& k : w.keys_) {
    auto it = keys_.find(k.key);
    if (it == keys_.end()) continue;
    std::erase(it->second, &w);
    if (it->second.empty()) keys_.erase(it);
  }
  w.keys_.clear();
  w.dirty_.store(false, std::memory_order_release);
  watched_.store(keys_.size(), std::memory_order_seq_cst);
}

void WatchTable::TouchSlow(std::string_view key) {
  std::lock_guard lock(mu_);
  // Heterogeneous lookup needs C++20's transparent hashing; a key is short, so copy it.
  auto it = keys_.find(std::string(key));
  if (it == keys_.end()) return;
  for (Watcher* w : it->second) w->dirty_.store(true, std::memory_order_release);
}

}  // namespace corral::server

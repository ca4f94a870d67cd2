// See tracking.h.
#include "cache-server/tracking.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string_view>

#include "cache-server/resp_commands.h"
#include "proto/resp_writer.h"

namespace corral::server {

namespace {
constexpr std::string_view kTrackingChannel = "__redis__:invalidate";

// The BCAST invalidations of the Batch open on this thread: (connection, prefix) -> keys.
struct Gathered {
  const TrackingTable* table;
  std::map<std::pair<uint64_t, std::string>, std::vector<std::string>> keys;
};
thread_local Gathered* gathered = nullptr;
}  // namespace

TrackingTable::Batch::Batch(TrackingTable& table) {
  if (gathered != nullptr) return;  // the outer batch sends
  table_ = &table;
  gathered = new Gathered{&table, {}};
}

TrackingTable::Batch::~Batch() {
  if (table_ == nullptr) return;
  std::unique_ptr<Gathered> mine(gathered);
  gathered = nullptr;
  if (!mine->keys.empty()) table_->SendBatch(mine->keys);
}

void TrackingTable::SendBatch(
    std::map<std::pair<uint64_t, std::string>, std::vector<std::string>>& batch) {
  std::lock_guard lock(mu_);
  for (auto& [to, keys] : batch) {
    auto t = trackers_.find(to.first);
    if (t == trackers_.end() || !t->second.options.bcast) continue;  // it stopped tracking
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    Tell(t->second, &keys);
  }
}

void ClientRegistry::Add(uint64_t id, std::weak_ptr<PushTarget> target) {
  std::lock_guard lock(mu_);
  targets_[id] = std::move(target);
}

void ClientRegistry::Remove(uint64_t id) {
  std::lock_guard lock(mu_);
  targets_.erase(id);
}

std::shared_ptr<PushTarget> ClientRegistry::Find(uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = targets_.find(id);
  return it == targets_.end() ? nullptr : it->second.lock();
}

std::vector<std::pair<uint64_t, std::shared_ptr<PushTarget>>> ClientRegistry::All() const {
  std::vector<std::pair<uint64_t, std::shared_ptr<PushTarget>>> all;
  std::lock_guard lock(mu_);
  all.reserve(targets_.size());
  for (const auto& [id, weak] : targets_) {
    if (std::shared_ptr<PushTarget> target = weak.lock()) all.emplace_back(id, std::move(target));
  }
  return all;
}

std::string InvalidationMessage(const RespClient& receiver, const std::vector<std::string>* keys,
                                bool redirected) {
  std::string out;
  if (receiver.resp >= 3) {
    proto::AppendPushHeader(out, 2);
    proto::AppendBulk(out, "invalidate");
  } else if (redirected && receiver.subscribed()) {
    // RESP2 has no pushes: the redirect target gets a pub/sub message (Redis tracking.c).
    proto::AppendArrayHeader(out, 3);
    proto::AppendBulk(out, "message");
    proto::AppendBulk(out, kTrackingChannel);
  } else {
    return out;  // a RESP2 connection that is not subscribed cannot be told
  }
  if (keys == nullptr) {
    proto::AppendNil(out, receiver.resp);
  } else {
    proto::AppendArrayHeader(out, keys->size());
    for (const std::string& key : *keys) proto::AppendBulk(out, key);
  }
  return out;
}

void TrackingTable::Enable(uint64_t id, std::weak_ptr<PushTarget> self, TrackingOptions options) {
  std::lock_guard lock(mu_);
  trackers_[id] = Tracker{std::move(self), std::move(options)};
  trackers_count_.store(trackers_.size(), std::memory_order_relaxed);
}

void TrackingTable::Disable(uint64_t id) {
  std::lock_guard lock(mu_);
  if (trackers_.erase(id) == 0) return;
  trackers_count_.store(trackers_.size(), std::memory_order_relaxed);
  // Its remembered keys are dropped lazily: Invalidate skips connections that no longer track.
  // With nobody left to tell, the whole table goes.
  if (trackers_.empty()) ClearKeys();
}

void TrackingTable::Remember(uint64_t id, std::string_view key, int64_t fresh_until) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = keys_.try_emplace(std::string(key));
  it->second.ids.insert(id);
  if (fresh_until != 0) SetFreshUntilLocked(it->first, it->second, fresh_until);
  if (inserted) EvictOverBound(&it->first);
}

void TrackingTable::RememberFreshEnd(uint64_t id, std::string_view key, int64_t fresh_until) {
  std::lock_guard lock(mu_);
  auto t = trackers_.find(id);
  if (t == trackers_.end() || !t->second.options.bcast) return;
  const std::vector<std::string>& prefixes = t->second.options.prefixes;
  if (!prefixes.empty() && std::none_of(prefixes.begin(), prefixes.end(),
                                        [&](const std::string& p) { return key.starts_with(p); })) {
    return;
  }
  auto [it, inserted] = keys_.try_emplace(std::string(key));
  it->second.bcast = true;
  if (fresh_until != 0) SetFreshUntilLocked(it->first, it->second, fresh_until);
  if (inserted) EvictOverBound(&it->first);
}

void TrackingTable::SetFreshUntil(std::string_view key, int64_t fresh_until) {
  std::lock_guard lock(mu_);
  if (auto it = keys_.find(std::string(key)); it != keys_.end()) {
    SetFreshUntilLocked(it->first, it->second, fresh_until);
  }
}

void TrackingTable::SetFreshUntilLocked(const std::string& key, Readers& readers,
                                        int64_t fresh_until) {
  if (readers.fresh_until == fresh_until) return;
  readers.fresh_until = fresh_until;
  fresh_ends_.emplace(fresh_until, key);
  // Entries of keys told or filled again wait for their time to be dropped: when they are most
  // of the queue, it is built again from the table.
  if (fresh_ends_.size() > 2 * keys_.size() + 1024) {
    std::vector<Due> live;
    for (const auto& [k, r] : keys_) {
      if (r.fresh_until != 0) live.emplace_back(r.fresh_until, k);
    }
    fresh_ends_ = decltype(fresh_ends_)(std::greater<>(), std::move(live));
  }
}

std::vector<std::string> TrackingTable::TakeFreshTimeOver(int64_t now) {
  std::vector<std::string> due;
  std::lock_guard lock(mu_);
  while (!fresh_ends_.empty() && fresh_ends_.top().first <= now) {
    auto [at, key] = fresh_ends_.top();
    fresh_ends_.pop();
    auto it = keys_.find(key);
    if (it == keys_.end() || it->second.fresh_until != at) continue;  // told, or fresh again
    it->second.fresh_until = 0;
    due.push_back(std::move(key));
  }
  return due;
}

void TrackingTable::ClearKeys() {
  keys_.clear();
  fresh_ends_ = {};
}

void TrackingTable::SetMaxKeys(size_t max_keys) {
  std::lock_guard lock(mu_);
  max_keys_.store(max_keys, std::memory_order_relaxed);
  EvictOverBound(nullptr);
}

void TrackingTable::EvictOverBound(const std::string* keep) {
  const size_t bound = max_keys_.load(std::memory_order_relaxed);
  // Over the bound: tell other keys' readers now and forget those keys (the first in the
  // table's own order, which is as good as random here).
  while (bound != 0 && keys_.size() > bound) {
    auto victim = keys_.begin();
    if (keep != nullptr && victim->first == *keep) ++victim;
    if (victim == keys_.end()) return;
    const std::vector<std::string> keys{victim->first};
    for (uint64_t reader : victim->second.ids) {
      if (auto t = trackers_.find(reader); t != trackers_.end()) Tell(t->second, &keys);
    }
    if (victim->second.bcast) TellBcast(keys[0], 0);
    keys_.erase(victim);
  }
}

void TrackingTable::Invalidate(std::string_view key, uint64_t by) {
  if (!active()) return;
  std::lock_guard lock(mu_);
  const std::vector<std::string> keys{std::string(key)};
  if (auto it = keys_.find(keys[0]); it != keys_.end()) {
    for (uint64_t reader : it->second.ids) {
      auto t = trackers_.find(reader);
      if (t == trackers_.end() || t->second.options.bcast) continue;
      if (t->second.options.noloop && reader == by) continue;
      Tell(t->second, &keys);
    }
    keys_.erase(it);
  }
  TellBcast(keys[0], by);
}

void TrackingTable::TellBcast(const std::string& key, uint64_t by) {
  for (const auto& [id, t] : trackers_) {
    if (!t.options.bcast || (t.options.noloop && id == by)) continue;
    // A connection's prefixes never overlap (CLIENT TRACKING refuses that): one matches at most.
    const std::string* match = nullptr;
    static const std::string kEveryKey;
    if (t.options.prefixes.empty()) match = &kEveryKey;
    for (const std::string& p : t.options.prefixes) {
      if (key.starts_with(p)) match = &p;
    }
    if (match == nullptr) continue;
    if (gathered != nullptr && gathered->table == this) {
      gathered->keys[{id, *match}].push_back(key);
    } else {
      const std::vector<std::string> keys{key};
      Tell(t, &keys);
    }
  }
}

void TrackingTable::InvalidateAll() {
  // Also when nobody tracks now: keys read by connections since gone are forgotten too.
  std::lock_guard lock(mu_);
  for (const auto& [id, t] : trackers_) Tell(t, nullptr);
  ClearKeys();
}

void TrackingTable::Tell(const Tracker& t, const std::vector<std::string>* keys) {
  std::shared_ptr<PushTarget> target =
      t.options.redirect != 0 ? clients_.Find(t.options.redirect) : t.self.lock();
  if (target == nullptr && t.options.redirect != 0) {
    // The connection it redirects to is gone: a RESP3 tracker is told so instead, each time
    // (Redis's tracking-redir-broken); a RESP2 one cannot be.
    if (std::shared_ptr<PushTarget> self = t.self.lock()) {
      self->PushFor([redirect = t.options.redirect](const RespClient& receiver) {
        std::string out;
        if (receiver.resp < 3) return out;
        proto::AppendPushHeader(out, 2);
        proto::AppendBulk(out, "tracking-redir-broken");
        proto::AppendInteger(out, static_cast<int64_t>(redirect));
        return out;
      });
    }
    return;
  }
  if (target == nullptr) return;
  const bool redirected = t.options.redirect != 0;
  std::optional<std::vector<std::string>> copy;
  if (keys != nullptr) copy = *keys;
  target->PushFor([copy = std::move(copy), redirected](const RespClient& receiver) {
    return InvalidationMessage(receiver, copy ? &*copy : nullptr, redirected);
  });
}

TrackingTable::Stats TrackingTable::stats() const {
  std::lock_guard lock(mu_);
  Stats stats;
  stats.clients = trackers_.size();
  for (const auto& [key, readers] : keys_) {
    // A key remembered only for BCAST trackers' sake (RememberFreshEnd) has no reader.
    if (!readers.ids.empty()) ++stats.keys;
    stats.items += readers.ids.size();
  }
  std::set<std::string_view> prefixes;
  for (const auto& [id, t] : trackers_) {
    if (!t.options.bcast) continue;
    if (t.options.prefixes.empty()) prefixes.insert("");
    for (const std::string& prefix : t.options.prefixes) prefixes.insert(prefix);
  }
  stats.prefixes = prefixes.size();
  return stats;
}

std::unique_ptr<TrackingOptions> TrackingTable::OptionsOf(uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = trackers_.find(id);
  if (it == trackers_.end()) return nullptr;
  return std::make_unique<TrackingOptions>(it->second.options);
}

}  // namespace corral::server

// See tracking.h.
#include "cache-server/tracking.h"

#include <optional>
#include <set>
#include <string_view>

#include "cache-server/resp_commands.h"
#include "proto/resp_writer.h"

namespace corral::server {

namespace {
constexpr std::string_view kTrackingChannel = "__redis__:invalidate";
}  // namespace

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

std::string InvalidationMessage(const RespClient& receiver, const std::string* key,
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
  if (key == nullptr) {
    proto::AppendNil(out, receiver.resp);
  } else {
    proto::AppendArrayHeader(out, 1);
    proto::AppendBulk(out, *key);
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
  if (trackers_.empty()) keys_.clear();
}

void TrackingTable::Remember(uint64_t id, std::string_view key) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = keys_.try_emplace(std::string(key));
  it->second.insert(id);
  if (inserted) EvictOverBound(&it->first);
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
    for (uint64_t reader : victim->second) {
      if (auto t = trackers_.find(reader); t != trackers_.end()) {
        Tell(t->second, &victim->first);
      }
    }
    keys_.erase(victim);
  }
}

void TrackingTable::Invalidate(std::string_view key, uint64_t by) {
  if (!active()) return;
  std::lock_guard lock(mu_);
  const std::string name(key);
  if (auto it = keys_.find(name); it != keys_.end()) {
    for (uint64_t reader : it->second) {
      auto t = trackers_.find(reader);
      if (t == trackers_.end() || t->second.options.bcast) continue;
      if (t->second.options.noloop && reader == by) continue;
      Tell(t->second, &name);
    }
    keys_.erase(it);
  }
  for (const auto& [id, t] : trackers_) {
    if (!t.options.bcast || (t.options.noloop && id == by)) continue;
    bool match = t.options.prefixes.empty();
    for (const std::string& p : t.options.prefixes) match = match || key.starts_with(p);
    if (match) Tell(t, &name);
  }
}

void TrackingTable::InvalidateAll() {
  // Also when nobody tracks now: keys read by connections since gone are forgotten too.
  std::lock_guard lock(mu_);
  for (const auto& [id, t] : trackers_) Tell(t, nullptr);
  keys_.clear();
}

void TrackingTable::Tell(const Tracker& t, const std::string* key) {
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
  std::optional<std::string> copy;
  if (key != nullptr) copy = *key;
  target->PushFor([copy = std::move(copy), redirected](const RespClient& receiver) {
    return InvalidationMessage(receiver, copy ? &*copy : nullptr, redirected);
  });
}

TrackingTable::Stats TrackingTable::stats() const {
  std::lock_guard lock(mu_);
  Stats stats;
  stats.clients = trackers_.size();
  stats.keys = keys_.size();
  for (const auto& [key, readers] : keys_) stats.items += readers.size();
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

// See pubsub.h.
#include "cache-server/pubsub.h"

#include <algorithm>
#include <utility>

#include "proto/glob.h"
#include "proto/resp_writer.h"

namespace corral::server {

Subscriber::~Subscriber() { hub_.RemoveAll(*this); }

namespace {

using Index = std::map<std::string, std::vector<Subscriber*>, std::less<>>;

// Adds `s` under `name` in `index` and `mine`; false if it was there already.
bool Add(Index& index, std::set<std::string>& mine, Subscriber* s, std::string_view name) {
  if (!mine.emplace(name).second) return false;
  index[std::string(name)].push_back(s);
  return true;
}

bool Remove(Index& index, std::set<std::string>& mine, Subscriber* s, std::string_view name) {
  auto it = mine.find(std::string(name));
  if (it == mine.end()) return false;
  mine.erase(it);
  if (auto at = index.find(name); at != index.end()) {
    std::erase(at->second, s);
    if (at->second.empty()) index.erase(at);
  }
  return true;
}

}  // namespace

size_t PubSub::Subscribe(Subscriber& s, std::string_view channel) {
  std::lock_guard lock(mu_);
  if (Add(channels_, s.channels_, &s, channel)) s.count_.fetch_add(1, std::memory_order_relaxed);
  return s.count();
}

size_t PubSub::Unsubscribe(Subscriber& s, std::string_view channel) {
  std::lock_guard lock(mu_);
  if (Remove(channels_, s.channels_, &s, channel)) {
    s.count_.fetch_sub(1, std::memory_order_relaxed);
  }
  return s.count();
}

size_t PubSub::PSubscribe(Subscriber& s, std::string_view pattern) {
  std::lock_guard lock(mu_);
  if (Add(patterns_, s.patterns_, &s, pattern)) s.count_.fetch_add(1, std::memory_order_relaxed);
  return s.count();
}

size_t PubSub::PUnsubscribe(Subscriber& s, std::string_view pattern) {
  std::lock_guard lock(mu_);
  if (Remove(patterns_, s.patterns_, &s, pattern)) {
    s.count_.fetch_sub(1, std::memory_order_relaxed);
  }
  return s.count();
}

std::vector<std::string> PubSub::Channels(const Subscriber& s) const {
  std::lock_guard lock(mu_);
  return {s.channels_.begin(), s.channels_.end()};
}

std::vector<std::string> PubSub::Patterns(const Subscriber& s) const {
  std::lock_guard lock(mu_);
  return {s.patterns_.begin(), s.patterns_.end()};
}

void PubSub::RemoveAll(Subscriber& s) {
  std::lock_guard lock(mu_);
  for (const std::string& c : s.channels_) {
    if (auto it = channels_.find(c); it != channels_.end()) {
      std::erase(it->second, &s);
      if (it->second.empty()) channels_.erase(it);
    }
  }
  for (const std::string& p : s.patterns_) {
    if (auto it = patterns_.find(p); it != patterns_.end()) {
      std::erase(it->second, &s);
      if (it->second.empty()) patterns_.erase(it);
    }
  }
  s.channels_.clear();
  s.patterns_.clear();
  s.count_.store(0, std::memory_order_relaxed);
}

int64_t PubSub::Publish(std::string_view channel, std::string_view message) {
  // Framed under the lock (the subscriber lists may change), pushed after it.
  std::vector<std::pair<std::shared_ptr<PushTarget>, std::string>> out;
  {
    std::lock_guard lock(mu_);
    if (auto it = channels_.find(channel); it != channels_.end()) {
      for (Subscriber* s : it->second) {
        if (auto target = s->target_.lock()) {
          out.emplace_back(std::move(target), PushMessage(s->resp_.load(std::memory_order_relaxed),
                                                          "message", {channel, message}));
        }
      }
    }
    for (const auto& [pattern, subscribers] : patterns_) {
      if (!proto::GlobMatch(pattern, channel)) continue;
      for (Subscriber* s : subscribers) {
        if (auto target = s->target_.lock()) {
          out.emplace_back(std::move(target), PushMessage(s->resp_.load(std::memory_order_relaxed),
                                                          "pmessage", {pattern, channel, message}));
        }
      }
    }
  }
  for (auto& [target, bytes] : out) target->Push(std::move(bytes));
  return static_cast<int64_t>(out.size());
}

std::vector<std::string> PubSub::ActiveChannels(std::string_view pattern) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, subscribers] : channels_) {
    if (pattern.empty() || proto::GlobMatch(pattern, name)) names.push_back(name);
  }
  return names;
}

int64_t PubSub::NumSub(std::string_view channel) const {
  std::lock_guard lock(mu_);
  auto it = channels_.find(channel);
  return it == channels_.end() ? 0 : static_cast<int64_t>(it->second.size());
}

int64_t PubSub::NumPat() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(patterns_.size());
}

std::string PushMessage(int resp, std::string_view kind,
                        std::initializer_list<std::string_view> parts) {
  std::string out;
  if (resp >= 3) {
    proto::AppendPushHeader(out, 1 + parts.size());
  } else {
    proto::AppendArrayHeader(out, 1 + parts.size());
  }
  proto::AppendBulk(out, kind);
  for (std::string_view p : parts) proto::AppendBulk(out, p);
  return out;
}

}  // namespace corral::server

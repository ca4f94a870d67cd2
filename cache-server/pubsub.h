// Pub/sub (docs/protocol.md "Pub/sub"): channels and patterns, their subscribers, and PUBLISH's
// delivery as Redis 7.0 does it (pubsub.c): a message to each subscriber of the channel, then a
// pmessage for each matching pattern a connection subscribed to. Thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace corral::server {

struct RespClient;

// A connection that takes replies pushed at any time, between its other replies (pub/sub
// messages, client-tracking invalidations). Thread-safe.
class PushTarget {
 public:
  virtual ~PushTarget() = default;
  // Appends `bytes` (whole replies) to the connection's output; a connection whose output grows
  // past its limit is closed instead (a subscriber that does not read).
  virtual void Push(std::string bytes) = 0;
  // The same with the bytes built on the connection's own thread from its state (protocol,
  // subscriptions): client tracking's invalidations. An empty result sends nothing.
  virtual void PushFor(std::function<std::string(const RespClient&)> build) = 0;
  // Runs `visit` on the connection's own thread with its state, between two of its commands
  // (CLIENT LIST reads it there, CLIENT KILL matches it there); true from `visit` closes the
  // connection at once. A connection that has closed drops `visit` without running it.
  virtual void Visit(std::function<bool(const RespClient&)> visit) = 0;
};

class PubSub;

// One connection's subscriptions; unsubscribes everything when destroyed.
class Subscriber {
 public:
  Subscriber(PubSub& hub, std::weak_ptr<PushTarget> target)
      : hub_(hub), target_(std::move(target)) {}
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // The protocol the connection speaks (HELLO may change it): messages are RESP3 pushes or RESP2
  // arrays.
  void set_resp(int resp) { resp_.store(resp, std::memory_order_relaxed); }
  // Channels plus patterns subscribed to (what SUBSCRIBE's replies count).
  size_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  friend class PubSub;
  PubSub& hub_;
  const std::weak_ptr<PushTarget> target_;
  std::atomic<int> resp_{2};
  std::atomic<size_t> count_{0};
  std::set<std::string> channels_, patterns_;  // under hub_.mu_
};

class PubSub {
 public:
  // Each returns the subscriber's count (channels plus patterns) after the change; subscribing
  // twice or unsubscribing from what it does not subscribe to changes nothing.
  size_t Subscribe(Subscriber& s, std::string_view channel);
  size_t Unsubscribe(Subscriber& s, std::string_view channel);
  size_t PSubscribe(Subscriber& s, std::string_view pattern);
  size_t PUnsubscribe(Subscriber& s, std::string_view pattern);
  // What `s` subscribes to, sorted (UNSUBSCRIBE / PUNSUBSCRIBE with no names).
  std::vector<std::string> Channels(const Subscriber& s) const;
  std::vector<std::string> Patterns(const Subscriber& s) const;
  void RemoveAll(Subscriber& s);

  // Delivers `message` on `channel`; returns the number of deliveries (PUBLISH's answer).
  int64_t Publish(std::string_view channel, std::string_view message);

  // PUBSUB CHANNELS [pattern] (empty: all), NUMSUB, NUMPAT.
  std::vector<std::string> ActiveChannels(std::string_view pattern) const;
  int64_t NumSub(std::string_view channel) const;
  int64_t NumPat() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Subscriber*>, std::less<>> channels_;
  std::map<std::string, std::vector<Subscriber*>, std::less<>> patterns_;
};

// A pub/sub message as `resp` (2 or 3) frames it: [kind, channel-or-pattern..., payload], as a
// RESP3 push or a RESP2 array of bulk strings. `parts` are the elements after `kind`.
std::string PushMessage(int resp, std::string_view kind,
                        std::initializer_list<std::string_view> parts);

}  // namespace corral::server

// corral's pub/sub connection: SUBSCRIBE to a fixed set of channels on one node, a heartbeat to
// notice a stalled connection, and a resubscribe (next node, with backoff) after any drop.
//
// The heartbeat: RESP2 allows PING on a subscribed connection, but hiredis 0.14 cannot route its
// answer (["pong", ""]) to a callback. Re-subscribing to a private channel is answered with a
// confirmation that hiredis does route, so that is the heartbeat.
#include <hiredis/async.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <random>
#include <set>

#include "tier/asio_adapter.h"
#include "tier/hiredis_util.h"
#include "tier/redis_client.h"
#include "tier/reply_decode.h"

namespace corral::tier {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr auto kHeartbeatInterval = std::chrono::seconds(1);
// A subscription is declared stalled after max(2 x timeout, this) without an answer. A false
// alarm is costly (every node that loses its subscription treats its whole L1 as stale), so a
// busy machine's scheduling delays must not trip it.
constexpr auto kMinStall = std::chrono::milliseconds(1500);

std::string HeartbeatChannel() {
  std::random_device random;
  return "__corral:heartbeat:" + std::to_string(random()) + std::to_string(random());
}

}  // namespace

struct Subscriber::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, ClientOptions options, std::vector<std::string> channels,
       Handlers handlers)
      : io_(io),
        strand_(asio::make_strand(io)),
        options_(std::move(options)),
        channels_(std::move(channels)),
        handlers_(std::move(handlers)),
        heartbeat_channel_(HeartbeatChannel()),
        timer_(strand_),
        heartbeat_timer_(strand_) {
    backoff_ = options_.reconnect_min;
    std::set<std::string> unique(channels_.begin(), channels_.end());
    unique.insert(heartbeat_channel_);
    expected_ = unique.size();
  }

  ~Impl() { Close(); }

  asio::io_context& io_;
  Strand strand_;
  const ClientOptions options_;
  const std::vector<std::string> channels_;
  const Handlers handlers_;
  const std::string heartbeat_channel_;
  size_t expected_ = 0;  // confirmations that make a subscription: channels + the heartbeat
  std::atomic<bool> subscribed_{false};
  std::atomic<bool> stop_requested_{false};

  // ---- strand state ----
  bool started_ = false;
  bool stopped_ = false;
  redisAsyncContext* ac_ = nullptr;
  uint64_t generation_ = 0;
  size_t node_ = 0;                  // index in options_.nodes of the node in use
  std::set<std::string> confirmed_;  // channels confirmed on this connection
  bool announced_ = false;           // subscribed() was called for this connection
  Clock::time_point heartbeat_sent_{};
  bool heartbeat_outstanding_ = false;
  std::chrono::milliseconds backoff_;
  asio::steady_timer timer_;            // connect+subscribe deadline, then the reconnect delay
  asio::steady_timer heartbeat_timer_;  // every kHeartbeatInterval while connected

  // Runs a user handler outside hiredis's callbacks, so it may call Stop() or anything else.
  template <typename Fn>
  void Deliver(Fn&& fn) {
    asio::post(strand_, [self = shared_from_this(), fn = std::forward<Fn>(fn)]() mutable {
      if (!self->stopped_) fn();
    });
  }

  void Connect() {
    if (stopped_ || ac_ != nullptr || options_.nodes.empty()) return;
    const std::string& address = options_.nodes[node_ % options_.nodes.size()];
    std::optional<HostPort> hp = ParseHostPort(address);
    generation_++;
    confirmed_.clear();
    announced_ = false;
    heartbeat_outstanding_ = false;
    redisAsyncContext* ac = hp ? redisAsyncConnect(hp->host.c_str(), hp->port) : nullptr;
    if (ac == nullptr || ac->err != 0 || !AttachAsio(ac, strand_)) {
      if (ac != nullptr) redisAsyncFree(ac);
      Failed();
      return;
    }
    ac->data = this;
    redisAsyncSetConnectCallback(ac, &Impl::OnConnect);
    redisAsyncSetDisconnectCallback(ac, &Impl::OnDisconnect);
    ac_ = ac;
    if (std::vector<std::string> auth = AuthArgs(options_); !auth.empty()) {
      SendArgv(ac, nullptr, nullptr, auth);
    }
    std::vector<std::string> subscribe{"SUBSCRIBE"};
    subscribe.insert(subscribe.end(), channels_.begin(), channels_.end());
    subscribe.push_back(heartbeat_channel_);
    SendArgv(ac, &Impl::OnMessage, this, subscribe);
    // Connected and every channel confirmed within this, or the node is treated as down.
    timer_.expires_after(2 * options_.timeout);
    timer_.async_wait(
        [self = shared_from_this(), generation = generation_](const boost::system::error_code& ec) {
          if (ec || generation != self->generation_ || self->announced_) return;
          self->Drop();
        });
  }

  static void OnConnect(const redisAsyncContext* ac, int status) {
    auto* impl = static_cast<Impl*>(ac->data);
    if (impl == nullptr || status == REDIS_OK) return;
    const_cast<redisAsyncContext*>(ac)->data = nullptr;  // hiredis frees it next
    impl->ac_ = nullptr;
    impl->Failed();
  }

  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    auto* impl = static_cast<Impl*>(ac->data);
    if (impl == nullptr) return;
    const_cast<redisAsyncContext*>(ac)->data = nullptr;
    impl->ac_ = nullptr;
    impl->Failed();
  }

  // Every subscription reply: confirmations of SUBSCRIBE (ours and the heartbeat's) and messages.
  static void OnMessage(redisAsyncContext* ac, void* reply, void* privdata) {
    auto* r = static_cast<redisReply*>(reply);
    auto* impl = static_cast<Impl*>(privdata);
    if (r == nullptr || ac->data == nullptr) return;
    std::optional<PubSubPush> push = DecodePubSub(CopyReply(r));
    if (!push) return;
    impl->heartbeat_outstanding_ = false;  // any reply proves the connection alive
    if (push->kind == PubSubPush::Kind::kMessage) {
      if (push->channel == impl->heartbeat_channel_) return;
      impl->Deliver([impl, channel = std::move(push->channel), payload = std::move(push->payload)] {
        if (impl->handlers_.message) impl->handlers_.message(channel, payload);
      });
    } else if (push->kind == PubSubPush::Kind::kSubscribe) {
      impl->confirmed_.insert(std::move(push->channel));
      if (!impl->announced_ && impl->confirmed_.size() == impl->expected_) {
        impl->announced_ = true;
        impl->backoff_ = impl->options_.reconnect_min;
        impl->timer_.cancel();
        impl->subscribed_.store(true);
        impl->StartHeartbeat();
        impl->Deliver([impl] {
          if (impl->handlers_.subscribed) impl->handlers_.subscribed();
        });
      }
    }
  }

  void StartHeartbeat() {
    heartbeat_timer_.expires_after(std::min<Clock::duration>(kHeartbeatInterval, options_.timeout));
    heartbeat_timer_.async_wait([self = shared_from_this(),
                                 generation = generation_](const boost::system::error_code& ec) {
      if (ec || self->stopped_ || generation != self->generation_ || self->ac_ == nullptr) return;
      Clock::time_point now = Clock::now();
      if (self->heartbeat_outstanding_) {
        if (now - self->heartbeat_sent_ >
            std::max<Clock::duration>(2 * self->options_.timeout, kMinStall)) {
          self->Drop();  // stalled: no confirmation, no message
          return;
        }
      } else if (now - self->heartbeat_sent_ >= kHeartbeatInterval) {
        self->heartbeat_outstanding_ = true;
        self->heartbeat_sent_ = now;
        SendArgv(self->ac_, &Impl::OnMessage, self.get(), {"SUBSCRIBE", self->heartbeat_channel_});
      }
      self->StartHeartbeat();
    });
  }

  // The connection is gone or never came up: tell the user once, then try the next node.
  void Failed() {
    timer_.cancel();
    heartbeat_timer_.cancel();
    generation_++;
    bool was_subscribed = subscribed_.exchange(false);
    if (stopped_) return;
    if (was_subscribed) {
      Deliver([self = shared_from_this()] {
        if (self->handlers_.lost) self->handlers_.lost();
      });
    }
    node_++;
    std::chrono::milliseconds delay = backoff_;
    backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
    timer_.expires_after(delay);
    timer_.async_wait(
        [self = shared_from_this(), generation = generation_](const boost::system::error_code& ec) {
          if (!ec && generation == self->generation_) self->Connect();
        });
  }

  // Closes the connection from this side (no callbacks reach this Impl afterwards).
  void Close() {
    if (ac_ == nullptr) return;
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    ac->data = nullptr;
    redisAsyncFree(ac);
  }

  void Drop() {
    Close();
    Failed();
  }

  void DoStop() {
    if (stopped_) return;
    stopped_ = true;
    timer_.cancel();
    heartbeat_timer_.cancel();
    Close();
    subscribed_.store(false);
  }
};

Subscriber::Subscriber(boost::asio::io_context& io, ClientOptions options,
                       std::vector<std::string> channels, Handlers handlers)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(channels),
                                   std::move(handlers))) {}

Subscriber::~Subscriber() { Stop(); }

void Subscriber::Start() {
  asio::post(impl_->strand_, [impl = impl_] {
    if (impl->started_ || impl->stopped_) return;
    impl->started_ = true;
    impl->Connect();
  });
}

void Subscriber::Stop() {
  if (impl_->stop_requested_.exchange(true)) return;
  RunOnStrand(impl_->io_, impl_->strand_, [impl = impl_] { impl->DoStop(); });
}

bool Subscriber::subscribed() const { return impl_->subscribed_.load(); }

}  // namespace corral::tier

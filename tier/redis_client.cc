// corral's Redis client: one hiredis async context per node on the io_context (through a strand),
// a deadline timer per command, a fail-fast breaker per node, and Redis Cluster routing.
//
// Threading: every member of Impl below the "strand state" line is touched only on strand_.
// Command()/Eval() post to it; hiredis contexts are driven by handlers on it (asio_adapter.cc).
#include "tier/redis_client.h"

#include <hiredis/async.h>

#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/uuid/detail/sha1.hpp>
#include <cstdio>
#include <unordered_map>

#include "tier/asio_adapter.h"
#include "tier/hiredis_util.h"
#include "tier/reply_decode.h"

namespace corral::tier {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr int kSlots = kClusterSlots;
constexpr int kMaxRedirects = 5;
// A node whose connection lets this many commands in a row time out, with no reply in between, is
// stalled (a stopped process, a half-open TCP connection): drop it rather than feed it more.
constexpr int kStallTimeouts = 3;
// At most one CLUSTER SLOTS per this interval, however many MOVED replies arrive.
constexpr auto kRefreshInterval = std::chrono::milliseconds(100);
// TRYAGAIN / CLUSTERDOWN: retry after this long (within the command's deadline).
constexpr auto kTryAgainDelay = std::chrono::milliseconds(20);

std::string Sha1Hex(const std::string& text) {
  boost::uuids::detail::sha1 sha;
  sha.process_bytes(text.data(), text.size());
  unsigned int digest[5];
  sha.get_digest(digest);
  char hex[41];
  for (int i = 0; i < 5; ++i) std::snprintf(hex + 8 * i, 9, "%08x", digest[i]);
  return std::string(hex, 40);
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

struct Client::Impl : std::enable_shared_from_this<Impl> {
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(Impl* owner, const Strand& strand, std::string addr, HostPort hp)
        : impl(owner),
          address(std::move(addr)),
          host_port(std::move(hp)),
          connect_timer(strand),
          reconnect_timer(strand) {}
    enum class State { kIdle, kConnecting, kReady };
    Impl* impl;  // owns this Conn; outlives its hiredis context
    std::string address;
    HostPort host_port;
    redisAsyncContext* ac = nullptr;
    State state = State::kIdle;
    bool fresh = true;  // never failed: commands may wait behind its first connect
    bool reconnect_pending = false;
    uint64_t generation = 0;  // one per connect attempt; stale callbacks compare it
    std::string run_id;       // INFO server's run_id of the process last connected to; "" unknown
    int consecutive_timeouts = 0;
    std::chrono::milliseconds backoff{0};
    asio::steady_timer connect_timer;
    asio::steady_timer reconnect_timer;
  };

  struct Op {
    Op(const Strand& strand) : deadline(strand), retry(strand) {}
    uint64_t id = 0;
    std::vector<std::string> args;
    uint16_t slot = 0;
    Callback done;
    asio::steady_timer deadline;
    asio::steady_timer retry;
    int redirects = 0;
    bool finished = false;
    std::string script;  // Eval: EVALSHA now, EVAL after NOSCRIPT
    bool evalsha = false;
    std::weak_ptr<Conn> sent_to;
    uint64_t sent_generation = 0;
  };

  // privdata of one command sent on one connection; hiredis calls OnReply exactly once with it.
  struct Sent {
    std::shared_ptr<Impl> impl;
    std::shared_ptr<Conn> conn;
    std::shared_ptr<Op> op;
  };
  // privdata of the connection's own commands (PING after connect, CLUSTER SLOTS, AUTH).
  struct ConnRef {
    std::shared_ptr<Impl> impl;
    std::shared_ptr<Conn> conn;
    uint64_t generation;
  };

  struct Stats {
    std::atomic<uint64_t> commands{0}, timeouts{0}, down{0}, disconnected{0}, disconnects{0},
        reconnects{0}, moved{0}, ask{0}, slot_map_loads{0}, instance_changes{0};
  };

  Impl(asio::io_context& io, ClientOptions options)
      : io_(io),
        strand_(asio::make_strand(io)),
        options_(std::move(options)),
        refresh_timer_(strand_) {}

  ~Impl() {
    // Stop() ran already (Client's destructor); free anything left without touching callbacks.
    for (auto& [address, conn] : conns_) {
      if (conn->ac != nullptr) {
        redisAsyncContext* ac = conn->ac;
        conn->ac = nullptr;
        ac->data = nullptr;
        redisAsyncFree(ac);
      }
    }
  }

  asio::io_context& io_;
  Strand strand_;
  const ClientOptions options_;
  std::atomic<bool> up_{false};
  std::atomic<bool> cluster_{false};
  std::atomic<bool> stop_requested_{false};
  Stats stats_;

  // ---- strand state ----
  enum class Mode { kUndecided, kStandalone, kCluster };
  Mode mode_ = Mode::kUndecided;
  bool started_ = false;
  bool stopped_ = false;
  std::unordered_map<std::string, std::shared_ptr<Conn>> conns_;
  std::vector<std::shared_ptr<Conn>> seeds_;
  size_t bootstrap_ = 0;                      // index in seeds_ of the node being asked first
  std::shared_ptr<Conn> primary_;             // standalone: the one node
  std::vector<std::shared_ptr<Conn>> slots_;  // cluster: owner of each slot (may be null)
  bool map_loaded_ = false;
  bool info_refused_ = false;  // logged once
  bool refresh_pending_ = false;
  bool map_dirty_ = false;  // a refresh found no connected node; do it when one connects
  Clock::time_point last_refresh_{};
  asio::steady_timer refresh_timer_;
  std::unordered_map<uint64_t, std::shared_ptr<Op>> ops_;
  uint64_t next_op_id_ = 1;

  // ---- connections ----

  std::shared_ptr<Conn> GetConn(const std::string& address, bool connect) {
    auto it = conns_.find(address);
    if (it != conns_.end()) return it->second;
    std::optional<HostPort> hp = ParseHostPort(address);
    if (!hp) return nullptr;
    auto conn = std::make_shared<Conn>(this, strand_, address, *hp);
    conn->backoff = options_.reconnect_min;
    conns_.emplace(address, conn);
    if (connect) Connect(conn);
    return conn;
  }

  void Connect(const std::shared_ptr<Conn>& conn) {
    if (stopped_ || conn->ac != nullptr) return;
    if (conn->generation > 0) stats_.reconnects++;
    conn->generation++;
    redisAsyncContext* ac = redisAsyncConnect(conn->host_port.host.c_str(), conn->host_port.port);
    if (ac == nullptr) {
      ConnectFailed(conn, "out of memory");
      return;
    }
    if (ac->err != 0) {
      std::string why = ac->errstr;
      redisAsyncFree(ac);
      ConnectFailed(conn, why);
      return;
    }
    if (!AttachAsio(ac, strand_)) {
      redisAsyncFree(ac);
      ConnectFailed(conn, "cannot register the socket");
      return;
    }
    ac->data = conn.get();
    redisAsyncSetConnectCallback(ac, &Impl::OnConnect);
    redisAsyncSetDisconnectCallback(ac, &Impl::OnDisconnect);
    conn->ac = ac;
    conn->state = Conn::State::kConnecting;
    conn->consecutive_timeouts = 0;
    // Written before anything else, in the order given, once the connect completes.
    if (std::vector<std::string> auth = AuthArgs(options_); !auth.empty()) {
      SendArgv(ac, &Impl::OnAuth, new ConnRef{shared_from_this(), conn, conn->generation}, auth);
    }
    redisAsyncCommand(ac, &Impl::OnPing, new ConnRef{shared_from_this(), conn, conn->generation},
                      "PING");
    // Which process this is: its reply comes before that of any command sent once PING answers,
    // so a restarted Redis is noticed before anything read from it is handed on.
    redisAsyncCommand(ac, &Impl::OnInfo, new ConnRef{shared_from_this(), conn, conn->generation},
                      "INFO server");
    conn->connect_timer.expires_after(options_.timeout);
    conn->connect_timer.async_wait([self = shared_from_this(), conn, generation = conn->generation](
                                       const boost::system::error_code& ec) {
      if (ec || conn->generation != generation || conn->state != Conn::State::kConnecting) {
        return;
      }
      self->Drop(conn, "connect timed out");
    });
  }

  // The attempt failed before the context existed or after hiredis freed it.
  void ConnectFailed(const std::shared_ptr<Conn>& conn, const std::string& why) {
    conn->ac = nullptr;
    conn->state = Conn::State::kIdle;
    conn->fresh = false;
    conn->connect_timer.cancel();
    if (stopped_) return;
    stats_.disconnects++;
    UpdateUp();
    ScheduleReconnect(conn);
    // A master that stays unreachable may have been replaced by a promoted replica: re-read the
    // map at each failed attempt (rate-limited), or its slots would stay kDown after a failover.
    if (mode_ == Mode::kCluster) RequestRefresh();
  }

  // Closes the connection now: commands in flight on it end kDisconnected.
  void Drop(const std::shared_ptr<Conn>& conn, const std::string& why) {
    if (conn->ac == nullptr) return;
    redisAsyncContext* ac = conn->ac;
    conn->ac = nullptr;
    conn->state = Conn::State::kIdle;
    conn->fresh = false;
    conn->connect_timer.cancel();
    ac->data = nullptr;  // OnDisconnect ignores it: this side chose to close
    if (!stopped_) stats_.disconnects++;
    redisAsyncFree(ac);  // runs every pending callback with a null reply
    UpdateUp();
    if (!stopped_) {
      ScheduleReconnect(conn);
      if (mode_ == Mode::kCluster) RequestRefresh();
    }
  }

  void ScheduleReconnect(const std::shared_ptr<Conn>& conn) {
    if (stopped_ || conn->reconnect_pending) return;
    conn->reconnect_pending = true;
    std::chrono::milliseconds delay = conn->backoff;
    conn->backoff = std::min(conn->backoff * 2, options_.reconnect_max);
    conn->reconnect_timer.expires_after(delay);
    conn->reconnect_timer.async_wait(
        [self = shared_from_this(), conn](const boost::system::error_code& ec) {
          conn->reconnect_pending = false;
          if (ec || self->stopped_) return;
          if (self->mode_ == Mode::kUndecided && self->seeds_.size() > 1 &&
              self->seeds_[self->bootstrap_] == conn) {
            // Nobody answered yet: ask the next seed.
            self->bootstrap_ = (self->bootstrap_ + 1) % self->seeds_.size();
            self->Connect(self->seeds_[self->bootstrap_]);
            return;
          }
          self->Connect(conn);
        });
  }

  // hiredis: the connect failed (status != OK; the context is freed after this returns) or
  // completed (the PING's answer decides readiness).
  static void OnConnect(const redisAsyncContext* ac, int status) {
    auto* conn = static_cast<Conn*>(ac->data);
    if (conn == nullptr || status == REDIS_OK) return;
    const_cast<redisAsyncContext*>(ac)->data = nullptr;
    conn->impl->ConnectFailed(conn->shared_from_this(), ac->errstr ? ac->errstr : "connect failed");
  }

  // hiredis: the connection closed on its own (EOF, a socket error, a protocol error).
  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    auto* conn = static_cast<Conn*>(ac->data);
    if (conn == nullptr) return;  // Drop() closed it
    const_cast<redisAsyncContext*>(ac)->data = nullptr;
    std::shared_ptr<Conn> shared = conn->shared_from_this();
    Impl* impl = conn->impl;
    shared->ac = nullptr;
    shared->state = Conn::State::kIdle;
    shared->fresh = false;
    shared->connect_timer.cancel();
    if (impl->stopped_) return;
    impl->stats_.disconnects++;
    impl->UpdateUp();
    impl->ScheduleReconnect(shared);
    if (impl->mode_ == Mode::kCluster) impl->RequestRefresh();
  }

  static void OnAuth(redisAsyncContext* ac, void* reply, void* privdata) {
    std::unique_ptr<ConnRef> ref(static_cast<ConnRef*>(privdata));
    auto* r = static_cast<redisReply*>(reply);
    if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
      // Commands will be refused with NOAUTH error replies: answers, not a broken connection.
      std::fprintf(stderr, "corral tier: AUTH to %s refused: %.*s\n", ref->conn->address.c_str(),
                   static_cast<int>(r->len), r->str);
    }
  }

  static void OnPing(redisAsyncContext* ac, void* reply, void* privdata) {
    std::unique_ptr<ConnRef> ref(static_cast<ConnRef*>(privdata));
    if (reply == nullptr || ref->impl->stopped_) return;
    const std::shared_ptr<Conn>& conn = ref->conn;
    if (conn->generation != ref->generation || conn->state != Conn::State::kConnecting) return;
    conn->state = Conn::State::kReady;
    conn->fresh = false;
    conn->backoff = ref->impl->options_.reconnect_min;
    conn->consecutive_timeouts = 0;
    conn->connect_timer.cancel();
    ref->impl->OnReady(conn);
  }

  static void OnInfo(redisAsyncContext* ac, void* reply, void* privdata) {
    std::unique_ptr<ConnRef> ref(static_cast<ConnRef*>(privdata));
    auto* r = static_cast<redisReply*>(reply);
    Impl& impl = *ref->impl;
    const std::shared_ptr<Conn>& conn = ref->conn;
    if (r == nullptr || impl.stopped_ || conn->generation != ref->generation) return;
    if (r->type != REDIS_REPLY_STRING) {
      // An ACL user without INFO: a restart of this node goes unnoticed (docs/configuration.md).
      if (!impl.info_refused_) {
        impl.info_refused_ = true;
        std::fprintf(stderr, "corral tier: INFO server on %s refused: %.*s\n",
                     conn->address.c_str(), static_cast<int>(r->len), r->str);
      }
      return;
    }
    std::optional<std::string> parsed = ParseRunId(std::string_view(r->str, r->len));
    if (!parsed) return;
    std::string run_id = std::move(*parsed);
    if (!conn->run_id.empty() && run_id != conn->run_id) {
      impl.InstanceChanged("Redis " + conn->address + " restarted (run_id " + conn->run_id +
                           " -> " + run_id + ")");
    }
    conn->run_id = std::move(run_id);
  }

  void InstanceChanged(const std::string& what) {
    stats_.instance_changes++;
    if (options_.on_instance_change) options_.on_instance_change(what);
  }

  void OnReady(const std::shared_ptr<Conn>& conn) {
    if (mode_ == Mode::kUndecided) {
      if (options_.cluster == ClientOptions::Cluster::kOff) {
        mode_ = Mode::kStandalone;
        primary_ = conn;
      } else {
        SendClusterSlots(conn);
      }
    } else if (mode_ == Mode::kCluster && map_dirty_) {
      RequestRefresh();
    }
    UpdateUp();
  }

  void UpdateUp() {
    bool up = false;
    if (!stopped_) {
      if (mode_ == Mode::kStandalone) {
        up = primary_ && primary_->state == Conn::State::kReady;
      } else if (mode_ == Mode::kCluster && map_loaded_) {
        for (auto& [address, conn] : conns_) up = up || conn->state == Conn::State::kReady;
      }
    }
    up_.store(up, std::memory_order_relaxed);
  }

  // ---- the slot map ----

  // Reads CLUSTER SLOTS again from any connected node: after `delay`, and at most once per
  // kRefreshInterval however often it is asked for.
  void RequestRefresh(Clock::duration delay = Clock::duration::zero()) {
    if (stopped_ || refresh_pending_) return;
    refresh_pending_ = true;
    Clock::time_point at = std::max(Clock::now() + delay, last_refresh_ + kRefreshInterval);
    refresh_timer_.expires_at(at);
    refresh_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      self->refresh_pending_ = false;
      if (ec || self->stopped_) return;
      // Any connected node will do; after a failover the promoted replica's peers know.
      for (auto& [address, conn] : self->conns_) {
        if (conn->state == Conn::State::kReady) {
          self->map_dirty_ = false;
          self->SendClusterSlots(conn);
          return;
        }
      }
      self->map_dirty_ = true;
      // No node is connected: make sure the seeds are being retried.
      for (auto& seed : self->seeds_) {
        if (seed->state == Conn::State::kIdle) self->ScheduleReconnect(seed);
      }
    });
  }

  void SendClusterSlots(const std::shared_ptr<Conn>& conn) {
    last_refresh_ = Clock::now();
    redisAsyncCommand(conn->ac, &Impl::OnClusterSlots,
                      new ConnRef{shared_from_this(), conn, conn->generation}, "CLUSTER SLOTS");
  }

  static void OnClusterSlots(redisAsyncContext* ac, void* reply, void* privdata) {
    std::unique_ptr<ConnRef> ref(static_cast<ConnRef*>(privdata));
    auto* r = static_cast<redisReply*>(reply);
    Impl& impl = *ref->impl;
    if (r == nullptr || impl.stopped_) return;
    if (r->type == REDIS_REPLY_ERROR) {
      if (impl.mode_ == Mode::kUndecided &&
          impl.options_.cluster == ClientOptions::Cluster::kAuto) {
        // "ERR This instance has cluster support disabled" (or a user without CLUSTER rights,
        // who could not route a cluster either): one plain Redis.
        impl.mode_ = Mode::kStandalone;
        impl.primary_ = ref->conn;
        impl.UpdateUp();
      } else {
        std::fprintf(stderr, "corral tier: CLUSTER SLOTS on %s: %.*s\n", ref->conn->address.c_str(),
                     static_cast<int>(r->len), r->str);
        // Cluster::kOn against a node that is not (yet) in a cluster: ask again, slowly.
        impl.RequestRefresh(impl.options_.reconnect_max);
      }
      return;
    }
    std::optional<SlotMap> map = DecodeClusterSlots(CopyReply(r));
    if (!map) return;
    impl.ApplySlots(*ref->conn, *map);
  }

  void ApplySlots(const Conn& asked, const SlotMap& map) {
    std::vector<std::shared_ptr<Conn>> slots(kSlots);
    for (const SlotRange& range : map.ranges) {
      const std::string& host = range.host.empty() ? asked.host_port.host : range.host;
      std::shared_ptr<Conn> owner = GetConn(host + ":" + std::to_string(range.port), true);
      if (!owner) continue;
      for (int slot = range.start; slot <= range.end; ++slot) slots[slot] = owner;
    }
    if (map_loaded_) {
      for (int slot = 0; slot < kSlots; ++slot) {
        if (slots_[slot] && slots[slot] && slots_[slot] != slots[slot]) {
          InstanceChanged("slot " + std::to_string(slot) + " moved from " + slots_[slot]->address +
                          " to " + slots[slot]->address);
          break;
        }
      }
    }
    slots_ = std::move(slots);
    map_loaded_ = true;
    mode_ = Mode::kCluster;
    cluster_.store(true, std::memory_order_relaxed);
    stats_.slot_map_loads++;
    UpdateUp();
  }

  // ---- commands ----

  void Submit(std::vector<std::string> args, std::string slot_key, Callback done,
              std::string script) {
    if (stopped_) {
      stats_.down++;
      Result result;
      result.status = Result::Status::kDown;
      result.error = "the Redis client is stopped";
      done(std::move(result));
      return;
    }
    auto op = std::make_shared<Op>(strand_);
    op->id = next_op_id_++;
    op->args = std::move(args);
    op->slot = HashSlot(slot_key);
    op->done = std::move(done);
    if (!script.empty()) {
      op->script = std::move(script);
      op->evalsha = true;
    }
    ops_.emplace(op->id, op);
    op->deadline.expires_after(options_.timeout);
    op->deadline.async_wait([self = shared_from_this(), op](const boost::system::error_code& ec) {
      if (ec || op->finished) return;
      self->Finish(*op, Result::Status::kTimeout, "no answer within the timeout");
      self->OnOpTimedOut(*op);
    });
    Route(op);
  }

  void Route(const std::shared_ptr<Op>& op) {
    std::shared_ptr<Conn> conn;
    if (mode_ == Mode::kStandalone) {
      conn = primary_;
    } else if (mode_ == Mode::kCluster) {
      conn = slots_[op->slot];
      if (!conn) {
        RequestRefresh();
        Finish(*op, Result::Status::kDown, "no node serves slot " + std::to_string(op->slot));
        return;
      }
    }
    if (!conn) {
      Finish(*op, Result::Status::kDown, "not connected to Redis yet");
      return;
    }
    Send(conn, op, false);
  }

  void Send(const std::shared_ptr<Conn>& conn, const std::shared_ptr<Op>& op, bool asking) {
    if (op->finished) return;
    bool usable = conn->state == Conn::State::kReady ||
                  (conn->fresh && conn->state == Conn::State::kConnecting);
    if (!usable && conn->fresh && conn->state == Conn::State::kIdle) {
      Connect(conn);  // a node first heard of in a redirect: wait behind its connect
      usable = conn->ac != nullptr;
    }
    if (!usable || conn->ac == nullptr) {
      Finish(*op, Result::Status::kDown, "Redis " + conn->address + " is down");
      return;
    }
    if (asking) redisAsyncCommand(conn->ac, nullptr, nullptr, "ASKING");
    auto* sent = new Sent{shared_from_this(), conn, op};
    if (SendArgv(conn->ac, &Impl::OnReply, sent, op->args) != REDIS_OK) {
      delete sent;
      Finish(*op, Result::Status::kDown, "Redis " + conn->address + " is closing");
      return;
    }
    op->sent_to = conn;
    op->sent_generation = conn->generation;
  }

  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata) {
    std::unique_ptr<Sent> sent(static_cast<Sent*>(privdata));
    sent->impl->HandleReply(*sent, static_cast<redisReply*>(reply));
  }

  void HandleReply(Sent& sent, redisReply* r) {
    Op& op = *sent.op;
    if (r == nullptr) {
      Finish(op, Result::Status::kDisconnected,
             "the connection to " + sent.conn->address + " broke");
      return;
    }
    sent.conn->consecutive_timeouts = 0;  // it answers: whatever it says, it is alive
    if (op.finished) return;              // a late answer to a command that timed out
    if (r->type == REDIS_REPLY_ERROR) {
      std::string_view error(r->str, r->len);
      if (mode_ == Mode::kCluster && HandleClusterError(sent, error)) return;
      if (op.evalsha && StartsWith(error, "NOSCRIPT")) {
        // The script cache is empty there (restart, SCRIPT FLUSH, failover): send the script.
        op.evalsha = false;
        op.args[0] = "EVAL";
        op.args[1] = op.script;
        Post([self = shared_from_this(), conn = sent.conn, op = sent.op] {
          self->Send(conn, op, false);
        });
        return;
      }
    }
    Result result;
    result.status = Result::Status::kOk;
    result.reply = CopyReply(r);
    Complete(op, std::move(result));
  }

  // MOVED, ASK, TRYAGAIN, CLUSTERDOWN: true when the command was sent on again.
  bool HandleClusterError(Sent& sent, std::string_view error) {
    std::optional<ClusterError> parsed = ParseClusterError(error);
    if (!parsed) return false;
    const bool moved = parsed->kind == ClusterError::Kind::kMoved;
    const bool ask = parsed->kind == ClusterError::Kind::kAsk;
    if (moved || ask) {
      const int slot = parsed->slot;
      std::string& address = parsed->address;
      if (sent.op->redirects >= kMaxRedirects) return false;  // the caller gets the error reply
      sent.op->redirects++;
      if (address.front() == ':') address = sent.conn->host_port.host + address;
      std::shared_ptr<Conn> target = GetConn(address, true);
      if (!target) return false;
      if (moved) {
        stats_.moved++;
        if (slots_[slot] && slots_[slot] != target) {
          InstanceChanged("slot " + std::to_string(slot) + " moved from " + slots_[slot]->address +
                          " to " + target->address + " (MOVED)");
        }
        slots_[slot] = target;
        RequestRefresh();
      } else {
        stats_.ask++;
      }
      Post([self = shared_from_this(), target, op = sent.op, ask] { self->Send(target, op, ask); });
      return true;
    }
    // TRYAGAIN, CLUSTERDOWN: resharding of a multi-key slot, or the cluster healing: ask again
    // shortly, within the deadline (which still ends it kTimeout if this lasts).
    if (parsed->kind == ClusterError::Kind::kClusterDown) RequestRefresh();
    sent.op->retry.expires_after(kTryAgainDelay);
    sent.op->retry.async_wait(
        [self = shared_from_this(), op = sent.op](const boost::system::error_code& ec) {
          if (!ec && !op->finished && !self->stopped_) self->Route(op);
        });
    return true;
  }

  void OnOpTimedOut(const Op& op) {
    std::shared_ptr<Conn> conn = op.sent_to.lock();
    if (!conn || conn->generation != op.sent_generation || conn->ac == nullptr) return;
    if (++conn->consecutive_timeouts >= kStallTimeouts) Drop(conn, "stalled");
  }

  void Finish(Op& op, Result::Status status, std::string error) {
    Result result;
    result.status = status;
    result.error = std::move(error);
    Complete(op, std::move(result));
  }

  void Complete(Op& op, Result result) {
    if (op.finished) return;
    op.finished = true;
    op.deadline.cancel();
    op.retry.cancel();
    switch (result.status) {
      case Result::Status::kOk:
        break;
      case Result::Status::kTimeout:
        stats_.timeouts++;
        break;
      case Result::Status::kDown:
        stats_.down++;
        break;
      case Result::Status::kDisconnected:
        stats_.disconnected++;
        break;
    }
    Callback done = std::move(op.done);
    ops_.erase(op.id);  // may destroy op: touch nothing of it below
    done(std::move(result));
  }

  template <typename Fn>
  void Post(Fn&& fn) {
    asio::post(strand_, std::forward<Fn>(fn));
  }

  // ---- start and stop ----

  void DoStart() {
    if (started_ || stopped_) return;
    started_ = true;
    for (const std::string& address : options_.nodes) {
      std::shared_ptr<Conn> conn = GetConn(address, false);
      if (!conn) {
        std::fprintf(stderr, "corral tier: ignoring the malformed node address '%s'\n",
                     address.c_str());
        continue;
      }
      if (std::find(seeds_.begin(), seeds_.end(), conn) == seeds_.end()) seeds_.push_back(conn);
    }
    if (!seeds_.empty()) Connect(seeds_[0]);
  }

  void DoStop() {
    if (stopped_) return;
    stopped_ = true;
    refresh_timer_.cancel();
    for (auto& [address, conn] : conns_) {
      conn->reconnect_timer.cancel();
      conn->connect_timer.cancel();
      Drop(conn, "stopped");
    }
    // Commands between tries (TRYAGAIN) or whose sends were refused are still listed here.
    std::vector<std::shared_ptr<Op>> left;
    for (auto& [id, op] : ops_) left.push_back(op);
    for (auto& op : left) Finish(*op, Result::Status::kDisconnected, "the Redis client stopped");
    primary_.reset();
    slots_.clear();
    map_loaded_ = false;
    UpdateUp();
  }
};

Client::Client(boost::asio::io_context& io, ClientOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

Client::~Client() { Stop(); }

void Client::Start() {
  asio::post(impl_->strand_, [impl = impl_] { impl->DoStart(); });
}

void Client::Stop() {
  if (impl_->stop_requested_.exchange(true)) return;
  RunOnStrand(impl_->io_, impl_->strand_, [impl = impl_] { impl->DoStop(); });
}

void Client::Command(std::vector<std::string> args, std::string_view slot_key, Callback done) {
  impl_->stats_.commands++;
  asio::post(impl_->strand_, [impl = impl_, args = std::move(args), key = std::string(slot_key),
                              done = std::move(done)]() mutable {
    impl->Submit(std::move(args), std::move(key), std::move(done), {});
  });
}

void Client::Eval(const std::string& script, std::vector<std::string> keys,
                  std::vector<std::string> args, Callback done) {
  impl_->stats_.commands++;
  for (const std::string& key : keys) {
    if (HashSlot(key) != HashSlot(keys.front())) {
      Result result;
      result.status = Result::Status::kOk;
      result.reply.type = Reply::Type::kError;
      result.reply.str = "CROSSSLOT Keys in request don't hash to the same slot";
      result.error = result.reply.str;
      asio::post(impl_->strand_, [done = std::move(done), result = std::move(result)]() mutable {
        done(std::move(result));
      });
      return;
    }
  }
  std::vector<std::string> command;
  command.reserve(3 + keys.size() + args.size());
  command.push_back("EVALSHA");
  command.push_back(Sha1Hex(script));
  command.push_back(std::to_string(keys.size()));
  for (std::string& key : keys) command.push_back(key);
  for (std::string& arg : args) command.push_back(std::move(arg));
  std::string slot_key = keys.empty() ? std::string() : keys.front();
  asio::post(
      impl_->strand_, [impl = impl_, command = std::move(command), slot_key = std::move(slot_key),
                       script = script, done = std::move(done)]() mutable {
        impl->Submit(std::move(command), std::move(slot_key), std::move(done), std::move(script));
      });
}

bool Client::up() const { return impl_->up_.load(std::memory_order_relaxed); }

bool Client::cluster() const { return impl_->cluster_.load(std::memory_order_relaxed); }

ClientStats Client::stats() const {
  const Impl::Stats& s = impl_->stats_;
  ClientStats out;
  out.commands = s.commands.load(std::memory_order_relaxed);
  out.timeouts = s.timeouts.load(std::memory_order_relaxed);
  out.down = s.down.load(std::memory_order_relaxed);
  out.disconnected = s.disconnected.load(std::memory_order_relaxed);
  out.disconnects = s.disconnects.load(std::memory_order_relaxed);
  out.reconnects = s.reconnects.load(std::memory_order_relaxed);
  out.redirects_moved = s.moved.load(std::memory_order_relaxed);
  out.redirects_ask = s.ask.load(std::memory_order_relaxed);
  out.slot_map_loads = s.slot_map_loads.load(std::memory_order_relaxed);
  out.instance_changes = s.instance_changes.load(std::memory_order_relaxed);
  return out;
}

}  // namespace corral::tier

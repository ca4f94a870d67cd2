// corral's Redis client: hiredis 0.14's async API run on a Boost.Asio io_context, with a
// per-command deadline (hiredis has none), reconnects, AUTH, a fail-fast breaker, and Redis Cluster
// routing by hash slot (CLUSTER SLOTS, CRC16 of the hash tag, MOVED/ASK). The only code that
// includes hiredis.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::tier {

// An owned copy of one hiredis reply.
struct Reply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  long long integer = 0;
  std::vector<Reply> elements;  // kArray
  bool IsError() const { return type == Type::kError; }
};

// How one command ended. Every command ends exactly once.
struct Result {
  enum class Status {
    kOk,            // `reply` holds Redis's answer (which may be an error reply, e.g. NOSCRIPT)
    kTimeout,       // no answer within ClientOptions::timeout
    kDisconnected,  // the connection broke while the command was in flight
    kDown,          // refused at once: no connection to the node right now (the breaker is open)
  };
  Status status = Status::kDown;
  Reply reply;
  std::string error;  // what went wrong when status != kOk, for logs
  bool ok() const { return status == Status::kOk && !reply.IsError(); }
};

using Callback = std::function<void(Result)>;

struct ClientOptions {
  std::vector<std::string> nodes;  // "host:port" seeds; standalone mode uses the first that answers
  enum class Cluster { kAuto, kOn, kOff } cluster = Cluster::kAuto;
  std::chrono::milliseconds timeout{100};  // longest any command waits, redirects included
  std::optional<std::string> user;         // AUTH user password (Redis 6 ACL), or AUTH password
  std::optional<std::string> password;
  std::chrono::milliseconds reconnect_min{100};  // backoff between reconnect attempts, doubling
  std::chrono::milliseconds reconnect_max{2000};
  // Called (on the client's strand, before any reply from the new instance is handed on) when
  // the Redis serving some keys may not be the one that acknowledged earlier writes to them: a
  // node's run_id changed across a reconnect (a restart, which may have come back from an older
  // snapshot or empty), or a slot's master changed (a failover, which may lose the writes the
  // old master had not yet replicated; a resharding too, harmlessly). `what` says which, for logs.
  std::function<void(const std::string& what)> on_instance_change;
};

// What a Client has done since it started, for metrics (each event counted once).
struct ClientStats {
  uint64_t commands = 0;          // commands handed to Command()/Eval()
  uint64_t timeouts = 0;          // ended kTimeout
  uint64_t down = 0;              // ended kDown (breaker open, or no slot map yet)
  uint64_t disconnected = 0;      // ended kDisconnected
  uint64_t disconnects = 0;       // connections lost or dropped (stalled, failed connect)
  uint64_t reconnects = 0;        // connection attempts after the first one to a node
  uint64_t redirects_moved = 0;   // MOVED replies followed
  uint64_t redirects_ask = 0;     // ASK replies followed
  uint64_t slot_map_loads = 0;    // CLUSTER SLOTS answers applied
  uint64_t instance_changes = 0;  // times on_instance_change was called
};

// CRC16 (XMODEM) of `key`'s hash tag ("{...}", as Redis Cluster defines it) modulo 16384.
uint16_t HashSlot(std::string_view key);

// Commands to one Redis or a Redis Cluster. Thread-safe: Command() may be called from any thread;
// it posts to the io_context, and every callback runs on a thread running that io_context. Never
// blocks; nothing waits on Redis longer than options.timeout.
//
// Threading: all of the client's state and every hiredis context live on one strand of `io`, so
// the io_context may be run by one thread (the tier thread) or several. Callbacks run on that
// strand: keep them short, and never block in them (they may call Command()/Eval()/Stop()).
//
// Failure model, per node: a node answers (any reply, error replies included) or it fails (connect
// refused or timed out, the connection breaks, or kStallTimeouts = 3 commands in a row time out
// with no reply in between: then the connection is dropped). While a node has no working
// connection its commands end kDown at once (the breaker), and it is reconnected with backoff
// reconnect_min..reconnect_max (each attempt bounded by `timeout`: connect, AUTH, PING). Commands
// given before the first connect has decided standalone or cluster end kDown too: wait for up().
//
// Cluster::kAuto sends CLUSTER SLOTS after the first connect: an error reply means standalone.
// In cluster mode a lost node makes the client re-read the slot map from another node.
class Client {
 public:
  Client(boost::asio::io_context& io, ClientOptions options);
  ~Client();  // Stop()s
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects in the background (cluster mode: reads the slot map); returns at once.
  void Start();
  // Closes every connection; commands in flight end kDisconnected: before Stop() returns when
  // called from a callback, from a thread not running the io_context, or after the io_context
  // stopped; right after the current handler when called from another handler on the io_context.
  // Later commands end kDown. Idempotent; the destructor calls it, and the Client may be destroyed
  // from any thread afterwards, even from inside one of its callbacks.
  void Stop();

  // Sends `args` to the node that owns `slot_key`'s hash slot (standalone: the one node). A MOVED
  // reply refreshes the slot map and retries there, ASK retries once with ASKING; at most 5
  // redirects, within the one deadline. An empty `slot_key` (a keyless command) goes to the owner
  // of slot 0. TRYAGAIN / CLUSTERDOWN are retried every 20 ms until the deadline.
  void Command(std::vector<std::string> args, std::string_view slot_key, Callback done);

  // EVALSHA of `script` (its SHA1 computed once), falling back to EVAL on NOSCRIPT. `keys` must
  // share one hash slot; the command goes to its owner.
  void Eval(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
            Callback done);

  // Some node is connected and (cluster) the slot map is known. Callable from any thread.
  bool up() const;
  // The tier is a Redis Cluster (decided at the first connect under Cluster::kAuto).
  bool cluster() const;
  // A snapshot of the counters; callable from any thread.
  ClientStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// One pub/sub connection (a Redis Cluster broadcasts PUBLISH over its bus, so one node suffices).
// Resubscribes after a drop, trying each known node in turn. Handlers run on the subscriber's
// strand of the io_context, never inside hiredis, so they may call Stop(). A stalled connection
// is noticed by a heartbeat (a SUBSCRIBE to a private channel every second, unanswered for
// max(2 x options.timeout, 1.5 s)); a connect or (re)subscription not confirmed within
// 2 x timeout is a failure too. lost() follows every subscribed() exactly once, unless Stop()
// came first.
class Subscriber {
 public:
  struct Handlers {
    std::function<void(std::string_view channel, std::string_view message)> message;
    std::function<void()> subscribed;  // each time every channel is (re)subscribed
    std::function<void()> lost;        // the subscription dropped: messages may have been missed
  };
  Subscriber(boost::asio::io_context& io, ClientOptions options, std::vector<std::string> channels,
             Handlers handlers);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  void Start();
  void Stop();
  bool subscribed() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace corral::tier

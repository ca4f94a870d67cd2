// corral-herd's client engine: many non-blocking RESP connections on one epoll thread, replies
// parsed with hiredis's redisReader, plus timers and a cross-thread wake-up. 10 000 clients cost
// 10 000 sockets and a few hundred bytes each, not 10 000 threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "bench/herd/clock.h"

struct redisReader;

namespace corral::herd {

struct Endpoint {
  std::string host;  // IPv4 literal
  uint16_t port = 0;
};

// The `why` of OnConnectionLost when the server closed the connection cleanly (end of stream).
inline constexpr char kClosedByServer[] = "connection closed by server";

// "host:port" → Endpoint; false if it does not parse.
bool ParseEndpoint(std::string_view text, Endpoint& out);

// One RESP reply, valid only during the OnReply call that passes it.
struct Reply {
  enum class Kind { kString, kNil, kStatus, kError, kInteger, kArray };
  Kind kind = Kind::kNil;
  std::string_view text;  // kString, kStatus, kError
  long long integer = 0;  // kInteger; element count for kArray
};

// Appends the RESP array encoding of `args` to `out`.
void EncodeCommand(std::initializer_list<std::string_view> args, std::string& out);

// The loop's owner. All callbacks run on the loop thread, inside RespLoop::Run.
class LoopHandler {
 public:
  virtual ~LoopHandler() = default;
  virtual void OnConnected(int conn) = 0;
  // One reply per command sent, in order; `tag` is the one given to Send.
  virtual void OnReply(int conn, uint64_t tag, const Reply& reply) = 0;
  // The connection closed or failed to connect; `tags` are the commands that got no reply.
  virtual void OnConnectionLost(int conn, const std::vector<uint64_t>& tags,
                                const std::string& why) = 0;
  virtual void OnTimer(uint64_t tag) = 0;
  // Wake() was called (from any thread) since the last OnWake.
  virtual void OnWake() = 0;
};

// Not thread-safe except Wake(). Errors on one connection are reported through the handler and
// never stop the loop; the constructor throws if epoll or eventfd cannot be created.
class RespLoop {
 public:
  // `max_connecting`: connects in flight at once; more wait in a queue (servers' listen backlogs
  // are small: Redis's is 511).
  explicit RespLoop(LoopHandler* handler, int max_connecting = 256);
  ~RespLoop();
  RespLoop(const RespLoop&) = delete;
  RespLoop& operator=(const RespLoop&) = delete;

  // A new, closed connection to `endpoint`; it connects on Connect() or the first Send().
  int AddConnection(const Endpoint& endpoint);
  // Points a closed connection at another endpoint (a client moving to another node); its next
  // Connect or Send goes there. Ignored unless the connection is closed.
  void SetEndpoint(int conn, const Endpoint& endpoint);
  size_t connection_count() const { return conns_.size(); }
  void Connect(int conn);
  bool is_open(int conn) const;
  // Commands whose replies have not arrived yet (sent or still buffered).
  size_t pending(int conn) const;

  // Queues one encoded command; its reply is delivered with `tag`. Connects if closed.
  void Send(int conn, std::string_view encoded, uint64_t tag);
  // Closes with a TCP reset (no TIME_WAIT left behind). Pending tags are dropped silently.
  void Close(int conn);
  void CloseAll();

  // Calls OnTimer(tag) once `when` has passed (millisecond resolution).
  void AddTimer(TimePoint when, uint64_t tag);
  // Thread-safe: makes the loop call OnWake soon.
  void Wake();

  // How well the loop kept up: the longest stretch spent handling events and timers without
  // returning to epoll_wait (our own work), and the most epoll_wait overslept its timeout (the
  // thread was not scheduled). Either one large means the measurement itself was late.
  struct Stats {
    int64_t max_busy_us = 0;
    TimePoint max_busy_at;        // when that stretch began
    int64_t max_busy_cpu_us = 0;  // CPU the thread used in it: far below max_busy_us = preempted
    int64_t max_late_wake_us = 0;
    TimePoint max_late_wake_at;  // when that wait began
  };
  const Stats& stats() const { return stats_; }
  void ResetStats() { stats_ = {}; }

  // Processes events until `done()` returns true (checked after every batch of events) or
  // `deadline` passes. Returns false on deadline.
  bool Run(const std::function<bool()>& done, TimePoint deadline);

 private:
  struct Conn;
  void StartConnect(int conn);
  void OnConnectDone(int conn);
  void OnReadable(int conn);
  bool Flush(int conn);  // false if the connection failed
  void UpdateInterest(int conn);
  void Fail(int conn, const std::string& why);
  void Release(int conn);  // closes the fd, keeps the slot
  void PumpConnectQueue();
  void FireTimers();

  LoopHandler* handler_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int max_connecting_;
  int connecting_ = 0;
  std::vector<Endpoint> endpoints_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::queue<int> connect_queue_;
  struct Timer {
    TimePoint when;
    uint64_t tag;
    bool operator>(const Timer& o) const { return when > o.when; }
  };
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  Stats stats_;
};

}  // namespace corral::herd

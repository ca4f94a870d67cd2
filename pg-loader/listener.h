// The invalidation listener (SPEC rule 6, "Freshness promise"): LISTEN on the primary over a direct
// connection (PgBouncer in transaction mode cannot carry LISTEN), on its own thread, reconnecting
// with back-off. A lost connection is reported, because notifications sent meanwhile are lost.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace corral::pg {

// A connection that has been quiet this long is pinged (SELECT 1), and one whose ping gets no
// answer within kListenerPingTimeoutMs is treated as lost. TCP keepalives alone cannot see a
// silent primary behind a middlebox that still ACKs (a blackholed link, a stalled proxy), so a
// silent primary is noticed within about kListenerPingIdleMs + kListenerPingTimeoutMs.
inline constexpr int64_t kListenerPingIdleMs = 2000;
inline constexpr int64_t kListenerPingTimeoutMs = 2000;

class Listener {
 public:
  // `primary` is a libpq connection string (a connect timeout and TCP keepalives are added unless
  // it sets them); `channel` is the NOTIFY channel, used verbatim (quoted as an identifier).
  // Callbacks run on the listener's thread, one at a time, and must not throw or call Stop():
  //   on_notify(payload)  once per notification; the view is valid during the call only.
  //   on_disconnect()     once each time an established connection is lost, or goes silent (see
  //                       kListenerPingIdleMs; not on Stop(), not when a connection attempt
  //                       fails).
  //   on_connect()        each time LISTEN is in effect on a new connection; notifications sent
  //                       before this moment were missed.
  Listener(std::string primary, std::string channel,
           std::function<void(std::string_view)> on_notify, std::function<void()> on_disconnect,
           std::function<void()> on_connect = {});
  ~Listener();  // Stop()

  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Spawns the thread, which connects at once and then keeps reconnecting (100 ms doubling to 2 s)
  // while the primary is unreachable. Call once.
  void Start();
  // Wakes and joins the thread and closes the connection. A ping or a connection attempt under
  // way ends first (within kListenerPingTimeoutMs or the connect timeout). Idempotent.
  void Stop();
  // True while LISTEN is in effect. Thread-safe.
  bool connected() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace corral::pg

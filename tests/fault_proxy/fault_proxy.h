// A TCP proxy for tests that puts network faults between corral and a server it talks to
// (PostgreSQL, Redis): latency, a bandwidth cap, a blackhole, a half-open stall, a reset mid-reply.
// It runs in the test's process on its own Boost.Asio thread and listens on a free loopback port.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace corral::fault {

using Millis = std::chrono::milliseconds;

// What the proxy has done so far. Connections count from the proxy's start.
struct ProxyCounters {
  int64_t accepted = 0;            // client connections accepted
  int64_t upstream_connected = 0;  // upstream connections established
  int64_t upstream_failed = 0;     // upstream connection attempts that failed
  int64_t open = 0;                // accepted connections not yet closed by either side
  int64_t bytes_to_upstream = 0;   // bytes written to the upstream (client -> upstream)
  int64_t bytes_to_client = 0;     // bytes written to clients (upstream -> client)
  int64_t resets = 0;              // client connections reset by ResetMidReply
};

// Forwards every connection accepted on 127.0.0.1:port() to the upstream, both ways, and can break
// that forwarding on command. Faults apply to the connections open at the call and to later ones.
// Data is never dropped or reordered: a link that stops forwarding holds what it has (as TCP
// retransmission would) and delivers it after Heal(). Only ResetMidReply loses data, by design.
//
// Every public function is thread-safe. The controls take effect on the proxy's thread right after
// they return (they are queued to it in order); counters() reflects what that thread has done.
struct ProxyLoop;  // the proxy's event loop (fault_proxy.cc)

class FaultProxy {
 public:
  // Resolves the upstream and binds 127.0.0.1:0. Throws std::runtime_error if either fails
  // (test set-up). The proxy forwards plainly until a fault is set.
  FaultProxy(const std::string& upstream_host, uint16_t upstream_port);
  // Closes the listener and every connection (with a FIN), and joins the thread.
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  uint16_t port() const { return port_; }

  // Each chunk read from either side is written to the other `delay` after it arrived (in order).
  // Millis(0) turns latency off for chunks that arrive from now on.
  void SetLatency(Millis delay);
  // Caps each direction of each connection at `bytes_per_second`; 0 lifts the cap.
  void SetBandwidth(int64_t bytes_per_second);
  // The link goes black: new connections are accepted but not connected upstream, and nothing is
  // forwarded either way. Whatever either side sends is read and held (its writes succeed, as into
  // a network that silently drops packets); nothing is ever answered and nothing is closed.
  void Blackhole();
  // The link stalls half-open: the proxy stops reading from and writing to every connection (new
  // ones are accepted and left alone), so the peer sees a silent, open socket whose writes
  // eventually block once the kernel buffers fill. Nothing is closed.
  void StallHalfOpen();
  // From now on, each connection forwards at most `after_bytes` more bytes from the upstream (a
  // connection accepted later: from its start), then its client side is reset (RST, SO_LINGER 0)
  // in the middle of the reply and its upstream side closed.
  void ResetMidReply(int64_t after_bytes);
  // Back to plain forwarding: no latency, no cap, no reset; held data and held connections flow.
  void Heal();

  ProxyCounters counters() const;
  // Waits until `condition(counters())` holds or `timeout` passes; returns whether it held.
  // Wakes on every counter change (no polling).
  bool WaitFor(const std::function<bool(const ProxyCounters&)>& condition, Millis timeout) const;

 private:
  std::shared_ptr<ProxyLoop> impl_;
  uint16_t port_ = 0;
};

}  // namespace corral::fault

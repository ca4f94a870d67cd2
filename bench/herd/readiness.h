// What a load balancer's health check sees: a thread that asks every corral node's HTTP
// `/readyz` every `interval` and keeps the last answer. A node is ready only on a 200 within the
// probe's timeout; a refused connect, a timeout or any other status is "not ready". The rolling
// scenario's clients use it as a client behind a load balancer would (driver.h, TargetConfig).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/herd/clock.h"
#include "bench/herd/resp_loop.h"

namespace corral::herd {

class ReadinessProbe {
 public:
  // One HTTP address per node. Every node starts "ready" (as a load balancer that has not
  // probed yet sends traffic) until its first probe answers. Starts probing at once.
  ReadinessProbe(std::vector<Endpoint> http, Clock::duration interval, Clock::duration timeout);
  ~ReadinessProbe();
  ReadinessProbe(const ReadinessProbe&) = delete;
  ReadinessProbe& operator=(const ReadinessProbe&) = delete;

  size_t size() const { return http_.size(); }
  // Thread-safe.
  bool ready(size_t node) const { return state_[node].load(std::memory_order_relaxed); }
  // Probes that found a node's answer changed (ready ↔ not ready), over all nodes.
  int64_t flips() const { return flips_.load(std::memory_order_relaxed); }

 private:
  void Run();

  const std::vector<Endpoint> http_;
  const Clock::duration interval_, timeout_;
  std::unique_ptr<std::atomic<bool>[]> state_;
  std::atomic<int64_t> flips_{0};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

// GET /readyz on `http`: true on a 200 status line within `timeout`.
bool ProbeReady(const Endpoint& http, Clock::duration timeout);

// GET `path` on `http` with Connection: close. Returns the status (0: no answer within `timeout`);
// with `body`, reads until the server closes and stores the body (not chunk-decoded: corral's
// HTTP endpoint sends a Content-Length), and an answer cut short by the deadline counts as none.
int HttpGet(const Endpoint& http, std::string_view path, Clock::duration timeout,
            std::string* body);

}  // namespace corral::herd

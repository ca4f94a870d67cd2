#include "bench/herd/readiness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace corral::herd {
namespace {

// Waits until `fd` is ready for `events` or `deadline` passes.
bool WaitFor(int fd, short events, TimePoint deadline) {
  for (;;) {
    const int64_t left_ms = MicrosBetween(Clock::now(), deadline) / 1000;
    if (left_ms <= 0) return false;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left_ms));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

}  // namespace

bool ProbeReady(const Endpoint& http, Clock::duration timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(http.port);
  if (::inet_pton(AF_INET, http.host.c_str(), &addr.sin_addr) != 1) return false;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ready = false;
  do {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      if (errno != EINPROGRESS || !WaitFor(fd, POLLOUT, deadline)) break;
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) break;
    }
    const std::string request =
        "GET /readyz HTTP/1.1\r\nHost: " + http.host + "\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      break;  // a few dozen bytes into an empty socket buffer: all or nothing
    }
    // The status line is all we need: "HTTP/1.1 200 ...".
    std::string head;
    while (head.find("\r\n") == std::string::npos && head.size() < 256) {
      if (!WaitFor(fd, POLLIN, deadline)) break;
      char buf[256];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    ready = head.rfind("HTTP/1.", 0) == 0 && head.size() >= 12 && head.compare(8, 4, " 200") == 0;
  } while (false);
  ::close(fd);
  return ready;
}

ReadinessProbe::ReadinessProbe(std::vector<Endpoint> http, Clock::duration interval,
                               Clock::duration timeout)
    : http_(std::move(http)),
      interval_(interval),
      timeout_(timeout),
      state_(new std::atomic<bool>[http_.size()]) {
  for (size_t i = 0; i < http_.size(); ++i) state_[i] = true;
  thread_ = std::thread([this] { Run(); });
}

ReadinessProbe::~ReadinessProbe() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ReadinessProbe::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    for (size_t i = 0; i < http_.size(); ++i) {
      const bool now = ProbeReady(http_[i], timeout_);
      if (state_[i].exchange(now, std::memory_order_relaxed) != now) {
        flips_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

}  // namespace corral::herd

#include "bench/herd/readiness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
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

std::string LowerCase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int HttpGet(const Endpoint& http, std::string_view path, Clock::duration timeout,
            std::string* body) {
  const TimePoint deadline = Clock::now() + timeout;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(http.port);
  if (::inet_pton(AF_INET, http.host.c_str(), &addr.sin_addr) != 1) return 0;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int status = 0;
  do {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      if (errno != EINPROGRESS || !WaitFor(fd, POLLOUT, deadline)) break;
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) break;
    }
    const std::string request = "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + http.host +
                                "\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      break;  // a few dozen bytes into an empty socket buffer: all or nothing
    }
    // Without a body, the status line is all we need: "HTTP/1.1 200 ...". With one, read up to
    // Content-Length, or until the server closes when there is none.
    std::string head;
    bool complete = false;
    while (!complete) {
      if (!WaitFor(fd, POLLIN, deadline)) break;
      char buf[16384];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        complete = n == 0 && body != nullptr;
        break;
      }
      head.append(buf, static_cast<size_t>(n));
      if (body == nullptr) {
        complete = head.find("\r\n") != std::string::npos || head.size() >= 256;
      } else if (const size_t end = head.find("\r\n\r\n"); end != std::string::npos) {
        const size_t at = LowerCase(head.substr(0, end)).find("\r\ncontent-length:");
        complete = at != std::string::npos &&
                   head.size() >= end + 4 + std::strtoull(head.c_str() + at + 17, nullptr, 10);
      }
    }
    if (!complete || head.rfind("HTTP/1.", 0) != 0 || head.size() < 12 || head[8] != ' ') break;
    if (body != nullptr) {
      const size_t start = head.find("\r\n\r\n");
      if (start == std::string::npos) break;
      *body = head.substr(start + 4);
    }
    status = std::atoi(head.c_str() + 9);
  } while (false);
  ::close(fd);
  return status;
}

bool ProbeReady(const Endpoint& http, Clock::duration timeout) {
  return HttpGet(http, "/readyz", timeout, nullptr) == 200;
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

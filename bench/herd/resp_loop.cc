// The epoll client engine of resp_loop.h: level-triggered epoll, EPOLLOUT only while output is
// buffered, one redisReader per open connection, a min-heap of timers and an eventfd for wake-ups.
#include "bench/herd/resp_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <deque>
#include <stdexcept>

namespace corral::herd {

namespace {

constexpr uint64_t kWakeId = ~uint64_t{0};
constexpr size_t kReadChunk = 64 * 1024;

int64_t ThreadCpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000 + ts.tv_nsec / 1000;
}

uint64_t EventId(int conn, uint32_t gen) { return (uint64_t{gen} << 32) | uint32_t(conn); }

}  // namespace

bool ParseEndpoint(std::string_view text, Endpoint& out) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  unsigned port = 0;
  std::string_view digits = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535) {
    return false;
  }
  in_addr addr{};
  std::string host(text.substr(0, colon));
  if (host == "localhost") host = "127.0.0.1";
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) return false;
  out.host = host;
  out.port = static_cast<uint16_t>(port);
  return true;
}

void EncodeCommand(std::initializer_list<std::string_view> args, std::string& out) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (std::string_view a : args) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out += a;
    out += "\r\n";
  }
}

struct RespLoop::Conn {
  enum class State { kClosed, kQueued, kConnecting, kOpen };
  State state = State::kClosed;
  int fd = -1;
  uint32_t gen = 0;  // bumped on every close, so stale epoll events are recognised
  int endpoint = 0;
  bool watching_out = false;
  std::string out;
  size_t out_pos = 0;
  redisReader* reader = nullptr;
  std::deque<uint64_t> tags;
};

RespLoop::RespLoop(LoopHandler* handler, int max_connecting)
    : handler_(handler), max_connecting_(max_connecting) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0)
    throw std::runtime_error("epoll/eventfd: " + std::string(strerror(errno)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

RespLoop::~RespLoop() {
  CloseAll();
  close(wake_fd_);
  close(epoll_fd_);
}

int RespLoop::AddConnection(const Endpoint& endpoint) {
  int id = static_cast<int>(conns_.size());
  endpoints_.push_back(endpoint);
  conns_.push_back(std::make_unique<Conn>());
  conns_.back()->endpoint = id;
  return id;
}

void RespLoop::SetEndpoint(int conn, const Endpoint& endpoint) {
  Conn& c = *conns_[conn];
  if (c.state == Conn::State::kClosed) endpoints_[c.endpoint] = endpoint;
}

bool RespLoop::is_open(int conn) const { return conns_[conn]->state == Conn::State::kOpen; }

size_t RespLoop::pending(int conn) const { return conns_[conn]->tags.size(); }

void RespLoop::Connect(int conn) {
  Conn& c = *conns_[conn];
  if (c.state != Conn::State::kClosed) return;
  c.state = Conn::State::kQueued;
  connect_queue_.push(conn);
  PumpConnectQueue();
}

void RespLoop::PumpConnectQueue() {
  while (connecting_ < max_connecting_ && !connect_queue_.empty()) {
    int conn = connect_queue_.front();
    connect_queue_.pop();
    if (conns_[conn]->state == Conn::State::kQueued) StartConnect(conn);
  }
}

void RespLoop::StartConnect(int conn) {
  Conn& c = *conns_[conn];
  const Endpoint& ep = endpoints_[c.endpoint];
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    c.state = Conn::State::kClosed;
    Fail(conn, std::string("socket: ") + strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ep.port);
  inet_pton(AF_INET, ep.host.c_str(), &addr.sin_addr);
  c.fd = fd;
  c.state = Conn::State::kConnecting;
  ++connecting_;
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc < 0 && errno != EINPROGRESS) {
    Fail(conn, std::string("connect: ") + strerror(errno));
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u64 = EventId(conn, c.gen);
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  c.watching_out = true;
}

void RespLoop::OnConnectDone(int conn) {
  Conn& c = *conns_[conn];
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    Fail(conn, std::string("connect: ") + strerror(err));
    return;
  }
  --connecting_;
  c.state = Conn::State::kOpen;
  c.reader = redisReaderCreate();
  UpdateInterest(conn);
  PumpConnectQueue();
  if (!Flush(conn)) return;
  handler_->OnConnected(conn);
}

void RespLoop::UpdateInterest(int conn) {
  Conn& c = *conns_[conn];
  if (c.state != Conn::State::kOpen) return;
  bool want_out = c.out_pos < c.out.size();
  epoll_event ev{};
  ev.events = EPOLLIN | (want_out ? uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = EventId(conn, c.gen);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.watching_out = want_out;
}

bool RespLoop::Flush(int conn) {
  Conn& c = *conns_[conn];
  while (c.out_pos < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_pos += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Fail(conn, std::string("send: ") + strerror(errno));
    return false;
  }
  if (c.out_pos == c.out.size()) {
    c.out.clear();
    c.out_pos = 0;
  }
  bool want_out = c.out_pos < c.out.size();
  if (want_out != c.watching_out) UpdateInterest(conn);
  return true;
}

void RespLoop::Send(int conn, std::string_view encoded, uint64_t tag) {
  Conn& c = *conns_[conn];
  c.out.append(encoded);
  c.tags.push_back(tag);
  switch (c.state) {
    case Conn::State::kClosed:
      Connect(conn);
      break;
    case Conn::State::kOpen:
      Flush(conn);
      break;
    default:
      break;  // flushed once connected
  }
}

void RespLoop::OnReadable(int conn) {
  Conn& c = *conns_[conn];
  const uint32_t gen = c.gen;
  char buf[kReadChunk];
  while (true) {
    ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n == 0) {
      Fail(conn, kClosedByServer);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Fail(conn, std::string("recv: ") + strerror(errno));
      return;
    }
    if (redisReaderFeed(c.reader, buf, static_cast<size_t>(n)) != REDIS_OK) {
      Fail(conn, "reader: " + std::string(c.reader->errstr));
      return;
    }
    while (true) {
      void* obj = nullptr;
      if (redisReaderGetReply(c.reader, &obj) != REDIS_OK) {
        Fail(conn, "protocol error: " + std::string(c.reader->errstr));
        return;
      }
      if (obj == nullptr) break;
      auto* r = static_cast<redisReply*>(obj);
      Reply reply;
      switch (r->type) {
        case REDIS_REPLY_STRING:
          reply.kind = Reply::Kind::kString;
          reply.text = std::string_view(r->str, r->len);
          break;
        case REDIS_REPLY_STATUS:
          reply.kind = Reply::Kind::kStatus;
          reply.text = std::string_view(r->str, r->len);
          break;
        case REDIS_REPLY_ERROR:
          reply.kind = Reply::Kind::kError;
          reply.text = std::string_view(r->str, r->len);
          break;
        case REDIS_REPLY_INTEGER:
          reply.kind = Reply::Kind::kInteger;
          reply.integer = r->integer;
          break;
        case REDIS_REPLY_ARRAY:
          reply.kind = Reply::Kind::kArray;
          reply.integer = static_cast<long long>(r->elements);
          break;
        default:
          reply.kind = Reply::Kind::kNil;
      }
      if (c.tags.empty()) {
        freeReplyObject(r);
        Fail(conn, "reply without a command");
        return;
      }
      uint64_t tag = c.tags.front();
      c.tags.pop_front();
      handler_->OnReply(conn, tag, reply);
      freeReplyObject(r);
      // The handler may have closed (and even reopened) this connection.
      if (c.gen != gen || c.state != Conn::State::kOpen) return;
    }
    if (static_cast<size_t>(n) < sizeof buf) return;
  }
}

void RespLoop::Release(int conn) {
  Conn& c = *conns_[conn];
  if (c.state == Conn::State::kConnecting) --connecting_;
  if (c.fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    linger lg{1, 0};  // reset, so that 10 000 closes leave no TIME_WAIT behind
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c.fd);
    c.fd = -1;
  }
  if (c.reader != nullptr) {
    redisReaderFree(c.reader);
    c.reader = nullptr;
  }
  c.state = Conn::State::kClosed;
  c.watching_out = false;
  c.out.clear();
  c.out_pos = 0;
  ++c.gen;
}

void RespLoop::Fail(int conn, const std::string& why) {
  Conn& c = *conns_[conn];
  std::vector<uint64_t> tags(c.tags.begin(), c.tags.end());
  c.tags.clear();
  Release(conn);
  PumpConnectQueue();
  handler_->OnConnectionLost(conn, tags, why);
}

void RespLoop::Close(int conn) {
  Conn& c = *conns_[conn];
  c.tags.clear();
  Release(conn);
  PumpConnectQueue();
}

void RespLoop::CloseAll() {
  for (size_t i = 0; i < conns_.size(); ++i) {
    conns_[i]->tags.clear();
    Release(static_cast<int>(i));
  }
  while (!connect_queue_.empty()) connect_queue_.pop();
}

void RespLoop::AddTimer(TimePoint when, uint64_t tag) { timers_.push({when, tag}); }

void RespLoop::Wake() {
  uint64_t one = 1;
  ssize_t rc = write(wake_fd_, &one, sizeof one);
  (void)rc;
}

void RespLoop::FireTimers() {
  TimePoint now = Clock::now();
  while (!timers_.empty() && timers_.top().when <= now) {
    uint64_t tag = timers_.top().tag;
    timers_.pop();
    handler_->OnTimer(tag);
  }
}

bool RespLoop::Run(const std::function<bool()>& done, TimePoint deadline) {
  constexpr int kMaxEvents = 1024;
  epoll_event events[kMaxEvents];
  TimePoint busy_since = Clock::now();
  int64_t busy_cpu_since = ThreadCpuMicros();
  while (true) {
    FireTimers();
    if (done()) return true;
    TimePoint now = Clock::now();
    if (now >= deadline) return false;
    TimePoint until = deadline;
    if (!timers_.empty() && timers_.top().when < until) until = timers_.top().when;
    // A timer added while handling events may already be due: never wait a negative time
    // (epoll_wait would read it as "forever").
    int64_t wait_us = std::max<int64_t>(0, MicrosBetween(now, until));
    int timeout_ms = static_cast<int>(std::min<int64_t>((wait_us + 999) / 1000, 50));
    TimePoint before_wait = Clock::now();
    const int64_t busy_us = MicrosBetween(busy_since, before_wait);
    if (busy_us > stats_.max_busy_us) {
      stats_.max_busy_us = busy_us;
      stats_.max_busy_at = busy_since;
      stats_.max_busy_cpu_us = ThreadCpuMicros() - busy_cpu_since;
    }
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    busy_since = Clock::now();
    busy_cpu_since = ThreadCpuMicros();
    const int64_t late_us = MicrosBetween(before_wait, busy_since) - timeout_ms * int64_t{1000};
    if (late_us > stats_.max_late_wake_us) {
      stats_.max_late_wake_us = late_us;
      stats_.max_late_wake_at = before_wait;
    }
    for (int i = 0; i < n; ++i) {
      uint64_t id = events[i].data.u64;
      if (id == kWakeId) {
        uint64_t count;
        ssize_t rc = read(wake_fd_, &count, sizeof count);
        (void)rc;
        handler_->OnWake();
        continue;
      }
      int conn = static_cast<int>(id & 0xffffffffu);
      uint32_t gen = static_cast<uint32_t>(id >> 32);
      Conn& c = *conns_[conn];
      if (c.gen != gen) continue;  // closed since this event was queued
      if (c.state == Conn::State::kConnecting) {
        OnConnectDone(conn);
        continue;
      }
      if (c.state != Conn::State::kOpen) continue;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) OnReadable(conn);
      if (c.gen == gen && c.state == Conn::State::kOpen && (events[i].events & EPOLLOUT)) {
        Flush(conn);
      }
    }
  }
}

}  // namespace corral::herd

// FaultProxy against a local echo server: plain forwarding, then each fault and its healing. Every
// wait is on a condition with a deadline; "nothing arrives" is checked over a stated window.
#include "tests/fault_proxy/fault_proxy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <memory>
#include <string>
#include <thread>

namespace corral::fault {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// An echo server on 127.0.0.1:0 that counts its connections.
class EchoServer {
 public:
  EchoServer() : acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    asio::post(io_, [this] { acceptor_.close(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted() const { return accepted_.load(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    void Read() {
      socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](
                                                    const boost::system::error_code& ec, size_t n) {
        if (ec == asio::error::eof) {
          boost::system::error_code ignored;
          self->socket.shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        if (ec) return;
        asio::async_write(self->socket, asio::buffer(self->buf.data(), n),
                          [self](const boost::system::error_code& write_ec, size_t) {
                            if (!write_ec) self->Read();
                          });
      });
    }
    tcp::socket socket;
    std::array<char, 8192> buf;
  };

  void Accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;
      ++accepted_;
      std::make_shared<Session>(std::move(socket))->Read();
      Accept();
    });
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  tcp::acceptor acceptor_;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A non-blocking client socket with deadline-bounded reads and writes.
class Client {
 public:
  static std::unique_ptr<Client> Connect(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return nullptr;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return std::unique_ptr<Client>(new Client(fd));
  }
  ~Client() { ::close(fd_); }

  // Sends all of `bytes`, reading whatever arrives meanwhile; false at the deadline or on error.
  bool Send(const std::string& bytes, Millis timeout = Millis(5000)) {
    const auto deadline = Clock::now() + timeout;
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      if (!Poll(POLLOUT | POLLIN, deadline)) return false;
      ReadAvailable();
    }
    return true;
  }

  // Sends `chunk` over and over until the kernel takes no more for `quiet`; the bytes sent.
  size_t FillUntilBlocked(Millis quiet) {
    const std::string chunk(64 * 1024, 'f');
    size_t sent = 0;
    while (true) {
      const ssize_t n = ::send(fd_, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return sent;
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(quiet.count())) == 0) return sent;
    }
  }

  // Reads until at least `n` bytes have arrived; false at the deadline, or on EOF or an error.
  bool ReadAtLeast(size_t n, Millis timeout = Millis(5000)) {
    const auto deadline = Clock::now() + timeout;
    while (received_.size() < n) {
      if (!ReadAvailable()) return false;
      if (received_.size() >= n) break;
      if (!Poll(POLLIN, deadline)) return false;
    }
    return true;
  }

  // Reads until the stream ends (EOF or an error); false if it is still open at the deadline.
  bool ReadUntilClosed(Millis timeout = Millis(5000)) {
    const auto deadline = Clock::now() + timeout;
    while (ReadAvailable()) {
      if (!Poll(POLLIN, deadline)) return false;
    }
    return true;
  }

  // Waits `window` for any byte or close; true if nothing at all happened (the link is silent).
  bool SilentFor(Millis window) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(window.count())) == 0;
  }

  const std::string& received() const { return received_; }
  bool eof() const { return eof_; }
  int fd() const { return fd_; }
  int error() const { return error_; }  // errno that ended the stream, 0 if none

 private:
  explicit Client(int fd) : fd_(fd) {}

  bool Poll(short events, Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, events, 0};
    return ::poll(&p, 1, static_cast<int>(left)) > 0;
  }

  // Reads what is there without waiting; false once the stream has ended.
  bool ReadAvailable() {
    char buf[65536];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        received_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        eof_ = true;
        return false;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      error_ = errno;
      return false;
    }
  }

  int fd_;
  std::string received_;
  bool eof_ = false;
  int error_ = 0;
};

// Long enough that a forwarding proxy on an idle loopback would have answered many times over.
constexpr Millis kSilenceWindow(300);

class FaultProxyTest : public ::testing::Test {
 protected:
  EchoServer echo_;
  FaultProxy proxy_{"127.0.0.1", echo_.port()};
};

TEST_F(FaultProxyTest, ForwardsBothWaysAndCounts) {
  auto c = Client::Connect(proxy_.port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("hello"));
  ASSERT_TRUE(c->ReadAtLeast(5));
  EXPECT_EQ(c->received(), "hello");
  ASSERT_TRUE(
      proxy_.WaitFor([](const ProxyCounters& k) { return k.bytes_to_client == 5; }, Millis(5000)));
  const ProxyCounters k = proxy_.counters();
  EXPECT_EQ(k.accepted, 1);
  EXPECT_EQ(k.upstream_connected, 1);
  EXPECT_EQ(k.open, 1);
  EXPECT_EQ(k.bytes_to_upstream, 5);
  EXPECT_EQ(echo_.accepted(), 1);
  // A half-close travels through: the echo server sees EOF and closes, and so does the proxy.
  ::shutdown(c->fd(), SHUT_WR);
  EXPECT_TRUE(c->ReadUntilClosed());
  EXPECT_TRUE(c->eof());
  EXPECT_TRUE(proxy_.WaitFor([](const ProxyCounters& k) { return k.open == 0; }, Millis(5000)));
}

TEST_F(FaultProxyTest, LatencyDelaysEachDirection) {
  auto c = Client::Connect(proxy_.port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("warm"));
  ASSERT_TRUE(c->ReadAtLeast(4));
  proxy_.SetLatency(Millis(150));
  const auto start = Clock::now();
  ASSERT_TRUE(c->Send("ping"));
  ASSERT_TRUE(c->ReadAtLeast(8));
  const auto elapsed = std::chrono::duration_cast<Millis>(Clock::now() - start);
  // 150 ms on the way up and 150 ms on the way back.
  EXPECT_GE(elapsed, Millis(300));
  EXPECT_EQ(c->received(), "warmping");
  proxy_.SetLatency(Millis(0));
  const auto fast = Clock::now();
  ASSERT_TRUE(c->Send("pong"));
  ASSERT_TRUE(c->ReadAtLeast(12));
  EXPECT_LT(Clock::now() - fast, Millis(300));
}

TEST_F(FaultProxyTest, BandwidthCapsEachDirection) {
  proxy_.SetBandwidth(200 * 1024);
  auto c = Client::Connect(proxy_.port());
  ASSERT_TRUE(c);
  const std::string payload(100 * 1024, 'b');
  const auto start = Clock::now();
  ASSERT_TRUE(c->Send(payload));
  ASSERT_TRUE(c->ReadAtLeast(payload.size(), Millis(10000)));
  const auto elapsed = std::chrono::duration_cast<Millis>(Clock::now() - start);
  // 100 KiB at 200 KiB/s takes 500 ms each way (the two ways overlap); a slice of 20 ms may go
  // out before the first wait.
  EXPECT_GE(elapsed, Millis(450));
  EXPECT_EQ(c->received(), payload);
}

TEST_F(FaultProxyTest, BlackholeHoldsEverythingUntilHealed) {
  auto before = Client::Connect(proxy_.port());
  ASSERT_TRUE(before);
  ASSERT_TRUE(before->Send("a"));
  ASSERT_TRUE(before->ReadAtLeast(1));
  proxy_.Blackhole();
  // An existing connection: the send succeeds, nothing comes back, nothing closes.
  ASSERT_TRUE(before->Send("b"));
  EXPECT_TRUE(before->SilentFor(kSilenceWindow));
  // A new connection is accepted but never connected upstream, and never answered.
  auto during = Client::Connect(proxy_.port());
  ASSERT_TRUE(during);
  ASSERT_TRUE(during->Send("c"));
  ASSERT_TRUE(proxy_.WaitFor([](const ProxyCounters& k) { return k.accepted == 2; }, Millis(5000)));
  EXPECT_TRUE(during->SilentFor(kSilenceWindow));
  EXPECT_EQ(echo_.accepted(), 1);
  EXPECT_EQ(proxy_.counters().upstream_connected, 1);
  EXPECT_EQ(proxy_.counters().bytes_to_upstream, 1);
  // Healed: what was held is delivered, in order, on both connections.
  proxy_.Heal();
  ASSERT_TRUE(before->ReadAtLeast(2));
  EXPECT_EQ(before->received(), "ab");
  ASSERT_TRUE(during->ReadAtLeast(1));
  EXPECT_EQ(during->received(), "c");
  EXPECT_EQ(echo_.accepted(), 2);
  EXPECT_FALSE(before->eof());
  EXPECT_FALSE(during->eof());
}

TEST_F(FaultProxyTest, HalfOpenStallStopsReadingAndNeverCloses) {
  auto c = Client::Connect(proxy_.port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("a"));
  ASSERT_TRUE(c->ReadAtLeast(1));
  proxy_.StallHalfOpen();
  // The proxy reads nothing more, so the client's writes block once the buffers are full.
  const size_t sent = c->FillUntilBlocked(Millis(200));
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, size_t{64} << 20);  // blocked well before 64 MiB
  EXPECT_TRUE(c->SilentFor(kSilenceWindow));
  EXPECT_FALSE(c->eof());
  auto during = Client::Connect(proxy_.port());
  ASSERT_TRUE(during);
  ASSERT_TRUE(during->Send("x"));
  EXPECT_TRUE(during->SilentFor(kSilenceWindow));
  EXPECT_EQ(echo_.accepted(), 1);
  // Healed: the stream resumes where it stopped, nothing lost.
  proxy_.Heal();
  ASSERT_TRUE(c->ReadAtLeast(1 + sent, Millis(20000)));
  EXPECT_EQ(c->received().size(), 1 + sent);
  ASSERT_TRUE(during->ReadAtLeast(1));
  EXPECT_EQ(during->received(), "x");
}

TEST_F(FaultProxyTest, ResetMidReplyCutsTheClientAfterTheGivenBytes) {
  auto c = Client::Connect(proxy_.port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Send("a"));
  ASSERT_TRUE(c->ReadAtLeast(1));
  proxy_.ResetMidReply(1000);
  const std::string payload(100 * 1024, 'r');
  c->Send(payload);  // may fail part-way: the proxy resets the connection meanwhile
  EXPECT_TRUE(c->ReadUntilClosed());
  EXPECT_EQ(c->error(), ECONNRESET);
  EXPECT_LE(c->received().size(), 1u + 1000u);
  ASSERT_TRUE(proxy_.WaitFor([](const ProxyCounters& k) { return k.resets == 1; }, Millis(5000)));
  EXPECT_EQ(proxy_.counters().bytes_to_client, 1 + 1000) << c->received().size();
  // Still armed for new connections, counted from their start.
  auto again = Client::Connect(proxy_.port());
  ASSERT_TRUE(again);
  again->Send(payload);
  EXPECT_TRUE(again->ReadUntilClosed());
  EXPECT_EQ(again->error(), ECONNRESET);
  ASSERT_TRUE(proxy_.WaitFor([](const ProxyCounters& k) { return k.resets == 2; }, Millis(5000)));
  // Healed: a whole reply goes through.
  proxy_.Heal();
  auto healed = Client::Connect(proxy_.port());
  ASSERT_TRUE(healed);
  ASSERT_TRUE(healed->Send(payload));
  ASSERT_TRUE(healed->ReadAtLeast(payload.size()));
  EXPECT_EQ(healed->received(), payload);
  EXPECT_EQ(proxy_.counters().resets, 2);
}

TEST(FaultProxyUpstreamTest, UpstreamRefusedClosesTheClient) {
  // A port that was free a moment ago: bind, read the port, close.
  uint16_t dead_port;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    dead_port = a.local_endpoint().port();
  }
  FaultProxy proxy("127.0.0.1", dead_port);
  auto c = Client::Connect(proxy.port());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->ReadUntilClosed());
  EXPECT_TRUE(proxy.WaitFor(
      [](const ProxyCounters& k) { return k.upstream_failed == 1 && k.open == 0; }, Millis(5000)));
}

TEST(FaultProxyUpstreamTest, UnresolvableUpstreamThrowsAtSetUp) {
  EXPECT_THROW(FaultProxy("no-such-host.invalid", 5432), std::runtime_error);
}

}  // namespace
}  // namespace corral::fault

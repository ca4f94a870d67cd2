// The fault proxy's event loop: one Asio thread owns every socket and the fault settings; each
// connection pumps two directions (a held queue of chunks each) and re-checks the faults whenever a
// read, a write or a timer completes, or a control changes them.
#include "tests/fault_proxy/fault_proxy.h"

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace corral::fault {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 16 * 1024;
// A direction stops reading once it holds this much, so a blackholed flood cannot eat memory.
constexpr size_t kMaxHeldBytes = 4 * 1024 * 1024;

enum class Mode { kForward, kBlackhole, kStall };

struct Faults {
  Mode mode = Mode::kForward;
  Millis latency{0};
  int64_t bytes_per_second = 0;  // 0: no cap
  int64_t reset_after = -1;      // -1: no reset
};

struct Chunk {
  std::string data;
  size_t offset = 0;  // bytes already written
  Clock::time_point release;
};

}  // namespace

class Conn;

struct ProxyLoop {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  tcp::acceptor acceptor{io};
  tcp::endpoint upstream;
  std::thread thread;

  // Owned by the io thread.
  Faults faults;
  std::map<uint64_t, std::shared_ptr<Conn>> conns;
  uint64_t next_id = 1;

  mutable std::mutex mu;
  mutable std::condition_variable cv;
  ProxyCounters counters;  // guarded by mu

  template <typename F>
  void Count(F&& change) {
    {
      std::lock_guard lock(mu);
      change(counters);
    }
    cv.notify_all();
  }

  // Runs `fn` on the io thread and waits for it, so a control has taken effect when it returns.
  void RunOnLoop(std::function<void()> fn) {
    std::promise<void> done;
    asio::post(io, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void Accept();
  void ForEachConn(const std::function<void(Conn&)>& fn);
};

// One proxied connection: the client socket, the upstream socket and a direction each way. Lives
// on the io thread only.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(ProxyLoop& proxy, uint64_t id, tcp::socket client)
      : proxy_(proxy),
        id_(id),
        client_(std::move(client)),
        upstream_(proxy.io),
        up_(proxy.io, &client_, &upstream_, false),
        down_(proxy.io, &upstream_, &client_, true) {}

  void Start() {
    reset_left_ = proxy_.faults.reset_after;
    Kick();
  }

  // The faults changed (or the connection is new): connect, read and write as they now allow.
  void Kick() {
    if (closed_) return;
    MaybeConnect();
    Pump(up_);
    Pump(down_);
  }

  void ArmReset(int64_t after_bytes) {
    reset_left_ = after_bytes;
    ++reset_generation_;  // a write already under way does not count against the new budget
  }

  // Heal: chunks held for latency go out now.
  void ReleaseHeld() {
    const auto now = Clock::now();
    for (Dir* d : {&up_, &down_}) {
      for (Chunk& chunk : d->queue) chunk.release = std::min(chunk.release, now);
      d->next_send = now;
      d->timer.cancel();
    }
  }

  // Closes both sides; with `reset_client` the client gets an RST instead of a FIN.
  void Close(bool reset_client) {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    if (reset_client) client_.set_option(asio::socket_base::linger(true, 0), ignored);
    client_.close(ignored);
    upstream_.close(ignored);
    up_.timer.cancel();
    down_.timer.cancel();
    proxy_.Count([&](ProxyCounters& c) {
      --c.open;
      if (reset_client) ++c.resets;
    });
    // Last: this may drop the proxy's reference to *this (handlers still hold theirs).
    proxy_.conns.erase(id_);
  }

 private:
  struct Dir {
    Dir(asio::io_context& io, tcp::socket* from_in, tcp::socket* to_in, bool down_in)
        : from(from_in), to(to_in), down(down_in), timer(io) {}
    tcp::socket* from;
    tcp::socket* to;
    const bool down;  // upstream -> client
    asio::steady_timer timer;
    std::deque<Chunk> queue;
    size_t held = 0;  // bytes in queue not yet written
    bool reading = false;
    bool writing = false;
    bool waiting = false;           // timer armed
    bool eof = false;               // `from` has ended
    bool shut = false;              // `to` has been shut down for sending
    Clock::time_point next_send{};  // bandwidth cap: no write before this
    std::array<char, kChunkBytes> buf;
  };

  void MaybeConnect() {
    if (connected_ || connecting_ || proxy_.faults.mode != Mode::kForward) return;
    connecting_ = true;
    upstream_.async_connect(proxy_.upstream,
                            [self = shared_from_this()](const boost::system::error_code& ec) {
                              self->connecting_ = false;
                              if (self->closed_) return;
                              if (ec) {
                                self->proxy_.Count([](ProxyCounters& c) { ++c.upstream_failed; });
                                self->Close(false);
                                return;
                              }
                              self->connected_ = true;
                              self->proxy_.Count([](ProxyCounters& c) { ++c.upstream_connected; });
                              self->Kick();
                            });
  }

  void Pump(Dir& d) {
    if (closed_) return;
    const Faults& faults = proxy_.faults;
    if (faults.mode != Mode::kStall) StartRead(d);
    if (faults.mode == Mode::kForward) StartWrite(d);
  }

  void StartRead(Dir& d) {
    if (d.reading || d.eof || d.held >= kMaxHeldBytes) return;
    if (d.down && !connected_) return;  // nothing to read from yet
    d.reading = true;
    d.from->async_read_some(
        asio::buffer(d.buf),
        [self = shared_from_this(), &d](const boost::system::error_code& ec, size_t n) {
          d.reading = false;
          if (self->closed_) return;
          if (ec == asio::error::eof) {
            d.eof = true;
          } else if (ec) {
            self->Close(false);  // reset by the peer, or another error: end both sides
            return;
          } else {
            d.queue.push_back(
                Chunk{std::string(d.buf.data(), n), 0, Clock::now() + self->proxy_.faults.latency});
            d.held += n;
          }
          self->Pump(d);
        });
  }

  void StartWrite(Dir& d) {
    if (d.writing || d.waiting || !connected_) return;
    if (d.queue.empty()) {
      if (d.eof && !d.shut) {
        boost::system::error_code ignored;
        d.to->shutdown(tcp::socket::shutdown_send, ignored);
        d.shut = true;
      }
      if (up_.shut && down_.shut) Close(false);
      return;
    }
    if (d.down && reset_left_ == 0) {
      Close(true);  // more of the reply is due: cut it here
      return;
    }
    const auto now = Clock::now();
    const auto start = std::max(d.queue.front().release, d.next_send);
    if (start > now) {
      d.waiting = true;
      d.timer.expires_at(start);
      d.timer.async_wait([self = shared_from_this(), &d](const boost::system::error_code&) {
        d.waiting = false;
        self->Pump(d);
      });
      return;
    }
    Chunk& front = d.queue.front();
    size_t n = front.data.size() - front.offset;
    const int64_t bps = proxy_.faults.bytes_per_second;
    // Under a cap, write in slices of about 20 ms each so the rate is smooth.
    if (bps > 0) n = std::min<size_t>(n, static_cast<size_t>(std::max<int64_t>(1, bps / 50)));
    if (d.down && reset_left_ > 0) n = std::min<size_t>(n, static_cast<size_t>(reset_left_));
    d.writing = true;
    asio::async_write(
        *d.to, asio::buffer(front.data.data() + front.offset, n),
        [self = shared_from_this(), &d, n, bps, generation = reset_generation_](
            const boost::system::error_code& ec, size_t) {
          d.writing = false;
          if (self->closed_) return;
          if (ec) {
            self->Close(false);
            return;
          }
          Chunk& written = d.queue.front();
          written.offset += n;
          if (written.offset == written.data.size()) d.queue.pop_front();
          d.held -= n;
          if (bps > 0) {
            d.next_send =
                Clock::now() + std::chrono::microseconds(static_cast<int64_t>(n) * 1000000 / bps);
          }
          if (d.down && self->reset_left_ > 0 && generation == self->reset_generation_) {
            self->reset_left_ -= static_cast<int64_t>(n);
          }
          self->proxy_.Count([&](ProxyCounters& c) {
            (d.down ? c.bytes_to_client : c.bytes_to_upstream) += static_cast<int64_t>(n);
          });
          self->Pump(d);
        });
  }

  ProxyLoop& proxy_;
  const uint64_t id_;
  tcp::socket client_;
  tcp::socket upstream_;
  bool connecting_ = false;
  bool connected_ = false;
  bool closed_ = false;
  int64_t reset_left_ = -1;  // bytes from the upstream still allowed before the reset; -1: none
  uint64_t reset_generation_ = 0;
  Dir up_;
  Dir down_;
};

void ProxyLoop::Accept() {
  acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const uint64_t id = next_id++;
      auto conn = std::make_shared<Conn>(*this, id, std::move(socket));
      conns.emplace(id, conn);
      Count([](ProxyCounters& c) {
        ++c.accepted;
        ++c.open;
      });
      conn->Start();
    }
    Accept();
  });
}

void ProxyLoop::ForEachConn(const std::function<void(Conn&)>& fn) {
  // Copies the references first: fn may close a connection, which erases it from the map.
  std::vector<std::shared_ptr<Conn>> all;
  all.reserve(conns.size());
  for (auto& [id, conn] : conns) all.push_back(conn);
  for (auto& conn : all) fn(*conn);
}

FaultProxy::FaultProxy(const std::string& upstream_host, uint16_t upstream_port)
    : impl_(std::make_shared<ProxyLoop>()) {
  try {
    tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(upstream_host, std::to_string(upstream_port));
    if (results.empty()) throw std::runtime_error("no address");
    impl_->upstream = *results.begin();
    impl_->acceptor.open(tcp::v4());
    impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    impl_->acceptor.listen();
    port_ = impl_->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    throw std::runtime_error("fault proxy to " + upstream_host + ":" +
                             std::to_string(upstream_port) + ": " + e.what());
  }
  impl_->Accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

FaultProxy::~FaultProxy() {
  impl_->RunOnLoop([impl = impl_.get()] {
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
    impl->ForEachConn([](Conn& conn) { conn.Close(false); });
  });
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
}

void FaultProxy::SetLatency(Millis delay) {
  impl_->RunOnLoop([impl = impl_.get(), delay] { impl->faults.latency = delay; });
}

void FaultProxy::SetBandwidth(int64_t bytes_per_second) {
  impl_->RunOnLoop([impl = impl_.get(), bytes_per_second] {
    impl->faults.bytes_per_second = std::max<int64_t>(0, bytes_per_second);
  });
}

void FaultProxy::Blackhole() {
  impl_->RunOnLoop([impl = impl_.get()] { impl->faults.mode = Mode::kBlackhole; });
}

void FaultProxy::StallHalfOpen() {
  impl_->RunOnLoop([impl = impl_.get()] { impl->faults.mode = Mode::kStall; });
}

void FaultProxy::ResetMidReply(int64_t after_bytes) {
  impl_->RunOnLoop([impl = impl_.get(), after_bytes] {
    impl->faults.reset_after = std::max<int64_t>(0, after_bytes);
    impl->ForEachConn([&](Conn& conn) {
      conn.ArmReset(impl->faults.reset_after);
      conn.Kick();
    });
  });
}

void FaultProxy::Heal() {
  impl_->RunOnLoop([impl = impl_.get()] {
    impl->faults = Faults{};
    impl->ForEachConn([](Conn& conn) {
      conn.ArmReset(-1);
      conn.ReleaseHeld();
      conn.Kick();
    });
  });
}

ProxyCounters FaultProxy::counters() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counters;
}

bool FaultProxy::WaitFor(const std::function<bool(const ProxyCounters&)>& condition,
                         Millis timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return condition(impl_->counters); });
}

}  // namespace corral::fault

// LISTEN loop on the primary: poll(2) on the libpq socket and an eventfd that Stop() writes, so the
// thread sleeps until a notification, a disconnect, Stop(), or a quiet spell that calls for a ping
// (answered within a deadline that a Watchdog enforces by cutting the socket).
#include "pg-loader/listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>
#include <utility>

#include "pg-loader/conninfo.h"
#include "pg-loader/routing.h"
#include "pg-loader/watchdog.h"

namespace corral::pg {
namespace {

constexpr int64_t kReconnectFirstMs = 100;
constexpr int64_t kReconnectMaxMs = 2000;

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& connection, const std::string& channel,
           const std::function<void(std::string_view)>& on_notify)
      : pqxx::notification_receiver(connection, channel), on_notify_(on_notify) {}

  void operator()(const std::string& payload, int /*backend_pid*/) override {
    if (on_notify_) on_notify_(payload);
  }

 private:
  const std::function<void(std::string_view)>& on_notify_;
};

}  // namespace

struct Listener::Impl {
  std::string conninfo;
  std::string channel;
  std::function<void(std::string_view)> on_notify;
  std::function<void()> on_disconnect;
  std::function<void()> on_connect;

  int wake_fd = -1;   // eventfd: readable once Stop() was called
  Watchdog watchdog;  // cuts a ping that gets no answer
  std::atomic<bool> stopping{false};
  std::atomic<bool> connected{false};
  std::mutex start_mu;
  std::thread thread;

  // Waits up to `ms` (or until Stop()). Returns false when stopping.
  bool Sleep(int64_t ms) {
    pollfd fd{wake_fd, POLLIN, 0};
    while (!stopping.load()) {
      const int n = ::poll(&fd, 1, static_cast<int>(ms));
      if (n == 0) return !stopping.load();
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    return false;
  }

  // Serves one connection until it breaks (returns true: reconnect) or Stop() (returns false).
  bool Serve(pqxx::connection& connection) {
    Receiver receiver(connection, channel, on_notify);
    // add_receiver swallows a broken connection during LISTEN; make sure LISTEN really happened.
    if (!connection.is_open()) throw pqxx::broken_connection("connection lost during LISTEN");
    connected.store(true);
    if (on_connect) on_connect();
    connection.get_notifs();  // anything that arrived with the LISTEN reply
    while (true) {
      pollfd fds[2] = {{connection.sock(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const int n = ::poll(fds, 2, static_cast<int>(kListenerPingIdleMs));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("poll failed");
      }
      if (stopping.load()) return false;
      if (n == 0) Ping(connection);  // throws when the primary does not answer in time
      connection.get_notifs();       // throws broken_connection when the server has gone
      if (!connection.is_open()) throw pqxx::broken_connection("connection closed");
    }
  }

  // A round trip with a deadline: proves the primary (and every hop to it) still answers.
  void Ping(pqxx::connection& connection) {
    const uint64_t watch =
        watchdog.Arm(connection.sock(),
                     Watchdog::Clock::now() + std::chrono::milliseconds(kListenerPingTimeoutMs));
    bool answered = true;
    try {
      pqxx::nontransaction ping(connection);
      ping.exec("SELECT 1");
    } catch (const std::exception&) {
      answered = false;
    }
    const bool cut = watchdog.Disarm(watch);
    if (cut) throw pqxx::broken_connection("no answer to a ping within the deadline");
    if (!answered || !connection.is_open()) throw pqxx::broken_connection("ping failed");
  }

  void Run() {
    Backoff backoff(kReconnectFirstMs, kReconnectMaxMs);
    while (!stopping.load()) {
      std::unique_ptr<pqxx::connection> connection;
      try {
        connection = std::make_unique<pqxx::connection>(conninfo);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        // A silent libpqxx reconnect would hide lost notifications; we reconnect ourselves.
        connection->inhibit_reactivation(true);
#pragma GCC diagnostic pop
      } catch (const std::exception&) {
        if (!Sleep(backoff.NextMs())) return;
        continue;
      }
      bool lost = false;
      try {
        lost = Serve(*connection);
      } catch (const std::exception&) {
        lost = true;
      }
      const bool was_connected = connected.exchange(false);
      connection.reset();
      if (!lost) return;  // Stop()
      if (was_connected) {
        if (on_disconnect) on_disconnect();
        backoff.Reset();
      }
      if (!Sleep(backoff.NextMs())) return;
    }
  }
};

Listener::Listener(std::string primary, std::string channel,
                   std::function<void(std::string_view)> on_notify,
                   std::function<void()> on_disconnect, std::function<void()> on_connect)
    : impl_(std::make_unique<Impl>()) {
  impl_->conninfo = WithDefaultParams(primary, {{"connect_timeout", "2"},
                                                {"keepalives", "1"},
                                                {"keepalives_idle", "10"},
                                                {"keepalives_interval", "5"},
                                                {"keepalives_count", "3"},
                                                {"application_name", "corral-listener"}});
  impl_->channel = std::move(channel);
  impl_->on_notify = std::move(on_notify);
  impl_->on_disconnect = std::move(on_disconnect);
  impl_->on_connect = std::move(on_connect);
  impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl_->wake_fd < 0) throw std::runtime_error("pg listener: eventfd failed");
}

Listener::~Listener() {
  Stop();
  ::close(impl_->wake_fd);
}

void Listener::Start() {
  std::lock_guard lock(impl_->start_mu);
  if (impl_->thread.joinable() || impl_->stopping.load()) return;
  impl_->watchdog.Start();
  impl_->thread = std::thread([this] { impl_->Run(); });
}

void Listener::Stop() {
  std::lock_guard lock(impl_->start_mu);
  impl_->stopping.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t written = ::write(impl_->wake_fd, &one, sizeof(one));
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->watchdog.Stop();
}

bool Listener::connected() const { return impl_->connected.load(); }

}  // namespace corral::pg

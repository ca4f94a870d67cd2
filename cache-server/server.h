// corral-server's network layer: `threads` I/O threads, each running its own io_context; the
// RESP and HTTP acceptors hand connections to them round-robin; timers drive active expiry;
// Shutdown() drains gracefully (readiness off, grace, stop accepting, finish in-flight work).
#pragma once

#include <boost/asio.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cache-server/http_handler.h"
#include "cache-server/resp_commands.h"
#include "cache-server/server_state.h"

namespace corral::server {

class Server {
 public:
  Server(ServerState& state, RespCommands& commands, HttpHandler& http_handler);
  ~Server();

  // Binds both listeners (port 0 picks a free port; see resp_port()/http_port()).
  // Throws std::runtime_error naming the address on failure (start-up only).
  void Bind();
  // Runs the I/O threads until Stop() has drained them. Blocks the caller.
  void Run();
  // Thread-safe, idempotent: stop accepting, let in-flight requests finish for at most
  // `drain`, then close every connection and return from Run().
  void Stop(std::chrono::milliseconds drain = std::chrono::milliseconds(5000));
  // Thread-safe. The graceful shutdown of SPEC "Running": /readyz turns 503 at once, requests are
  // served as usual for `grace` (so a load balancer takes the instance out and stops sending new
  // connections), then Stop(timeout). A second call during the grace skips the rest of it.
  void Shutdown(std::chrono::milliseconds grace, std::chrono::milliseconds timeout);
  // Calls Shutdown(grace, timeout) on each SIGTERM or SIGINT (asio::signal_set, on the first
  // I/O thread). Call before Run().
  void ShutdownOnSignals(std::chrono::milliseconds grace, std::chrono::milliseconds timeout);

  uint16_t resp_port() const { return state_.resp_port; }
  uint16_t http_port() const { return state_.http_port; }
  // Calls `fn` on thread 0 at each SIGHUP (TLS certificates reload). Call before Run().
  void OnHangup(std::function<void()> fn);
  // Periodic work on thread 0 (active expiry, lease deadlines); set before Run().
  void AddTimer(std::chrono::milliseconds every, std::function<void()> fn);

 private:
  using Acceptor = boost::asio::ip::tcp::acceptor;
  // Which listener a connection came in on.
  enum class Door { kResp, kHttp, kRespTls, kHttpTls };
  void Accept(Acceptor& acceptor, Door door);
  boost::asio::io_context& NextContext();
  void ArmTimer(size_t index);
  // An accepted socket (thread 0's): admitted or refused (maxclients), then handed to the next
  // context, whose thread registers the descriptor and begins the session (Begin).
  void StartSession(boost::asio::ip::tcp::socket socket, Door door);
  // Refuses the connection over maxclients (says why, closes; false), else counts it (true).
  bool Admit(boost::asio::ip::tcp::socket& socket, Door door);
  // Creates the session for an admitted socket, on the socket's own thread, starts it and
  // registers it (and drains it, if Stop() already drained the others).
  void Begin(boost::asio::ip::tcp::socket socket, Door door);
  void Register(std::shared_ptr<Drainable> session);
  // On thread 0 during Stop(): takes the connections the kernel completed before the listeners
  // closed (they would otherwise be reset), so that a request already sent on one is answered.
  void AcceptBacklog(Acceptor& acceptor, Door door);
  void WaitForHangup();
  void WaitForSignal(std::chrono::milliseconds grace, std::chrono::milliseconds timeout);

  ServerState& state_;
  RespCommands& commands_;
  HttpHandler& http_handler_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::unique_ptr<Acceptor> resp_acceptor_, http_acceptor_;
  std::unique_ptr<Acceptor> resp_tls_acceptor_, http_tls_acceptor_;  // null without TLS ports
  std::unique_ptr<boost::asio::signal_set> hangup_;
  std::function<void()> on_hangup_;
  struct Timer {
    std::chrono::milliseconds every;
    std::function<void()> fn;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };
  std::vector<Timer> timers_;
  std::unique_ptr<boost::asio::steady_timer> drain_timer_;
  std::unique_ptr<boost::asio::steady_timer> grace_timer_;  // thread 0 only
  std::unique_ptr<boost::asio::signal_set> signals_;
  size_t next_context_ = 0;
  std::atomic<bool> stopping_{false};
  // Live connections, so Stop() can close the idle ones at once. Touched on accept and stop only.
  std::mutex registry_mu_;
  std::vector<std::weak_ptr<Drainable>> registry_;
  size_t registry_pruned_size_ = 64;
};

}  // namespace corral::server

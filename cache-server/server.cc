// Threads, acceptors, timers and graceful shutdown; see server.h.
#include "cache-server/server.h"

#include <unistd.h>

#include <stdexcept>

#include "cache-server/http_session.h"
#include "cache-server/log.h"
#include "cache-server/resp_session.h"
#include "cache-server/tls.h"
#include "proto/errors.h"

namespace corral::server {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

Server::Server(ServerState& state, RespCommands& commands, HttpHandler& http_handler)
    : state_(state), commands_(commands), http_handler_(http_handler) {
  int threads = std::max(1, state_.config.threads);
  for (int i = 0; i < threads; ++i) {
    // One thread per context, and every operation on a context's sockets and timers made on that
    // thread: a connection is accepted on thread 0 into thread 0's socket, and its descriptor is
    // registered with its own context on its own thread (StartSession). So Asio may skip the
    // per-socket locks of its reactor (CONCURRENCY_HINT_UNSAFE_IO; the scheduler, which other
    // threads post to, and the reactor's registrations stay locked): about 100 instructions
    // and two lock/unlock pairs fewer per request.
    contexts_.push_back(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
  }
}

Server::~Server() = default;

namespace {
std::unique_ptr<tcp::acceptor> Listen(asio::io_context& ctx, const HostPort& where) {
  error_code ec;
  auto address = asio::ip::make_address(where.host, ec);
  if (ec) throw std::runtime_error("bad listen address " + where.host + ": " + ec.message());
  tcp::endpoint endpoint(address, where.port);
  auto acceptor = std::make_unique<tcp::acceptor>(ctx);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + where.host + ":" + std::to_string(where.port) +
                             ": " + ec.message());
  }
  return acceptor;
}
}  // namespace

void Server::Bind() {
  resp_acceptor_ = Listen(*contexts_[0], state_.config.resp);
  http_acceptor_ = Listen(*contexts_[0], state_.config.http);
  state_.resp_port = resp_acceptor_->local_endpoint().port();
  state_.http_port = http_acceptor_->local_endpoint().port();
  if (state_.config.resp_tls) {
    resp_tls_acceptor_ = Listen(*contexts_[0], *state_.config.resp_tls);
    state_.resp_tls_port = resp_tls_acceptor_->local_endpoint().port();
  }
  if (state_.config.http_tls) {
    http_tls_acceptor_ = Listen(*contexts_[0], *state_.config.http_tls);
    state_.http_tls_port = http_tls_acceptor_->local_endpoint().port();
  }
}

asio::io_context& Server::NextContext() {
  asio::io_context& ctx = *contexts_[next_context_];
  next_context_ = (next_context_ + 1) % contexts_.size();
  return ctx;
}

void Server::Accept(Acceptor& acceptor, Door door) {
  // Accepted into a socket of the acceptor's own context (thread 0), then handed over.
  acceptor.async_accept([this, &acceptor, door](const error_code& ec, tcp::socket socket) {
    if (stopping_.load()) {
      // Stop() closed the listener under this accept: serve what it completed (AcceptBacklog).
      if (!ec) StartSession(std::move(socket), door);
      return;
    }
    if (ec) {
      // Out of file descriptors or similar: log, keep accepting.
      Log(LogLevel::kWarn, "accept_failed", "error=" + LogQuote(ec.message()));
    } else {
      StartSession(std::move(socket), door);
    }
    Accept(acceptor, door);
  });
}

void Server::StartSession(tcp::socket socket, Door door) {
  if (!Admit(socket, door)) return;
  asio::io_context& target = NextContext();
  if (&target == contexts_[0].get()) return Begin(std::move(socket), door);
  // The descriptor leaves thread 0's reactor here and joins the target's on the target's
  // thread, so that every operation on a context's sockets, registration included, is made on
  // its own thread (the constructor's CONCURRENCY_HINT_UNSAFE_IO relies on it).
  error_code ec;
  const tcp protocol = socket.local_endpoint(ec).protocol();
  const tcp::socket::native_handle_type fd = ec ? -1 : socket.release(ec);
  if (ec) {
    Log(LogLevel::kWarn, "accept_failed", "error=" + LogQuote(ec.message()));
    socket.close(ec);
    state_.connected_clients.fetch_sub(1);
    return;
  }
  asio::post(target, [this, &target, protocol, fd, door] {
    tcp::socket socket(target);
    error_code ec;
    socket.assign(protocol, fd, ec);
    if (ec) {
      Log(LogLevel::kWarn, "accept_failed", "error=" + LogQuote(ec.message()));
      ::close(fd);
      state_.connected_clients.fetch_sub(1);
      return;
    }
    Begin(std::move(socket), door);
  });
}

bool Server::Admit(tcp::socket& socket, Door door) {
  const bool resp = door == Door::kResp || door == Door::kRespTls;
  const bool tls = door == Door::kRespTls || door == Door::kHttpTls;
  if (state_.connected_clients.load() >= state_.config.shedding.max_clients) {
    state_.metrics.rejected_connections.Add();
    state_.metrics.shed.Add(ShedReason::kMaxClients);
    // As Redis does: say why, then close. Blocking write of a few bytes to a fresh socket.
    const std::string refusal = "-" + std::string(proto::kMaxClients) + "\r\n";
    std::string_view msg = resp ? std::string_view(refusal)
                                : "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
    error_code ignored;
    socket.non_blocking(true, ignored);
    if (!tls) socket.write_some(asio::buffer(msg), ignored);  // a TLS client is just closed
    socket.close(ignored);
    return false;
  }
  // Counted here, before the hand-over, so that Stop() waits for it.
  state_.connected_clients.fetch_add(1);
  state_.metrics.connections.Add();
  return true;
}

void Server::Begin(tcp::socket socket, Door door) {
  const bool resp = door == Door::kResp || door == Door::kRespTls;
  const bool tls = door == Door::kRespTls || door == Door::kHttpTls;
  auto executor = socket.get_executor();
  std::shared_ptr<Drainable> drainable;
  if (tls) {
    std::shared_ptr<asio::ssl::context> ctx = state_.tls->Current();
    if (resp) {
      auto session = std::make_shared<TlsRespSession>(TlsSocket(std::move(socket), *ctx), state_,
                                                      commands_, ctx);
      asio::post(executor, [session] { session->Start(); });
      drainable = session;
    } else {
      auto session = std::make_shared<HttpsSession>(
          boost::beast::ssl_stream<boost::beast::tcp_stream>(std::move(socket), *ctx), state_,
          http_handler_, ctx);
      asio::post(executor, [session] { session->Start(); });
      drainable = session;
    }
  } else if (resp) {
    auto session = std::make_shared<RespSession>(std::move(socket), state_, commands_);
    asio::post(executor, [session] { session->Start(); });
    drainable = session;
  } else {
    auto session = std::make_shared<HttpSession>(boost::beast::tcp_stream(std::move(socket)),
                                                 state_, http_handler_);
    asio::post(executor, [session] { session->Start(); });
    drainable = session;
  }
  Register(drainable);
  // Handed over after Stop() drained the registered sessions: drained now (after its Start).
  if (state_.shutting_down.load()) drainable->Drain();
}

void Server::AcceptBacklog(Acceptor& acceptor, Door door) {
  error_code ec;
  acceptor.non_blocking(true, ec);
  while (!ec) {
    tcp::socket socket(*contexts_[0]);
    acceptor.accept(socket, ec);
    if (!ec) StartSession(std::move(socket), door);
  }
}

void Server::OnHangup(std::function<void()> fn) {
  on_hangup_ = std::move(fn);
  hangup_ = std::make_unique<asio::signal_set>(*contexts_[0], SIGHUP);
  WaitForHangup();
}

void Server::WaitForHangup() {
  hangup_->async_wait([this](const error_code& ec, int) {
    if (ec) return;  // cancelled by Stop()
    Log(LogLevel::kInfo, "hangup", "note=\"reloading the TLS certificates\"");
    on_hangup_();
    WaitForHangup();
  });
}

void Server::Register(std::shared_ptr<Drainable> session) {
  std::lock_guard lock(registry_mu_);
  registry_.push_back(session);
  if (registry_.size() >= 2 * registry_pruned_size_) {
    std::erase_if(registry_, [](const auto& w) { return w.expired(); });
    registry_pruned_size_ = std::max<size_t>(64, registry_.size());
  }
}

void Server::AddTimer(std::chrono::milliseconds every, std::function<void()> fn) {
  timers_.push_back(
      Timer{every, std::move(fn), std::make_unique<asio::steady_timer>(*contexts_[0])});
}

void Server::ArmTimer(size_t index) {
  Timer& t = timers_[index];
  t.timer->expires_after(t.every);
  t.timer->async_wait([this, index](const error_code& ec) {
    if (ec || stopping_.load()) return;
    timers_[index].fn();
    ArmTimer(index);
  });
}

void Server::Run() {
  Accept(*resp_acceptor_, Door::kResp);
  Accept(*http_acceptor_, Door::kHttp);
  if (resp_tls_acceptor_) Accept(*resp_tls_acceptor_, Door::kRespTls);
  if (http_tls_acceptor_) Accept(*http_tls_acceptor_, Door::kHttpTls);
  for (size_t i = 0; i < timers_.size(); ++i) ArmTimer(i);
  std::vector<std::thread> threads;
  for (size_t i = 1; i < contexts_.size(); ++i) {
    threads.emplace_back([ctx = contexts_[i].get()] { ctx->run(); });
  }
  contexts_[0]->run();
  for (auto& t : threads) t.join();
}

void Server::Stop(std::chrono::milliseconds drain) {
  if (stopping_.exchange(true)) return;
  asio::post(*contexts_[0], [this, drain] {
    state_.draining.store(true);
    if (grace_timer_) grace_timer_->cancel();
    if (signals_) signals_->cancel();
    Log(LogLevel::kInfo, "shutdown_listeners_closed",
        "timeout_ms=" + std::to_string(drain.count()) +
            " open_connections=" + std::to_string(state_.connected_clients.load()));
    error_code ec;
    AcceptBacklog(*resp_acceptor_, Door::kResp);
    AcceptBacklog(*http_acceptor_, Door::kHttp);
    resp_acceptor_->close(ec);
    http_acceptor_->close(ec);
    if (resp_tls_acceptor_) {
      AcceptBacklog(*resp_tls_acceptor_, Door::kRespTls);
      resp_tls_acceptor_->close(ec);
    }
    if (http_tls_acceptor_) {
      AcceptBacklog(*http_tls_acceptor_, Door::kHttpTls);
      http_tls_acceptor_->close(ec);
    }
    if (hangup_) hangup_->cancel();
    // Only now: a client whose connection closes must find the listener closed, not reconnect.
    state_.shutting_down.store(true);
    for (auto& t : timers_) t.timer->cancel();
    // Sessions close themselves after their current request (they check shutting_down). The
    // work guards stay: a session waiting on a load has no I/O outstanding, and its thread must
    // still be running when the answer is posted. The poll below stops the contexts once every
    // connection has gone; the drain timer bounds how long that takes.
    {
      std::lock_guard lock(registry_mu_);
      for (auto& weak : registry_) {
        if (auto session = weak.lock()) session->Drain();
      }
      registry_.clear();
    }
    drain_timer_ = std::make_unique<asio::steady_timer>(*contexts_[0], drain);
    drain_timer_->async_wait([this](const error_code& ec) {
      if (ec) return;
      if (state_.connected_clients.load() > 0) {
        Log(LogLevel::kWarn, "shutdown_drain_timeout",
            "open_connections=" + std::to_string(state_.connected_clients.load()));
      }
      for (auto& ctx : contexts_) ctx->stop();
    });
    // Poll until every connection has gone, then cancel the drain timer so Run() returns.
    // The poll holds itself only weakly: the pending wait owns it, so it (and its timer) is
    // freed with the last wait rather than kept alive by a cycle (LeakSanitizer found one).
    auto poll = std::make_shared<std::function<void()>>();
    auto poll_timer = std::make_shared<asio::steady_timer>(*contexts_[0]);
    *poll = [this, weak_poll = std::weak_ptr(poll), poll_timer] {
      if (state_.connected_clients.load() == 0) {
        drain_timer_->cancel();
        for (auto& ctx : contexts_) ctx->stop();
        return;
      }
      poll_timer->expires_after(std::chrono::milliseconds(10));
      poll_timer->async_wait([poll = weak_poll.lock()](const error_code& ec) {
        if (!ec) (*poll)();
      });
    };
    (*poll)();
  });
}

void Server::Shutdown(std::chrono::milliseconds grace, std::chrono::milliseconds timeout) {
  asio::post(*contexts_[0], [this, grace, timeout] {
    if (stopping_.load()) return;
    if (state_.draining.exchange(true) || grace.count() <= 0) {
      // No grace configured, or a second signal: skip (the rest of) the grace.
      return Stop(timeout);
    }
    Log(LogLevel::kInfo, "shutdown_draining",
        "grace_ms=" + std::to_string(grace.count()) + " note=\"/readyz answers 503\"");
    grace_timer_ = std::make_unique<asio::steady_timer>(*contexts_[0], grace);
    grace_timer_->async_wait([this, timeout](const error_code& ec) {
      if (!ec) Stop(timeout);
    });
  });
}

void Server::ShutdownOnSignals(std::chrono::milliseconds grace, std::chrono::milliseconds timeout) {
  signals_ = std::make_unique<asio::signal_set>(*contexts_[0], SIGTERM, SIGINT);
  WaitForSignal(grace, timeout);
}

void Server::WaitForSignal(std::chrono::milliseconds grace, std::chrono::milliseconds timeout) {
  signals_->async_wait([this, grace, timeout](const error_code& ec, int signal) {
    if (ec) return;  // cancelled by Stop()
    Log(LogLevel::kInfo, "shutdown",
        std::string("signal=") + (signal == SIGTERM ? "SIGTERM" : "SIGINT"));
    Shutdown(grace, timeout);
    WaitForSignal(grace, timeout);  // a second signal skips the rest of the grace
  });
}

}  // namespace corral::server

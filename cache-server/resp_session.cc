// RESP connection I/O; see resp_session.h. Reads go straight into the connection's input buffer
// (async_read_some; async_wait + read_some while it has none), writes are non-blocking write_some
// (async_write only when the socket is full), so that a request costs one read and one write plus
// a share of one epoll_wait, as in Redis, and the input buffer is reused across requests.
#include "cache-server/resp_session.h"

#include <cstring>

#include "cache-server/log.h"
#include "cache-server/socket_close.h"
#include "cache-server/users.h"
#include "lease/clock.h"
#include "proto/resp_writer.h"

namespace corral::server {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
// The input buffer is allocated at the first read, uninitialised (so the pages a small request
// does not touch cost no memory), and grows by doubling: an idle connection costs ~4 KiB at most.
constexpr size_t kInitialInput = 4 * 1024;
constexpr size_t kShrinkAbove = 256 * 1024;     // give memory back once a big request is done
constexpr size_t kFlushAbove = 1024 * 1024;     // stop executing and write out at this much output
constexpr size_t kMaxPushedOutput = 32u << 20;  // a subscriber's unsent output (Push)
}  // namespace

template <typename Stream>
BasicRespSession<Stream>::BasicRespSession(Stream stream, ServerState& state,
                                           RespCommands& commands,
                                           std::shared_ptr<asio::ssl::context> tls)
    : tls_(std::move(tls)),
      socket_(std::move(stream)),
      state_(state),
      commands_(commands),
      parser_(proto::RespLimits{.max_bulk_len = state.config.resp_options.proto_max_bulk_len}),
      max_query_buffer_(static_cast<size_t>(state.config.resp_options.max_query_buffer)) {
  client_.id = state_.next_client_id.fetch_add(1);
  client_.created_unix = client_.last_command_unix = std::time(nullptr);
  // Logged in as `default` from the start when it needs no password (Redis's rule).
  client_.users_generation = state_.users.generation();
  if (state_.users.DefaultIsOpen()) client_.user = state_.users.Find("default");
  client_.authenticated = client_.user != nullptr;
  parser_.set_authenticated(client_.authenticated);
  error_code ec;
  auto remote = LowestLayer(socket_).remote_endpoint(ec);
  if (!ec) client_.addr = remote.address().to_string() + ":" + std::to_string(remote.port());
  refused_ = ProtectedModeRefuses(state_.config, state_.users, ec || IsLoopback(remote.address()));
  auto local = LowestLayer(socket_).local_endpoint(ec);
  if (!ec) client_.laddr = local.address().to_string() + ":" + std::to_string(local.port());
}

template <typename Stream>
BasicRespSession<Stream>::~BasicRespSession() {
  state_.clients.Remove(client_.id);
  state_.tracking.Disable(client_.id);
  state_.connected_clients.fetch_sub(1);
}

template <typename Stream>
void BasicRespSession<Stream>::Start() {
  state_.clients.Add(client_.id, this->weak_from_this());
  error_code ec;
  LowestLayer(socket_).non_blocking(true, ec);
  LowestLayer(socket_).set_option(asio::ip::tcp::no_delay(true), ec);
  if (ec) return Close();
  if constexpr (kTls) {
    // A client that does not finish the handshake in time (or sends garbage) is closed.
    handshake_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
    handshake_timer_->expires_after(
        std::chrono::milliseconds(state_.config.tls->handshake_timeout_ms));
    handshake_timer_->async_wait([self = this->shared_from_this()](const error_code& ec) {
      if (!ec) self->Close();
    });
    socket_.async_handshake(
        asio::ssl::stream_base::server, [self = this->shared_from_this()](const error_code& ec) {
          self->handshake_timer_->cancel();
          if (ec || self->closed_) {
            Log(LogLevel::kDebug, "tls_handshake_failed",
                "addr=" + self->client_.addr + " error=" + LogQuote(ec.message()));
            return self->Close();
          }
          self->Begin();
        });
    return;
  }
  Begin();
}

template <typename Stream>
void BasicRespSession<Stream>::Begin() {
  if (refused_) {
    // Protected mode: say why and how to fix it, then close (as Redis does).
    proto::AppendError(out_, kProtectedModeMessage);
    close_after_write_ = true;
    Flush();
    return Continue();
  }
  int64_t idle = state_.config.resp_options.idle_timeout_s;
  if (idle > 0) {
    idle_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
    ArmIdleTimer(std::chrono::seconds(idle));
  }
  WaitReadable();
}

template <typename Stream>
void BasicRespSession<Stream>::ArmIdleTimer(std::chrono::seconds after) {
  idle_timer_->expires_after(after);
  idle_timer_->async_wait([self = this->shared_from_this()](const error_code& ec) {
    if (ec || self->closed_) return;
    auto idle = std::chrono::seconds(self->state_.config.resp_options.idle_timeout_s);
    auto quiet = std::chrono::seconds(std::time(nullptr) - self->client_.last_command_unix);
    // A client waiting on a load is not idle; neither is one we are still writing to.
    if (quiet >= idle && !self->pending_ && !self->writing_) {
      Log(LogLevel::kDebug, "client_idle_timeout", "id=" + std::to_string(self->client_.id));
      return self->Close();
    }
    self->ArmIdleTimer(quiet >= idle ? idle : idle - quiet);
  });
}

template <typename Stream>
void BasicRespSession<Stream>::WaitReadable() {
  if (reading_ || closed_) return;
  reading_ = true;
  if constexpr (kTls) {
    // OpenSSL may hold decrypted bytes the socket no longer shows: always read through it.
    if (!MakeRoom()) {
      reading_ = false;
      return Continue();  // at max_query_buffer: answer what is complete, then close
    }
  } else if (in_cap_ == 0 || in_end_ == in_cap_) {
    // No buffer (so an idle connection costs none), or a full one: wait for readiness, then read.
    LowestLayer(socket_).async_wait(
        asio::socket_base::wait_read,
        [self = this->shared_from_this()](const error_code& ec) { self->OnReadable(ec); });
    return;
  }
  // The reactor reads into the buffer when epoll reports the socket readable. Unlike async_wait,
  // which re-arms the descriptor with epoll_ctl every time, this costs no extra system call: a
  // request is one epoll_wait (shared by every ready connection), one read and one write.
  socket_.async_read_some(asio::buffer(in_.get() + in_end_, in_cap_ - in_end_),
                          [self = this->shared_from_this()](const error_code& ec, size_t n) {
                            self->OnReceived(ec, n);
                          });
}

template <typename Stream>
void BasicRespSession<Stream>::OnReadable(const error_code& ec) {
  reading_ = false;
  if (closed_ || (ec && !DrainedWithInput(ec))) return Close();
  if (!ReadAvailable() && in_start_ == in_end_) return Close();
  Process();
  Flush();
  Continue();
}

template <typename Stream>
void BasicRespSession<Stream>::OnReceived(const error_code& ec, size_t n) {
  reading_ = false;
  if (closed_) return Close();
  if (ec == asio::error::operation_aborted) {
    // Drain() cancels the read; commands that arrived meanwhile are still answered.
    if (!DrainedWithInput(ec)) return Close();
    if constexpr (!kTls) ReadAvailable();
  } else if (ec) {
    peer_closed_ = true;  // EOF or reset: answer what is complete, then close
  } else {
    in_end_ += n;
    // The buffer filled up: more may be waiting (TLS reads the rest at the next async read).
    if constexpr (!kTls) {
      if (in_end_ == in_cap_) ReadAvailable();
    }
  }
  if (peer_closed_ && in_start_ == in_end_) return Close();
  Process();
  Flush();
  Continue();
}

template <typename Stream>
void BasicRespSession<Stream>::ResizeInput(size_t capacity) {
  std::unique_ptr<char[]> bigger(new char[capacity]);  // uninitialised on purpose
  if (in_end_ > in_start_) std::memcpy(bigger.get(), in_.get() + in_start_, in_end_ - in_start_);
  in_end_ -= in_start_;
  in_start_ = 0;
  in_ = std::move(bigger);
  in_cap_ = capacity;
  in_peak_ = std::max(in_peak_, capacity);
}

template <typename Stream>
bool BasicRespSession<Stream>::MakeRoom() {
  if (in_start_ == in_end_) in_start_ = in_end_ = 0;
  if (in_end_ < in_cap_) return true;
  // Full: move the unparsed tail to the front, or grow for a request bigger than the buffer.
  if (in_cap_ == 0) {
    ResizeInput(kInitialInput);
  } else if (in_start_ > 0) {
    std::memmove(in_.get(), in_.get() + in_start_, in_end_ - in_start_);
    in_end_ -= in_start_;
    in_start_ = 0;
  } else if (in_cap_ >= max_query_buffer_) {
    Log(LogLevel::kWarn, "client_query_buffer_limit",
        "id=" + std::to_string(client_.id) + " addr=" + client_.addr);
    peer_closed_ = true;  // read no more; answer what is complete, then close
    return false;
  } else {
    ResizeInput(std::min(in_cap_ * 2, max_query_buffer_));
  }
  return true;
}

template <typename Stream>
bool BasicRespSession<Stream>::ReadAvailable() {
  if constexpr (kTls) return true;  // never called for TLS: reads are asynchronous
  for (int round = 0; round < 4; ++round) {
    if (!MakeRoom()) return false;
    error_code ec;
    size_t n = socket_.read_some(asio::buffer(in_.get() + in_end_, in_cap_ - in_end_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return true;
    if (ec) {
      peer_closed_ = true;
      return false;
    }
    in_end_ += n;
    if (in_end_ < in_cap_) return true;  // the socket had less than we asked for
  }
  return true;
}

template <typename Stream>
void BasicRespSession<Stream>::Process() {
  // One reading of the clocks for every command of this batch (see lease::ClockSnapshot).
  lease::ClockSnapshot now;
  // No EXEC on another thread runs while this batch does (command_gate.h).
  CommandGate::Shared gate(state_.gate);
  client_.last_command_unix = std::time(nullptr);
  // SLOWLOG / LATENCY: nothing is read while both are off; else one reading per command
  // (CommandTimer), the batch's own for the first one's start.
  CommandTimer timer(state_.command_log, std::chrono::duration_cast<std::chrono::microseconds>(
                                             lease::ClockSnapshot::Now().time_since_epoch())
                                             .count());
  while (!pending_ && !close_after_write_ && in_start_ < in_end_ && out_.size() < kFlushAbove) {
    std::string_view input(in_.get() + in_start_, in_end_ - in_start_);
    proto::ParseStatus status = parser_.Parse(input);
    if (status == proto::ParseStatus::kNeedMore) break;
    if (status == proto::ParseStatus::kError) {
      proto::AppendError(out_, parser_.error());
      close_after_write_ = true;
      break;
    }
    const size_t reply_at = out_.size();
    CommandStatus result = commands_.Execute(client_, parser_.args(), out_, *this);
    if (timer.active()) {  // as it is by default (slowlog-log-slower-than 10000)
      // Every command's duration under latency-tracking (off by default), else only a slow one.
      if (const int64_t us = timer.Lap(); us >= 0) [[unlikely]] {
        LogSlowCommand(us);
      }
    }
    if (client_.close_after_reply) [[unlikely]] {
      close_after_write_ = result != CommandStatus::kPending;  // else once the reply is delivered
    }
    if (client_.reply != RespClient::Reply::kOn) [[unlikely]] {
      if (RespCommands::ReplyDropped(client_, parser_.args()[0],
                                     std::string_view(out_).substr(reply_at))) {
        out_.resize(reply_at);
        drop_reply_later_ = result == CommandStatus::kPending;
      }
    }
    in_start_ += parser_.consumed();
    if (client_.authenticated) parser_.set_authenticated(true);
    if (result == CommandStatus::kClose) close_after_write_ = true;
    if (result == CommandStatus::kPending) pending_ = true;
  }
  if (in_start_ == in_end_) {
    in_start_ = in_end_ = 0;
    if (in_cap_ > kShrinkAbove) {
      in_.reset();  // allocated again, small, at the next read
      in_cap_ = 0;
    }
  }
}

template <typename Stream>
void BasicRespSession<Stream>::LogSlowCommand(int64_t us) {
  // client_.cmd is null for a command that did not run (unknown, refused, queued in MULTI), as
  // Redis logs only what it calls.
  if (client_.cmd == nullptr) return;
  const std::span<const std::string_view> args = parser_.args();
  // EXEC leaves client_.cmd at the last command it ran: the log names what the client sent.
  const CommandSpec* spec = RespCommands::Find(args[0]);
  if (spec == nullptr) return;
  if (state_.command_log.latency_tracking()) commands_.RecordLatency(*spec, args, us);
  state_.command_log.Record(args, (spec->flags & kCmdFast) != 0, us, client_.last_command_unix,
                            client_.addr, client_.name);
}

template <typename Stream>
void BasicRespSession<Stream>::Flush() {
  if (writing_ || out_.empty() || closed_) return;
  if constexpr (kTls) {
    // Asynchronous always: a partial TLS record must never be left half-written.
    writing_buf_.swap(out_);
    out_.clear();
    writing_ = true;
    asio::async_write(
        socket_, asio::buffer(writing_buf_),
        [self = this->shared_from_this()](const error_code& ec, size_t) { self->OnWriteDone(ec); });
    return;
  }
  error_code ec;
  size_t n = socket_.write_some(asio::buffer(out_), ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return Close();
  if (!ec && n == out_.size()) {
    out_.clear();
    if (out_.capacity() > kFlushAbove * 2) out_.shrink_to_fit();
    return;
  }
  // The socket is full: send the rest asynchronously and stop reading until it has gone.
  writing_buf_.assign(out_, ec ? 0 : n, std::string::npos);
  out_.clear();
  writing_ = true;
  asio::async_write(
      socket_, asio::buffer(writing_buf_),
      [self = this->shared_from_this()](const error_code& ec, size_t) { self->OnWriteDone(ec); });
}

template <typename Stream>
void BasicRespSession<Stream>::OnWriteDone(const error_code& ec) {
  writing_ = false;
  writing_buf_.clear();
  if (writing_buf_.capacity() > kFlushAbove * 2) writing_buf_.shrink_to_fit();
  if (ec) return Close();
  Process();
  Flush();
  Continue();
}

template <typename Stream>
void BasicRespSession<Stream>::Continue() {
  if (closed_ || writing_) return;
  // Process() stops at kFlushAbove bytes of output. If Flush() then wrote it all at once,
  // complete commands may still wait in the buffer: run them now rather than waiting for the
  // client to send more (it may be waiting for these very replies).
  while (!pending_ && !close_after_write_ && out_.empty() && in_start_ < in_end_) {
    size_t before = in_start_;
    Process();
    Flush();
    if (closed_ || writing_) return;
    if (in_start_ == before) break;  // what is left is an incomplete command
  }
  if (close_after_write_ || peer_closed_) {
    // Replies to everything the peer sent before it closed are written first.
    if (out_.empty() && !pending_) Close();
    return;
  }
  if (pending_) return;  // resumed by DeliverLater
  if (state_.shutting_down.load(std::memory_order_relaxed)) {
    // Draining: a command the client sent before the listeners closed may already sit in the
    // socket (it arrived while this session was writing): read and answer it; close when idle.
    // A client that keeps sending is cut by shutdown.timeout_ms.
    error_code ec;
    if (LowestLayer(socket_).available(ec) == 0 || ec) return Close();
  }
  WaitReadable();
}

template <typename Stream>
void BasicRespSession<Stream>::DeliverLater(std::string reply) {
  asio::post(socket_.get_executor(),
             [self = this->shared_from_this(), reply = std::move(reply)]() mutable {
               self->pending_ = false;
               if (self->closed_) return;
               if (!self->drop_reply_later_) self->out_.append(reply);
               self->drop_reply_later_ = false;
               if (self->client_.close_after_reply) self->close_after_write_ = true;
               if (!self->deferred_pushes_.empty()) {
                 self->out_ += self->deferred_pushes_;
                 self->deferred_pushes_.clear();
               }
               self->Process();
               self->Flush();
               self->Continue();
             });
}

template <typename Stream>
void BasicRespSession<Stream>::Push(std::string bytes) {
  asio::post(socket_.get_executor(),
             [self = this->shared_from_this(), bytes = std::move(bytes)]() mutable {
               if (!self->closed_) self->AppendPush(bytes);
             });
}

template <typename Stream>
void BasicRespSession<Stream>::PushFor(std::function<std::string(const RespClient&)> build) {
  asio::post(socket_.get_executor(),
             [self = this->shared_from_this(), build = std::move(build)]() mutable {
               if (self->closed_) return;
               std::string bytes = build(self->client_);
               if (!bytes.empty()) self->AppendPush(bytes);
             });
}

template <typename Stream>
void BasicRespSession<Stream>::DescribeBuffers(RespClient::Buffers& b) {
  b.fd = static_cast<int>(socket_.lowest_layer().native_handle());
  b.qbuf = in_end_ - in_start_;
  b.qbuf_free = in_cap_ - in_end_;
  b.rbs = in_cap_;
  b.rbp = std::max(in_peak_, in_cap_);
  b.obl = out_.size();
  b.omem = out_.size() + writing_buf_.size() + deferred_pushes_.size();
  b.own = sizeof(*this) + out_.capacity() + writing_buf_.capacity() + deferred_pushes_.capacity();
  b.writing = writing_;
}

template <typename Stream>
void BasicRespSession<Stream>::Visit(std::function<bool(const RespClient&)> visit) {
  asio::post(socket_.get_executor(),
             [self = this->shared_from_this(), visit = std::move(visit)]() mutable {
               if (self->closed_) return;
               self->DescribeBuffers(self->client_.buffers);
               if (!visit(self->client_)) return;
               Log(LogLevel::kInfo, "client_killed",
                   "id=" + std::to_string(self->client_.id) + " addr=" + self->client_.addr);
               self->Close();
             });
}

template <typename Stream>
void BasicRespSession<Stream>::AppendPush(const std::string& bytes) {
  if (out_.size() + writing_buf_.size() + deferred_pushes_.size() + bytes.size() >
      kMaxPushedOutput) {
    Log(LogLevel::kWarn, "client_output_buffer_limit",
        "id=" + std::to_string(client_.id) + " addr=" + client_.addr +
            " detail=\"a subscriber that does not read: closed\"");
    return Close();
  }
  if (pending_) {
    deferred_pushes_ += bytes;
    return;
  }
  out_.append(bytes);
  Flush();
}

template <typename Stream>
void BasicRespSession<Stream>::Drain() {
  asio::post(socket_.get_executor(), [self = this->shared_from_this()] {
    // Cancelling the outstanding read makes OnReadable/OnReceived close; busy sessions close in
    // Continue().
    if (self->reading_) {
      error_code ec;
      LowestLayer(self->socket_).cancel(ec);
    }
  });
}

template <typename Stream>
bool BasicRespSession<Stream>::DrainedWithInput(const error_code& ec) {
  error_code ignored;
  return ec == asio::error::operation_aborted &&
         state_.shutting_down.load(std::memory_order_relaxed) &&
         LowestLayer(socket_).available(ignored) > 0;
}

template <typename Stream>
void BasicRespSession<Stream>::Close() {
  if (closed_) return;
  closed_ = true;
  // Gone for REDIRECT from now (tracking-redir-broken), before the peer can see the close; the
  // destructor, which may come later, does it again.
  state_.clients.Remove(client_.id);
  state_.tracking.Disable(client_.id);
  error_code ec;
  if (idle_timer_) idle_timer_->cancel();
  if (handshake_timer_) handshake_timer_->cancel();
  LowestLayer(socket_).shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  // Never a reset after the last reply (see DiscardInput).
  DiscardInput(LowestLayer(socket_));
  LowestLayer(socket_).close(ec);
}

template class BasicRespSession<asio::ip::tcp::socket>;
template class BasicRespSession<TlsSocket>;

}  // namespace corral::server

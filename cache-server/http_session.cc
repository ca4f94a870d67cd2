// HTTP connection I/O; see http_session.h.
#include "cache-server/http_session.h"

#include "cache-server/socket_close.h"
#include "cache-server/users.h"

namespace corral::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

template <typename Stream>
BasicHttpSession<Stream>::BasicHttpSession(Stream stream, ServerState& state, HttpHandler& handler,
                                           std::shared_ptr<asio::ssl::context> tls)
    : tls_(std::move(tls)), stream_(std::move(stream)), state_(state), handler_(handler) {
  error_code ec;
  auto remote = Socket().remote_endpoint(ec);
  peer_loopback_ = ec || IsLoopback(remote.address());
}

template <typename Stream>
BasicHttpSession<Stream>::~BasicHttpSession() {
  state_.connected_clients.fetch_sub(1);
}

template <typename Stream>
void BasicHttpSession<Stream>::Start() {
  error_code ec;
  Socket().set_option(asio::ip::tcp::no_delay(true), ec);
  if constexpr (kTls) {
    // A client that does not finish the handshake in time (or sends garbage) is closed.
    Tcp().expires_after(std::chrono::milliseconds(state_.config.tls->handshake_timeout_ms));
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = this->shared_from_this()](const error_code& ec) {
                              if (ec || self->closed_) return self->Close();
                              self->Begin();
                            });
    return;
  }
  Begin();
}

template <typename Stream>
void BasicHttpSession<Stream>::Begin() {
  Read();
}

template <typename Stream>
void BasicHttpSession<Stream>::Read() {
  if (closed_ || reading_ || read_done_) return;
  // Back-pressure: past max_pipelined unanswered requests, read again once one is written.
  if (queue_.size() >= static_cast<size_t>(state_.config.http_options.max_pipelined)) return;
  if (state_.shutting_down.load(std::memory_order_relaxed)) {
    // The listeners have closed: answer (with Connection: close) a request that has already
    // arrived, else read no more.
    if (!queue_.empty() || !Arrived()) return EndReading();
    return ReadRequest();
  }
  if (buffer_.size() > 0) return ReadRequest();  // a pipelined request is already here
  // Between requests the connection may sit idle for idle_timeout_ms; once the first byte of the
  // next request arrives, the whole request must follow within read_timeout_ms, so a client
  // trickling a header cannot hold the connection for the idle timeout. (The stream keeps
  // separate read and write timers: this does not touch a write in progress.)
  idle_ = true;
  reading_ = true;
  Tcp().expires_after(std::chrono::milliseconds(state_.config.http_options.idle_timeout_ms));
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = this->shared_from_this()](const error_code& ec, size_t n) {
                            self->OnIdleRead(ec, n);
                          });
}

template <typename Stream>
void BasicHttpSession<Stream>::OnIdleRead(const error_code& ec, size_t n) {
  idle_ = false;
  reading_ = false;
  if (closed_) return;
  buffer_.commit(n);
  // Drain() cancels an idle read; a request that arrived meanwhile is still answered.
  if (ec == asio::error::operation_aborted && Arrived()) return ReadRequest();
  if (ec) return EndReading();
  ReadRequest();
}

template <typename Stream>
void BasicHttpSession<Stream>::ReadRequest() {
  const HttpConfig& cfg = state_.config.http_options;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
  parser_->body_limit(static_cast<std::uint64_t>(cfg.max_body_bytes));
  reading_ = true;
  Tcp().expires_after(std::chrono::milliseconds(cfg.read_timeout_ms));
  // The header first: a chunked body is refused before Beast parses any of it (see OnHeader).
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = this->shared_from_this()](const error_code& ec, size_t) { self->OnHeader(ec); });
}

template <typename Stream>
void BasicHttpSession<Stream>::OnHeader(const error_code& ec) {
  if (ec || closed_ || parser_->is_done()) return OnRead(ec);
  if (parser_->chunked()) {
    // Boost 1.81's chunk parser asserts (aborting the process) on a final chunk whose trailer
    // arrives in some splits; the fuzz target found it. corral's values need no chunked upload:
    // answer 411 as servers without chunked support do, and close.
    reading_ = false;
    return Reject(
        HttpHandler::Error(http::status::length_required, 11, false,
                           "chunked request bodies are not accepted: send Content-Length"));
  }
  http::async_read(
      stream_, buffer_, *parser_,
      [self = this->shared_from_this()](const error_code& ec, size_t) { self->OnRead(ec); });
}

template <typename Stream>
void BasicHttpSession<Stream>::OnRead(const error_code& ec) {
  reading_ = false;
  if (closed_) return;
  if (ec == asio::error::operation_aborted || ec == http::error::end_of_stream ||
      ec == beast::error::timeout || ec == asio::error::eof ||
      ec == asio::error::connection_reset) {
    return EndReading();
  }
  if (ec) {
    http::status status = http::status::bad_request;
    std::string message = "bad request: " + ec.message();
    if (ec == http::error::header_limit) {
      status = http::status::request_header_fields_too_large;
      message = "request header fields too large";
    } else if (ec == http::error::body_limit) {
      status = http::status::payload_too_large;
      message = "payload too large";
    } else if (ec.category() != http::make_error_code(http::error::header_limit).category()) {
      return EndReading();  // a socket error: nobody to answer
    }
    // After a malformed request the stream cannot be trusted: answer and close.
    return Reject(HttpHandler::Error(status, 11, false, message));
  }
  HttpRequest request = parser_->release();
  if (!request.keep_alive()) read_done_ = true;  // Connection: close, or HTTP/1.0
  Dispatch(std::move(request));
  Read();  // the next pipelined request, while this one is answered
}

template <typename Stream>
void BasicHttpSession<Stream>::Dispatch(HttpRequest request) {
  const uint64_t seq = first_seq_ + queue_.size();
  queue_.emplace_back();
  auto executor = stream_.get_executor();
  // No EXEC on another thread runs while this request is handled (command_gate.h): HTTP writes
  // are other clients' commands too.
  CommandGate::Shared gate(state_.gate);
  handler_.Handle(
      request,
      [self = this->shared_from_this(), executor, seq](HttpResponse response) {
        asio::dispatch(executor, [self, seq, response = std::move(response)]() mutable {
          self->Deliver(seq, std::move(response));
        });
      },
      peer_loopback_);
}

template <typename Stream>
void BasicHttpSession<Stream>::Deliver(uint64_t seq, HttpResponse response) {
  if (closed_ || seq < first_seq_ || seq - first_seq_ >= queue_.size()) return;
  queue_[seq - first_seq_] = std::move(response);
  WriteNext();
}

template <typename Stream>
void BasicHttpSession<Stream>::Reject(HttpResponse response) {
  read_done_ = true;
  queue_.emplace_back(std::move(response));
  WriteNext();
}

template <typename Stream>
void BasicHttpSession<Stream>::WriteNext() {
  if (closed_ || writing_ || queue_.empty() || !queue_.front()) return;
  HttpResponse response = std::move(*queue_.front());
  queue_.pop_front();
  ++first_seq_;
  // The last response a connection will send says so: after a request that asked to close, an
  // error that ends the stream, or once corral is shutting down (responses already queued are
  // still written first).
  const bool last = queue_.empty() && ((read_done_ && !reading_) || state_.shutting_down.load());
  bool keep_alive = response.keep_alive() && !last;
  response.keep_alive(keep_alive);
  response_ = std::make_shared<HttpResponse>(std::move(response));
  writing_ = true;
  Tcp().expires_after(std::chrono::milliseconds(state_.config.http_options.read_timeout_ms));
  http::async_write(stream_, *response_,
                    [self = this->shared_from_this(), keep_alive](const error_code& ec, size_t) {
                      self->OnWrite(keep_alive, ec);
                    });
}

template <typename Stream>
void BasicHttpSession<Stream>::OnWrite(bool keep_alive, const error_code& ec) {
  writing_ = false;
  response_.reset();
  if (closed_) return;
  if (ec || !keep_alive) return Close();
  if (drain_ && idle_) {
    // Drain() came while this write was outstanding; cancelling then would have cut it short.
    error_code ignored;
    Socket().cancel(ignored);
  }
  WriteNext();
  Read();  // the queue has room again
  CloseWhenDone();
}

template <typename Stream>
void BasicHttpSession<Stream>::EndReading() {
  read_done_ = true;
  CloseWhenDone();
}

template <typename Stream>
void BasicHttpSession<Stream>::CloseWhenDone() {
  if (read_done_ && !reading_ && !writing_ && queue_.empty()) Close();
}

template <typename Stream>
void BasicHttpSession<Stream>::Drain() {
  asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
    if (self->closed_ || !self->idle_) return;
    if (self->writing_) {
      self->drain_ = true;  // cancel the idle read once the write is done
      return;
    }
    error_code ignored;
    self->Socket().cancel(ignored);
  });
}

template <typename Stream>
bool BasicHttpSession<Stream>::Arrived() {
  error_code ec;
  return buffer_.size() > 0 || Socket().available(ec) > 0;
}

template <typename Stream>
void BasicHttpSession<Stream>::Close() {
  if (closed_) return;
  closed_ = true;
  error_code ec;
  Socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  // Unread input would make close() send a reset, which may destroy the response the client has
  // not read yet; read it away first (what arrives later is the client's to retry).
  DiscardInput(Socket());
  Tcp().close();
}

template class BasicHttpSession<beast::tcp_stream>;
template class BasicHttpSession<beast::ssl_stream<beast::tcp_stream>>;

}  // namespace corral::server

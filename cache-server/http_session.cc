// HTTP connection I/O; see http_session.h.
#include "cache-server/http_session.h"

#include "cache-server/socket_close.h"

namespace corral::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

HttpSession::HttpSession(asio::ip::tcp::socket socket, ServerState& state, HttpHandler& handler)
    : stream_(std::move(socket)), state_(state), handler_(handler) {}

HttpSession::~HttpSession() { state_.connected_clients.fetch_sub(1); }

void HttpSession::Start() {
  error_code ec;
  stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  Read();
}

void HttpSession::Read() {
  if (state_.shutting_down.load(std::memory_order_relaxed)) {
    // The listeners have closed: answer (with Connection: close) a request that has already
    // arrived, else close now.
    return Arrived() ? ReadRequest() : Close();
  }
  if (buffer_.size() > 0) return ReadRequest();  // a pipelined request is already here
  // Between requests the connection may sit idle for idle_timeout_ms; once the first byte of the
  // next request arrives, the whole request must follow within read_timeout_ms, so a client
  // trickling a header cannot hold the connection for the idle timeout.
  idle_ = true;
  stream_.expires_after(std::chrono::milliseconds(state_.config.http_options.idle_timeout_ms));
  stream_.async_read_some(
      buffer_.prepare(4096),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->OnIdleRead(ec, n); });
}

void HttpSession::OnIdleRead(const error_code& ec, size_t n) {
  idle_ = false;
  buffer_.commit(n);
  // Drain() cancels an idle read; a request that arrived meanwhile is still answered.
  if (ec == asio::error::operation_aborted && Arrived()) return ReadRequest();
  if (ec) return Close();
  ReadRequest();
}

void HttpSession::ReadRequest() {
  const HttpConfig& cfg = state_.config.http_options;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
  parser_->body_limit(static_cast<std::uint64_t>(cfg.max_body_bytes));
  stream_.expires_after(std::chrono::milliseconds(cfg.read_timeout_ms));
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](const error_code& ec, size_t) { self->OnRead(ec); });
}

void HttpSession::OnRead(const error_code& ec) {
  if (ec == asio::error::operation_aborted) return Close();
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::eof || ec == asio::error::connection_reset) {
    return Close();
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
      return Close();  // a socket error: nobody to answer
    }
    // After a malformed request the stream cannot be trusted: answer and close.
    return Write(HttpHandler::Error(status, 11, false, message));
  }
  stream_.expires_never();
  HttpRequest request = parser_->release();
  auto executor = stream_.get_executor();
  handler_.Handle(request, [self = shared_from_this(), executor](HttpResponse response) {
    asio::dispatch(executor, [self, response = std::move(response)]() mutable {
      self->Write(std::move(response));
    });
  });
}

void HttpSession::Write(HttpResponse response) {
  bool keep_alive = response.keep_alive() && !state_.shutting_down.load();
  response.keep_alive(keep_alive);
  response_ = std::make_shared<HttpResponse>(std::move(response));
  stream_.expires_after(std::chrono::milliseconds(state_.config.http_options.read_timeout_ms));
  http::async_write(stream_, *response_,
                    [self = shared_from_this(), keep_alive](const error_code& ec, size_t) {
                      self->OnWrite(keep_alive, ec);
                    });
}

void HttpSession::OnWrite(bool keep_alive, const error_code& ec) {
  response_.reset();
  if (ec || !keep_alive) return Close();
  Read();
}

void HttpSession::Drain() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->idle_) self->stream_.cancel();
  });
}

bool HttpSession::Arrived() {
  error_code ec;
  return buffer_.size() > 0 || stream_.socket().available(ec) > 0;
}

void HttpSession::Close() {
  error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  // Unread input would make close() send a reset, which may destroy the response the client has
  // not read yet; read it away first (what arrives later is the client's to retry).
  DiscardInput(stream_.socket());
  stream_.close();
}

}  // namespace corral::server

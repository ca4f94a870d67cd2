// One HTTP/1.1 connection (Boost.Beast): reads requests with header/body limits and timeouts,
// hands each to HttpHandler, and writes the responses in request order, keeping the connection
// alive. Pipelined requests are read and handled while earlier responses are pending, up to
// http.max_pipelined queued responses per connection (then reading waits for a write).
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

#include "cache-server/http_handler.h"
#include "cache-server/tls.h"

namespace corral::server {

// Lives on one io_context (one thread): every method but Drain runs there. `Stream` is Beast's
// tcp_stream (HttpSession) or an ssl_stream over one (HttpsSession).
template <typename Stream>
class BasicHttpSession final : public Drainable,
                               public std::enable_shared_from_this<BasicHttpSession<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, boost::beast::tcp_stream>;

  // `tls`: the context a TLS stream was made with, kept alive with it (null for plain TCP).
  BasicHttpSession(Stream stream, ServerState& state, HttpHandler& handler,
                   std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~BasicHttpSession();
  // Starts serving. Call on the socket's executor.
  void Start();
  // Thread-safe: closes now if idle between requests, else after the responses in hand.
  void Drain() override;

 private:
  void Read();  // reads the next request if the queue has room and reading has not ended
  void OnIdleRead(const boost::system::error_code& ec, size_t n);
  void ReadRequest();  // reads one request (read timeout)
  void OnHeader(const boost::system::error_code& ec);
  void OnRead(const boost::system::error_code& ec);
  // Queues a response slot for request `seq` and hands the request to the handler.
  void Dispatch(HttpRequest request);
  // The handler's answer to request `seq` (on the session's executor).
  void Deliver(uint64_t seq, HttpResponse response);
  // Queues an answer of the session's own (400/413/431) and ends reading.
  void Reject(HttpResponse response);
  void WriteNext();  // writes the front response once it is ready
  void OnWrite(bool keep_alive, const boost::system::error_code& ec);
  // Reading has ended (EOF, timeout, drain, Connection: close): close once the queue is empty.
  void EndReading();
  void CloseWhenDone();
  // True when request bytes are buffered or waiting in the socket.
  bool Arrived();
  void Close();
  void Begin();  // after the TLS handshake, at once on plain TCP
  boost::asio::ip::tcp::socket& Socket() {
    return boost::beast::get_lowest_layer(stream_).socket();
  }
  boost::beast::tcp_stream& Tcp() { return boost::beast::get_lowest_layer(stream_); }

  std::shared_ptr<boost::asio::ssl::context> tls_;  // before stream_: it must outlive it
  Stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  // Responses in request order; an empty slot waits for the handler. queue_.front() answers
  // request number first_seq_.
  std::deque<std::optional<HttpResponse>> queue_;
  uint64_t first_seq_ = 0;
  std::shared_ptr<HttpResponse> response_;  // alive while it is being written
  ServerState& state_;
  HttpHandler& handler_;
  bool peer_loopback_ = true;  // protected mode refuses others (users.h)
  bool idle_ = false;          // waiting for the first byte of the next request
  bool reading_ = false;       // a read is outstanding
  bool writing_ = false;       // a write is outstanding
  bool read_done_ = false;     // no more requests will be read
  bool drain_ = false;         // Drain() arrived while a write was outstanding
  bool closed_ = false;
};

using HttpSession = BasicHttpSession<boost::beast::tcp_stream>;
using HttpsSession = BasicHttpSession<boost::beast::ssl_stream<boost::beast::tcp_stream>>;

}  // namespace corral::server

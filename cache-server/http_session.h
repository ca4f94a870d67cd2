// One HTTP/1.1 connection (Boost.Beast): reads a request with header/body limits and timeouts,
// hands it to HttpHandler, writes the response, keeps the connection alive. Pipelined requests
// are answered in order, one at a time (the queue of responses is bounded at one).
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>

#include "cache-server/http_handler.h"

namespace corral::server {

class HttpSession final : public Drainable, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket socket, ServerState& state, HttpHandler& handler);
  ~HttpSession();
  // Starts serving. Call on the socket's executor.
  void Start();
  // Thread-safe: closes now if idle between requests, else after the response in hand.
  void Drain() override;

 private:
  void Read();         // waits (idle timeout) for the next request to begin
  void OnIdleRead(const boost::system::error_code& ec, size_t n);
  void ReadRequest();  // reads one request (read timeout)
  void OnRead(const boost::system::error_code& ec);
  void Write(HttpResponse response);
  void OnWrite(bool keep_alive, const boost::system::error_code& ec);
  // True when request bytes are buffered or waiting in the socket.
  bool Arrived();
  void Close();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<HttpResponse> response_;  // alive while it is being written
  ServerState& state_;
  HttpHandler& handler_;
  bool idle_ = false;  // waiting for the first byte of the next request
};

}  // namespace corral::server

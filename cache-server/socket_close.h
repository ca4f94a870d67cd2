// Closing a TCP connection without a reset: shared by the RESP and HTTP sessions, so that a
// client always reads the last reply whole before it sees the end of the stream.
#pragma once

#include <boost/asio.hpp>

namespace corral::server {

// Reads away (without blocking, at most `limit` bytes) what the client sent that will not be
// answered. Call before close(): closing a socket with unread input sends an RST instead of a
// FIN, and an RST may make the client's stack drop replies it has received but not yet read.
inline void DiscardInput(boost::asio::ip::tcp::socket& socket, size_t limit = 1 << 20) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  char scratch[16 * 1024];
  for (size_t total = 0; !ec && total < limit;) {
    size_t n = socket.read_some(boost::asio::buffer(scratch), ec);
    total += n;
  }
}

}  // namespace corral::server

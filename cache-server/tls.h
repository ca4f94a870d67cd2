// TLS for the RESP and HTTP ports (Boost.Asio SSL over OpenSSL): the server context built from
// the "tls" config section, swapped whole when the certificate files change or on SIGHUP, so a
// new connection gets the new certificate while open ones keep theirs.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "cache-server/config.h"

namespace corral::server {

using TlsSocket = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

// The TCP socket under a plain or TLS connection.
inline boost::asio::ip::tcp::socket& LowestLayer(boost::asio::ip::tcp::socket& s) { return s; }
inline boost::asio::ip::tcp::socket& LowestLayer(TlsSocket& s) { return s.next_layer(); }

class TlsContexts {
 public:
  // Loads the certificate, key and CAs. Throws ConfigError naming the tls.* field that failed.
  explicit TlsContexts(const TlsConfig& config);

  // The context new connections use. Thread-safe; a connection keeps its copy alive.
  std::shared_ptr<boost::asio::ssl::context> Current() const;

  // Loads the files again if they changed since the last load (or always, with `force`). A file
  // that fails to load is logged and the current context kept. Thread-safe.
  void Reload(bool force);

  std::chrono::milliseconds handshake_timeout() const {
    return std::chrono::milliseconds(config_.handshake_timeout_ms);
  }

 private:
  struct Stamp {
    long long mtime_ns = 0;
    long long size = -1;
    bool operator==(const Stamp&) const = default;
  };
  // Throws ConfigError naming the field.
  std::shared_ptr<boost::asio::ssl::context> Build() const;
  std::vector<Stamp> Stamps() const;

  TlsConfig config_;
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> current_;
  std::vector<Stamp> stamps_;
};

}  // namespace corral::server

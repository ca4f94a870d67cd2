// corral's HTTP API as a function from request to response (SPEC.md "HTTP endpoint"); the
// session (http_session.h) does only I/O. Answers may come later, from another thread.
#pragma once

#include <boost/beast/http.hpp>
#include <functional>

#include "cache-server/server_state.h"

namespace corral::server {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
// Receives the response exactly once; may be called on any thread.
using HttpRespond = std::function<void(HttpResponse)>;

// Renders the Prometheus text for /metrics (and the gauges that need the server's live state).
using MetricsRenderer = std::function<std::string()>;
// True when every pool has at least one usable replica (always true with no PostgreSQL); what
// /readyz/database reports. /readyz does not consult it.
using DatabaseReadyCheck = std::function<bool()>;

// Read-your-writes over HTTP: the WAL position the client's own write returned (pg_lsn text).
inline constexpr std::string_view kWrittenHeader = "X-Corral-Written";

class HttpHandler {
 public:
  HttpHandler(ServerState& state, MetricsRenderer metrics, DatabaseReadyCheck database_ready);

  // Thread-safe. `respond` is called before Handle returns when the answer is known at once.
  void Handle(const HttpRequest& request, HttpRespond respond);

  // A plain-text error response (also used by the session for 400/413/431).
  static HttpResponse Error(boost::beast::http::status status, unsigned version, bool keep_alive,
                            std::string_view message);

 private:
  void Route(const HttpRequest& request, HttpRespond respond);
  void HandleCache(const HttpRequest& request, std::string key, HttpRespond respond);
  HttpResponse Stats(const HttpRequest& request) const;

  ServerState& state_;
  MetricsRenderer metrics_;
  DatabaseReadyCheck database_ready_;
};

// Retry-After seconds for a shed request: 1-3 s, jittered so that shed clients do not return
// together (SPEC rule 8).
int RetryAfterSeconds();

}  // namespace corral::server

// corral's HTTP API as a function from request to response (SPEC.md "HTTP endpoint"); the
// session (http_session.h) does only I/O. Answers may come later, from another thread.
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <memory>
#include <optional>

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
  // `peer_loopback`: the client is on loopback (protected mode refuses others, users.h).
  void Handle(const HttpRequest& request, HttpRespond respond, bool peer_loopback = true);

  // A plain-text error response (also used by the session for 400/413/431).
  static HttpResponse Error(boost::beast::http::status status, unsigned version, bool keep_alive,
                            std::string_view message);

 private:
  void Route(const HttpRequest& request, HttpRespond respond, bool peer_loopback);
  // The caller, from the Authorization header (Bearer token or Basic user:password), or the
  // default user when it needs no credentials. Null with the 401/403 answer in `refusal`.
  std::shared_ptr<const auth::User> Caller(const HttpRequest& request, bool peer_loopback,
                                           std::optional<HttpResponse>& refusal) const;
  // True when `user` may run `command` on `key` (as the RESP command would be checked); else the
  // 403 answer is in `refusal`.
  bool Allowed(const HttpRequest& request, const auth::User& user, std::string_view command,
               std::string_view key, std::optional<HttpResponse>& refusal) const;
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

// The HTTP routes; see http_handler.h.
#include "cache-server/http_handler.h"

#include <boost/beast/core/detail/base64.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "cache-server/resp_commands.h"
#include "cache-server/resp_util.h"
#include "cache-server/users.h"
#include "lease/wal_position.h"
#include "proto/errors.h"
#include "proto/http_route.h"

namespace corral::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;

int RetryAfterSeconds() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_int_distribution<int>(1, 3)(rng);
}

HttpHandler::HttpHandler(ServerState& state, MetricsRenderer metrics,
                         DatabaseReadyCheck database_ready)
    : state_(state), metrics_(std::move(metrics)), database_ready_(std::move(database_ready)) {}

HttpResponse HttpHandler::Error(http::status status, unsigned version, bool keep_alive,
                                std::string_view message) {
  HttpResponse res{status, version};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.keep_alive(keep_alive);
  res.body() = std::string(message) + "\n";
  res.prepare_payload();
  return res;
}

namespace {

HttpResponse Text(http::status status, const HttpRequest& req, std::string body,
                  std::string_view content_type = "text/plain; charset=utf-8") {
  HttpResponse res{status, req.version()};
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

std::string_view XCache(Outcome outcome) {
  switch (outcome) {
    case Outcome::kHit:
    case Outcome::kNotFound:
      return "HIT";
    case Outcome::kStale:
      return "STALE";
    case Outcome::kWaited:
      return "WAITED";
    default:
      return "MISS";
  }
}

// Builds the response to a cache read. Runs inside the store's lock on a hit: keep it cheap.
HttpResponse ReadResponse(const ReadAnswer& answer, unsigned version, bool keep_alive) {
  HttpResponse res{http::status::ok, version};
  res.keep_alive(keep_alive);
  switch (answer.kind) {
    case ReadAnswer::Kind::kValue: {
      bool json = nlohmann::json::accept(answer.value);
      res.set(http::field::content_type, json ? "application/json" : "application/octet-stream");
      res.body().assign(answer.value);
      break;
    }
    case ReadAnswer::Kind::kNotFound:
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "not found\n";
      break;
    case ReadAnswer::Kind::kBusy:
      res.result(http::status::service_unavailable);
      res.set(http::field::retry_after, std::to_string(RetryAfterSeconds()));
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = std::string(proto::kHttpBusyPrefix).append(answer.error) + "\n";
      break;
    case ReadAnswer::Kind::kError:
      res.result(http::status::bad_gateway);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = std::string(answer.error) + "\n";
      break;
  }
  if (answer.kind == ReadAnswer::Kind::kValue || answer.kind == ReadAnswer::Kind::kNotFound) {
    res.set("X-Cache", XCache(answer.outcome));
    res.set(http::field::age, std::to_string(std::max<lease::Millis>(0, answer.age_ms) / 1000));
  }
  res.prepare_payload();
  return res;
}

HttpResponse NoContent(const HttpRequest& req) {
  // No prepare_payload(): a 204 must not carry Content-Length (RFC 9110, 8.6).
  HttpResponse res{http::status::no_content, req.version()};
  res.keep_alive(req.keep_alive());
  return res;
}

// A GET-or-HEAD-only route.
bool ReadMethod(const HttpRequest& req) {
  return req.method() == http::verb::get || req.method() == http::verb::head;
}

}  // namespace

void HttpHandler::Handle(const HttpRequest& request, HttpRespond respond, bool peer_loopback) {
  if (request.method() != http::verb::head) {
    return Route(request, std::move(respond), peer_loopback);
  }
  // HEAD: the GET response's status and headers (Content-Length included), without the body.
  Route(
      request,
      [respond = std::move(respond)](HttpResponse res) {
        size_t length = res.body().size();
        res.body().clear();
        res.content_length(length);
        respond(std::move(res));
      },
      peer_loopback);
}

namespace {

HttpResponse Unauthorized(const HttpRequest& req, std::string_view message) {
  HttpResponse res =
      HttpHandler::Error(http::status::unauthorized, req.version(), req.keep_alive(), message);
  res.insert(http::field::www_authenticate, R"(Basic realm="corral", charset="UTF-8")");
  res.insert(http::field::www_authenticate, R"(Bearer realm="corral")");
  return res;
}

}  // namespace

std::shared_ptr<const auth::User> HttpHandler::Caller(const HttpRequest& req, bool peer_loopback,
                                                      std::optional<HttpResponse>& refusal) const {
  if (ProtectedModeRefuses(state_.config, state_.users, peer_loopback)) {
    refusal = Error(http::status::forbidden, req.version(), false, kProtectedModeMessage);
    return nullptr;
  }
  auto header = req.find(http::field::authorization);
  if (header == req.end()) {
    if (state_.users.DefaultIsOpen()) {
      if (std::shared_ptr<const auth::User> user = state_.users.Find("default")) return user;
    }
    refusal = Unauthorized(req,
                           "authentication required: send \"Authorization: Bearer <token>\" or "
                           "HTTP Basic credentials of a corral user");
    return nullptr;
  }
  std::string_view value = header->value();
  const size_t space = value.find(' ');
  const std::string_view scheme = value.substr(0, space);
  std::string_view credentials = space == std::string_view::npos ? "" : value.substr(space + 1);
  while (!credentials.empty() && credentials.front() == ' ') credentials.remove_prefix(1);
  std::shared_ptr<const auth::User> user;
  if (EqualsIgnoreCase(scheme, "bearer")) {
    user = state_.users.AuthenticateToken(credentials);
  } else if (EqualsIgnoreCase(scheme, "basic")) {
    // Not decoded_size(): it rounds down, and decode() writes the bytes of a trailing partial
    // group too (a heap overflow http_request_fuzz found with a 107-character credential).
    std::string decoded((credentials.size() + 3) / 4 * 3, '\0');
    auto [written, read] =
        beast::detail::base64::decode(decoded.data(), credentials.data(), credentials.size());
    decoded.resize(written);
    const size_t colon = decoded.find(':');
    // Beast stops reading at the padding: what it left must be padding only.
    const bool whole = credentials.find_first_not_of('=', read) == std::string_view::npos;
    if (whole && colon != std::string::npos) {
      user = state_.users.Authenticate(std::string_view(decoded).substr(0, colon),
                                       std::string_view(decoded).substr(colon + 1));
    }
  } else {
    refusal = Unauthorized(req, "unsupported authorization scheme: use Bearer or Basic");
    return nullptr;
  }
  if (user == nullptr) {
    // As Redis's WRONGPASS: nothing says whether the user exists.
    refusal = Unauthorized(req, "invalid credentials, or the user is disabled");
  }
  return user;
}

bool HttpHandler::Allowed(const HttpRequest& req, const auth::User& user, std::string_view command,
                          std::string_view key, std::optional<HttpResponse>& refusal) const {
  if (user.unrestricted) return true;
  const CommandSpec* spec = RespCommands::Find(command);
  const size_t index = static_cast<size_t>(spec - RespCommands::Table().data());
  const bool write = (spec->flags & kCmdWrite) != 0;
  std::string problem;
  if (!user.MayRun(index, spec->name)) {
    problem = "forbidden: user '" + user.name + "' may not run " + std::string(spec->name);
  } else if (!key.empty() &&
             !user.MayAccess(key, write ? auth::Access::kWrite : auth::Access::kRead)) {
    problem = "forbidden: user '" + user.name + "' may not " + (write ? "write" : "read") +
              " key " + std::string(key);
  } else {
    return true;
  }
  refusal = Error(http::status::forbidden, req.version(), req.keep_alive(), problem);
  return false;
}

void HttpHandler::Route(const HttpRequest& req, HttpRespond respond, bool peer_loopback) {
  proto::Route route = proto::ParseRoute(req.target());
  std::optional<HttpResponse> refusal;
  // Every route but the probes needs a caller allowed to do what the request asks; the default
  // user, when it needs no password and may do anything, costs two atomic loads.
  auto permit = [&](std::string_view command, std::string_view key) {
    if (state_.users.DefaultIsUnrestricted() && req.find(http::field::authorization) == req.end() &&
        !ProtectedModeRefuses(state_.config, state_.users, peer_loopback)) {
      return true;
    }
    std::shared_ptr<const auth::User> user = Caller(req, peer_loopback, refusal);
    return user != nullptr && Allowed(req, *user, command, key, refusal);
  };
  switch (route.kind) {
    case proto::RouteKind::kCache: {
      const std::string key = route.ns + ":" + route.id;
      std::string_view command = ReadMethod(req)                       ? "get"
                                 : req.method() == http::verb::put     ? "set"
                                 : req.method() == http::verb::delete_ ? "del"
                                                                       : "";
      // A method corral does not serve is answered 405 whoever asks.
      if (!command.empty() && !permit(command, key)) return respond(std::move(*refusal));
      return HandleCache(req, key, std::move(respond));
    }
    case proto::RouteKind::kHealthz:
      if (!ReadMethod(req)) break;
      return respond(Text(http::status::ok, req, "ok\n"));
    case proto::RouteKind::kReadyz:
      // Ready to take traffic: listening and not draining. Never the database's state: a cache
      // that serves stale values must stay behind the load balancer while PostgreSQL is down.
      if (!ReadMethod(req)) break;
      if (state_.draining.load()) {
        return respond(Text(http::status::service_unavailable, req, "draining\n"));
      }
      if (state_.joining_tier.load()) {
        return respond(Text(http::status::service_unavailable, req, "joining the Redis tier\n"));
      }
      return respond(Text(http::status::ok, req, "ready\n"));
    case proto::RouteKind::kReadyzDatabase:
      // For dashboards and alerts, not for a load balancer.
      if (!ReadMethod(req)) break;
      return respond(database_ready_()
                         ? Text(http::status::ok, req, "database ready\n")
                         : Text(http::status::service_unavailable, req, "database not ready\n"));
    case proto::RouteKind::kMetrics:
      if (!ReadMethod(req)) break;
      if (!state_.config.http_options.open_metrics && !permit("info", "")) {
        return respond(std::move(*refusal));
      }
      return respond(Text(http::status::ok, req, metrics_(), "text/plain; version=0.0.4"));
    case proto::RouteKind::kStats:
      if (!ReadMethod(req)) break;
      if (!state_.config.http_options.open_metrics && !permit("info", "")) {
        return respond(std::move(*refusal));
      }
      return respond(Stats(req));
    case proto::RouteKind::kBadRequest:
      return respond(Error(http::status::bad_request, req.version(), req.keep_alive(),
                           "bad request: malformed path"));
    case proto::RouteKind::kNotFound:
      return respond(
          Error(http::status::not_found, req.version(), req.keep_alive(), "no such route"));
  }
  HttpResponse res = Error(http::status::method_not_allowed, req.version(), req.keep_alive(),
                           "method not allowed");
  res.set(http::field::allow, "GET, HEAD");
  respond(std::move(res));
}

void HttpHandler::HandleCache(const HttpRequest& req, std::string key, HttpRespond respond) {
  // Read-your-writes: the WAL position of the client's own write (pg_lsn text), for GET (never
  // answered from an older read) and DELETE (the invalidation's position).
  lease::WalPosition written = 0;
  if (auto it = req.find(kWrittenHeader); it != req.end()) {
    std::optional<lease::WalPosition> p = lease::ParseWalPosition(it->value());
    if (!p) {
      return respond(Error(http::status::bad_request, req.version(), req.keep_alive(),
                           std::string("bad request: ") + std::string(kWrittenHeader) +
                               " is not a WAL position like 0/16B3748"));
    }
    written = *p;
  }
  switch (req.method()) {
    case http::verb::get:
    case http::verb::head: {
      unsigned version = req.version();
      bool keep_alive = req.keep_alive();
      std::optional<HttpResponse> now_response;
      bool now = state_.cache.Read(
          Proto::kHttp, key,
          [&](const ReadAnswer& answer) {
            now_response.emplace(ReadResponse(answer, version, keep_alive));
          },
          [&]() -> ReadLater {
            return [respond, version, keep_alive](const ReadAnswer& answer) {
              respond(ReadResponse(answer, version, keep_alive));
            };
          },
          written);
      if (now) respond(std::move(*now_response));
      return;
    }
    case http::verb::put: {
      lease::SetResult r = state_.cache.Set(key, req.body(), std::nullopt);
      // The key changed for RESP's WATCH and CLIENT TRACKING too.
      state_.watches.Touch(key);
      state_.tracking.Invalidate(key, 0);
      if (r == lease::SetResult::kTooLarge) {
        // Under maxmemory-policy noeviction a value that would fit an empty shard may be refused
        // for want of room: RESP's -OOM, 507 here.
        if (!state_.cache.store().evict()) {
          return respond(Error(http::status::insufficient_storage, req.version(), req.keep_alive(),
                               "out of memory (maxmemory-policy noeviction)"));
        }
        return respond(Error(http::status::payload_too_large, req.version(), req.keep_alive(),
                             "value larger than the memory bound allows"));
      }
      return respond(NoContent(req));
    }
    case http::verb::delete_: {
      // With the Redis tier, answered once the tier has it (bounded by redis.timeout_ms).
      HttpResponse done = NoContent(req);
      state_.cache.Invalidate(
          key, InvalidationSource::kHttp,
          [respond, done = std::move(done)](bool) mutable { respond(std::move(done)); }, written);
      return;
    }
    default: {
      HttpResponse res = Error(http::status::method_not_allowed, req.version(), req.keep_alive(),
                               "method not allowed");
      res.set(http::field::allow, "GET, HEAD, PUT, DELETE");
      return respond(std::move(res));
    }
  }
}

HttpResponse HttpHandler::Stats(const HttpRequest& req) const {
  return Text(http::status::ok, req, RenderStatsJson(MetricSourcesOf(state_)), "application/json");
}

}  // namespace corral::server

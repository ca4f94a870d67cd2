// libFuzzer target for corral's HTTP front end: the bytes of one client connection go through
// what HttpSession runs (Beast's request_parser with the session's header and body limits, fed
// in pieces as reads deliver them, pipelined requests one after another) into the real
// HttpHandler and CacheService, and every response is serialized as the session writes it.
// Loads go to an in-process backend that answers at once. Checks: no crash or sanitizer report,
// every request gets exactly one response, and a malformed request gets 400/413/431.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "cache-server/cache_service.h"
#include "cache-server/config.h"
#include "cache-server/http_handler.h"
#include "cache-server/log.h"
#include "cache-server/metrics.h"
#include "cache-server/server_state.h"
#include "cache-server/users.h"
#include "lease/clock.h"
#include "lease/lease_table.h"
#include "lease/random.h"
#include "lease/store.h"
#include "proto/http_route.h"

namespace {

namespace http = boost::beast::http;
using namespace corral;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http_request_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

// Answers a load as soon as it is admitted (a queued one when the queue admits or drops it), on
// the thread that answers: the id decides found, not found or failed.
class InstantBackend final : public server::LoadBackend {
 public:
  void Load(size_t, std::string id, lease::WalPosition, server::AdmitFn admit,
            std::function<void(server::BackendResult)> done) override {
    admit([id = std::move(id), done = std::move(done)](lease::Admission a) {
      if (a != lease::Admission::kAdmitted) return done(server::ShedResult(a));
      Answer(id, done);
    });
  }

 private:
  static void Answer(const std::string& id,
                     const std::function<void(server::BackendResult)>& done) {
    server::BackendResult r;
    const size_t pick = id.empty() ? 0 : static_cast<unsigned char>(id.back()) % 3;
    r.kind = pick == 0   ? lease::LoadResult::Kind::kValue
             : pick == 1 ? lease::LoadResult::Kind::kNotFound
                         : lease::LoadResult::Kind::kError;
    r.data = pick == 0 ? "{\"id\":\"" + std::string(id.size() < 16 ? id.size() : 16, 'x') + "\"}"
                       : std::string("no row");
    done(std::move(r));
  }
};

// One server's worth of state, built once: a read-through namespace "user" and plain keys.
struct World {
  World()
      : config(server::ParseConfig(R"({
          "postgres": {"primary": "host=127.0.0.1 dbname=fuzz", "replicas": ["host=127.0.0.1"]},
          "namespaces": {"user": {"query": "SELECT $1", "stale_ms": 1000}},
          "memory": {"max_bytes": 1048576}
        })")),
        random({0.5}),
        store(config.memory, clock, random),
        leases(config.lease, clock),
        cache(config, store, leases, clock, random, metrics, &backend),
        users(server::BuildUsers(config)),
        state(config, cache, metrics, *users),
        handler(
            state, [this] { return server::RenderPrometheus(server::MetricSourcesOf(state)); },
            [] { return true; }),
        locked_users(server::BuildUsers(server::ParseConfig(R"({"users": {
          "app": {"acl": "on ~user:* %R~plain:* +@all -@dangerous", "password": "pw",
                  "tokens": ["tok-app"]}}})"))),
        locked_state(config, cache, metrics, *locked_users),
        locked_handler(
            locked_state,
            [this] { return server::RenderPrometheus(server::MetricSourcesOf(locked_state)); },
            [] { return true; }) {}

  server::Config config;
  lease::FakeClock clock;
  lease::FakeRandom random;
  lease::Store store;
  lease::LeaseTable leases;
  server::Metrics metrics;
  InstantBackend backend;
  server::CacheService cache;
  std::unique_ptr<auth::UserTable> users;
  server::ServerState state;
  server::HttpHandler handler;
  // The same cache behind a door that asks for credentials (user "app": password "pw", token
  // "tok-app"); the top bit of byte 3 picks it, so Authorization headers meet both doors.
  std::unique_ptr<auth::UserTable> locked_users;
  server::ServerState locked_state;
  server::HttpHandler locked_handler;
};

World& TheWorld() {
  static World* world = [] {
    server::SetLogLevel(server::LogLevel::kError);  // failed loads are expected here
    return new World();
  }();  // never destroyed: libFuzzer exits without unwinding
  return *world;
}

// What the session writes for a response.
std::string Serialize(const server::HttpResponse& response) {
  std::ostringstream out;
  out << response;
  return out.str();
}

// Sends the request to the handler; returns whether the connection stays open.
bool Serve(World& world, const server::HttpRequest& request, bool locked) {
  int responses = 0;
  bool keep_alive = false;
  int status = 0;
  (locked ? world.locked_handler : world.handler)
      .Handle(request, [&](server::HttpResponse response) {
        ++responses;
        keep_alive = response.keep_alive();
        status = static_cast<int>(response.result_int());
        const std::string wire = Serialize(response);
        Check(wire.rfind("HTTP/1.", 0) == 0, "a response that is not HTTP/1.x");
      });
  // Behind the locked door, a request without credentials never reaches the cache.
  if (locked && request.find(http::field::authorization) == request.end()) {
    const proto::Route route = proto::ParseRoute(request.target());
    if (route.kind == proto::RouteKind::kCache) {
      Check(status == 401 || status == 405, "a cache route answered without credentials");
    }
  }
  // The backend answers at once, so every answer is in before Handle returns.
  Check(responses == 1, "a request did not get exactly one response");
  return keep_alive;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Bytes 0-3: where the connection's reads end; the rest is what the client sent.
  if (size < 4) return 0;
  uint32_t seed = data[0] | data[1] << 8 | data[2] << 16 | static_cast<uint32_t>(data[3]) << 24;
  const std::string_view input(reinterpret_cast<const char*>(data + 4), size - 4);

  World& world = TheWorld();
  world.cache.FlushAll();
  const server::HttpConfig& limits = world.config.http_options;

  std::optional<http::request_parser<http::string_body>> parser;
  auto fresh_parser = [&] {
    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser->body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
    parser->eager(true);  // as http::async_read sets it
  };
  fresh_parser();

  std::string buffer;
  size_t at = 0;
  bool open = true;
  while (open && at < input.size()) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    size_t chunk = (seed & 0x100) ? 1 + (seed & 0xf) : 1 + (seed & 0x3ff);
    if (chunk > input.size() - at) chunk = input.size() - at;
    buffer.append(input.substr(at, chunk));
    at += chunk;
    // Parse what is buffered, as http::async_read does after each read.
    while (open && !buffer.empty()) {
      boost::system::error_code ec;
      const size_t used = parser->put(boost::asio::buffer(buffer), ec);
      Check(used <= buffer.size(), "the parser used more than it was given");
      buffer.erase(0, used);
      if (ec == http::error::need_more) break;
      if (ec) {
        // HttpSession::OnRead: 431, 413 or 400, then close.
        http::status status = http::status::bad_request;
        if (ec == http::error::header_limit) {
          status = http::status::request_header_fields_too_large;
        } else if (ec == http::error::body_limit) {
          status = http::status::payload_too_large;
        }
        const std::string wire = Serialize(
            server::HttpHandler::Error(status, 11, false, "bad request: " + ec.message()));
        Check(wire.rfind("HTTP/1.1 4", 0) == 0, "a malformed request without a 4xx answer");
        open = false;
        break;
      }
      if (parser->is_header_done() && !parser->is_done() && parser->chunked()) {
        // HttpSession::OnHeader: a chunked body is refused with 411 before any of it is parsed.
        open = false;
        break;
      }
      if (!parser->is_done()) {
        if (used == 0) break;
        continue;
      }
      server::HttpRequest request = parser->release();
      open = Serve(world, request, (data[3] & 0x80) != 0);
      fresh_parser();
    }
  }
  return 0;
}

// The HTTP endpoint of the real corral-server over raw sockets: the cache routes, health and
// stats, the Prometheus exposition, keep-alive and pipelining, limits (431/413) and malformed
// requests.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class HttpTest : public SharedServerTest {
 protected:
  // One request on a fresh connection; fails the test if there is no response.
  HttpResponse Request(std::string_view method, std::string_view target, std::string_view body = {},
                       const std::vector<std::string>& headers = {}) {
    std::string error;
    auto res = HttpRequestOnce(server_->http_port(), method, target, body, headers, &error);
    EXPECT_TRUE(res.has_value()) << method << " " << target << ": " << error;
    return res.value_or(HttpResponse{});
  }

  std::string RespGet(const std::string& key) {
    RedisConnection c = ConnectRedis(server_->resp_port());
    EXPECT_NE(c, nullptr);
    return c == nullptr ? "" : ReplyText(RedisCmd(c.get(), {"GET", key}).get());
  }
};

TEST_F(HttpTest, PutGetDelete) {
  const std::string json = R"({"name":"ada","n":1})";
  HttpResponse put = Request("PUT", "/v1/cache/web/1", json);
  EXPECT_EQ(put.status, 204) << put.body;

  HttpResponse get = Request("GET", "/v1/cache/web/1");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, json);
  EXPECT_EQ(get.Header("content-type"), "application/json");
  EXPECT_EQ(get.Header("x-cache"), "HIT");
  ASSERT_TRUE(get.Has("age"));
  EXPECT_TRUE(std::regex_match(get.Header("age"), std::regex("[0-9]+"))) << get.Header("age");
  EXPECT_LE(std::stoll(get.Header("age")), 5);

  HttpResponse del = Request("DELETE", "/v1/cache/web/1");
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(del.body, "");
  EXPECT_EQ(Request("GET", "/v1/cache/web/1").status, 404);
  EXPECT_EQ(Request("DELETE", "/v1/cache/web/1").status, 204) << "DELETE is idempotent";
}

TEST_F(HttpTest, NoContentHasNoContentLength) {
  // RFC 9110 8.6: a server MUST NOT send Content-Length in a 204 response.
  HttpResponse put = Request("PUT", "/v1/cache/web/204", "x");
  EXPECT_EQ(put.status, 204);
  EXPECT_FALSE(put.Has("content-length")) << "Content-Length: " << put.Header("content-length");
  HttpResponse del = Request("DELETE", "/v1/cache/web/204");
  EXPECT_EQ(del.status, 204);
  EXPECT_FALSE(del.Has("content-length")) << "Content-Length: " << del.Header("content-length");
}

TEST_F(HttpTest, HeadHasNoBody) {
  // RFC 9110 9.3.2: HEAD is GET without the content. A body after a HEAD response would be read
  // as the start of the next response on a keep-alive connection.
  ASSERT_EQ(Request("PUT", "/v1/cache/web/head", R"({"a":1})").status, 204);
  auto conn = TcpClient::Connect(server_->http_port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(FormatHttpRequest("HEAD", "/v1/cache/web/head") +
                         FormatHttpRequest("GET", "/healthz")));
  ASSERT_TRUE(conn->ReadUntil("\r\n\r\n"));
  const size_t head_end = conn->received().find("\r\n\r\n") + 4;
  EXPECT_THAT(conn->received().substr(0, head_end), StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(conn->received().substr(0, head_end), HasSubstr("Content-Length: 7\r\n"))
      << "HEAD reports the length GET would send";
  ASSERT_TRUE(conn->ReadUntil("ok\n")) << conn->received();
  EXPECT_THAT(conn->received().substr(head_end), StartsWith("HTTP/1.1 200 OK\r\n"))
      << "bytes between the HEAD response and the next one: " << conn->received();
}

TEST_F(HttpTest, ChunkedBodyIsRefusedWithLengthRequiredAndChangesNothing) {
  // Boost 1.81's chunk parser aborts the process on some splits of a final chunk and its trailer
  // (found by tests/fuzz/http_request_fuzz.cc): corral refuses chunked bodies before parsing them.
  auto conn = TcpClient::Connect(server_->http_port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(
      conn->Send("PUT /v1/cache/web/chunked HTTP/1.1\r\nHost: c\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n0\r\nabcd\r\n"));
  ASSERT_TRUE(conn->ReadUntil("\r\n\r\n")) << conn->received();
  EXPECT_THAT(conn->received(), StartsWith("HTTP/1.1 411 "));
  EXPECT_EQ(Request("GET", "/v1/cache/web/chunked").status, 404) << "nothing was stored";
  EXPECT_EQ(Request("GET", "/healthz").status, 200) << "the server is still up";
}

TEST_F(HttpTest, ContentTypeFollowsTheValue) {
  ASSERT_EQ(Request("PUT", "/v1/cache/web/text", "hello world").status, 204);
  HttpResponse text = Request("GET", "/v1/cache/web/text");
  EXPECT_EQ(text.status, 200);
  EXPECT_EQ(text.body, "hello world");
  EXPECT_NE(text.Header("content-type"), "application/json");

  ASSERT_EQ(Request("PUT", "/v1/cache/web/num", "42").status, 204);
  EXPECT_EQ(Request("GET", "/v1/cache/web/num").Header("content-type"), "application/json");

  ASSERT_EQ(Request("PUT", "/v1/cache/web/broken", "{\"a\":").status, 204);
  EXPECT_NE(Request("GET", "/v1/cache/web/broken").Header("content-type"), "application/json");
}

TEST_F(HttpTest, SharesTheStoreWithResp) {
  RedisConnection c = ConnectRedis(server_->resp_port());
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(ReplyText(RedisCmd(c.get(), {"SET", "web:7", "from-resp"}).get()), "+OK");
  HttpResponse get = Request("GET", "/v1/cache/web/7");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "from-resp");

  ASSERT_EQ(Request("PUT", "/v1/cache/web/8", "from-http").status, 204);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", "web:8"}).get()), "$from-http");
  ASSERT_EQ(Request("DELETE", "/v1/cache/web/8").status, 204);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", "web:8"}).get()), "(nil)");
}

TEST_F(HttpTest, HealthAndReadiness) {
  HttpResponse health = Request("GET", "/healthz");
  EXPECT_EQ(health.status, 200);
  HttpResponse ready = Request("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << "no PostgreSQL configured: nothing can be unready";
  EXPECT_EQ(Request("GET", "/readyz/database").status, 200) << "no database to miss";
  EXPECT_EQ(Request("DELETE", "/readyz/database").status, 405);
}

TEST_F(HttpTest, StatsIsJson) {
  ASSERT_EQ(Request("PUT", "/v1/cache/stats/1", "x").status, 204);
  ASSERT_EQ(Request("GET", "/v1/cache/stats/1").status, 200);
  HttpResponse stats = Request("GET", "/v1/stats");
  EXPECT_EQ(stats.status, 200);
  EXPECT_THAT(stats.Header("content-type"), StartsWith("application/json"));
  nlohmann::json j = nlohmann::json::parse(stats.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << stats.body;
  ASSERT_TRUE(j.is_object());
  EXPECT_TRUE(j["entries"].is_number_integer());
  EXPECT_GE(j["entries"].get<int64_t>(), 1);
  EXPECT_TRUE(j["memory_bytes"].is_number());
  ASSERT_TRUE(j["requests"].is_object()) << stats.body;
  EXPECT_GE(j["requests"]["http"]["hit"].get<int64_t>(), 1) << stats.body;
}

// Prometheus text exposition: families, TYPE lines, sample syntax.
struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
  std::map<std::string, double> samples;     // "name{labels}" -> value
  std::vector<std::string> errors;
};

Exposition ParseExposition(const std::string& text) {
  Exposition e;
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? )"
      R"(([-+]?[0-9.]+([eE][-+]?[0-9]+)?|[-+]Inf|NaN))");
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      if (e.types.count(name)) e.errors.push_back("second TYPE for " + name);
      e.types[name] = type;
      continue;
    }
    if (line[0] == '#') continue;
    std::smatch m;
    if (!std::regex_match(line, m, kSample)) {
      e.errors.push_back("malformed sample line: " + line);
      continue;
    }
    const std::string name = m[1].str();
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (!e.types.count(family) && name.size() > s.size() &&
          name.compare(name.size() - s.size(), s.size(), s) == 0) {
        family = name.substr(0, name.size() - s.size());
      }
    }
    if (!e.types.count(family)) e.errors.push_back("sample without # TYPE: " + line);
    // strtod reads "+Inf", "-Inf" and "NaN" as well.
    e.samples[line.substr(0, line.rfind(' '))] = std::strtod(m[5].str().c_str(), nullptr);
  }
  return e;
}

TEST_F(HttpTest, MetricsInPrometheusFormat) {
  // Traffic with a distinctive key, which must never show up as a label.
  ASSERT_EQ(Request("PUT", "/v1/cache/secretns/secret-id-4711", "v").status, 204);
  ASSERT_EQ(Request("GET", "/v1/cache/secretns/secret-id-4711").status, 200);
  ASSERT_EQ(Request("GET", "/v1/cache/secretns/secret-id-4711").status, 200);
  ASSERT_EQ(Request("DELETE", "/v1/cache/secretns/secret-id-4711").status, 204);
  EXPECT_EQ(RespGet("secretns:secret-id-4711"), "(nil)");

  HttpResponse res = Request("GET", "/metrics");
  ASSERT_EQ(res.status, 200);
  EXPECT_THAT(res.Header("content-type"), StartsWith("text/plain"));
  EXPECT_THAT(res.Header("content-type"), HasSubstr("version=0.0.4"));
  EXPECT_EQ(res.body.find("secret-id-4711"), std::string::npos) << "a key became a label";
  EXPECT_EQ(res.body.find("secretns"), std::string::npos) << "a key became a label";

  Exposition e = ParseExposition(res.body);
  EXPECT_TRUE(e.errors.empty()) << testing::PrintToString(e.errors);
  // Every SPEC family and its type. Those about databases and replicas exist only with
  // PostgreSQL configured; the rest must be rendered always.
  const std::map<std::string, std::string> spec = {
      {"corral_requests_total", "counter"},
      {"corral_request_seconds", "histogram"},
      {"corral_lease_waiters", "gauge"},
      {"corral_coalesced_requests_total", "counter"},
      {"corral_shed_total", "counter"},
      {"corral_entries", "gauge"},
      {"corral_memory_bytes", "gauge"},
      {"corral_evictions_total", "counter"},
      {"corral_invalidations_total", "counter"},
      {"corral_connected_clients", "gauge"},
      {"corral_db_loads_total", "counter"},
      {"corral_db_load_seconds", "histogram"},
      {"corral_replica_up", "gauge"},
      {"corral_replica_lag_seconds", "gauge"},
  };
  const std::set<std::string> optional = {"corral_db_loads_total", "corral_db_load_seconds",
                                          "corral_replica_up", "corral_replica_lag_seconds"};
  for (const auto& [family, type] : spec) {
    if (!e.types.count(family)) {
      EXPECT_TRUE(optional.count(family)) << "missing # TYPE " << family;
      continue;
    }
    EXPECT_EQ(e.types[family], type) << family;
  }
  for (const auto& [family, type] : e.types) {
    EXPECT_THAT(family, StartsWith("corral_")) << "unexpected family";
  }

  // The values follow the traffic above.
  EXPECT_GE(e.samples["corral_requests_total{proto=\"http\",result=\"hit\"}"], 2);
  EXPECT_GE(e.samples["corral_invalidations_total{source=\"http\"}"], 1);
  EXPECT_GE(e.samples["corral_connected_clients"], 1) << "this very connection is open";
  const double count = e.samples["corral_request_seconds_count{proto=\"http\"}"];
  EXPECT_GE(count, 2);
  EXPECT_EQ(e.samples["corral_request_seconds_bucket{proto=\"http\",le=\"+Inf\"}"], count);
}

TEST_F(HttpTest, MetricsPassPromtool) {
  if (!InPath("promtool")) {
    GTEST_SKIP() << "promtool not in PATH (Debian package prometheus): check not run";
  }
  HttpResponse res = Request("GET", "/metrics");
  ASSERT_EQ(res.status, 200);
  ProcessResult r = RunProcess({"promtool", "check", "metrics"}, res.body, Millis(30000));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.out << r.err;
}

TEST_F(HttpTest, KeepAlive) {
  auto conn = TcpClient::Connect(server_->http_port());
  ASSERT_NE(conn, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(conn->Send(FormatHttpRequest("GET", "/healthz")));
    std::string error;
    auto res = ReadHttpResponse(*conn, Millis(5000), &error);
    ASSERT_TRUE(res.has_value()) << "request " << i << ": " << error;
    EXPECT_EQ(res->status, 200);
    EXPECT_NE(res->Header("connection"), "close");
  }
  EXPECT_FALSE(conn->peer_closed());

  // "Connection: close" is honoured.
  ASSERT_TRUE(conn->Send(FormatHttpRequest("GET", "/healthz", {}, {"Connection: close"})));
  auto last = ReadHttpResponse(*conn);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->status, 200);
  EXPECT_EQ(last->Header("connection"), "close");
  EXPECT_TRUE(conn->WaitForClose());

  // HTTP/1.0 without keep-alive: one response, then close.
  auto old = TcpClient::Connect(server_->http_port());
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(old->Send("GET /healthz HTTP/1.0\r\n\r\n"));
  auto res = ReadHttpResponse(*old);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(old->WaitForClose());
}

TEST_F(HttpTest, PipelinedRequestsAnsweredInOrder) {
  auto conn = TcpClient::Connect(server_->http_port());
  ASSERT_NE(conn, nullptr);
  std::string batch = FormatHttpRequest("PUT", "/v1/cache/pipe/one", "1") +
                      FormatHttpRequest("GET", "/v1/cache/pipe/one") +
                      FormatHttpRequest("GET", "/v1/cache/pipe/missing") +
                      FormatHttpRequest("DELETE", "/v1/cache/pipe/one") +
                      FormatHttpRequest("GET", "/v1/cache/pipe/one");
  ASSERT_TRUE(conn->Send(batch));
  const int expected_status[] = {204, 200, 404, 204, 404};
  for (int i = 0; i < 5; ++i) {
    std::string error;
    auto res = ReadHttpResponse(*conn, Millis(5000), &error);
    ASSERT_TRUE(res.has_value()) << "response " << i << ": " << error;
    EXPECT_EQ(res->status, expected_status[i]) << "response " << i;
    if (i == 1) {
      EXPECT_EQ(res->body, "1");
    }
  }

  // More than max_pipelined (16) requests in one write are all answered, in order.
  constexpr int kMany = 50;
  for (int i = 0; i < kMany; ++i) {
    ASSERT_EQ(Request("PUT", "/v1/cache/many/" + std::to_string(i), "v" + std::to_string(i)).status,
              204);
  }
  batch.clear();
  for (int i = 0; i < kMany; ++i)
    batch += FormatHttpRequest("GET", "/v1/cache/many/" + std::to_string(i));
  ASSERT_TRUE(conn->Send(batch));
  for (int i = 0; i < kMany; ++i) {
    std::string error;
    auto res = ReadHttpResponse(*conn, Millis(5000), &error);
    ASSERT_TRUE(res.has_value()) << "response " << i << ": " << error;
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "v" + std::to_string(i));
  }
}

TEST_F(HttpTest, HeaderOverTheLimitIs431) {
  auto conn = TcpClient::Connect(server_->http_port());
  ASSERT_NE(conn, nullptr);
  // The default limit is 8 KiB of header.
  conn->Send(FormatHttpRequest("GET", "/healthz", {}, {"X-Big: " + std::string(16000, 'a')}));
  std::string error;
  auto res = ReadHttpResponse(*conn, Millis(5000), &error);
  ASSERT_TRUE(res.has_value()) << error;
  EXPECT_EQ(res->status, 431);
  EXPECT_TRUE(conn->WaitForClose());
  EXPECT_EQ(Request("GET", "/healthz").status, 200);
}

TEST_F(HttpTest, MalformedRequestsAre400AndClose) {
  const std::string cases[] = {
      "BLAH\r\n\r\n",
      "GET\r\n\r\n",
      "GET /healthz HTTX/1.1\r\n\r\n",
      "GET /healthz HTTP/1.1 trailing\r\n\r\n",
      std::string("\x01\x02\x03 / HTTP/1.1\r\n\r\n"),
      "GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n",
      "PUT /v1/cache/a/b HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
  };
  for (const std::string& bytes : cases) {
    SCOPED_TRACE(testing::PrintToString(bytes));
    auto conn = TcpClient::Connect(server_->http_port());
    ASSERT_NE(conn, nullptr);
    ASSERT_TRUE(conn->Send(bytes));
    std::string error;
    auto res = ReadHttpResponse(*conn, Millis(5000), &error);
    ASSERT_TRUE(res.has_value()) << error;
    EXPECT_EQ(res->status, 400);
    EXPECT_EQ(res->Header("connection"), "close");
    EXPECT_TRUE(conn->WaitForClose());
  }
  EXPECT_EQ(Request("GET", "/healthz").status, 200);
}

TEST_F(HttpTest, UnknownRoutesAre404) {
  for (const char* target : {"/", "/nope", "/v1/cache", "/v1/cache/", "/v1/cache/onlyns",
                             "/v1/cache/ns/", "/v1/cache//id", "/metrics/", "/v2/cache/a/b"}) {
    EXPECT_EQ(Request("GET", target).status, 404) << target;
  }
}

TEST_F(HttpTest, WrongMethodsAre405) {
  HttpResponse post_metrics = Request("POST", "/metrics", "x");
  EXPECT_EQ(post_metrics.status, 405);
  EXPECT_THAT(post_metrics.Header("allow"), HasSubstr("GET"));
  EXPECT_EQ(Request("DELETE", "/v1/stats").status, 405);
  HttpResponse post_cache = Request("POST", "/v1/cache/a/b", "x");
  EXPECT_EQ(post_cache.status, 405);
  EXPECT_THAT(post_cache.Header("allow"), HasSubstr("PUT"));
  EXPECT_EQ(Request("PATCH", "/v1/cache/a/b", "x").status, 405);
  // The probes are GET endpoints like the others.
  EXPECT_EQ(Request("POST", "/healthz", "x").status, 405);
  EXPECT_EQ(Request("DELETE", "/readyz").status, 405);
}

TEST_F(HttpTest, PercentEncodedIds) {
  ASSERT_EQ(Request("PUT", "/v1/cache/enc/a%2Fb%20c", "slash-space").status, 204);
  EXPECT_EQ(RespGet("enc:a/b c"), "$slash-space");
  EXPECT_EQ(Request("GET", "/v1/cache/enc/a%2fb%20c").body, "slash-space")
      << "hex digits are case-insensitive";
  EXPECT_EQ(Request("GET", "/v1/cache/enc/a/b%20c").body, "slash-space")
      << "a raw slash in the id is the same key";

  ASSERT_EQ(Request("PUT", "/v1/cache/enc/caf%C3%A9", "utf8").status, 204);
  EXPECT_EQ(RespGet("enc:caf\xC3\xA9"), "$utf8");
  ASSERT_EQ(Request("PUT", "/v1/cache/enc/a+b?ignored=1", "plus").status, 204);
  EXPECT_EQ(RespGet("enc:a+b"), "$plus") << "'+' is not a space in a path; the query is ignored";
  ASSERT_EQ(Request("PUT", "/v1/cache/enc/x%3Ay", "colon").status, 204);
  EXPECT_EQ(RespGet("enc:x:y"), "$colon") << "the key splits at the first ':' only";

  EXPECT_EQ(Request("GET", "/v1/cache/enc/%zz").status, 400);
  EXPECT_EQ(Request("GET", "/v1/cache/enc/abc%2").status, 400);
  EXPECT_EQ(Request("GET", "/v1/cache/a%3Ab/c").status, 400) << "':' inside a namespace";
}

// --- a server with a small body limit -----------------------------------------------------

TEST(HttpLimitsTest, BodyOverTheLimitIs413) {
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = R"({"http": {"max_body_bytes": 1024}})", .extra_args = {}},
      &error);
  ASSERT_NE(server, nullptr) << error;
  auto at_limit =
      HttpRequestOnce(server->http_port(), "PUT", "/v1/cache/b/ok", std::string(1024, 'a'));
  ASSERT_TRUE(at_limit.has_value());
  EXPECT_EQ(at_limit->status, 204);

  auto conn = TcpClient::Connect(server->http_port());
  ASSERT_NE(conn, nullptr);
  conn->Send(FormatHttpRequest("PUT", "/v1/cache/b/big", std::string(2048, 'a')));
  auto res = ReadHttpResponse(*conn, Millis(5000), &error);
  ASSERT_TRUE(res.has_value()) << error;
  EXPECT_EQ(res->status, 413);
  EXPECT_TRUE(conn->WaitForClose());

  auto get = HttpRequestOnce(server->http_port(), "GET", "/v1/cache/b/big");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->status, 404) << "the rejected body must not be stored";
  EXPECT_TRUE(server->Stop().ok());
}

TEST(HttpTimeoutsTest, IdleKeepAliveConnectionIsClosed) {
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = R"({"http": {"idle_timeout_ms": 200}})", .extra_args = {}},
      &error);
  ASSERT_NE(server, nullptr) << error;
  auto conn = TcpClient::Connect(server->http_port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(FormatHttpRequest("GET", "/healthz")));
  auto res = ReadHttpResponse(*conn);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(conn->WaitForClose(Millis(5000))) << "idle keep-alive connection kept open";
}

TEST(HttpTimeoutsTest, SlowRequestHeaderIsCutAtReadTimeout) {
  // A request that has begun must arrive within read_timeout_ms, however long the idle timeout
  // (slowloris): here 200 ms against 60 s.
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{
          .config_json = R"({"http": {"read_timeout_ms": 200, "idle_timeout_ms": 60000}})",
          .extra_args = {}},
      &error);
  ASSERT_NE(server, nullptr) << error;
  auto conn = TcpClient::Connect(server->http_port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));  // never finished
  EXPECT_TRUE(conn->WaitForClose(Millis(5000)))
      << "a half-sent request held the connection past read_timeout_ms";
}

}  // namespace
}  // namespace corral::integration

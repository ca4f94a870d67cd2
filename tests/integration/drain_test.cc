// Graceful drain (issue 12, SPEC "Running"): on SIGTERM /readyz turns 503 at once, corral keeps
// serving for shutdown.drain_grace_ms, then closes its listeners, answers what it was sent and
// exits 0 within shutdown.timeout_ms. Clients under steady RESP and HTTP load never see a
// partial reply.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <ctime>
#include <optional>
#include <thread>

#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

constexpr int kGraceMs = 1500;
constexpr int kTimeoutMs = 3000;
const std::string kValue(1000, 'v');  // long enough that a cut reply is visible

std::unique_ptr<ServerProcess> StartDraining(int grace_ms, int timeout_ms) {
  ServerOptions options;
  options.config_json =
      "{\"threads\": 2, \"shutdown\": {\"drain_grace_ms\": " + std::to_string(grace_ms) +
      ", \"timeout_ms\": " + std::to_string(timeout_ms) + "}}";
  std::string error;
  auto server = ServerProcess::Start(options, &error);
  EXPECT_NE(server, nullptr) << error;
  return server;
}

// The wall-clock time of corral's log line for `event` ("ts=2026-12-01T20:53:44.861Z ..."),
// truncated to the millisecond as logged; nullopt when absent.
std::optional<WallClock::time_point> LoggedAt(const std::string& log, const std::string& event) {
  size_t at = log.find("event=" + event);
  if (at == std::string::npos) return std::nullopt;
  size_t line = log.rfind('\n', at);
  line = line == std::string::npos ? 0 : line + 1;
  std::tm tm{};
  int millis = 0;
  if (std::sscanf(log.c_str() + line, "ts=%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis) != 7) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return WallClock::from_time_t(timegm(&tm)) + Millis(millis);
}

int Status(uint16_t http_port, const std::string& target) {
  std::optional<HttpResponse> r = HttpRequestOnce(http_port, "GET", target);
  return r ? r->status : 0;
}

// What one load client saw.
struct ClientLog {
  int64_t answered = 0;
  int64_t answered_after_sigterm = 0;
  std::vector<std::string> partial;  // replies cut short or wrong
  // Requests the close left without a reply (a clean close: no byte of a reply), by send time.
  std::vector<WallClock::time_point> unanswered_sent_at;
};

// One client sending requests back to back on one connection (reconnecting when the server asks
// to close), until the listener refuses it or `stop` is set.
class LoadClient {
 public:
  LoadClient(uint16_t port, bool resp, const std::atomic<bool>& stop,
             const std::atomic<int64_t>& sigterm_at_ns)
      : port_(port), resp_(resp), stop_(stop), sigterm_at_ns_(sigterm_at_ns) {
    thread_ = std::thread([this] { Run(); });
  }
  ~LoadClient() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  int64_t answered() const { return answered_.load(); }
  const ClientLog& log() const { return log_; }  // after Join()

 private:
  void Run() {
    const std::string request = resp_ ? "*2\r\n$3\r\nGET\r\n$5\r\ndrain\r\n"
                                      : FormatHttpRequest("GET", "/v1/cache/drain/v");
    const std::string resp_reply = "$1000\r\n" + kValue + "\r\n";
    while (!stop_.load()) {
      auto conn = TcpClient::Connect(port_, Millis(2000));
      if (conn == nullptr) return;  // the listener has closed
      bool reconnect = false;       // the server answered "Connection: close"
      while (!stop_.load() && !reconnect) {
        // Sent = handed to the kernel: the time is read after the write, so a client thread
        // descheduled between the two does not count as having sent early.
        const bool written = conn->Send(request);
        const auto sent_at = WallClock::now();
        if (!written && conn->received().empty()) {
          log_.unanswered_sent_at.push_back(sent_at);
          break;
        }
        bool ok = false;
        if (resp_) {
          ok =
              conn->ReadAtLeast(resp_reply.size(), Millis(10000)) && conn->received() == resp_reply;
          if (ok) conn->Take();
        } else {
          std::optional<HttpResponse> res = ReadHttpResponse(*conn, Millis(10000));
          ok = res && res->status == 200 && res->body == kValue;
          reconnect = ok && res->Header("connection") == "close";
        }
        if (!ok) {
          if (conn->received().empty() && conn->peer_closed()) {
            log_.unanswered_sent_at.push_back(sent_at);  // a clean close: nothing half-written
          } else {
            log_.partial.push_back(conn->received().substr(0, 200));
          }
          break;
        }
        ++log_.answered;
        answered_.fetch_add(1);
        if (sigterm_at_ns_.load() != 0) ++log_.answered_after_sigterm;
      }
      // Closed (or asked to close): come back, which the closed listener refuses at the end.
    }
  }

  uint16_t port_;
  bool resp_;
  const std::atomic<bool>& stop_;
  const std::atomic<int64_t>& sigterm_at_ns_;
  std::atomic<int64_t> answered_{0};
  ClientLog log_;
  std::thread thread_;
};

TEST(DrainTest, SigtermUnderLoadDrainsWithoutPartialReplies) {
  auto server = StartDraining(kGraceMs, kTimeoutMs);
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(HttpRequestOnce(server->http_port(), "PUT", "/v1/cache/drain/v", kValue)->status, 204);
  {
    RedisConnection c = ConnectRedis(server->resp_port());
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(ReplyText(RedisCmd(c.get(), {"SET", "drain", kValue}).get()), "+OK");
  }
  ASSERT_EQ(Status(server->http_port(), "/readyz"), 200);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> sigterm_at_ns{0};
  std::vector<std::unique_ptr<LoadClient>> clients;
  for (int i = 0; i < 8; ++i) {
    bool resp = i % 2 == 0;
    clients.push_back(std::make_unique<LoadClient>(resp ? server->resp_port() : server->http_port(),
                                                   resp, stop, sigterm_at_ns));
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& c : clients) {
          if (c->answered() < 20) return false;
        }
        return true;
      },
      Millis(20000)))
      << "the load never got going";

  const auto sigterm_at = Clock::now();
  sigterm_at_ns.store(sigterm_at.time_since_epoch().count());
  server->Signal(SIGTERM);
  // Readiness turns at once, while the process keeps serving.
  EXPECT_TRUE(WaitFor([&] { return Status(server->http_port(), "/readyz") == 503; }, Millis(1000)))
      << "/readyz did not turn 503 at once";
  EXPECT_EQ(Status(server->http_port(), "/healthz"), 200) << "still alive during the grace";
  std::vector<int64_t> at_503;
  for (const auto& c : clients) at_503.push_back(c->answered());
  // Every client keeps being answered during the grace.
  EXPECT_TRUE(WaitFor(
      [&] {
        for (size_t i = 0; i < clients.size(); ++i) {
          if (clients[i]->answered() < at_503[i] + 10) return false;
        }
        return true;
      },
      Millis(kGraceMs / 2)))
      << "requests stopped being served during the drain grace";

  ExitStatus status = server->Wait(Millis(kGraceMs + kTimeoutMs + 5000));
  const double exit_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - sigterm_at).count();
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << server->Stderr();
  EXPECT_GE(exit_ms, kGraceMs * 0.9) << "the drain grace was cut short";
  EXPECT_LT(exit_ms, kGraceMs + kTimeoutMs + 1000) << "exit later than grace + timeout";
  std::printf("[figures] drain: exit %.0f ms after SIGTERM (grace %d ms)\n", exit_ms, kGraceMs);
  stop.store(true);
  for (auto& c : clients) c->Join();

  const std::string err = server->Stderr();
  EXPECT_THAT(err, testing::HasSubstr("event=shutdown_draining"));
  EXPECT_THAT(err, testing::Not(testing::HasSubstr("event=shutdown_drain_timeout")));
  // Logged just before the listeners close: every request sent before it must be answered.
  std::optional<WallClock::time_point> closed_at = LoggedAt(err, "shutdown_listeners_closed");
  ASSERT_TRUE(closed_at.has_value()) << err;
  for (size_t i = 0; i < clients.size(); ++i) {
    const ClientLog& log = clients[i]->log();
    SCOPED_TRACE(std::string(i % 2 == 0 ? "RESP" : "HTTP") + " client " + std::to_string(i));
    EXPECT_TRUE(log.partial.empty()) << "partial reply: " << log.partial.front();
    EXPECT_GT(log.answered_after_sigterm, 0);
    // Only a request sent as the listeners closed may go unanswered (with a clean close).
    EXPECT_LE(log.unanswered_sent_at.size(), 2u);
    for (auto sent : log.unanswered_sent_at) {
      EXPECT_GE(sent, *closed_at)
          << "a request sent "
          << std::chrono::duration<double, std::milli>(*closed_at - sent).count()
          << " ms before the listeners closed was not answered";
    }
  }
}

TEST(DrainTest, SecondSignalSkipsTheRestOfTheGrace) {
  auto server = StartDraining(60000, kTimeoutMs);
  ASSERT_NE(server, nullptr);
  const auto start = Clock::now();
  server->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return Status(server->http_port(), "/readyz") == 503; }, Millis(2000)));
  EXPECT_EQ(Status(server->http_port(), "/v1/cache/none/1"), 404) << "serving during the grace";
  server->Signal(SIGINT);
  ExitStatus status = server->Wait(Millis(10000));
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << server->Stderr();
  EXPECT_LT(std::chrono::duration_cast<Millis>(Clock::now() - start).count(), 10000);
}

TEST(DrainTest, WithoutGraceSigtermStopsAtOnce) {
  auto server = StartDraining(0, kTimeoutMs);
  ASSERT_NE(server, nullptr);
  auto idle = TcpClient::Connect(server->resp_port());  // an idle client does not hold it up
  ASSERT_NE(idle, nullptr);
  const auto start = Clock::now();
  ExitStatus status = server->Stop(Millis(10000));
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << server->Stderr();
  EXPECT_LT(std::chrono::duration_cast<Millis>(Clock::now() - start).count(), 2000);
  EXPECT_TRUE(idle->WaitForClose(Millis(1000)));
  EXPECT_EQ(idle->received(), "") << "a clean close, no reply to nothing";
}

}  // namespace
}  // namespace corral::integration

// Malformed and hostile RESP input against the real corral-server: Redis's protocol.tcl cases,
// oversized requests, clients that lie about sizes, trickle bytes, vanish mid-command or never
// read, and shutdown under load. After each, the server must still answer PING on a new
// connection, and its resident memory must not have grown without bound.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/sanitizer.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

// Generous but finite: what one hostile scenario may add to the server's RSS.
constexpr int64_t kMaxRssGrowth = 64LL << 20;

std::unique_ptr<ServerProcess> StartServer(std::vector<std::string> extra_args = {},
                                           std::string config = "{}") {
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = std::move(config), .extra_args = std::move(extra_args)}, &error);
  EXPECT_NE(server, nullptr) << error;
  return server;
}

// A fresh connection gets PONG.
void ExpectServing(ServerProcess& server) {
  auto probe = TcpClient::Connect(server.resp_port());
  ASSERT_NE(probe, nullptr) << "cannot connect any more";
  ASSERT_TRUE(probe->Send("*1\r\n$4\r\nPING\r\n"));
  EXPECT_TRUE(probe->ReadUntil("\r\n", Millis(5000)));
  EXPECT_EQ(probe->received(), "+PONG\r\n");
}

void ExpectRssBounded(ServerProcess& server, int64_t rss_before) {
  int64_t rss_after = server.RssBytes();
  ASSERT_GT(rss_after, 0);
  ::testing::Test::RecordProperty("rss_growth_bytes", std::to_string(rss_after - rss_before));
  if (corral::sanitizer::kSanitized) {
    std::printf("[note] RSS bound not checked: %s\n", corral::sanitizer::kSanitizerSkipReason);
    return;
  }
  EXPECT_LT(rss_after - rss_before, kMaxRssGrowth)
      << "RSS grew from " << rss_before << " to " << rss_after << " bytes";
}

// connected_clients from INFO, over `c`; -1 if it cannot be read.
int64_t ConnectedClients(redisContext* c) {
  RedisReplyPtr r = RedisCmd(c, {"INFO", "clients"});
  if (r == nullptr || r->type != REDIS_REPLY_STRING) return -1;
  std::string info(r->str, r->len);
  size_t at = info.find("connected_clients:");
  return at == std::string::npos ? -1 : std::stoll(info.substr(at + 18));
}

// Waits until only `expected` connections remain open on the server.
void ExpectConnectionsReleased(ServerProcess& server, int64_t expected = 1) {
  RedisConnection c = ConnectRedis(server.resp_port());
  ASSERT_NE(c, nullptr);
  int64_t last = -1;
  EXPECT_TRUE(
      WaitFor([&] { return (last = ConnectedClients(c.get())) == expected; }, Millis(10000)))
      << "connected_clients stayed at " << last << ", expected " << expected;
}

struct ProtocolCase {
  const char* name;
  std::string input;
  std::string reply;  // the exact bytes expected back
  bool closes;        // the server must close the connection after the reply
};

// Redis's tests/unit/protocol.tcl (7.0) plus out-of-range numbers, replayed byte for byte.
std::vector<ProtocolCase> ProtocolCases() {
  const std::string ping = "*1\r\n$4\r\nPING\r\n";
  const std::string set_x = "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n";
  return {
      {"empty query", "\r\n" + ping, "+PONG\r\n", false},
      {"negative multibulk length", "*-10\r\n" + ping, "+PONG\r\n", false},
      {"zero multibulk length", "*0\r\n" + ping, "+PONG\r\n", false},
      {"out of range multibulk length", "*3000000000\r\n",
       "-ERR Protocol error: invalid multibulk length\r\n", true},
      {"multibulk length past int64", "*99999999999999999999\r\n",
       "-ERR Protocol error: invalid multibulk length\r\n", true},
      {"multibulk length with plus sign", "*+1\r\n",
       "-ERR Protocol error: invalid multibulk length\r\n", true},
      {"multibulk length with leading zero", "*01\r\n",
       "-ERR Protocol error: invalid multibulk length\r\n", true},
      {"non-number multibulk length", "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n",
       true},
      {"wrong multibulk payload header", set_x + "fooz\r\n",
       "-ERR Protocol error: expected '$', got 'f'\r\n", true},
      {"negative multibulk payload length", set_x + "$-10\r\n",
       "-ERR Protocol error: invalid bulk length\r\n", true},
      {"minus one bulk length", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n",
       true},
      {"out of range multibulk payload length", set_x + "$2000000000\r\n",
       "-ERR Protocol error: invalid bulk length\r\n", true},
      {"bulk length past int64", "*1\r\n$99999999999999999999\r\n",
       "-ERR Protocol error: invalid bulk length\r\n", true},
      {"bulk length over proto_max_bulk_len", "*1\r\n$536870913\r\n",
       "-ERR Protocol error: invalid bulk length\r\n", true},
      {"non-number multibulk payload length", set_x + "$blabla\r\n",
       "-ERR Protocol error: invalid bulk length\r\n", true},
      {"multi bulk request not followed by bulk arguments", "*1\r\nfoo\r\n",
       "-ERR Protocol error: expected '$', got 'f'\r\n", true},
      {"nested multibulk", "*1\r\n*1\r\n$4\r\nPING\r\n",
       "-ERR Protocol error: expected '$', got '*'\r\n", true},
      {"generic wrong number of args", "*4\r\n$4\r\nping\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n",
       "-ERR wrong number of arguments for 'ping' command\r\n", false},
      {"unbalanced number of quotes", "set \"\"\"test-key\"\"\" test-value\r\nping\r\n",
       "-ERR Protocol error: unbalanced quotes in request\r\n", true},
      {"unterminated single quote", "echo 'abc\r\n",
       "-ERR Protocol error: unbalanced quotes in request\r\n", true},
      {"commands before a protocol error are answered", ping + ping + "*1\r\nfoo\r\n",
       "+PONG\r\n+PONG\r\n-ERR Protocol error: expected '$', got 'f'\r\n", true},
  };
}

TEST(RobustnessTest, RedisProtocolCases) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  ExpectServing(*server);
  const int64_t rss_before = server->RssBytes();
  for (const ProtocolCase& c : ProtocolCases()) {
    SCOPED_TRACE(c.name);
    auto conn = TcpClient::Connect(server->resp_port());
    ASSERT_NE(conn, nullptr);
    ASSERT_TRUE(conn->Send(c.input));
    if (c.closes) {
      EXPECT_TRUE(conn->WaitForClose(Millis(5000))) << "the connection stayed open";
      EXPECT_EQ(conn->received(), c.reply);
    } else {
      EXPECT_TRUE(conn->ReadAtLeast(c.reply.size()));
      EXPECT_EQ(conn->received(), c.reply);
      // Still usable afterwards.
      ASSERT_TRUE(conn->Send("*2\r\n$4\r\nECHO\r\n$2\r\nok\r\n"));
      EXPECT_TRUE(conn->ReadUntil("$2\r\nok\r\n")) << conn->received();
    }
  }
  ExpectServing(*server);
  ExpectRssBounded(*server, rss_before);
}

TEST(RobustnessTest, ProtocolDesyncWithNulBytes) {
  // protocol.tcl "Protocol desync regression test": after a NUL the line can never end, so the
  // server must give up at the inline limit instead of buffering forever.
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int64_t rss_before = server->RssBytes();
  const std::pair<std::string, std::string> cases[] = {
      {std::string("\0", 1), "-ERR Protocol error: too big inline request\r\n"},
      {std::string("*\0", 2), "-ERR Protocol error: too big mbulk count string\r\n"},
      {std::string("$\0", 2), "-ERR Protocol error: too big inline request\r\n"},
  };
  for (const auto& [prefix, reply] : cases) {
    SCOPED_TRACE(testing::PrintToString(prefix));
    auto conn = TcpClient::Connect(server->resp_port());
    ASSERT_NE(conn, nullptr);
    ASSERT_TRUE(conn->Send(prefix));
    const std::string payload = std::string(1024, 'A') + "\n";
    size_t sent = 0;
    // Keep sending until the server answers or closes; it must do so after about 64 KiB.
    while (sent < (4u << 20) && !conn->peer_closed() && conn->received().empty()) {
      if (!conn->Send(payload, Millis(2000))) break;
      sent += payload.size();
      conn->ReadSome(Millis(0));
    }
    EXPECT_TRUE(conn->WaitForClose(Millis(5000)));
    // (How much the kernel took before the reply says nothing: loopback buffers hold megabytes.)
    EXPECT_EQ(conn->received(), reply) << "after " << sent << " payload bytes";
  }
  ExpectServing(*server);
  ExpectRssBounded(*server, rss_before);
}

TEST(RobustnessTest, TooBigInlineRequest) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int64_t rss_before = server->RssBytes();
  auto conn = TcpClient::Connect(server->resp_port());
  ASSERT_NE(conn, nullptr);
  // 2 MiB with no newline. The server may close before taking all of it: Send may fail.
  conn->Send(std::string(2 << 20, 'A'), Millis(5000));
  EXPECT_TRUE(conn->WaitForClose(Millis(5000)));
  EXPECT_EQ(conn->received(), "-ERR Protocol error: too big inline request\r\n");
  ExpectServing(*server);
  ExpectRssBounded(*server, rss_before);
}

TEST(RobustnessTest, HundredThousandNestedMultibulks) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int64_t rss_before = server->RssBytes();
  auto conn = TcpClient::Connect(server->resp_port());
  ASSERT_NE(conn, nullptr);
  std::string nested;
  for (int i = 0; i < 100000; ++i) nested += "*1\r\n";
  conn->Send(nested, Millis(5000));  // may fail once the server has closed
  EXPECT_TRUE(conn->WaitForClose(Millis(5000)));
  EXPECT_EQ(conn->received(), "-ERR Protocol error: expected '$', got '*'\r\n");
  ExpectServing(*server);
  ExpectRssBounded(*server, rss_before);
}

TEST(RobustnessTest, AnnouncedHugeBulkIsNotPreallocated) {
  // One I/O thread, so that a PING round trip started after our sends proves the server has
  // handled the readable events that arrived before it.
  auto server = StartServer({"--threads", "1"});
  ASSERT_NE(server, nullptr);
  ExpectServing(*server);
  const int64_t rss_before = server->RssBytes();
  constexpr int kClients = 20;  // 20 x 100 MB = 2 GB if the server believed them
  std::vector<std::unique_ptr<TcpClient>> liars;
  for (int i = 0; i < kClients; ++i) {
    auto conn = TcpClient::Connect(server->resp_port());
    ASSERT_NE(conn, nullptr);
    ASSERT_TRUE(conn->Send("*2\r\n$4\r\nECHO\r\n$100000000\r\nabc"));
    liars.push_back(std::move(conn));
  }
  for (int round = 0; round < 3; ++round) ExpectServing(*server);
  // Then a little more data each, still far short of the announced size.
  for (auto& conn : liars) ASSERT_TRUE(conn->Send(std::string(64 * 1024, 'x')));
  for (int round = 0; round < 3; ++round) ExpectServing(*server);

  ExpectRssBounded(*server, rss_before);
  for (auto& conn : liars) {
    EXPECT_FALSE(conn->peer_closed()) << "a slow upload is legal and stays connected";
    EXPECT_EQ(conn->received(), "") << "nothing may be answered before the bulk is complete";
  }
  liars.clear();
  ExpectConnectionsReleased(*server);
}

TEST(RobustnessTest, ConnectionsDroppedMidCommand) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(ReplyText(RedisCmd(c.get(), {"SET", "big", std::string(1 << 20, 'b')}).get()), "+OK");
  c.reset();
  ExpectServing(*server);
  const int64_t rss_before = server->RssBytes();

  const std::string command = "*3\r\n$3\r\nSET\r\n$4\r\ndrop\r\n$10\r\n0123456789\r\n";
  for (int i = 0; i < 200; ++i) {
    auto conn = TcpClient::Connect(server->resp_port());
    ASSERT_NE(conn, nullptr) << "connection " << i;
    if (i % 4 == 3) {
      // Ask for a 1 MiB reply and vanish before reading it.
      ASSERT_TRUE(conn->Send("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"));
    } else {
      // Cut the command at a different byte each time (never at its end).
      ASSERT_TRUE(conn->Send(std::string_view(command).substr(0, 1 + i % (command.size() - 1))));
    }
    conn->Close(/*reset=*/i % 2 == 0);
  }
  ExpectServing(*server);
  ExpectConnectionsReleased(*server);
  ExpectRssBounded(*server, rss_before);
  // None of the cut SETs may have been executed.
  c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"EXISTS", "drop"}).get()), ":0");
}

TEST(RobustnessTest, SlowClientDoesNotBlockOthers) {
  // One I/O thread: the trickling client and the others share it.
  auto server = StartServer({"--threads", "1"});
  ASSERT_NE(server, nullptr);
  auto slow = TcpClient::Connect(server->resp_port());
  ASSERT_NE(slow, nullptr);
  RedisConnection fast = ConnectRedis(server->resp_port());
  ASSERT_NE(fast, nullptr);
  const std::string command = "*2\r\n$4\r\nECHO\r\n$4\r\nslow\r\n";
  // One byte per second for three seconds (the test paces its own bytes), with the other
  // connection's PINGs answered in between.
  for (int second = 0; second < 3; ++second) {
    const auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    ASSERT_TRUE(slow->Send(command.substr(second, 1)));
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(ReplyText(RedisCmd(fast.get(), {"PING"}).get()), "+PONG") << "second " << second;
    }
    EXPECT_EQ(slow->received(), "");
    std::this_thread::sleep_until(next);
  }
  ASSERT_TRUE(slow->Send(command.substr(3)));
  EXPECT_TRUE(slow->ReadUntil("slow\r\n"));
  EXPECT_EQ(slow->received(), "$4\r\nslow\r\n");
  EXPECT_EQ(ReplyText(RedisCmd(fast.get(), {"PING"}).get()), "+PONG");
}

TEST(RobustnessTest, ClientThatNeverReadsBigReplies) {
  // Expected: the server queues about 1 MiB of replies in user space, and stops reading from a
  // client whose replies cannot be written; the kernel's socket buffers then fill and the
  // client's writes block. Memory stays bounded; other clients are served.
  auto server = StartServer({"--threads", "1"});
  ASSERT_NE(server, nullptr);
  const std::string big(1 << 20, 'v');
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(ReplyText(RedisCmd(c.get(), {"SET", "big", big}).get()), "+OK");
  const int64_t rss_before = server->RssBytes();

  auto hog = TcpClient::Connect(server->resp_port());
  ASSERT_NE(hog, nullptr);
  std::string gets;
  for (int i = 0; i < 1000; ++i) gets += "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
  // Write without ever reading until the kernel refuses more for half a second.
  size_t accepted = 0;
  size_t offset = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  // The kernel alone may absorb tens of MB (loopback buffers autotune up to tcp_rmem's maximum,
  // 32 MiB on Debian 12), so the cap is far above that.
  constexpr size_t kCap = 256u << 20;
  while (accepted < kCap && std::chrono::steady_clock::now() < give_up) {
    ssize_t n =
        send(hog->fd(), gets.data() + offset, gets.size() - offset, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      accepted += static_cast<size_t>(n);
      offset = (offset + static_cast<size_t>(n)) % gets.size();
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{hog->fd(), POLLOUT, 0};
      if (poll(&p, 1, 500) == 0) break;  // blocked: the server has stopped reading
      continue;
    }
    FAIL() << "send failed: " << strerror(errno);
  }
  RecordProperty("hog_bytes_accepted", std::to_string(accepted));
  EXPECT_LT(accepted, kCap) << "the server kept reading a client that never reads";

  // Others are still served, including a 1 MiB reply.
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(ReplyText(RedisCmd(c.get(), {"PING"}).get()), "+PONG");
    RedisReplyPtr r = RedisCmd(c.get(), {"GET", "big"});
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    EXPECT_EQ(r->len, big.size());
  }
  ExpectServing(*server);
  ExpectRssBounded(*server, rss_before);

  hog->Close(/*reset=*/true);
  c.reset();
  ExpectConnectionsReleased(*server);
  ExpectRssBounded(*server, rss_before);
}

TEST(RobustnessTest, SigtermWithIdleAndBusyClients) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  // Idle RESP client.
  RedisConnection idle = ConnectRedis(server->resp_port());
  ASSERT_NE(idle, nullptr);
  ASSERT_EQ(ReplyText(RedisCmd(idle.get(), {"PING"}).get()), "+PONG");
  // Idle HTTP keep-alive client.
  auto http = TcpClient::Connect(server->http_port());
  ASSERT_NE(http, nullptr);
  ASSERT_TRUE(http->Send(FormatHttpRequest("GET", "/healthz")));
  auto res = ReadHttpResponse(*http);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->status, 200);
  // A RESP client halfway through a command.
  auto partial = TcpClient::Connect(server->resp_port());
  ASSERT_NE(partial, nullptr);
  ASSERT_TRUE(partial->Send("*2\r\n$4\r\nECHO\r\n$10\r\nhal"));
  // A busy client: pipelines batches of PINGs until the server goes away.
  std::atomic<int> batches{0};
  std::atomic<bool> busy_ready{false};
  std::string busy_error;
  std::thread busy([&] {
    RedisConnection b = ConnectRedis(server->resp_port());
    busy_ready = true;
    if (b == nullptr) return;
    while (true) {
      for (int i = 0; i < 100; ++i) redisAppendCommand(b.get(), "PING");
      for (int i = 0; i < 100; ++i) {
        void* reply = nullptr;
        if (redisGetReply(b.get(), &reply) != REDIS_OK) {
          busy_error = b->errstr;
          return;
        }
        RedisReplyPtr owned(static_cast<redisReply*>(reply));
        if (ReplyText(owned.get()) != "+PONG") {
          busy_error = "unexpected reply " + ReplyText(owned.get());
          return;
        }
      }
      ++batches;
    }
  });
  ASSERT_TRUE(WaitFor([&] { return batches.load() >= 5; }, Millis(10000)));

  const auto start = std::chrono::steady_clock::now();
  ExitStatus status = server->Stop(Millis(15000));
  const auto took = std::chrono::steady_clock::now() - start;
  busy.join();
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_LT(took, std::chrono::seconds(4))
      << "shutdown took " << std::chrono::duration_cast<Millis>(took).count() << " ms";
  std::string log = server->Stderr();
  EXPECT_THAT(log, HasSubstr("event=shutdown signal=SIGTERM"));
  EXPECT_THAT(log, HasSubstr("event=stopped"));
  EXPECT_EQ(log.find("shutdown_drain_timeout"), std::string::npos) << log;
  // The busy client saw its connection end rather than a wrong reply.
  EXPECT_EQ(busy_error.find("unexpected"), std::string::npos) << busy_error;
  EXPECT_TRUE(partial->WaitForClose(Millis(1000)));
  EXPECT_TRUE(http->WaitForClose(Millis(1000)));
}

TEST(RobustnessTest, SigintExitsZero) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RedisConnection idle = ConnectRedis(server->resp_port());
  ASSERT_NE(idle, nullptr);
  ASSERT_EQ(ReplyText(RedisCmd(idle.get(), {"PING"}).get()), "+PONG");
  ASSERT_EQ(kill(server->pid(), SIGINT), 0);
  EXPECT_TRUE(WaitFor([&] { return !server->Running(); }, Millis(10000)));
  ExitStatus status = server->Stop();
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_THAT(server->Stderr(), HasSubstr("event=shutdown signal=SIGINT"));
}

TEST(RobustnessTest, SigtermWithAClientThatNeverReads) {
  // A connection whose replies cannot be written holds the drain until its bound (5 s); the
  // server must still exit 0 then, not hang.
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(ReplyText(RedisCmd(c.get(), {"SET", "big", std::string(1 << 20, 'v')}).get()), "+OK");
  auto hog = TcpClient::Connect(server->resp_port());
  ASSERT_NE(hog, nullptr);
  std::string gets;
  for (int i = 0; i < 200; ++i) gets += "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
  ASSERT_EQ(send(hog->fd(), gets.data(), gets.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(gets.size()));
  ExpectServing(*server);  // the GETs have been read by now (see above)
  const auto start = std::chrono::steady_clock::now();
  ExitStatus status = server->Stop(Millis(15000));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(status.ok()) << status.ToString();
  RecordProperty("shutdown_ms", std::to_string(std::chrono::duration_cast<Millis>(took).count()));
  EXPECT_LT(took, std::chrono::seconds(10));
}

}  // namespace
}  // namespace corral::integration

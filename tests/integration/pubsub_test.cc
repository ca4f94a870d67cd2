// Pub/sub against the real corral-server (four I/O threads: publishers and subscribers on
// different threads): SUBSCRIBE, PSUBSCRIBE, their replies and messages byte for byte in RESP2
// and RESP3, what a RESP2 subscriber may still send, PUBSUB's introspection, RESET, order under
// many messages, and a subscriber that stops reading being cut off instead of growing corral's
// memory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"
#include "tests/sanitizer.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

std::string Resp(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

class PubSubTest : public SharedClientTest {
 protected:
  static void SetUpTestSuite() {
    ServerOptions options;
    options.config_json = R"({"threads": 4})";
    StartShared(options);
  }
  std::unique_ptr<TcpClient> Subscriber(const std::string& commands, const std::string& until) {
    auto c = TcpClient::Connect(server_->resp_port());
    EXPECT_TRUE(c);
    if (!c) return nullptr;
    EXPECT_TRUE(c->Send(commands));
    EXPECT_TRUE(c->ReadUntil(until)) << c->received();
    return c;
  }
};

TEST_F(PubSubTest, MessagesReachChannelAndPatternSubscribers) {
  auto sub = Subscriber(Resp({"SUBSCRIBE", "news", "sport"}),
                        "*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->Take(),
            "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
            "*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
  auto psub = Subscriber(Resp({"PSUBSCRIBE", "n*"}), ":1\r\n");
  ASSERT_TRUE(psub);
  EXPECT_EQ(psub->Take(), "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n");

  EXPECT_EQ(Cmd({"PUBLISH", "news", "hello"}), ":2");
  EXPECT_EQ(Cmd({"PUBLISH", "sport", "goal"}), ":1");
  EXPECT_EQ(Cmd({"PUBLISH", "weather", "rain"}), ":0");
  const std::string news = "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
  const std::string sport = "*3\r\n$7\r\nmessage\r\n$5\r\nsport\r\n$4\r\ngoal\r\n";
  ASSERT_TRUE(sub->ReadUntil(sport)) << sub->received();
  EXPECT_EQ(sub->Take(), news + sport);
  const std::string pnews = "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
  ASSERT_TRUE(psub->ReadUntil(pnews)) << psub->received();
  EXPECT_EQ(psub->Take(), pnews);

  EXPECT_EQ(Cmd({"PUBSUB", "CHANNELS"}), "[$news, $sport]");
  EXPECT_EQ(Cmd({"PUBSUB", "CHANNELS", "s*"}), "[$sport]");
  EXPECT_EQ(Cmd({"PUBSUB", "NUMSUB", "news", "none"}), "[$news, :1, $none, :0]");
  EXPECT_EQ(Cmd({"PUBSUB", "NUMPAT"}), ":1");
  // A subscriber that leaves is forgotten at once, whether it unsubscribes or disconnects.
  sub->Close();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Cmd({"PUBSUB", "NUMSUB", "news"}) == "[$news, :0]";
      },
      Millis(5000)));
  ASSERT_TRUE(psub->Send(Resp({"PUNSUBSCRIBE"})));
  ASSERT_TRUE(psub->ReadUntil("*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n"))
      << psub->received();
  EXPECT_EQ(Cmd({"PUBSUB", "NUMPAT"}), ":0");
  EXPECT_EQ(Cmd({"PUBLISH", "news", "x"}), ":0");
}

std::string PMessage(const std::string& pattern, const std::string& channel,
                     const std::string& message) {
  return "*4\r\n$8\r\npmessage\r\n$" + std::to_string(pattern.size()) + "\r\n" + pattern + "\r\n$" +
         std::to_string(channel.size()) + "\r\n" + channel + "\r\n$" +
         std::to_string(message.size()) + "\r\n" + message + "\r\n";
}

// Keyspace notifications (notify-keyspace-events), as Redis 7.0 names and sends them: off by
// default; K and E choose the channels, the other letters the classes; each command's events in
// order; "new" for a key a write added; "expired" when the store expires a key by itself.
TEST_F(PubSubTest, KeyspaceEventsFollowNotifyKeyspaceEvents) {
  EXPECT_EQ(Cmd({"CONFIG", "GET", "notify-keyspace-events"}), "[$notify-keyspace-events, $]");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", "Kq"}),
            "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - "
            "Invalid event class character. Use 'Ag$lshzxeKEtmd'.");
  for (const auto& [set, get] : std::vector<std::pair<std::string, std::string>>{
           {"gKE", "gKE"}, {"$lshzxeKE", "$lshzxeKE"}, {"KA", "AK"}, {"EA", "AE"}, {"", ""}}) {
    EXPECT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", set}), "+OK");
    EXPECT_EQ(Cmd({"CONFIG", "GET", "notify-keyspace-events"}),
              "[$notify-keyspace-events, $" + get + "]");
  }
  auto sub = Subscriber(Resp({"PSUBSCRIBE", "__key*"}), ":1\r\n");
  ASSERT_TRUE(sub);
  sub->Take();
  // Off: nothing.
  ASSERT_EQ(Cmd({"SET", "quiet", "1"}), "+OK");

  ASSERT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", "Kg$xn"}), "+OK");
  auto space = [](const std::string& key, const std::string& event) {
    return PMessage("__key*", "__keyspace@0__:" + key, event);
  };
  ASSERT_EQ(Cmd({"SET", "k1", "a"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "k1", "b"}), "+OK");
  ASSERT_EQ(Cmd({"INCRBY", "n", "5"}), ":5");
  ASSERT_EQ(Cmd({"APPEND", "k1", "c"}), ":2");
  ASSERT_EQ(Cmd({"EXPIRE", "k1", "100"}), ":1");
  ASSERT_EQ(Cmd({"PERSIST", "k1"}), ":1");
  ASSERT_EQ(Cmd({"PERSIST", "k1"}), ":0");  // nothing changed: no event
  ASSERT_EQ(Cmd({"RENAME", "k1", "k2"}), "+OK");
  ASSERT_EQ(Cmd({"DEL", "k2", "absent"}), ":1");
  ASSERT_EQ(Cmd({"GET", "n"}), "$5");  // a read: no event
  ASSERT_EQ(Cmd({"PSETEX", "short", "50", "v"}), "+OK");
  const std::string expected =
      space("k1", "set") + space("k1", "new") + space("k1", "set") + space("n", "incrby") +
      space("n", "new") + space("k1", "append") + space("k1", "expire") + space("k1", "persist") +
      space("k1", "rename_from") + space("k2", "rename_to") + space("k2", "new") +
      space("k2", "del") + space("short", "set") + space("short", "expire") +
      space("short", "new") + space("short", "expired");
  // "expired" comes from the store's own expiry, with no command touching the key.
  ASSERT_TRUE(sub->ReadUntil(space("short", "expired"))) << sub->received();
  EXPECT_EQ(sub->Take(), expected);

  // E: the event's channel, the key as the message; only the classes chosen ($ here).
  ASSERT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", "E$"}), "+OK");
  ASSERT_EQ(Cmd({"EXPIRE", "n", "100"}), ":1");
  ASSERT_EQ(Cmd({"SET", "e1", "x"}), "+OK");
  const std::string event = PMessage("__key*", "__keyevent@0__:set", "e1");
  ASSERT_TRUE(sub->ReadUntil(event)) << sub->received();
  EXPECT_EQ(sub->Take(), event);
  ASSERT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", ""}), "+OK");
}

// CONFIG SET maxmemory shrinks the store at once, and what it evicts raises "evicted"; 0 goes
// back to the configured bound (corral always has one).
TEST_F(PubSubTest, ShrinkingMaxmemoryEvictsAtOnceAndRaisesEvicted) {
  const std::string configured = Cmd({"CONFIG", "GET", "maxmemory"});
  ASSERT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", "Ee"}), "+OK");
  auto sub = Subscriber(Resp({"PSUBSCRIBE", "*"}), ":1\r\n");
  ASSERT_TRUE(sub);
  sub->Take();
  ASSERT_EQ(Cmd({"SET", "big", std::string(1000, 'x')}), "+OK");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory"}), "[$maxmemory, $1]");
  const std::string evicted = PMessage("*", "__keyevent@0__:evicted", "big");
  ASSERT_TRUE(sub->ReadUntil(evicted)) << sub->received();
  EXPECT_EQ(sub->Take(), evicted);
  EXPECT_EQ(Cmd({"EXISTS", "big"}), ":0");
  EXPECT_EQ(Cmd({"SET", "small", "x"}), "-OOM command not allowed when used memory > 'maxmemory'.");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "2mb"}), "+OK");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory"}), "[$maxmemory, $2097152]");
  EXPECT_EQ(Cmd({"SET", "small", "x"}), "+OK");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "lots"}),
            "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be "
            "a memory value");
  EXPECT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory"}), configured);
  ASSERT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", ""}), "+OK");
}

// Redis's pubsub.tcl "Keyspace notifications: evicted events", step by step; and under
// noeviction a smaller bound evicts nothing until an evicting policy is set again.
TEST_F(PubSubTest, EvictedEventsUnderAllkeysLruAndNoneUnderNoEviction) {
  ASSERT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", "Ee"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"}), "+OK");
  auto sub = Subscriber(Resp({"PSUBSCRIBE", "*"}), ":1\r\n");
  ASSERT_TRUE(sub);
  sub->Take();
  ASSERT_EQ(Cmd({"SET", "foo", "bar"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  const std::string evicted_foo = PMessage("*", "__keyevent@0__:evicted", "foo");
  ASSERT_TRUE(sub->ReadUntil(evicted_foo)) << sub->received();
  EXPECT_EQ(sub->Take(), evicted_foo);
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "0"}), "+OK");

  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "kept", "v"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "1"}), "+OK");
  EXPECT_EQ(Cmd({"EXISTS", "kept"}), ":1");
  // An evicting policy again: the store evicts down to the bound at once. The PUBLISH after it
  // shows, once it arrives, that no evicted event came before the policy changed.
  ASSERT_EQ(Cmd({"PUBLISH", "marker", "m"}), ":1");
  const std::string marker = PMessage("*", "marker", "m");
  ASSERT_TRUE(sub->ReadUntil(marker)) << sub->received();
  EXPECT_EQ(sub->Take(), marker);
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"}), "+OK");
  const std::string evicted_kept = PMessage("*", "__keyevent@0__:evicted", "kept");
  ASSERT_TRUE(sub->ReadUntil(evicted_kept)) << sub->received();
  EXPECT_EQ(sub->Take(), evicted_kept);
  EXPECT_EQ(Cmd({"EXISTS", "kept"}), ":0");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "maxmemory", "0"}), "+OK");
  ASSERT_EQ(Cmd({"CONFIG", "SET", "notify-keyspace-events", ""}), "+OK");
}

TEST_F(PubSubTest, ARespTwoSubscriberTakesOnlyThePubSubCommands) {
  auto sub = Subscriber(Resp({"SUBSCRIBE", "a"}), ":1\r\n");
  ASSERT_TRUE(sub);
  sub->Take();
  ASSERT_TRUE(sub->Send(Resp({"GET", "x"}) + Resp({"PING"}) + Resp({"PING", "hi"}) +
                        Resp({"UNSUBSCRIBE"}) + Resp({"UNSUBSCRIBE"}) + Resp({"GET", "x"})));
  const std::string expected =
      "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
      "are allowed in this context\r\n"
      "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
      "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
      "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"
      "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
      "$-1\r\n";
  ASSERT_TRUE(sub->ReadAtLeast(expected.size())) << sub->received();
  EXPECT_EQ(sub->Take(), expected);
}

TEST_F(PubSubTest, ARespThreeSubscriberGetsPushesAndKeepsItsCommands) {
  auto sub = Subscriber(Resp({"HELLO", "3"}) + Resp({"SUBSCRIBE", "a"}), ":1\r\n");
  ASSERT_TRUE(sub);
  EXPECT_THAT(sub->Take(), HasSubstr(">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"));
  ASSERT_EQ(Cmd({"SET", "x", "1"}), "+OK");
  EXPECT_EQ(Cmd({"PUBLISH", "a", "m"}), ":1");
  ASSERT_TRUE(sub->ReadUntil(">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nm\r\n")) << sub->received();
  sub->Take();
  ASSERT_TRUE(sub->Send(Resp({"GET", "x"}) + Resp({"PING"}) + Resp({"RESET"}) + Resp({"PING"})));
  const std::string expected = "$1\r\n1\r\n+PONG\r\n+RESET\r\n+PONG\r\n";
  ASSERT_TRUE(sub->ReadAtLeast(expected.size())) << sub->received();
  EXPECT_EQ(sub->Take(), expected);
  EXPECT_EQ(Cmd({"PUBLISH", "a", "m"}), ":0") << "RESET left the subscription";
}

TEST_F(PubSubTest, ManyMessagesArriveAllAndInOrder) {
  auto sub = Subscriber(Resp({"SUBSCRIBE", "seq"}), ":1\r\n");
  ASSERT_TRUE(sub);
  sub->Take();
  constexpr int kMessages = 5000;
  std::string expected;
  for (int i = 0; i < kMessages; ++i) {
    const std::string m = std::to_string(i);
    ASSERT_EQ(Cmd({"PUBLISH", "seq", m}), ":1");
    expected +=
        "*3\r\n$7\r\nmessage\r\n$3\r\nseq\r\n$" + std::to_string(m.size()) + "\r\n" + m + "\r\n";
  }
  ASSERT_TRUE(sub->ReadAtLeast(expected.size(), Millis(20000)));
  EXPECT_EQ(sub->Take(), expected);
}

TEST_F(PubSubTest, ASubscriberThatStopsReadingIsCutOff) {
  auto sub = Subscriber(Resp({"SUBSCRIBE", "flood"}), ":1\r\n");
  ASSERT_TRUE(sub);
  const std::string mib(1 << 20, 'x');
  const int64_t rss_before = server_->RssBytes();
  // 32 MiB of output is the limit; the kernel's socket buffers take a few more.
  int delivered = 0;
  for (int i = 0; i < 96; ++i) delivered += Cmd({"PUBLISH", "flood", mib}) == ":1" ? 1 : 0;
  EXPECT_GT(delivered, 32);
  ASSERT_TRUE(WaitFor(
      [&] {
        return Cmd({"PUBSUB", "NUMSUB", "flood"}) == "[$flood, :0]";
      },
      Millis(10000)))
      << "the subscriber was never cut off";
  EXPECT_TRUE(sub->WaitForClose(Millis(20000)));
  EXPECT_THAT(server_->Stderr(), HasSubstr("client_output_buffer_limit"));
  if (!corral::sanitizer::kSanitized) {
    EXPECT_LT(server_->RssBytes() - rss_before, int64_t{64} << 20);
  }
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
}

TEST_F(PubSubTest, CommandTableListsThem) {
  EXPECT_EQ(Cmd({"COMMAND", "INFO", "publish"}),
            "[[$publish, :3, [+pubsub, +loading, +stale, +fast], :0, :0, :0, "
            "[+@pubsub, +@fast], [], [], []]]");
  EXPECT_EQ(Cmd({"ACL", "CAT", "pubsub"}),
            "[$subscribe, $psubscribe, $unsubscribe, $punsubscribe, $publish, $pubsub]");
}

// resp.notify_keyspace_events turns keyspace notifications on from start-up, as Redis's config
// file line does; CONFIG GET shows it in Redis's order.
TEST(PubSubConfigTest, NotifyKeyspaceEventsFromTheConfigFile) {
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = R"({"resp": {"notify_keyspace_events": "KE$"}})",
                    .extra_args = {}},
      &error);
  ASSERT_NE(server, nullptr) << error;
  auto c = TcpClient::Connect(server->resp_port());
  ASSERT_TRUE(c);
  const std::string subscribed = "*3\r\n$10\r\npsubscribe\r\n$6\r\n__key*\r\n:1\r\n";
  ASSERT_TRUE(c->Send("*2\r\n$10\r\nPSUBSCRIBE\r\n$6\r\n__key*\r\n"));
  ASSERT_TRUE(c->ReadUntil(subscribed)) << c->received();
  c->Take();
  RedisConnection r = ConnectRedis(server->resp_port());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(ReplyText(RedisCmd(r.get(), {"CONFIG", "GET", "notify-keyspace-events"}).get()),
            "[$notify-keyspace-events, $$KE]");
  EXPECT_EQ(ReplyText(RedisCmd(r.get(), {"SET", "cfg", "1"}).get()), "+OK");
  const std::string events = PMessage("__key*", "__keyspace@0__:cfg", "set") +
                             PMessage("__key*", "__keyevent@0__:set", "cfg");
  ASSERT_TRUE(c->ReadAtLeast(events.size())) << c->received();
  EXPECT_EQ(c->Take(), events);
}

}  // namespace
}  // namespace corral::integration

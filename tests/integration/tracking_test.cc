// CLIENT TRACKING against the real corral-server (four I/O threads) over raw sockets, byte for
// byte: RESP3 invalidation pushes in default mode (a key is told once, then forgotten until read
// again), NOLOOP, RESP2 with REDIRECT to a connection subscribed to __redis__:invalidate, BCAST
// with prefixes, OPTIN / OPTOUT with CLIENT CACHING, FLUSHALL's null invalidation, the bounded
// table, CLIENT TRACKINGINFO / GETREDIR, and Redis's error texts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

std::string Resp(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}
std::string Invalidate(const std::string& key) {
  return ">2\r\n$10\r\ninvalidate\r\n*1\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
}

class TrackingTest : public SharedClientTest {
 protected:
  static void SetUpTestSuite() {
    ServerOptions options;
    options.config_json = R"({"threads": 4, "resp": {"tracking_table_max_keys": 100}})";
    StartShared(options);
  }
  // A RESP3 connection, or RESP2 with `hello` false.
  std::unique_ptr<TcpClient> Open(bool hello = true) {
    auto c = TcpClient::Connect(server_->resp_port());
    EXPECT_TRUE(c);
    if (c && hello) {
      EXPECT_TRUE(c->Send(Resp({"HELLO", "3"})));
      EXPECT_TRUE(c->ReadUntil("modules\r\n*0\r\n")) << c->received();
      c->Take();
    }
    return c;
  }
  // Sends `commands` and reads exactly `expected.size()` bytes: what they answered.
  static std::string Exchange(TcpClient& c, const std::string& commands,
                              const std::string& expected) {
    EXPECT_TRUE(c.Send(commands));
    EXPECT_TRUE(c.ReadAtLeast(expected.size())) << c.received();
    return c.Take();
  }
  // Nothing more arrives on `c` within a moment (after a PING round trip on it).
  static bool Quiet(TcpClient& c) {
    EXPECT_TRUE(c.Send(Resp({"PING"})));
    EXPECT_TRUE(c.ReadUntil("+PONG\r\n")) << c.received();
    return c.Take() == "+PONG\r\n";
  }
};

TEST_F(TrackingTest, DefaultModeTellsAReaderOnceWhenAnotherClientWrites) {
  auto reader = Open();
  ASSERT_TRUE(reader);
  EXPECT_EQ(Exchange(*reader,
                     Resp({"CLIENT", "TRACKING", "on"}) + Resp({"SET", "k", "1"}) +
                         Resp({"GET", "k"}) + Resp({"GET", "absent"}),
                     "+OK\r\n+OK\r\n$1\r\n1\r\n_\r\n"),
            "+OK\r\n+OK\r\n$1\r\n1\r\n_\r\n");
  ASSERT_EQ(Cmd({"SET", "k", "2"}), "+OK");
  ASSERT_TRUE(reader->ReadUntil(Invalidate("k"))) << reader->received();
  EXPECT_EQ(reader->Take(), Invalidate("k"));
  // Told once: the key is forgotten until it is read again.
  ASSERT_EQ(Cmd({"SET", "k", "3"}), "+OK");
  EXPECT_TRUE(Quiet(*reader));
  // A key read as missing is tracked too (a near cache may keep "no such key").
  ASSERT_EQ(Cmd({"SET", "absent", "now"}), "+OK");
  ASSERT_TRUE(reader->ReadUntil(Invalidate("absent"))) << reader->received();
  reader->Take();
  // Its own write tells it too, unless NOLOOP. (After the write's reply; Redis sends it before:
  // either way the near cache drops the key.)
  EXPECT_EQ(Exchange(*reader, Resp({"GET", "k"}) + Resp({"SET", "k", "4"}),
                     "$1\r\n3\r\n+OK\r\n" + Invalidate("k")),
            "$1\r\n3\r\n+OK\r\n" + Invalidate("k"));
  EXPECT_EQ(Exchange(*reader,
                     Resp({"CLIENT", "TRACKING", "on", "NOLOOP"}) + Resp({"GET", "k"}) +
                         Resp({"SET", "k", "5"}),
                     "+OK\r\n$1\r\n4\r\n+OK\r\n"),
            "+OK\r\n$1\r\n4\r\n+OK\r\n");
  EXPECT_TRUE(Quiet(*reader));
  // OFF: nothing more.
  EXPECT_EQ(Exchange(*reader, Resp({"CLIENT", "TRACKING", "off"}) + Resp({"GET", "k"}),
                     "+OK\r\n$1\r\n5\r\n"),
            "+OK\r\n$1\r\n5\r\n");
  ASSERT_EQ(Cmd({"DEL", "k"}), ":1");
  EXPECT_TRUE(Quiet(*reader));
}

TEST_F(TrackingTest, RespTwoRedirectsToASubscriberOfTheInvalidateChannel) {
  auto sink = Open(/*hello=*/false);
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Send(Resp({"CLIENT", "ID"})));
  ASSERT_TRUE(sink->ReadUntil("\r\n"));
  const std::string id = sink->Take().substr(1, std::string::npos);
  const std::string sink_id = id.substr(0, id.size() - 2);
  const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n";
  EXPECT_EQ(Exchange(*sink, Resp({"SUBSCRIBE", "__redis__:invalidate"}), subscribed), subscribed);

  auto reader = Open(/*hello=*/false);
  ASSERT_TRUE(reader);
  EXPECT_EQ(
      Exchange(*reader,
               Resp({"CLIENT", "TRACKING", "on", "REDIRECT", sink_id}) + Resp({"SET", "r", "1"}) +
                   Resp({"GET", "r"}) + Resp({"CLIENT", "GETREDIR"}),
               "+OK\r\n+OK\r\n$1\r\n1\r\n:" + sink_id + "\r\n"),
      "+OK\r\n+OK\r\n$1\r\n1\r\n:" + sink_id + "\r\n");
  EXPECT_EQ(Exchange(*reader, Resp({"CLIENT", "TRACKINGINFO"}),
                     "*6\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$8\r\nredirect\r\n:" + sink_id +
                         "\r\n$8\r\nprefixes\r\n*0\r\n"),
            "*6\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$8\r\nredirect\r\n:" + sink_id +
                "\r\n$8\r\nprefixes\r\n*0\r\n");
  ASSERT_EQ(Cmd({"DEL", "r"}), ":1");
  const std::string message =
      "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nr\r\n";
  ASSERT_TRUE(sink->ReadUntil(message)) << sink->received();
  EXPECT_EQ(sink->Take(), message);
  // FLUSHALL: every tracking connection is told everything changed (a null key).
  ASSERT_EQ(Cmd({"FLUSHALL"}), "+OK");
  const std::string all = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n";
  ASSERT_TRUE(sink->ReadUntil(all)) << sink->received();
  EXPECT_EQ(sink->Take(), all);
  EXPECT_EQ(Cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "999999"}),
            "-ERR The client ID you want redirect to does not exist");
}

TEST_F(TrackingTest, BroadcastTellsEveryKeyUnderItsPrefixes) {
  auto bcast = Open();
  ASSERT_TRUE(bcast);
  EXPECT_EQ(
      Exchange(*bcast,
               Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "order:"}),
               "+OK\r\n"),
      "+OK\r\n");
  ASSERT_EQ(Cmd({"SET", "user:1", "a"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "other", "a"}), "+OK");
  ASSERT_EQ(Cmd({"SET", "order:9", "a"}), "+OK");
  ASSERT_TRUE(bcast->ReadUntil(Invalidate("order:9"))) << bcast->received();
  EXPECT_EQ(bcast->Take(), Invalidate("user:1") + Invalidate("order:9"));
  EXPECT_EQ(Cmd({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "ab"}),
            "-ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single "
            "client must not overlap.");
  EXPECT_EQ(Cmd({"CLIENT", "TRACKING", "on", "PREFIX", "a"}),
            "-ERR PREFIX option requires BCAST mode to be enabled");
  EXPECT_EQ(Cmd({"CLIENT", "TRACKING", "on", "BCAST", "OPTIN"}),
            "-ERR OPTIN and OPTOUT are not compatible with BCAST");
  EXPECT_EQ(Cmd({"CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"}),
            "-ERR You can't specify both OPTIN mode and OPTOUT mode");
  EXPECT_EQ(Cmd({"CLIENT", "TRACKING", "maybe"}), "-ERR syntax error");
}

// As Redis: a BCAST connection gets one message per prefix for what one command (MSET, DEL of
// several keys) or one EXEC changed, its keys in order and each once; a key under no prefix is
// left out.
TEST_F(TrackingTest, BroadcastSendsOneMessagePerPrefixPerCommandOrExec) {
  auto bcast = Open();
  ASSERT_TRUE(bcast);
  EXPECT_EQ(Exchange(*bcast,
                     Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ba:", "PREFIX", "bb:"}),
                     "+OK\r\n"),
            "+OK\r\n");
  auto Keys = [](const std::vector<std::string>& keys) {
    std::string out = ">2\r\n$10\r\ninvalidate\r\n*" + std::to_string(keys.size()) + "\r\n";
    for (const std::string& k : keys) out += "$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
    return out;
  };
  auto writer = Open(/*hello=*/false);
  ASSERT_TRUE(writer);
  const std::string exec_reply =
      "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
      "*5\r\n:1\r\n:1\r\n:1\r\n:1\r\n:2\r\n";
  EXPECT_EQ(Exchange(*writer,
                     Resp({"MULTI"}) + Resp({"INCR", "ba:2"}) + Resp({"INCR", "ba:1"}) +
                         Resp({"INCR", "bb:1"}) + Resp({"INCR", "bc:1"}) + Resp({"INCR", "ba:2"}) +
                         Resp({"EXEC"}),
                     exec_reply),
            exec_reply);
  // Two messages, one per prefix (in prefix order), ba:2 told once.
  const std::string both = Keys({"ba:1", "ba:2"}) + Keys({"bb:1"});
  ASSERT_TRUE(bcast->ReadAtLeast(both.size())) << bcast->received();
  EXPECT_EQ(bcast->Take(), both);
  // One write command naming several keys: one message per prefix too.
  EXPECT_EQ(Exchange(*writer, Resp({"MSET", "bb:7", "x", "ba:5", "y", "bb:6", "z"}), "+OK\r\n"),
            "+OK\r\n");
  const std::string mset = Keys({"ba:5"}) + Keys({"bb:6", "bb:7"});
  ASSERT_TRUE(bcast->ReadAtLeast(mset.size())) << bcast->received();
  EXPECT_EQ(bcast->Take(), mset);
  EXPECT_EQ(Exchange(*writer, Resp({"DEL", "ba:1", "ba:2", "bc:1"}), ":3\r\n"), ":3\r\n");
  const std::string del = Keys({"ba:1", "ba:2"});
  ASSERT_TRUE(bcast->ReadAtLeast(del.size())) << bcast->received();
  EXPECT_EQ(bcast->Take(), del);
  EXPECT_TRUE(Quiet(*bcast));
}

// As Redis: BCAST again adds prefixes, each checked against those the connection has; BCAST
// without a prefix is the prefix "" (every key), which overlaps any other.
TEST_F(TrackingTest, BroadcastPrefixesAddUpAndMayNotOverlapEarlierOnes) {
  auto bcast = Open();
  ASSERT_TRUE(bcast);
  const std::string ok = "+OK\r\n";
  EXPECT_EQ(
      Exchange(*bcast,
               Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FOO", "PREFIX", "BAR"}), ok),
      ok);
  for (const auto& [prefix, existing] : std::vector<std::pair<std::string, std::string>>{
           {"FO", "FOO"}, {"BARB", "BAR"}, {"FOO", "FOO"}}) {
    const std::string error = "-ERR Prefix '" + prefix + "' overlaps with an existing prefix '" +
                              existing + "'. Prefixes for a single client must not overlap.\r\n";
    EXPECT_EQ(
        Exchange(*bcast, Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", prefix}), error),
        error);
  }
  EXPECT_EQ(Exchange(*bcast, Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "BAZ"}), ok), ok);
  const std::string info =
      "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n"
      "$8\r\nprefixes\r\n*3\r\n$3\r\nFOO\r\n$3\r\nBAR\r\n$3\r\nBAZ\r\n";
  EXPECT_EQ(Exchange(*bcast, Resp({"CLIENT", "TRACKINGINFO"}), info), info);
  // The added prefix is told, the first ones still are.
  ASSERT_EQ(Cmd({"MSET", "BAZ:1", "a", "FOO:1", "b", "QUX:1", "c"}), "+OK");
  ASSERT_TRUE(bcast->ReadUntil(Invalidate("FOO:1"))) << bcast->received();
  EXPECT_EQ(bcast->Take(), Invalidate("BAZ:1") + Invalidate("FOO:1"));

  auto everything = Open();
  ASSERT_TRUE(everything);
  EXPECT_EQ(Exchange(*everything, Resp({"CLIENT", "TRACKING", "on", "BCAST"}), ok), ok);
  const std::string all =
      "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n"
      "$8\r\nprefixes\r\n*1\r\n$0\r\n\r\n";
  EXPECT_EQ(Exchange(*everything, Resp({"CLIENT", "TRACKINGINFO"}), all), all);
  const std::string error =
      "-ERR Prefix 'x' overlaps with an existing prefix ''. Prefixes for a single client must not "
      "overlap.\r\n";
  EXPECT_EQ(
      Exchange(*everything, Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x"}), error),
      error);
  // Off forgets the prefixes: on again starts from the new ones.
  EXPECT_EQ(Exchange(*everything,
                     Resp({"CLIENT", "TRACKING", "off"}) +
                         Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x"}),
                     ok + ok),
            ok + ok);
}

// CLIENT REPLY OFF drops every reply but the pushes: an invalidation still arrives, then ON
// answers OK and replies flow again. SKIP drops the next command's reply only. A redirect target
// that is gone is reported to a RESP3 tracker with each invalidation (tracking-redir-broken).
TEST_F(TrackingTest, ClientReplyOffKeepsPushesAndRedirBrokenIsTold) {
  auto reader = Open();
  ASSERT_TRUE(reader);
  EXPECT_EQ(Exchange(*reader,
                     Resp({"CLIENT", "TRACKING", "on"}) + Resp({"SET", "rk", "1"}) +
                         Resp({"GET", "rk"}) + Resp({"CLIENT", "REPLY", "OFF"}) +
                         Resp({"SET", "rk2", "x"}) + Resp({"GET", "rk2"}) + Resp({"PING"}),
                     "+OK\r\n+OK\r\n$1\r\n1\r\n"),
            "+OK\r\n+OK\r\n$1\r\n1\r\n");
  ASSERT_EQ(Cmd({"SET", "rk", "2"}), "+OK");
  ASSERT_TRUE(reader->ReadUntil(Invalidate("rk"))) << reader->received();
  EXPECT_EQ(reader->Take(), Invalidate("rk")) << "a reply went out while REPLY was OFF";
  EXPECT_EQ(Exchange(*reader,
                     Resp({"CLIENT", "REPLY", "SKIP"}) + Resp({"CLIENT", "REPLY", "ON"}) +
                         Resp({"GET", "rk"}),
                     "+OK\r\n$1\r\n2\r\n"),
            "+OK\r\n$1\r\n2\r\n")
      << "ON answers even while REPLY is OFF";
  EXPECT_EQ(Exchange(*reader,
                     Resp({"CLIENT", "REPLY", "SKIP"}) + Resp({"GET", "rk"}) + Resp({"ECHO", "e"}),
                     "$1\r\ne\r\n"),
            "$1\r\ne\r\n");
  EXPECT_EQ(Exchange(*reader, Resp({"CLIENT", "REPLY", "maybe"}), "-ERR syntax error\r\n"),
            "-ERR syntax error\r\n");
  EXPECT_TRUE(Quiet(*reader));

  // The redirect target goes away: each invalidation is reported as a broken redirect.
  auto sink = Open();
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Send(Resp({"CLIENT", "ID"})));
  ASSERT_TRUE(sink->ReadUntil("\r\n")) << sink->received();
  const std::string id = sink->Take().substr(1);
  const std::string sink_id = id.substr(0, id.size() - 2);
  auto tracker = Open();
  ASSERT_TRUE(tracker);
  EXPECT_EQ(Exchange(*tracker,
                     Resp({"CLIENT", "TRACKING", "on", "REDIRECT", sink_id}) + Resp({"GET", "rb"}),
                     "+OK\r\n_\r\n"),
            "+OK\r\n_\r\n");
  ASSERT_TRUE(sink->Send(Resp({"QUIT"})));
  ASSERT_TRUE(sink->WaitForClose(Millis(5000)));
  // The server forgets a connection as it closes it, before the close reaches the peer.
  const std::string broken = ">2\r\n$21\r\ntracking-redir-broken\r\n:" + sink_id + "\r\n";
  ASSERT_EQ(Cmd({"SET", "rb", "1"}), "+OK");
  ASSERT_TRUE(tracker->ReadUntil(broken)) << tracker->received();
  EXPECT_EQ(tracker->Take(), broken);
  const std::string info =
      "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$15\r\nbroken_redirect\r\n$8\r\nredirect\r\n:" +
      sink_id + "\r\n$8\r\nprefixes\r\n*0\r\n";
  EXPECT_EQ(Exchange(*tracker, Resp({"CLIENT", "TRACKINGINFO"}), info), info);
}

// A key that expires is told to its readers when the store removes it (its active expiry), with
// no command touching it: the near cache drops it when corral does.
TEST_F(TrackingTest, AnExpiredKeyIsToldWhenTheStoreRemovesIt) {
  auto reader = Open();
  ASSERT_TRUE(reader);
  ASSERT_EQ(Cmd({"SET", "ex:k", "v", "PX", "100"}), "+OK");
  EXPECT_EQ(Exchange(*reader, Resp({"CLIENT", "TRACKING", "on"}) + Resp({"GET", "ex:k"}),
                     "+OK\r\n$1\r\nv\r\n"),
            "+OK\r\n$1\r\nv\r\n");
  ASSERT_TRUE(reader->ReadUntil(Invalidate("ex:k"))) << reader->received();
  EXPECT_EQ(reader->Take(), Invalidate("ex:k"));
  EXPECT_EQ(Cmd({"EXISTS", "ex:k"}), ":0");
}

TEST_F(TrackingTest, OptInAndOptOutFollowClientCaching) {
  auto optin = Open();
  ASSERT_TRUE(optin);
  ASSERT_EQ(Cmd({"MSET", "a", "1", "b", "2"}), "+OK");
  EXPECT_EQ(Exchange(*optin,
                     Resp({"CLIENT", "TRACKING", "on", "OPTIN"}) + Resp({"GET", "a"}) +
                         Resp({"CLIENT", "CACHING", "yes"}) + Resp({"GET", "b"}),
                     "+OK\r\n$1\r\n1\r\n+OK\r\n$1\r\n2\r\n"),
            "+OK\r\n$1\r\n1\r\n+OK\r\n$1\r\n2\r\n");
  ASSERT_EQ(Cmd({"MSET", "a", "3", "b", "4"}), "+OK");
  ASSERT_TRUE(optin->ReadUntil(Invalidate("b"))) << optin->received();
  EXPECT_EQ(optin->Take(), Invalidate("b")) << "a was read without CLIENT CACHING yes";

  auto optout = Open();
  ASSERT_TRUE(optout);
  EXPECT_EQ(Exchange(*optout,
                     Resp({"CLIENT", "TRACKING", "on", "OPTOUT"}) + Resp({"GET", "a"}) +
                         Resp({"CLIENT", "CACHING", "no"}) + Resp({"GET", "b"}),
                     "+OK\r\n$1\r\n3\r\n+OK\r\n$1\r\n4\r\n"),
            "+OK\r\n$1\r\n3\r\n+OK\r\n$1\r\n4\r\n");
  ASSERT_EQ(Cmd({"MSET", "a", "5", "b", "6"}), "+OK");
  ASSERT_TRUE(optout->ReadUntil(Invalidate("a"))) << optout->received();
  EXPECT_EQ(optout->Take(), Invalidate("a")) << "b was read after CLIENT CACHING no";
  EXPECT_EQ(Cmd({"CLIENT", "CACHING", "yes"}),
            "-ERR CLIENT CACHING can be called only when the client is in tracking mode with "
            "OPTIN or OPTOUT mode enabled");
}

// tracking_table_max_keys is 100 here: reading more keys tells their reader of the oldest ones
// at once and forgets them, so the table stays bounded.
TEST_F(TrackingTest, TheTableIsBounded) {
  auto reader = Open();
  ASSERT_TRUE(reader);
  std::string commands = Resp({"CLIENT", "TRACKING", "on"});
  for (int i = 0; i < 150; ++i) commands += Resp({"GET", "bound:" + std::to_string(i)});
  ASSERT_TRUE(reader->Send(commands));
  // 150 null replies and 50 invalidations, in some interleaving.
  ASSERT_TRUE(WaitFor(
      [&] {
        reader->ReadSome(Millis(10));
        const std::string& r = reader->received();
        size_t pushes = 0;
        for (size_t at = r.find(">2\r\n"); at != std::string::npos; at = r.find(">2\r\n", at + 1)) {
          ++pushes;
        }
        return pushes >= 50;
      },
      Millis(5000)))
      << reader->received();
}

// INFO's tracking fields, as Redis's tracking suite reads them: tracking_clients (Clients) and
// tracking_total_keys / items / prefixes (Stats).
TEST_F(TrackingTest, InfoCountsTheTable) {
  auto field = [&](const std::string& name) {
    const std::string info = Cmd({"INFO"});
    const size_t at = info.find("\n" + name + ":");
    EXPECT_NE(at, std::string::npos) << name << " in " << info;
    return at == std::string::npos ? -1 : std::atoll(info.c_str() + at + name.size() + 2);
  };
  // Connections of the suite's earlier tests (one process, one server) close as the server gets
  // to them: none may be tracking when this one counts.
  ASSERT_TRUE(WaitFor([&] { return field("tracking_clients") == 0; }, Millis(5000)));
  const int64_t clients = field("tracking_clients"), keys = field("tracking_total_keys"),
                items = field("tracking_total_items"), prefixes = field("tracking_total_prefixes");
  auto reader = Open();
  auto other = Open();
  auto bcast = Open();
  ASSERT_TRUE(reader && other && bcast);
  const std::string reads =
      Resp({"CLIENT", "TRACKING", "on"}) + Resp({"GET", "info:a"}) + Resp({"GET", "info:b"});
  EXPECT_EQ(Exchange(*reader, reads, "+OK\r\n_\r\n_\r\n"), "+OK\r\n_\r\n_\r\n");
  EXPECT_EQ(Exchange(*other, reads, "+OK\r\n_\r\n_\r\n"), "+OK\r\n_\r\n_\r\n");
  EXPECT_EQ(
      Exchange(*bcast,
               Resp({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "info:", "PREFIX", "zz:"}),
               "+OK\r\n"),
      "+OK\r\n");
  EXPECT_EQ(field("tracking_clients"), clients + 3);
  EXPECT_EQ(field("tracking_total_keys"), keys + 2);
  EXPECT_EQ(field("tracking_total_items"), items + 4) << "two readers of two keys";
  EXPECT_EQ(field("tracking_total_prefixes"), prefixes + 2);
}

// CONFIG SET tracking-table-max-keys lowers the bound at once: the readers of the keys beyond
// it are told now (Redis's tracking suite does this with a bound of 1).
TEST_F(TrackingTest, ConfigSetLowersTheBoundAtOnce) {
  auto reader = Open();
  auto admin = Open();
  ASSERT_TRUE(reader && admin);
  // No bound first: the suite's other tests may have filled the table.
  EXPECT_EQ(Exchange(*admin, Resp({"CONFIG", "SET", "tracking-table-max-keys", "0"}), "+OK\r\n"),
            "+OK\r\n");
  std::string commands = Resp({"CLIENT", "TRACKING", "on"});
  for (const char* key : {"lower:a", "lower:b", "lower:c"}) commands += Resp({"GET", key});
  EXPECT_EQ(Exchange(*reader, commands, "+OK\r\n_\r\n_\r\n_\r\n"), "+OK\r\n_\r\n_\r\n_\r\n");
  EXPECT_EQ(Exchange(*admin, Resp({"CONFIG", "SET", "tracking-table-max-keys", "-1"}),
                     "-ERR CONFIG SET failed (possibly related to argument "
                     "'tracking-table-max-keys') - argument must be an integer >= 0\r\n"),
            "-ERR CONFIG SET failed (possibly related to argument 'tracking-table-max-keys') - "
            "argument must be an integer >= 0\r\n");
  EXPECT_EQ(Exchange(*admin, Resp({"CONFIG", "SET", "TRACKING-TABLE-MAX-KEYS", "1"}), "+OK\r\n"),
            "+OK\r\n");
  const std::string one = "%1\r\n$23\r\ntracking-table-max-keys\r\n$1\r\n1\r\n";
  EXPECT_EQ(Exchange(*admin, Resp({"CONFIG", "GET", "tracking-table-max-keys"}), one), one);
  // At most one key stays: at least two of the three are told, each once. The pushes were sent
  // before CONFIG SET answered; a PING on the reader comes after them.
  ASSERT_TRUE(reader->Send(Resp({"PING"})));
  ASSERT_TRUE(reader->ReadUntil("+PONG\r\n")) << reader->received();
  const std::string& got = reader->received();
  int told = 0;
  for (const char* key : {"lower:a", "lower:b", "lower:c"}) {
    const size_t at = got.find(Invalidate(key));
    if (at == std::string::npos) continue;
    ++told;
    EXPECT_EQ(got.find(Invalidate(key), at + 1), std::string::npos) << key << " told twice";
  }
  EXPECT_GE(told, 2) << got;
  // Back to this suite's bound for the tests after this one.
  EXPECT_EQ(Exchange(*admin, Resp({"CONFIG", "SET", "tracking-table-max-keys", "100"}), "+OK\r\n"),
            "+OK\r\n");
}

}  // namespace
}  // namespace corral::integration

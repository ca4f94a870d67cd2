// The tier's reply decoders (tier/reply_decode.h) on replies as Redis sends them, and on shapes
// it never should: those must come back invalid or skipped, never trusted.
#include "tier/reply_decode.h"

#include <gtest/gtest.h>

#include <climits>
#include <initializer_list>
#include <string>

#include "tests/tier/reply_builders.h"

namespace corral::tier {
namespace {

using test_replies::Arr;
using test_replies::Int;
using test_replies::Nil;
using test_replies::Str;

Reply Node(std::string host, long long port) {
  return Arr({Str(std::move(host)), Int(port), Str("07c37dfeb235213a872192d90877d0cd55635b91")});
}

TEST(ParseClusterError, MovedAndAsk) {
  auto moved = ParseClusterError("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->kind, ClusterError::Kind::kMoved);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->address, "127.0.0.1:6381");

  auto ask = ParseClusterError("ASK 16383 :6380");
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->kind, ClusterError::Kind::kAsk);
  EXPECT_EQ(ask->slot, 16383);
  EXPECT_EQ(ask->address, ":6380");  // the caller puts the host it asked in front
}

TEST(ParseClusterError, RetriesWithoutSlot) {
  auto again = ParseClusterError("TRYAGAIN Multiple keys request during rehashing of slot");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->kind, ClusterError::Kind::kTryAgain);
  auto down = ParseClusterError("CLUSTERDOWN The cluster is down");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->kind, ClusterError::Kind::kClusterDown);
}

TEST(ParseClusterError, RejectsMalformedRedirects) {
  for (const char* error :
       {"MOVED", "MOVED ", "MOVED 3999", "MOVED 3999 ", "MOVED 16384 a:1", "MOVED -1 a:1",
        "MOVED -0 a:1", "MOVED +5 a:1", "MOVED 99999999999 a:1", "MOVED x1 a:1", "MOVED  1 a:1",
        "MOVEDX 1 a:1", "ASK 12a a:1", "ERR unknown command", "NOSCRIPT No matching script", ""}) {
    EXPECT_FALSE(ParseClusterError(error)) << error;
  }
}

TEST(DecodeClusterSlots, ThreeMasters) {
  Reply reply = Arr({
      Arr({Int(0), Int(5460), Node("10.0.0.1", 7000), Node("10.0.0.4", 7003)}),
      Arr({Int(5461), Int(10922), Node("10.0.0.2", 7001)}),
      Arr({Int(10923), Int(16383), Node("", 7002)}),
  });
  auto map = DecodeClusterSlots(reply);
  ASSERT_TRUE(map);
  EXPECT_EQ(map->skipped, 0u);
  ASSERT_EQ(map->ranges.size(), 3u);
  EXPECT_EQ(map->ranges[0].start, 0);
  EXPECT_EQ(map->ranges[0].end, 5460);
  EXPECT_EQ(map->ranges[0].host, "10.0.0.1");
  EXPECT_EQ(map->ranges[0].port, 7000);
  EXPECT_EQ(map->ranges[1].host, "10.0.0.2");
  EXPECT_EQ(map->ranges[2].start, 10923);
  EXPECT_EQ(map->ranges[2].end, 16383);
  EXPECT_EQ(map->ranges[2].host, "");  // "the node you asked"
}

TEST(DecodeClusterSlots, UnknownEndpointIsTheNodeAsked) {
  auto map = DecodeClusterSlots(Arr({Arr({Int(7), Int(7), Node("?", 6379)})}));
  ASSERT_TRUE(map);
  ASSERT_EQ(map->ranges.size(), 1u);
  EXPECT_EQ(map->ranges[0].host, "");
  EXPECT_EQ(map->ranges[0].start, 7);
  EXPECT_EQ(map->ranges[0].end, 7);
}

TEST(DecodeClusterSlots, EmptyClusterHasNoRanges) {
  auto map = DecodeClusterSlots(Arr({}));
  ASSERT_TRUE(map);
  EXPECT_TRUE(map->ranges.empty());
}

TEST(DecodeClusterSlots, NotAnArrayIsInvalid) {
  EXPECT_FALSE(DecodeClusterSlots(Nil()));
  EXPECT_FALSE(DecodeClusterSlots(Int(3)));
  EXPECT_FALSE(DecodeClusterSlots(Str("0 16383 127.0.0.1 7000")));
}

TEST(DecodeClusterSlots, SkipsMalformedEntries) {
  Reply reply = Arr({
      Int(1),                                                        // not an entry
      Arr({Int(0), Int(10)}),                                        // no master
      Arr({Str("0"), Int(10), Node("a", 1)}),                        // start not an integer
      Arr({Int(0), Nil(), Node("a", 1)}),                            // end not an integer
      Arr({Int(0), Int(10), Str("a:1")}),                            // master not an array
      Arr({Int(0), Int(10), Arr({Str("a")})}),                       // master without port
      Arr({Int(0), Int(10), Arr({Int(1), Int(1)})}),                 // host not a string
      Arr({Int(0), Int(10), Arr({Str("a"), Str("7000")})}),          // port not an integer
      Arr({Int(-1), Int(10), Node("a", 1)}),                         // below slot 0
      Arr({Int(0), Int(16384), Node("a", 1)}),                       // past the last slot
      Arr({Int(10), Int(9), Node("a", 1)}),                          // reversed
      Arr({Int(0), Int(10), Node("a", 0)}),                          // port 0
      Arr({Int(0), Int(10), Node("a", 65536)}),                      // port too big
      Arr({Int(0), Int(10), Node("a", -7000)}),                      // negative port
      Arr({Int(LLONG_MIN), Int(LLONG_MAX), Node("a", 1)}),           // huge
      Arr({Int(100), Int(200), Node("good", 7000), Int(5), Nil()}),  // odd replicas: ignored
  });
  auto map = DecodeClusterSlots(reply);
  ASSERT_TRUE(map);
  EXPECT_EQ(map->skipped, 15u);
  ASSERT_EQ(map->ranges.size(), 1u);
  EXPECT_EQ(map->ranges[0].host, "good");
  EXPECT_EQ(map->ranges[0].start, 100);
  EXPECT_EQ(map->ranges[0].end, 200);
}

TEST(DecodePubSub, MessageAndConfirmation) {
  auto message = DecodePubSub(Arr({Str("message"), Str("corral:filled"), Str("user:42")}));
  ASSERT_TRUE(message);
  EXPECT_EQ(message->kind, PubSubPush::Kind::kMessage);
  EXPECT_EQ(message->channel, "corral:filled");
  EXPECT_EQ(message->payload, "user:42");

  auto subscribed = DecodePubSub(Arr({Str("subscribe"), Str("corral:filled"), Int(1)}));
  ASSERT_TRUE(subscribed);
  EXPECT_EQ(subscribed->kind, PubSubPush::Kind::kSubscribe);
  EXPECT_EQ(subscribed->channel, "corral:filled");
}

TEST(DecodePubSub, OtherPushesOnlyProveTheConnectionAlive) {
  auto unsubscribe = DecodePubSub(Arr({Str("unsubscribe"), Str("c"), Int(0)}));
  ASSERT_TRUE(unsubscribe);
  EXPECT_EQ(unsubscribe->kind, PubSubPush::Kind::kOther);
  auto odd = DecodePubSub(Arr({Str("message"), Str("c"), Int(5)}));
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->kind, PubSubPush::Kind::kOther);
}

TEST(DecodePubSub, RejectsMalformedPushes) {
  EXPECT_FALSE(DecodePubSub(Nil()));
  EXPECT_FALSE(DecodePubSub(Str("message")));
  EXPECT_FALSE(DecodePubSub(Arr({Str("message"), Str("c")})));
  EXPECT_FALSE(DecodePubSub(Arr({Int(1), Str("c"), Str("p")})));
  EXPECT_FALSE(DecodePubSub(Arr({Str("message"), Nil(), Str("p")})));
  EXPECT_FALSE(DecodePubSub(Arr({Str("message"), Arr({}), Str("p")})));
}

TEST(ParseRunId, FindsTheLine) {
  EXPECT_EQ(ParseRunId("# Server\r\nredis_version:7.2.4\r\nrun_id:abc123\r\ntcp_port:6379\r\n"),
            "abc123");
  EXPECT_EQ(ParseRunId("run_id:xyz"), "xyz");
  EXPECT_FALSE(ParseRunId("# Server\r\nredis_version:7.2.4\r\n"));
}

}  // namespace
}  // namespace corral::tier

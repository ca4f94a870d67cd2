// The tier scripts' reply decoders and pub/sub payload decoders (cache-server/tier_replies.h):
// each script's replies as tier_scripts.cc writes them, and shapes no script returns, which must
// come back invalid.
#include "cache-server/tier_replies.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "tests/tier/reply_builders.h"

namespace corral::server {
namespace {

using tier::test_replies::Arr;
using tier::test_replies::Err;
using tier::test_replies::Int;
using tier::test_replies::Nil;
using tier::test_replies::Str;

using tier::Reply;

Reply Hit(std::string kind, std::string fresh, std::string stale, std::string load,
          std::string position) {
  return Arr({Str("hit"), Str("{\"id\":42}"), Str(std::move(kind)), Str(std::move(fresh)),
              Str(std::move(stale)), Str(std::move(load)), Str(std::move(position))});
}

TEST(DecodeLookup, Hit) {
  auto hit = DecodeLookup(Hit("v", "59998", "30000", "12", "16777216"));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->kind, LookupReply::Kind::kHit);
  EXPECT_EQ(hit->data, "{\"id\":42}");
  EXPECT_FALSE(hit->not_found);
  EXPECT_EQ(hit->fresh_left_ms, 59998);
  EXPECT_EQ(hit->stale_window_ms, 30000);
  EXPECT_EQ(hit->load_ms, 12u);
  EXPECT_EQ(hit->position, 16777216u);

  auto not_found = DecodeLookup(Hit("n", "1", "0", "0", "0"));
  ASSERT_TRUE(not_found);
  EXPECT_TRUE(not_found->not_found);
}

TEST(DecodeLookup, ErrorWaitWon) {
  auto error = DecodeLookup(Arr({Str("error"), Str("statement timeout")}));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind, LookupReply::Kind::kError);
  EXPECT_EQ(error->data, "statement timeout");

  auto wait = DecodeLookup(Arr({Str("wait"), Str("0123456789abcdef:7")}));
  ASSERT_TRUE(wait);
  EXPECT_EQ(wait->kind, LookupReply::Kind::kWait);
  EXPECT_EQ(wait->data, "0123456789abcdef:7");

  auto won = DecodeLookup(Arr({Str("won")}));
  ASSERT_TRUE(won);
  EXPECT_EQ(won->kind, LookupReply::Kind::kWon);
}

TEST(DecodeLookup, RejectsMalformed) {
  EXPECT_FALSE(DecodeLookup(Nil()));
  EXPECT_FALSE(DecodeLookup(Err("NOSCRIPT No matching script")));
  EXPECT_FALSE(DecodeLookup(Int(1)));
  EXPECT_FALSE(DecodeLookup(Arr({})));
  EXPECT_FALSE(DecodeLookup(Arr({Int(1)})));
  EXPECT_FALSE(DecodeLookup(Arr({Str("maybe")})));
  EXPECT_FALSE(DecodeLookup(Arr({Str("hit"), Str("v")})));            // short
  EXPECT_FALSE(DecodeLookup(Hit("x", "1", "0", "0", "0")));           // unknown kind
  EXPECT_FALSE(DecodeLookup(Hit("v", "0", "0", "0", "0")));           // not fresh
  EXPECT_FALSE(DecodeLookup(Hit("v", "-5", "0", "0", "0")));          // not fresh
  EXPECT_FALSE(DecodeLookup(Hit("v", "1", "-1", "0", "0")));          // negative window
  EXPECT_FALSE(DecodeLookup(Hit("v", "1", "0", "-1", "0")));          // negative load time
  EXPECT_FALSE(DecodeLookup(Hit("v", "1", "0", "4294967296", "0")));  // load time overflows
  EXPECT_FALSE(DecodeLookup(Hit("v", "1", "0", "0", "-1")));          // negative position
  EXPECT_FALSE(DecodeLookup(Hit("v", "1e+15", "0", "0", "0")));       // not decimal
  EXPECT_FALSE(DecodeLookup(Hit("v", " 1", "0", "0", "0")));
  EXPECT_FALSE(DecodeLookup(Hit("v", "99999999999999999999", "0", "0", "0")));
  EXPECT_FALSE(DecodeLookup(Hit("v", "", "0", "0", "0")));
  EXPECT_FALSE(DecodeLookup(
      Arr({Str("hit"), Nil(), Str("v"), Str("1"), Str("0"), Str("0"), Str("0")})));  // no value
  EXPECT_FALSE(DecodeLookup(Arr({Str("hit"), Str("x"), Str("v"), Int(1), Str("0"), Str("0"),
                                 Str("0")})));  // a number where a string is expected
  EXPECT_FALSE(DecodeLookup(Arr({Str("error")})));
  EXPECT_FALSE(DecodeLookup(Arr({Str("error"), Int(1)})));
  EXPECT_FALSE(DecodeLookup(Arr({Str("wait"), Str("")})));
  EXPECT_FALSE(DecodeLookup(Arr({Str("wait"), Str("a"), Str("b")})));
}

TEST(DecodeFill, Shapes) {
  auto filled = DecodeFill(Int(1));
  ASSERT_TRUE(filled);
  EXPECT_EQ(filled->kind, FillReply::Kind::kFilled);
  auto voided = DecodeFill(Int(0));
  ASSERT_TRUE(voided);
  EXPECT_EQ(voided->kind, FillReply::Kind::kVoided);
  auto fenced = DecodeFill(Arr({Int(2), Str("123456789")}));
  ASSERT_TRUE(fenced);
  EXPECT_EQ(fenced->kind, FillReply::Kind::kFenced);
  EXPECT_EQ(fenced->fenced_at, 123456789u);

  EXPECT_FALSE(DecodeFill(Int(2)));
  EXPECT_FALSE(DecodeFill(Int(-1)));
  EXPECT_FALSE(DecodeFill(Nil()));
  EXPECT_FALSE(DecodeFill(Str("1")));
  EXPECT_FALSE(DecodeFill(Arr({Int(2)})));
  EXPECT_FALSE(DecodeFill(Arr({Int(3), Str("1")})));
  EXPECT_FALSE(DecodeFill(Arr({Int(2), Int(1)})));
  EXPECT_FALSE(DecodeFill(Arr({Int(2), Str("-1")})));
  EXPECT_FALSE(DecodeFill(Arr({Int(2), Str("abc")})));
}

TEST(DecodeFlag, OnlyZeroOrOne) {
  EXPECT_EQ(DecodeFlag(Int(1)), true);
  EXPECT_EQ(DecodeFlag(Int(0)), false);
  EXPECT_FALSE(DecodeFlag(Int(2)));
  EXPECT_FALSE(DecodeFlag(Int(-1)));
  EXPECT_FALSE(DecodeFlag(Str("1")));
  EXPECT_FALSE(DecodeFlag(Nil()));
  EXPECT_FALSE(DecodeFlag(Arr({Int(1)})));
}

TEST(DecodeInvalidate, Shapes) {
  auto broadcast = DecodeInvalidate(Arr({Int(1), Int(3)}));
  ASSERT_TRUE(broadcast);
  EXPECT_TRUE(broadcast->held);
  EXPECT_EQ(broadcast->reached, 3);
  auto silent = DecodeInvalidate(Arr({Int(0), Int(-1)}));
  ASSERT_TRUE(silent);
  EXPECT_FALSE(silent->held);
  EXPECT_EQ(silent->reached, -1);

  EXPECT_FALSE(DecodeInvalidate(Arr({Int(1)})));
  EXPECT_FALSE(DecodeInvalidate(Arr({Int(1), Int(2), Int(3)})));
  EXPECT_FALSE(DecodeInvalidate(Arr({Int(2), Int(0)})));
  EXPECT_FALSE(DecodeInvalidate(Arr({Int(1), Int(-2)})));
  EXPECT_FALSE(DecodeInvalidate(Arr({Str("1"), Int(0)})));
  EXPECT_FALSE(DecodeInvalidate(Int(1)));
}

TEST(DecodeMembers, StringsOnly) {
  auto members = DecodeMembers(Arr({Str("a1"), Int(5), Str(""), Nil(), Str("b2")}));
  ASSERT_TRUE(members);
  EXPECT_EQ(*members, (std::vector<std::string>{"a1", "b2"}));
  auto none = DecodeMembers(Arr({}));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(DecodeMembers(Nil()));
  EXPECT_FALSE(DecodeMembers(Str("a1")));
}

TEST(DecodeEpochs, BumpedStoredAndPublished) {
  EXPECT_EQ(DecodeBumpedEpoch(Int(7)), 7);
  EXPECT_EQ(DecodeBumpedEpoch(Int(0)), 0);
  EXPECT_FALSE(DecodeBumpedEpoch(Int(-1)));
  EXPECT_FALSE(DecodeBumpedEpoch(Str("7")));

  EXPECT_EQ(DecodeStoredEpoch(Nil()), 0);
  EXPECT_EQ(DecodeStoredEpoch(Str("42")), 42);
  EXPECT_FALSE(DecodeStoredEpoch(Str("-3")));
  EXPECT_FALSE(DecodeStoredEpoch(Str("4x")));
  EXPECT_FALSE(DecodeStoredEpoch(Int(42)));

  EXPECT_EQ(DecodeEpochMessage("9"), 9);
  EXPECT_FALSE(DecodeEpochMessage(""));
  EXPECT_FALSE(DecodeEpochMessage("-9"));
  EXPECT_FALSE(DecodeEpochMessage("9 "));
}

TEST(DecodeInvalidation, WithAndWithoutPosition) {
  auto m = DecodeInvalidation("0123456789abcdef 17:4096 users:42");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->origin, "0123456789abcdef");
  EXPECT_EQ(m->seq, "17");
  EXPECT_EQ(m->seq_number, 17u);
  EXPECT_EQ(m->position, 4096u);
  EXPECT_EQ(m->key, "users:42");

  auto old = DecodeInvalidation("node 0 key with spaces");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->seq, "0");
  EXPECT_EQ(old->seq_number, 0u);
  EXPECT_EQ(old->position, 0u);
  EXPECT_EQ(old->key, "key with spaces");

  // Unreadable numbers still invalidate the key: at no particular position, acknowledged as sent.
  auto odd = DecodeInvalidation("node x:-5 k");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->seq, "x");
  EXPECT_EQ(odd->seq_number, 0u);
  EXPECT_EQ(odd->position, 0u);
  EXPECT_EQ(odd->key, "k");

  EXPECT_FALSE(DecodeInvalidation(""));
  EXPECT_FALSE(DecodeInvalidation("node"));
  EXPECT_FALSE(DecodeInvalidation("node 17:4096"));
}

TEST(DecodeAck, Shapes) {
  auto ack = DecodeAck("17 0123456789abcdef");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->seq, 17u);
  EXPECT_EQ(ack->node, "0123456789abcdef");
  auto echoed = DecodeAck("17:4096 n");
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->seq, 17u);

  EXPECT_FALSE(DecodeAck("17"));
  EXPECT_FALSE(DecodeAck("17 "));
  EXPECT_FALSE(DecodeAck("0 n"));
  EXPECT_FALSE(DecodeAck("-1 n"));
  EXPECT_FALSE(DecodeAck("x n"));
  EXPECT_FALSE(DecodeAck(" n"));
}

}  // namespace
}  // namespace corral::server

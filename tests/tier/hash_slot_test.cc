// HashSlot: Redis Cluster's test vectors for CRC16-XMODEM and the hash-tag rule.
#include <gtest/gtest.h>

#include "tier/redis_client.h"

namespace corral::tier {
namespace {

TEST(HashSlotTest, Crc16CheckValue) {
  // CRC16-XMODEM("123456789") = 0x31C3 (the Redis Cluster specification's check value).
  EXPECT_EQ(HashSlot("123456789"), 0x31C3 & 16383);
  EXPECT_EQ(HashSlot("123456789"), 12739);
}

TEST(HashSlotTest, KnownSlots) {
  // As CLUSTER KEYSLOT answers on Redis 7.
  EXPECT_EQ(HashSlot("foo"), 12182);
  EXPECT_EQ(HashSlot("bar"), 5061);
  EXPECT_EQ(HashSlot(""), 0);
}

TEST(HashSlotTest, HashTagSharesASlot) {
  EXPECT_EQ(HashSlot("{user1000}.following"), HashSlot("{user1000}.followers"));
  EXPECT_EQ(HashSlot("{user1000}.following"), HashSlot("user1000"));
  EXPECT_EQ(HashSlot("user1000"), 3443);
}

TEST(HashSlotTest, EmptyTagHashesTheWholeKey) {
  // Values from CLUSTER KEYSLOT on Redis 7.0.
  EXPECT_EQ(HashSlot("foo{}{bar}"), 8363);
  EXPECT_NE(HashSlot("foo{}{bar}"), HashSlot("bar"));
  EXPECT_EQ(HashSlot("{}"), 15257);
}

TEST(HashSlotTest, FirstOpenBraceThenFirstCloseBrace) {
  EXPECT_EQ(HashSlot("foo{{bar}}zap"), HashSlot("{bar"));
  EXPECT_EQ(HashSlot("foo{{bar}}zap"), 4015);
  EXPECT_EQ(HashSlot("foo{bar}{zap}"), HashSlot("bar"));
}

TEST(HashSlotTest, UnclosedTagHashesTheWholeKey) {
  EXPECT_EQ(HashSlot("foo{bar"), 15278);
  EXPECT_NE(HashSlot("foo{bar"), HashSlot("bar"));
  EXPECT_EQ(HashSlot("}foo{bar}"), HashSlot("bar"));
}

TEST(HashSlotTest, AlwaysBelow16384) {
  for (int i = 0; i < 10000; ++i) EXPECT_LT(HashSlot("key:" + std::to_string(i)), 16384);
}

}  // namespace
}  // namespace corral::tier

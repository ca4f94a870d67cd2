// SplitKey: NAMESPACE:ID split at the first ':'.
#include "proto/key.h"

#include <gtest/gtest.h>

namespace corral::proto {
namespace {

TEST(SplitKey, SplitsAtTheFirstColon) {
  const auto parts = SplitKey("user:42");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->ns, "user");
  EXPECT_EQ(parts->id, "42");

  const auto nested = SplitKey("a:b:c");
  ASSERT_TRUE(nested.has_value());
  EXPECT_EQ(nested->ns, "a");
  EXPECT_EQ(nested->id, "b:c");
}

TEST(SplitKey, EmptyIdIsAllowed) {
  const auto parts = SplitKey("user:");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->ns, "user");
  EXPECT_EQ(parts->id, "");
}

TEST(SplitKey, PlainKeys) {
  EXPECT_FALSE(SplitKey("").has_value());
  EXPECT_TRUE(SplitKey("key:000000001234").has_value());
  EXPECT_FALSE(SplitKey("plain").has_value());
  EXPECT_FALSE(SplitKey(":42").has_value()) << "empty namespace";
  EXPECT_FALSE(SplitKey(":").has_value());
}

TEST(SplitKey, ViewsPointIntoTheKey) {
  const std::string_view key = "ns:id";
  const auto parts = SplitKey(key);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->ns.data(), key.data());
  EXPECT_EQ(parts->id.data(), key.data() + 3);
}

}  // namespace
}  // namespace corral::proto

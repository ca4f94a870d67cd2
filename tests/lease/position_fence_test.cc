// Tests for lease/position_fence: a fill read before a key's invalidation is fenced, one read at
// or past it passes; a position that arrives late still catches a fill cached meanwhile; markers
// expire once replayed everywhere, and the cap folds them into a floor that stays safe.
#include "lease/position_fence.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace corral::lease {
namespace {

TEST(PositionFenceTest, NoMarkerPassesEveryFill) {
  PositionFence fence(100);
  EXPECT_FALSE(fence.Check("item:1", 0).fenced);
  EXPECT_FALSE(fence.Check("item:1", 500).fenced);
  EXPECT_EQ(fence.Need("item:1"), 0u);
  EXPECT_EQ(fence.size(), 0u);
}

TEST(PositionFenceTest, AFillReadBeforeTheInvalidationIsFencedAndOnePastItPasses) {
  PositionFence fence(100);
  fence.Invalidated("item:1");
  EXPECT_FALSE(fence.Resolve("item:1", 1000));
  FenceVerdict v = fence.Check("item:1", 999);
  EXPECT_TRUE(v.fenced);
  EXPECT_EQ(v.need, 1000u);
  EXPECT_TRUE(fence.Check("item:1", 0).fenced) << "an unknown read position is older than any";
  EXPECT_FALSE(fence.Check("item:1", 1000).fenced);
  EXPECT_FALSE(fence.Check("item:1", 5000).fenced);
  EXPECT_FALSE(fence.Check("item:2", 10).fenced) << "markers are per key";
  EXPECT_EQ(fence.Need("item:1"), 1000u);
  EXPECT_EQ(fence.Need("item:2"), 0u);
}

TEST(PositionFenceTest, TheNewestOfSeveralInvalidationsCounts) {
  PositionFence fence(100);
  fence.Invalidated("k");
  fence.Invalidated("k");
  fence.Resolve("k", 2000);
  fence.Resolve("k", 1500);  // answers can arrive out of order
  EXPECT_TRUE(fence.Check("k", 1999).fenced);
  EXPECT_FALSE(fence.Check("k", 2000).fenced);
}

TEST(PositionFenceTest, AFillCachedBeforeThePositionArrivedIsReportedStaleIfOlder) {
  PositionFence fence(100);
  fence.Invalidated("k");
  EXPECT_FALSE(fence.Check("k", 700).fenced) << "the position is not known yet";
  EXPECT_TRUE(fence.Resolve("k", 800)) << "the fill read at 700 is older than 800";

  fence.Invalidated("k");
  EXPECT_FALSE(fence.Check("k", 900).fenced);
  EXPECT_FALSE(fence.Resolve("k", 850)) << "the fill read at 900 already had the write";
}

TEST(PositionFenceTest, WithTwoUnresolvedEachResolutionChecksTheFillsCachedMeanwhile) {
  PositionFence fence(100);
  fence.Invalidated("k");
  fence.Invalidated("k");
  EXPECT_FALSE(fence.Check("k", 100).fenced);
  EXPECT_FALSE(fence.Resolve("k", 90));
  // The second resolution still sees the fill read at 100.
  EXPECT_TRUE(fence.Resolve("k", 150));
  // Both resolved: nothing is remembered any more.
  EXPECT_FALSE(fence.Check("k", 200).fenced);
  fence.Invalidated("k");
  EXPECT_FALSE(fence.Resolve("k", 300)) << "the fill read at 200 came before this invalidation";
}

TEST(PositionFenceTest, MarkersExpireOnceReplayedEverywhereButNotWhileUnresolved) {
  PositionFence fence(100);
  fence.Invalidated("a");
  fence.Resolve("a", 100);
  fence.Invalidated("b");
  fence.Resolve("b", 300);
  fence.Invalidated("c");  // unresolved
  EXPECT_EQ(fence.size(), 3u);
  EXPECT_GT(fence.bytes(), 3 * PositionFence::kMarkerOverhead);
  EXPECT_EQ(fence.Expire(99), 0u);
  EXPECT_EQ(fence.Expire(200), 1u);
  EXPECT_EQ(fence.Need("a"), 0u);
  EXPECT_EQ(fence.Need("b"), 300u);
  EXPECT_EQ(fence.Expire(1'000'000), 1u) << "c has no position yet and stays";
  EXPECT_EQ(fence.size(), 1u);
  EXPECT_EQ(fence.bytes(), 1 + PositionFence::kMarkerOverhead);
}

TEST(PositionFenceTest, TheCapFoldsResolvedMarkersIntoAFloorThatFencesEveryKey) {
  PositionFence fence(3);
  for (int i = 0; i < 3; ++i) {
    std::string key = "k" + std::to_string(i);
    fence.Invalidated(key);
    fence.Resolve(key, 100 + i);
  }
  fence.Invalidated("new");  // over the cap: the three fold into floor 102
  EXPECT_EQ(fence.size(), 1u);
  EXPECT_EQ(fence.floor(), 102u);
  EXPECT_TRUE(fence.Check("k0", 101).fenced);
  EXPECT_TRUE(fence.Check("unrelated", 50).fenced) << "coarser, never unsafe";
  EXPECT_FALSE(fence.Check("unrelated", 102).fenced);
  EXPECT_EQ(fence.Need("unrelated"), 102u);
  fence.Expire(102);
  EXPECT_EQ(fence.floor(), 0u);
  EXPECT_FALSE(fence.Check("unrelated", 50).fenced);
}

TEST(PositionFenceTest, ConcurrentUseKeepsEveryMarker) {
  PositionFence fence(1'000'000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&fence, t] {
      for (int i = 0; i < 1000; ++i) {
        std::string key = "t" + std::to_string(t) + ":" + std::to_string(i);
        fence.Invalidated(key);
        fence.Check(key, 5);
        fence.Resolve(key, 10);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(fence.size(), 4000u);
  EXPECT_TRUE(fence.Check("t3:999", 9).fenced);
  EXPECT_EQ(fence.Expire(10), 4000u);
}

}  // namespace
}  // namespace corral::lease

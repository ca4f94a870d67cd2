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
  EXPECT_FALSE(fence.Check("item:1", 0, fence.Begin()).fenced);
  EXPECT_FALSE(fence.Check("item:1", 500, fence.Begin()).fenced);
  EXPECT_EQ(fence.Need("item:1"), 0u);
  EXPECT_EQ(fence.size(), 0u);
}

TEST(PositionFenceTest, AFillReadBeforeTheInvalidationIsFencedAndOnePastItPasses) {
  PositionFence fence(100);
  fence.Invalidated("item:1");
  EXPECT_FALSE(fence.Resolve("item:1", 1000));
  FenceVerdict v = fence.Check("item:1", 999, fence.Begin());
  EXPECT_TRUE(v.fenced);
  EXPECT_EQ(v.need, 1000u);
  EXPECT_TRUE(fence.Check("item:1", 0, fence.Begin()).fenced)
      << "an unknown read position is older than any";
  EXPECT_FALSE(fence.Check("item:1", 1000, fence.Begin()).fenced);
  EXPECT_FALSE(fence.Check("item:1", 5000, fence.Begin()).fenced);
  EXPECT_FALSE(fence.Check("item:2", 10, fence.Begin()).fenced) << "markers are per key";
  EXPECT_EQ(fence.Need("item:1"), 1000u);
  EXPECT_EQ(fence.Need("item:2"), 0u);
}

// A new WAL slot starts at a position before which changes are never named: RaiseFloor fences
// every key's fills read below it, until every replica has replayed it.
TEST(PositionFenceTest, ARaisedFloorFencesEveryKeyUntilReplayed) {
  PositionFence fence(100);
  const FenceTicket ticket = fence.Begin();
  fence.RaiseFloor(2000);
  fence.RaiseFloor(1500);  // never lowered
  EXPECT_EQ(fence.floor(), 2000u);
  FenceVerdict v = fence.Check("any:1", 1999, ticket);
  EXPECT_TRUE(v.fenced);
  EXPECT_EQ(v.need, 2000u);
  EXPECT_TRUE(fence.Check("other:7", 0, fence.Begin()).fenced);
  EXPECT_FALSE(fence.Check("any:1", 2000, fence.Begin()).fenced);
  fence.Expire(2000);  // every replica has replayed it
  EXPECT_EQ(fence.floor(), 0u);
  EXPECT_FALSE(fence.Check("any:1", 10, fence.Begin()).fenced);
  EXPECT_TRUE(fence.Check("any:1", 10, ticket).fenced) << "a load begun before it still is";
}

TEST(PositionFenceTest, TheNewestOfSeveralInvalidationsCounts) {
  PositionFence fence(100);
  fence.Invalidated("k");
  fence.Invalidated("k");
  fence.Resolve("k", 2000);
  fence.Resolve("k", 1500);  // answers can arrive out of order
  EXPECT_TRUE(fence.Check("k", 1999, fence.Begin()).fenced);
  EXPECT_FALSE(fence.Check("k", 2000, fence.Begin()).fenced);
}

TEST(PositionFenceTest, AFillCachedBeforeThePositionArrivedIsReportedStaleIfOlder) {
  PositionFence fence(100);
  fence.Invalidated("k");
  EXPECT_FALSE(fence.Check("k", 700, fence.Begin()).fenced) << "the position is not known yet";
  EXPECT_TRUE(fence.Resolve("k", 800)) << "the fill read at 700 is older than 800";

  fence.Invalidated("k");
  EXPECT_FALSE(fence.Check("k", 900, fence.Begin()).fenced);
  EXPECT_FALSE(fence.Resolve("k", 850)) << "the fill read at 900 already had the write";
}

TEST(PositionFenceTest, WithTwoUnresolvedEachResolutionChecksTheFillsCachedMeanwhile) {
  PositionFence fence(100);
  fence.Invalidated("k");
  fence.Invalidated("k");
  EXPECT_FALSE(fence.Check("k", 100, fence.Begin()).fenced);
  EXPECT_FALSE(fence.Resolve("k", 90));
  // The second resolution still sees the fill read at 100.
  EXPECT_TRUE(fence.Resolve("k", 150));
  // Both resolved: nothing is remembered any more.
  EXPECT_FALSE(fence.Check("k", 200, fence.Begin()).fenced);
  fence.Invalidated("k");
  EXPECT_FALSE(fence.Resolve("k", 300)) << "the fill read at 200 came before this invalidation";
}

// A fill that passes only because the position is unknown says so: its Resolve() may come before
// the caller stores it, so the caller looks again once it has (CacheService).
TEST(PositionFenceTest, AFillPassedWhileThePositionIsUnknownIsPending) {
  PositionFence fence(100);
  fence.Invalidated("k");
  FenceVerdict v = fence.Check("k", 100, fence.Begin());
  EXPECT_FALSE(v.fenced);
  EXPECT_TRUE(v.pending);
  EXPECT_FALSE(fence.Check("other", 100, fence.Begin()).pending);
  fence.Resolve("k", 200);
  EXPECT_EQ(fence.Need("k"), 200u) << "what the caller compares its fill's position with";
  v = fence.Check("k", 300, fence.Begin());
  EXPECT_FALSE(v.fenced);
  EXPECT_FALSE(v.pending);
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
  EXPECT_EQ(fence.Need("a"), 100u) << "retired, still routed past (every replica has it)";
  EXPECT_EQ(fence.Need("b"), 300u);
  EXPECT_EQ(fence.Expire(1'000'000), 1u) << "c has no position yet and stays";
  EXPECT_EQ(fence.size(), 1u);
  EXPECT_EQ(fence.retired(), 2u) << "a and b stay retired for the fills in flight";
  // c's marker, and a and b retired (each key held twice: by key and by generation).
  EXPECT_EQ(fence.bytes(),
            1 + PositionFence::kMarkerOverhead + 2 * (2 + PositionFence::kMarkerOverhead));
}

// The soak's second hole (2026-12-03): a fill read on a replica just before it replayed the
// invalidation; the marker was resolved and forgotten (every replica had replayed it) before the
// fill completed, and the old row was cached as fresh.
TEST(PositionFenceTest, AFillInFlightWhenItsMarkerIsForgottenIsStillFenced) {
  PositionFence fence(100);
  fence.Invalidated("k");
  const FenceTicket ticket = fence.Begin();  // the load starts; its read lands at 400
  fence.Resolve("k", 500);
  EXPECT_EQ(fence.Expire(600), 1u);
  EXPECT_EQ(fence.size(), 0u);
  FenceVerdict v = fence.Check("k", 400, ticket);
  EXPECT_TRUE(v.fenced);
  EXPECT_EQ(v.need, 500u);
  EXPECT_FALSE(fence.Check("k", 500, ticket).fenced);
  EXPECT_FALSE(fence.Check("other", 400, ticket).fenced) << "retired markers are per key";
  EXPECT_FALSE(fence.Check("k", 400, fence.Begin()).fenced)
      << "a load that starts after the marker went reads where every replica has it";
}

TEST(PositionFenceTest, AForgottenFloorStillFencesTheFillsThatStartedBeforeIt) {
  PositionFence fence(2);
  for (int i = 0; i < 3; ++i) {
    const std::string key = "k" + std::to_string(i);
    fence.Invalidated(key);
    fence.Resolve(key, 100 + i);
  }
  ASSERT_EQ(fence.floor(), 101u);
  const FenceTicket ticket = fence.Begin();
  fence.Expire(500);
  ASSERT_EQ(fence.floor(), 0u);
  EXPECT_TRUE(fence.Check("unrelated", 100, ticket).fenced);
  EXPECT_FALSE(fence.Check("unrelated", 101, ticket).fenced);
  EXPECT_FALSE(fence.Check("unrelated", 100, fence.Begin()).fenced);
}

TEST(PositionFenceTest, AFillOlderThanWhatIsKeptIsFencedByEverythingForgottenSince) {
  PositionFence fence(1000);
  const FenceTicket ticket = fence.Begin();
  WalPosition position = 100;
  for (size_t g = 0; g <= PositionFence::kKeepGenerations; ++g, ++position) {
    const std::string key = "g" + std::to_string(g);
    fence.Invalidated(key);
    fence.Resolve(key, position);
    ASSERT_EQ(fence.Expire(position), 1u);
  }
  EXPECT_EQ(fence.retired(), PositionFence::kKeepGenerations);
  FenceVerdict v = fence.Check("unrelated", 150, ticket);
  EXPECT_TRUE(v.fenced) << "g0 is no longer remembered: coarse, never unsafe";
  EXPECT_EQ(v.need, position - 1);
  EXPECT_FALSE(fence.Check("unrelated", position - 1, ticket).fenced);
  EXPECT_FALSE(fence.Check("unrelated", 150, fence.Begin()).fenced);
}

TEST(PositionFenceTest, RetiredMarkersStayWithinTheCap) {
  PositionFence fence(3);
  for (int i = 0; i < 10; ++i) {
    const std::string key = "k" + std::to_string(i);
    fence.Invalidated(key);
    fence.Resolve(key, 100 + i);
    fence.Expire(100 + i);
    EXPECT_LE(fence.retired(), 3u);
  }
  EXPECT_EQ(fence.bytes(), 3 * (2 * 2 + PositionFence::kMarkerOverhead));
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
  EXPECT_TRUE(fence.Check("k0", 101, fence.Begin()).fenced);
  EXPECT_TRUE(fence.Check("unrelated", 50, fence.Begin()).fenced) << "coarser, never unsafe";
  EXPECT_FALSE(fence.Check("unrelated", 102, fence.Begin()).fenced);
  EXPECT_EQ(fence.Need("unrelated"), 102u);
  fence.Expire(102);
  EXPECT_EQ(fence.floor(), 0u);
  EXPECT_FALSE(fence.Check("unrelated", 50, fence.Begin()).fenced);
}

TEST(PositionFenceTest, ConcurrentUseKeepsEveryMarker) {
  PositionFence fence(1'000'000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&fence, t] {
      for (int i = 0; i < 1000; ++i) {
        std::string key = "t" + std::to_string(t) + ":" + std::to_string(i);
        fence.Invalidated(key);
        fence.Check(key, 5, fence.Begin());
        fence.Resolve(key, 10);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(fence.size(), 4000u);
  EXPECT_TRUE(fence.Check("t3:999", 9, fence.Begin()).fenced);
  EXPECT_EQ(fence.Expire(10), 4000u);
}

}  // namespace
}  // namespace corral::lease

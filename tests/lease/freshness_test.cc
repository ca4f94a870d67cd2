// Tests for lease/freshness.h: Classify's boundaries (no TTL, exactly at fresh_until), when XFetch
// draws a random number at all, and the head start it gives, checked with fixed draws.
#include "lease/freshness.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "lease/clock.h"
#include "lease/store.h"

namespace corral::lease {
namespace {

constexpr Millis kFreshUntil = 1'000'000;

EntryMeta Meta(Millis fresh_until, uint32_t load_ms, Millis stale_ms = 10'000) {
  EntryMeta meta;
  meta.filled_at = 0;
  meta.fresh_until = fresh_until;
  meta.stale_until = fresh_until == kNever ? kNever : fresh_until + stale_ms;
  meta.load_ms = load_ms;
  return meta;
}

// A draw that returns one fixed number and counts how often it was asked.
struct FixedDraw {
  double u;
  int* calls;
  double operator()() const {
    ++*calls;
    return u;
  }
};

TEST(ClassifyTest, NoTtlIsAlwaysFreshWithoutDrawing) {
  int calls = 0;
  EntryMeta meta = Meta(kNever, 500);
  EXPECT_EQ(Classify(meta, 0, FixedDraw{0.0, &calls}), Freshness::kFresh);
  EXPECT_EQ(Classify(meta, kNever - 1, FixedDraw{0.0, &calls}), Freshness::kFresh);
  EXPECT_EQ(calls, 0);
}

TEST(ClassifyTest, ExactlyAtFreshUntilIsStale) {
  int calls = 0;
  EntryMeta meta = Meta(kFreshUntil, 200);
  EXPECT_EQ(Classify(meta, kFreshUntil, FixedDraw{0.999, &calls}), Freshness::kStale);
  EXPECT_EQ(Classify(meta, kFreshUntil + 1, FixedDraw{0.999, &calls}), Freshness::kStale);
  EXPECT_EQ(calls, 0) << "a stale entry needs no draw";
  // One millisecond before, it is not stale: fresh or due for refresh, depending on the draw.
  EXPECT_NE(Classify(meta, kFreshUntil - 1, FixedDraw{0.999, &calls}), Freshness::kStale);
  EXPECT_EQ(calls, 1);
}

TEST(ClassifyTest, FarFromExpiryDrawsNothing) {
  // delta = 200 ms, so the draw is skipped while more than 40 * 200 = 8000 ms remain.
  int calls = 0;
  EntryMeta meta = Meta(kFreshUntil, 200);
  EXPECT_EQ(Classify(meta, kFreshUntil - 8001, FixedDraw{0.0, &calls}), Freshness::kFresh);
  EXPECT_EQ(Classify(meta, 0, FixedDraw{0.0, &calls}), Freshness::kFresh);
  EXPECT_EQ(calls, 0);
  // At exactly 40 * delta remaining the draw is taken; u = 0 always refreshes.
  EXPECT_EQ(Classify(meta, kFreshUntil - 8000, FixedDraw{0.0, &calls}), Freshness::kRefreshAhead);
  EXPECT_EQ(calls, 1);
}

TEST(ClassifyTest, RefreshesWhenHeadStartCoversRemainingTime) {
  // delta = 100 ms: refresh iff -100 * ln(u) >= remaining.
  int calls = 0;
  EntryMeta meta = Meta(kFreshUntil, 100);
  // -100 ln(0.5) = 69.3 ms.
  EXPECT_EQ(Classify(meta, kFreshUntil - 69, FixedDraw{0.5, &calls}), Freshness::kRefreshAhead);
  EXPECT_EQ(Classify(meta, kFreshUntil - 70, FixedDraw{0.5, &calls}), Freshness::kFresh);
  // -100 ln(e^-3) = 300 ms: exactly equal refreshes (>=).
  double u = std::exp(-3.0);
  Millis head_start = static_cast<Millis>(std::lround(-100.0 * std::log(u)));
  ASSERT_EQ(head_start, 300);
  EXPECT_EQ(Classify(meta, kFreshUntil - 299, FixedDraw{u, &calls}), Freshness::kRefreshAhead);
  EXPECT_EQ(Classify(meta, kFreshUntil - 301, FixedDraw{u, &calls}), Freshness::kFresh);
  // A draw close to 1 gives almost no head start.
  EXPECT_EQ(Classify(meta, kFreshUntil - 1, FixedDraw{0.999, &calls}), Freshness::kFresh);
  EXPECT_EQ(calls, 5);
}

TEST(ClassifyTest, ZeroDrawRefreshesWithoutLogOfZero) {
  int calls = 0;
  EntryMeta meta = Meta(kFreshUntil, 1);
  EXPECT_EQ(Classify(meta, kFreshUntil - 40, FixedDraw{0.0, &calls}), Freshness::kRefreshAhead);
  EXPECT_EQ(calls, 1);
}

TEST(ClassifyTest, ZeroLoadTimeCountsAsOneMillisecond) {
  // load_ms = 0 (a SET, or a sub-millisecond load): delta is 1 ms, so the draw happens only in the
  // last 40 ms, and a small draw refreshes just before expiry instead of never.
  int calls = 0;
  EntryMeta meta = Meta(kFreshUntil, 0);
  EXPECT_EQ(Classify(meta, kFreshUntil - 41, FixedDraw{0.0, &calls}), Freshness::kFresh);
  EXPECT_EQ(calls, 0);
  // -ln(0.1) = 2.3 >= 2 remaining.
  EXPECT_EQ(Classify(meta, kFreshUntil - 2, FixedDraw{0.1, &calls}), Freshness::kRefreshAhead);
  // -ln(0.5) = 0.69 < 1 remaining.
  EXPECT_EQ(Classify(meta, kFreshUntil - 1, FixedDraw{0.5, &calls}), Freshness::kFresh);
  EXPECT_EQ(calls, 2);
}

TEST(ClassifyTest, BetaScalesTheHeadStart) {
  int calls = 0;
  EntryMeta meta = Meta(kFreshUntil, 100);
  // -100 ln(0.5) = 69.3; with beta 2, 138.6.
  EXPECT_EQ(Classify(meta, kFreshUntil - 100, FixedDraw{0.5, &calls}, 1.0), Freshness::kFresh);
  EXPECT_EQ(Classify(meta, kFreshUntil - 100, FixedDraw{0.5, &calls}, 2.0),
            Freshness::kRefreshAhead);
  EXPECT_EQ(Classify(meta, kFreshUntil - 30, FixedDraw{0.5, &calls}, 0.5),
            Freshness::kRefreshAhead);
  EXPECT_EQ(Classify(meta, kFreshUntil - 40, FixedDraw{0.5, &calls}, 0.5), Freshness::kFresh);
  // beta also widens the no-draw horizon: 40 * 100 * 2 = 8000 ms.
  EXPECT_EQ(Classify(meta, kFreshUntil - 6000, FixedDraw{0.0, &calls}, 2.0),
            Freshness::kRefreshAhead);
  EXPECT_EQ(Classify(meta, kFreshUntil - 6000, FixedDraw{0.0, &calls}, 1.0), Freshness::kFresh);
  EXPECT_EQ(calls, 5);
}

// With N evenly spread draws u_i = (i + 0.5) / N, the share of readers that refresh with r ms
// remaining must be P(-delta ln u >= r) = e^(-r / delta), and the mean head start delta.
TEST(ClassifyTest, HeadStartDistributionMatchesXFetch) {
  constexpr int kDraws = 10'000;
  constexpr uint32_t kDelta = 200;
  EntryMeta meta = Meta(kFreshUntil, kDelta);
  for (Millis remaining : {1, 50, 200, 400, 1000, 2000}) {
    int refreshes = 0;
    int calls = 0;
    for (int i = 0; i < kDraws; ++i) {
      double u = (i + 0.5) / kDraws;
      if (Classify(meta, kFreshUntil - remaining, FixedDraw{u, &calls}) ==
          Freshness::kRefreshAhead) {
        ++refreshes;
      }
    }
    EXPECT_EQ(calls, kDraws);
    double expected = kDraws * std::exp(-static_cast<double>(remaining) / kDelta);
    EXPECT_NEAR(refreshes, expected, 1.0) << "remaining " << remaining;
  }
  // Mean head start: the largest remaining time at which each draw refreshes, averaged.
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    double u = (i + 0.5) / kDraws;
    int calls = 0;
    Millis lo = 1, hi = 40 * kDelta;  // binary search for the last refreshing remaining time
    while (lo < hi) {
      Millis mid = (lo + hi + 1) / 2;
      if (Classify(meta, kFreshUntil - mid, FixedDraw{u, &calls}) == Freshness::kRefreshAhead) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    sum += static_cast<double>(lo);
  }
  // Integer head starts (floor of -delta ln u, at least 1) average about delta - 0.5.
  EXPECT_NEAR(sum / kDraws, kDelta - 0.5, kDelta * 0.01);
}

}  // namespace
}  // namespace corral::lease

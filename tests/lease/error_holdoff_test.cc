// Tests for lease/error_holdoff: the window's edges, re-recording, Clear, a disabled hold-off,
// and that expired records are swept so memory follows only the recent failures.
#include "lease/error_holdoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lease/clock.h"

namespace corral::lease {
namespace {

constexpr Millis kHoldoff = 1000;

TEST(ErrorHoldoffTest, UnknownKeyIsNotHeldOff) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock);
  EXPECT_EQ(holdoff.Check("user:1"), std::nullopt);
  EXPECT_EQ(holdoff.size(), 0u);
}

TEST(ErrorHoldoffTest, WindowIsHalfOpen) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock);
  holdoff.Record("user:1", "connection refused");
  EXPECT_EQ(holdoff.Check("user:1"), "connection refused");
  clock.Advance(kHoldoff - 1);
  EXPECT_EQ(holdoff.Check("user:1"), "connection refused") << "last millisecond of the window";
  clock.Advance(1);
  EXPECT_EQ(holdoff.Check("user:1"), std::nullopt) << "the window ends at record time + holdoff";
  EXPECT_EQ(holdoff.size(), 0u) << "an expired record found by Check is dropped";
}

TEST(ErrorHoldoffTest, KeysAreIndependent) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock);
  holdoff.Record("user:1", "a");
  clock.Advance(500);
  holdoff.Record("user:2", "b");
  EXPECT_EQ(holdoff.Check("user:1"), "a");
  EXPECT_EQ(holdoff.Check("user:2"), "b");
  EXPECT_EQ(holdoff.Check("user:3"), std::nullopt);
  clock.Advance(500);
  EXPECT_EQ(holdoff.Check("user:1"), std::nullopt);
  EXPECT_EQ(holdoff.Check("user:2"), "b");
  clock.Advance(500);
  EXPECT_EQ(holdoff.Check("user:2"), std::nullopt);
}

TEST(ErrorHoldoffTest, RecordingAgainRestartsTheWindowAndReplacesTheError) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock);
  holdoff.Record("user:1", "first");
  clock.Advance(900);
  holdoff.Record("user:1", "second");
  EXPECT_EQ(holdoff.size(), 1u);
  clock.Advance(200);  // past the first window, inside the second
  EXPECT_EQ(holdoff.Check("user:1"), "second");
  clock.Advance(799);
  EXPECT_EQ(holdoff.Check("user:1"), "second");
  clock.Advance(1);
  EXPECT_EQ(holdoff.Check("user:1"), std::nullopt);
}

TEST(ErrorHoldoffTest, ClearEndsTheHoldoff) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock);
  holdoff.Record("user:1", "down");
  holdoff.Record("user:2", "down");
  holdoff.Clear("user:1");
  EXPECT_EQ(holdoff.Check("user:1"), std::nullopt);
  EXPECT_EQ(holdoff.Check("user:2"), "down");
  EXPECT_EQ(holdoff.size(), 1u);
  holdoff.Clear("user:1");  // clearing twice, or an unknown key, is harmless
  holdoff.Clear("user:9");
  EXPECT_EQ(holdoff.size(), 1u);
}

TEST(ErrorHoldoffTest, NonPositiveHoldoffRecordsNothing) {
  FakeClock clock;
  for (Millis ms : {0, -5}) {
    ErrorHoldoff holdoff(ms, clock);
    holdoff.Record("user:1", "down");
    EXPECT_EQ(holdoff.Check("user:1"), std::nullopt);
    EXPECT_EQ(holdoff.size(), 0u);
  }
}

TEST(ErrorHoldoffTest, ZeroShardsIsTakenAsOne) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock, 0);
  holdoff.Record("a", "x");
  holdoff.Record("b", "y");
  EXPECT_EQ(holdoff.Check("a"), "x");
  EXPECT_EQ(holdoff.Check("b"), "y");
  EXPECT_EQ(holdoff.size(), 2u);
}

TEST(ErrorHoldoffTest, ExpiredRecordsAreSweptAsNewOnesArrive) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock, 1);
  for (int i = 0; i < 64; ++i) holdoff.Record("old:" + std::to_string(i), "down");
  EXPECT_EQ(holdoff.size(), 64u);
  clock.Advance(kHoldoff);  // every record above is now expired, but nobody checked them
  EXPECT_EQ(holdoff.size(), 64u);
  holdoff.Record("new:1", "down");
  EXPECT_EQ(holdoff.size(), 1u) << "recording into a full shard sweeps the expired records";
  EXPECT_EQ(holdoff.Check("new:1"), "down");
}

TEST(ErrorHoldoffTest, SweepKeepsLiveRecords) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock, 1);
  // 300 failures all within the window: sweeps run on the way, but none may forget a live one.
  for (int i = 0; i < 300; ++i) holdoff.Record("live:" + std::to_string(i), "down");
  EXPECT_EQ(holdoff.size(), 300u);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(holdoff.Check("live:" + std::to_string(i)), "down") << i;
  }
}

TEST(ErrorHoldoffTest, MemoryFollowsRecentFailures) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock, 1);
  // A steady stream of distinct failing keys, one per 10 ms, never checked again: about 100 are
  // live at any time, so the map must stay within twice that however long it runs.
  size_t peak = 0;
  for (int i = 0; i < 20'000; ++i) {
    clock.Advance(10);
    holdoff.Record("stream:" + std::to_string(i), "down");
    peak = std::max(peak, holdoff.size());
  }
  EXPECT_LE(peak, 200u);
  EXPECT_EQ(holdoff.Check("stream:19999"), "down");
  EXPECT_EQ(holdoff.Check("stream:19900"), "down");        // recorded 990 ms ago
  EXPECT_EQ(holdoff.Check("stream:19899"), std::nullopt);  // recorded exactly 1000 ms ago
}

TEST(ErrorHoldoffTest, ConcurrentRecordCheckClear) {
  FakeClock clock;
  ErrorHoldoff holdoff(kHoldoff, clock, 4);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        std::string key = "t" + std::to_string(t) + ":" + std::to_string(i % 50);
        holdoff.Record(key, key);
        if (holdoff.Check(key) != key) wrong.fetch_add(1);
        holdoff.Clear(key);
        if (holdoff.Check(key).has_value()) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(holdoff.size(), 0u);
}

}  // namespace
}  // namespace corral::lease

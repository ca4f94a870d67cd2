// ClockSnapshot: one reading of the steady clock per batch of work on a thread, nested and
// thread-local; other threads and FakeClock are unaffected.
#include "lease/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace corral::lease {
namespace {

using std::chrono::steady_clock;

// Spins (no sleep) until the steady clock has moved past `t`; at most a second.
void WaitPast(steady_clock::time_point t) {
  const auto deadline = steady_clock::now() + std::chrono::seconds(1);
  while (steady_clock::now() <= t && steady_clock::now() < deadline) {
  }
}

TEST(ClockSnapshot, FreezesSteadyNowOnItsThreadOnly) {
  SteadyClock clock;
  ClockSnapshot snapshot;
  const steady_clock::time_point frozen = SteadyNow();
  const Millis frozen_ms = clock.NowMs();
  WaitPast(frozen + std::chrono::milliseconds(2));
  EXPECT_EQ(SteadyNow(), frozen);
  EXPECT_EQ(clock.NowMs(), frozen_ms);
  steady_clock::time_point other;
  std::thread([&] { other = SteadyNow(); }).join();
  EXPECT_GT(other, frozen) << "another thread reads the clock";
}

TEST(ClockSnapshot, NestsAndCloses) {
  steady_clock::time_point outer_time, inner_time;
  {
    ClockSnapshot outer;
    outer_time = SteadyNow();
    WaitPast(outer_time);
    {
      ClockSnapshot inner;
      inner_time = SteadyNow();
      EXPECT_GT(inner_time, outer_time);
    }
    EXPECT_EQ(SteadyNow(), outer_time) << "closing the inner snapshot restores the outer";
  }
  WaitPast(inner_time);
  EXPECT_GT(SteadyNow(), inner_time) << "with none open, the clock is read";
}

TEST(ClockSnapshot, FakeClockIgnoresIt) {
  FakeClock fake(5'000);
  ClockSnapshot snapshot;
  fake.Advance(7);
  EXPECT_EQ(fake.NowMs(), 5'007);
}

}  // namespace
}  // namespace corral::lease

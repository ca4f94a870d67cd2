// Tests for lease/admission: LoadGate's in-flight bound, its token bucket (burst, refill
// arithmetic on a FakeClock), the blocked switch, run-time changes, and the shed reasons.
#include "lease/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "lease/clock.h"

namespace corral::lease {
namespace {

TEST(AdmissionReasonTest, NamesAreTheShedLabels) {
  EXPECT_EQ(AdmissionReason(Admission::kAdmitted), "admitted");
  EXPECT_EQ(AdmissionReason(Admission::kBlocked), "blocked");
  EXPECT_EQ(AdmissionReason(Admission::kInflight), "max_inflight_loads");
  EXPECT_EQ(AdmissionReason(Admission::kRate), "max_loads_per_s");
  EXPECT_EQ(AdmissionReason(Admission::kPending), "max_pending_loads");
}

TEST(LoadGateTest, NoLimitsAdmitsEverything) {
  FakeClock clock;
  LoadGate gate(0, 0, false, clock);
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted) << i;
  EXPECT_EQ(gate.inflight(), 10'000);
  for (int i = 0; i < 10'000; ++i) gate.Done();
  EXPECT_EQ(gate.inflight(), 0);
}

TEST(LoadGateTest, NegativeInflightBoundIsUnbounded) {
  FakeClock clock;
  LoadGate gate(-1, -3, false, clock);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted) << i;
}

TEST(LoadGateTest, InflightBoundEdges) {
  FakeClock clock;
  LoadGate gate(2, 0, false, clock);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.inflight(), 2);
  EXPECT_EQ(gate.TryAdmit(), Admission::kInflight);
  EXPECT_EQ(gate.TryAdmit(), Admission::kInflight);
  EXPECT_EQ(gate.inflight(), 2) << "a refused load is not counted";
  gate.Done();
  EXPECT_EQ(gate.inflight(), 1);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kInflight);
}

TEST(LoadGateTest, LoweringTheInflightBoundWaitsForLoadsToDrain) {
  FakeClock clock;
  LoadGate gate(5, 0, false, clock);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  gate.SetMaxInflight(1);
  EXPECT_EQ(gate.max_inflight(), 1);
  EXPECT_EQ(gate.TryAdmit(), Admission::kInflight);
  gate.Done();
  gate.Done();
  EXPECT_EQ(gate.TryAdmit(), Admission::kInflight) << "still one in flight";
  gate.Done();
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  gate.SetMaxInflight(0);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted) << "0 lifts the bound";
}

TEST(LoadGateTest, BlockedRefusesEverythingAndConsumesNothing) {
  FakeClock clock;
  LoadGate gate(1, 1, true, clock);
  EXPECT_TRUE(gate.blocked());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(gate.TryAdmit(), Admission::kBlocked);
  EXPECT_EQ(gate.inflight(), 0);
  gate.SetBlocked(false);
  // The one token of the bucket is still there.
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  // Blocked is checked before the in-flight bound.
  gate.SetBlocked(true);
  EXPECT_EQ(gate.TryAdmit(), Admission::kBlocked);
  EXPECT_EQ(gate.inflight(), 1);
}

// Peek answers what TryAdmit would, for each bound, and admits nothing.
TEST(LoadGateTest, PeekAnswersAsTryAdmitWouldAndTakesNothing) {
  FakeClock clock;
  LoadGate gate(2, 2, false, clock);
  EXPECT_EQ(gate.Peek(), Admission::kAdmitted);
  EXPECT_EQ(gate.inflight(), 0);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.Peek(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.Peek(), Admission::kInflight) << "two in flight of two";
  gate.Done();
  EXPECT_EQ(gate.Peek(), Admission::kRate) << "room in flight, but the burst of 2 is spent";
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(500);
  EXPECT_EQ(gate.Peek(), Admission::kAdmitted) << "one token back";
  EXPECT_EQ(gate.Peek(), Admission::kAdmitted) << "and Peek did not take it";
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  gate.SetBlocked(true);
  EXPECT_EQ(gate.Peek(), Admission::kBlocked);
  EXPECT_EQ(gate.inflight(), 2);
}

TEST(LoadGateTest, BurstIsTheRate) {
  FakeClock clock;
  LoadGate gate(0, 10, false, clock);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted) << i;
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  EXPECT_EQ(gate.inflight(), 10) << "a rate refusal is not counted in flight";
}

TEST(LoadGateTest, RateBelowOneHasABurstOfOne) {
  FakeClock clock;
  LoadGate gate(0, 0.5, false, clock);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(1999);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(10'000);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate) << "the bucket holds one token at most";
}

TEST(LoadGateTest, RefillArithmetic) {
  FakeClock clock;
  LoadGate gate(0, 4, false, clock);  // one token per 250 ms, burst 4
  for (int i = 0; i < 4; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(249);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate) << "0.996 tokens";
  clock.Advance(1);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted) << "1.0 tokens";
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(500);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(375);  // 1.5 tokens: one admitted, half a token kept
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(125);  // 0.5 + 0.5
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(3'600'000);  // an hour idle refills only up to the burst
  for (int i = 0; i < 4; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted) << i;
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
}

TEST(LoadGateTest, SteadyRateOverTime) {
  FakeClock clock;
  LoadGate gate(0, 10, false, clock);
  int admitted = 0;
  // 10 s, polled every 7 ms: the burst of 10 plus 10 per second.
  for (int t = 0; t < 10'000; t += 7) {
    while (gate.TryAdmit() == Admission::kAdmitted) ++admitted;
    clock.Advance(7);
  }
  EXPECT_GE(admitted, 10 + 99);
  EXPECT_LE(admitted, 10 + 100);
}

// Polling a slow bucket every millisecond must not make it slower than configured: at 0.5 loads/s
// a drained bucket holds a whole token again exactly 2000 ms later, whatever happened in between.
TEST(LoadGateTest, RefillDoesNotDriftWhenPolledOften) {
  FakeClock clock;
  LoadGate gate(0, 0.5, false, clock);
  ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  std::vector<Millis> admitted_at;
  const Millis start = clock.NowMs();
  for (int ms = 1; ms <= 10'000; ++ms) {
    clock.Advance(1);
    if (gate.TryAdmit() == Admission::kAdmitted) admitted_at.push_back(clock.NowMs() - start);
  }
  EXPECT_EQ(admitted_at, (std::vector<Millis>{2000, 4000, 6000, 8000, 10000}));
}

TEST(LoadGateTest, InflightRefusalConsumesNoToken) {
  FakeClock clock;
  LoadGate gate(1, 2, false, clock);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(gate.TryAdmit(), Admission::kInflight);
  gate.Done();
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted) << "the second token of the burst";
  gate.Done();
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  EXPECT_EQ(gate.inflight(), 0);
}

TEST(LoadGateTest, SetMaxPerSecond) {
  FakeClock clock;
  LoadGate gate(0, 0, false, clock);
  EXPECT_EQ(gate.max_per_s(), 0);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  clock.Advance(1000);
  gate.SetMaxPerSecond(2);
  EXPECT_EQ(gate.max_per_s(), 2);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);
  clock.Advance(500);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);

  // Raising the rate raises the burst, filled over time.
  gate.SetMaxPerSecond(100);
  clock.Advance(1000);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted) << i;
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);

  // Lowering it caps what the bucket holds: no burst of the old size afterwards.
  clock.Advance(1000);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);  // 99 tokens left at the old rate
  gate.SetMaxPerSecond(1);
  EXPECT_EQ(gate.TryAdmit(), Admission::kAdmitted);
  EXPECT_EQ(gate.TryAdmit(), Admission::kRate);

  // 0 turns the limit off.
  gate.SetMaxPerSecond(0);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(gate.TryAdmit(), Admission::kAdmitted);
}

TEST(LoadGateTest, ConcurrentAdmitsNeverExceedTheBound) {
  FakeClock clock;
  constexpr int64_t kMax = 3;
  LoadGate gate(kMax, 0, false, clock);
  std::atomic<int64_t> running{0};
  std::atomic<int64_t> peak{0};
  std::atomic<int64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20'000; ++i) {
        if (gate.TryAdmit() != Admission::kAdmitted) continue;
        int64_t now = running.fetch_add(1) + 1;
        int64_t seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        admitted.fetch_add(1);
        running.fetch_sub(1);
        gate.Done();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(peak.load(), kMax);
  EXPECT_GT(admitted.load(), 0);
  EXPECT_EQ(gate.inflight(), 0);
}

}  // namespace
}  // namespace corral::lease

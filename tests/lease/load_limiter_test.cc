// Tests for lease/load_limiter: the queue in front of a pool's limit (order, namespace caps,
// priorities, drops by deadline, CoDel's switch to newest first) and the adaptive limit (shrinks
// when load time rises, returns when it falls), all on a FakeClock.
#include "lease/load_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "lease/clock.h"

namespace corral::lease {
namespace {

// Every answer a test's Acquire calls got, by the order they asked.
struct Answers {
  std::vector<std::optional<Admission>> got;

  LoadLimiter::Grant Slot() {
    got.emplace_back();
    size_t i = got.size() - 1;
    return [this, i](Admission a) {
      ASSERT_FALSE(got[i].has_value()) << "answered twice: " << i;
      got[i] = a;
    };
  }
  int Count(std::optional<Admission> a) const {
    int n = 0;
    for (const auto& g : got) n += g == a ? 1 : 0;
    return n;
  }
};

class LoadLimiterTest : public ::testing::Test {
 protected:
  void Make(int64_t min_limit, int64_t max_limit) {
    limiter_ = std::make_unique<LoadLimiter>(LoadLimiterOptions{min_limit, max_limit}, clock_);
  }
  // One measured load of `ms` in group `g`: admitted now (there must be room), released `ms` later.
  void Measure(size_t g, Millis ms) {
    Answers a;
    limiter_->Acquire(g, clock_.NowMs() + 10'000, a.Slot());
    ASSERT_EQ(a.got[0], Admission::kAdmitted);
    clock_.Advance(ms);
    limiter_->Release(g, ms);
  }
  // One window of the adaptive rule: `limit()` loads at once (all admitted), each taking `ms`.
  void Window(size_t g, Millis ms) {
    const int64_t n = limiter_->limit();
    Answers a;
    for (int64_t i = 0; i < n; ++i) limiter_->Acquire(g, clock_.NowMs() + 10'000, a.Slot());
    ASSERT_EQ(a.Count(Admission::kAdmitted), n);
    clock_.Advance(std::max<Millis>(ms, LoadLimiter::kWindowMs));
    for (int64_t i = 0; i < n; ++i) limiter_->Release(g, ms);
  }

  FakeClock clock_;
  std::unique_ptr<LoadLimiter> limiter_;
};

TEST_F(LoadLimiterTest, AdmitsUpToTheLimitThenQueuesOldestFirst) {
  Make(1, 2);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  Answers a;
  for (int i = 0; i < 5; ++i) limiter_->Acquire(g, clock_.NowMs() + 2000, a.Slot());
  EXPECT_EQ(a.got[0], Admission::kAdmitted);
  EXPECT_EQ(a.got[1], Admission::kAdmitted);
  EXPECT_FALSE(a.got[2] || a.got[3] || a.got[4]) << "queued, not shed";
  EXPECT_EQ(limiter_->inflight(), 2);
  EXPECT_EQ(limiter_->queued(), 3);
  limiter_->Release(g, 10);
  EXPECT_EQ(a.got[2], Admission::kAdmitted) << "the oldest queued load goes first";
  EXPECT_FALSE(a.got[3] || a.got[4]);
  limiter_->Release(g, 10);
  limiter_->Release(g, 10);
  EXPECT_EQ(a.got[3], Admission::kAdmitted);
  EXPECT_EQ(a.got[4], Admission::kAdmitted);
  EXPECT_EQ(limiter_->queued(), 0);
  EXPECT_EQ(limiter_->inflight(), 2);
}

TEST_F(LoadLimiterTest, AGroupCapQueuesItsOwnLoadsOnly) {
  Make(1, 8);
  size_t capped = limiter_->AddGroup(1, Priority::kHigh);
  size_t other = limiter_->AddGroup(0, Priority::kHigh);
  Answers a;
  limiter_->Acquire(capped, clock_.NowMs() + 2000, a.Slot());
  limiter_->Acquire(capped, clock_.NowMs() + 2000, a.Slot());
  limiter_->Acquire(other, clock_.NowMs() + 2000, a.Slot());
  EXPECT_EQ(a.got[0], Admission::kAdmitted);
  EXPECT_FALSE(a.got[1]) << "its namespace is at its cap";
  EXPECT_EQ(a.got[2], Admission::kAdmitted) << "the pool had room for another namespace";
  limiter_->Release(other, 5);
  EXPECT_FALSE(a.got[1]) << "room in the pool, none in its namespace";
  limiter_->Release(capped, 5);
  EXPECT_EQ(a.got[1], Admission::kAdmitted);
  // A cap raised at run time admits what waited on it.
  limiter_->Acquire(capped, clock_.NowMs() + 2000, a.Slot());
  EXPECT_FALSE(a.got[3]);
  limiter_->SetGroupCap(capped, 2);
  EXPECT_EQ(a.got[3], Admission::kAdmitted);
}

TEST_F(LoadLimiterTest, WithoutAPoolLimitOnlyCapsHoldLoadsBack) {
  Make(1, 0);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  Answers a;
  for (int i = 0; i < 1000; ++i) limiter_->Acquire(g, clock_.NowMs() + 2000, a.Slot());
  EXPECT_EQ(a.Count(Admission::kAdmitted), 1000);
  EXPECT_EQ(limiter_->limit(), 0);
}

// 300 ms loads, 2 at a time, 1 s to the deadline: three rounds fit (0-300, 300-600, 600-900).
// Two run, six wait, and the rest are refused at once rather than after a second of waiting —
// once enough loads were measured to estimate from.
TEST_F(LoadLimiterTest, ALoadThatCannotStartInTimeIsDroppedAtOnce) {
  Make(1, 2);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  Measure(g, 300);
  EXPECT_EQ(limiter_->expected_load_ms(), 300);
  {
    Answers early;
    for (int i = 0; i < 10; ++i) limiter_->Acquire(g, clock_.NowMs() + 1000, early.Slot());
    EXPECT_EQ(early.Count(Admission::kAdmitted), 2);
    EXPECT_EQ(limiter_->queued(), 8) << "one sample is not enough to estimate starts from";
    clock_.Advance(1000);
    limiter_->Expire();
    EXPECT_EQ(early.Count(Admission::kPoolInflight), 8);
    limiter_->Release(g, std::nullopt);
    limiter_->Release(g, std::nullopt);
  }
  for (size_t i = 0; i < 2 + LoadLimiter::kRecentSamples; ++i) Measure(g, 300);
  Answers a;
  for (int i = 0; i < 10; ++i) limiter_->Acquire(g, clock_.NowMs() + 1000, a.Slot());
  EXPECT_EQ(a.Count(Admission::kAdmitted), 2);
  EXPECT_EQ(limiter_->queued(), 6);
  EXPECT_EQ(a.Count(Admission::kPoolInflight), 2) << "the pool's limit held them back";
  EXPECT_EQ(a.got[8], Admission::kPoolInflight);
  EXPECT_EQ(a.got[9], Admission::kPoolInflight);
}

// The expected load time is the shortest recent one: slow loads (a new connection's first) do not
// make a burst look undoable, and a database that stays slower is seen once the fast loads are
// out of the recent window.
TEST_F(LoadLimiterTest, TheExpectedLoadTimeIsTheShortestRecentOne) {
  Make(1, 8);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  Measure(g, 900);
  EXPECT_EQ(limiter_->expected_load_ms(), 900);
  Measure(g, 50);
  Measure(g, 60);
  EXPECT_EQ(limiter_->expected_load_ms(), 50);
  for (size_t i = 0; i + 1 < LoadLimiter::kRecentSamples; ++i) Measure(g, 300);
  EXPECT_EQ(limiter_->expected_load_ms(), 60);
  Measure(g, 300);
  EXPECT_EQ(limiter_->expected_load_ms(), 300);
  for (int i = 0; i < 20; ++i) Measure(g, 50);
  EXPECT_EQ(limiter_->expected_load_ms(), 50);
  Answers a;
  for (int i = 0; i < 200; ++i) limiter_->Acquire(g, clock_.NowMs() + 2000, a.Slot());
  EXPECT_EQ(a.Count(Admission::kAdmitted), 8);
  EXPECT_EQ(limiter_->queued(), 192) << "8 at a time, 50 ms each: 1.25 s for all of them";
}

TEST_F(LoadLimiterTest, ALoadLeavingTheQueueTooLateIsDroppedNotRun) {
  Make(1, 1);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  Measure(g, 300);
  Answers a;
  limiter_->Acquire(g, clock_.NowMs() + 10'000, a.Slot());  // runs
  limiter_->Acquire(g, clock_.NowMs() + 500, a.Slot());     // waits; needs to start by +200
  limiter_->Acquire(g, clock_.NowMs() + 10'000, a.Slot());  // waits
  EXPECT_EQ(limiter_->queued(), 2);
  clock_.Advance(250);
  limiter_->Release(g, std::nullopt);  // (a load that never reached the database: no sample)
  EXPECT_EQ(a.got[1], Admission::kPoolInflight) << "250 + 300 ms is past its deadline";
  EXPECT_EQ(a.got[2], Admission::kAdmitted) << "the slot went to the next one";
  EXPECT_EQ(limiter_->inflight(), 1);
}

TEST_F(LoadLimiterTest, ExpireDropsQueuedLoadsPastTheirDeadlineAndNamesTheirBound) {
  Make(1, 8);
  size_t g = limiter_->AddGroup(1, Priority::kHigh);
  Answers a;
  limiter_->Acquire(g, clock_.NowMs() + 10'000, a.Slot());
  limiter_->Acquire(g, clock_.NowMs() + 100, a.Slot());
  limiter_->Acquire(g, clock_.NowMs() + 5'000, a.Slot());
  clock_.Advance(101);
  limiter_->Expire();
  EXPECT_EQ(a.got[1], Admission::kInflight) << "its namespace's cap held it back";
  EXPECT_FALSE(a.got[2]);
  EXPECT_EQ(limiter_->queued(), 1);
  clock_.Advance(5'000);
  limiter_->Expire();
  EXPECT_EQ(a.got[2], Admission::kInflight);
  EXPECT_EQ(limiter_->queued(), 0);
  EXPECT_EQ(limiter_->inflight(), 1);
}

TEST_F(LoadLimiterTest, ExpireRunsAtMostEverySweepInterval) {
  Make(1, 1);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  Answers a;
  limiter_->Acquire(g, clock_.NowMs() + 10'000, a.Slot());
  limiter_->Acquire(g, clock_.NowMs() + 20, a.Slot());
  limiter_->Acquire(g, clock_.NowMs() + 25, a.Slot());
  clock_.Advance(21);
  limiter_->Expire();
  EXPECT_TRUE(a.got[1]);
  clock_.Advance(LoadLimiter::kSweepEveryMs - 1);  // +30: the third is late too
  limiter_->Expire();
  EXPECT_FALSE(a.got[2]) << "swept less than kSweepEveryMs ago";
  clock_.Advance(1);
  limiter_->Expire();
  EXPECT_TRUE(a.got[2]);
}

// CoDel: once the oldest queued load has waited longer than the target for a whole interval, the
// queue serves newest first; when it drains, oldest first again.
TEST_F(LoadLimiterTest, AStandingQueueServesNewestFirst) {
  Make(1, 1);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  Answers a;
  for (int i = 0; i < 5; ++i) limiter_->Acquire(g, clock_.NowMs() + 60'000, a.Slot());
  EXPECT_FALSE(limiter_->lifo());
  clock_.Advance(LoadLimiter::kCodelTargetMs);
  limiter_->Expire();
  EXPECT_FALSE(limiter_->lifo()) << "above the target, but not for an interval yet";
  clock_.Advance(LoadLimiter::kCodelIntervalMs - 1);
  limiter_->Expire();
  EXPECT_FALSE(limiter_->lifo());
  clock_.Advance(1);
  limiter_->Expire();
  EXPECT_TRUE(limiter_->lifo());
  limiter_->Release(g, 5);
  EXPECT_EQ(a.got[4], Admission::kAdmitted) << "the newest";
  EXPECT_FALSE(a.got[1]);
  limiter_->Release(g, 5);
  EXPECT_EQ(a.got[3], Admission::kAdmitted);
  limiter_->Release(g, 5);
  limiter_->Release(g, 5);
  EXPECT_EQ(limiter_->queued(), 0);
  EXPECT_FALSE(limiter_->lifo()) << "an empty queue has no standing delay";
  limiter_->Acquire(g, clock_.NowMs() + 60'000, a.Slot());
  limiter_->Acquire(g, clock_.NowMs() + 60'000, a.Slot());
  limiter_->Release(g, 5);
  EXPECT_EQ(a.got[5], Admission::kAdmitted) << "oldest first again";
  EXPECT_FALSE(a.got[6]);
}

// Low priority may use three quarters of the limit; high is served first from the queue.
TEST_F(LoadLimiterTest, HighPriorityKeepsAQuarterOfTheLimit) {
  Make(1, 8);
  size_t high = limiter_->AddGroup(0, Priority::kHigh);
  size_t low = limiter_->AddGroup(0, Priority::kLow);
  Answers a;
  for (int i = 0; i < 8; ++i) limiter_->Acquire(low, clock_.NowMs() + 60'000, a.Slot());
  EXPECT_EQ(a.Count(Admission::kAdmitted), 6);
  EXPECT_EQ(limiter_->queued(), 2);
  limiter_->Acquire(high, clock_.NowMs() + 60'000, a.Slot());
  limiter_->Acquire(high, clock_.NowMs() + 60'000, a.Slot());
  limiter_->Acquire(high, clock_.NowMs() + 60'000, a.Slot());
  EXPECT_EQ(a.got[8], Admission::kAdmitted);
  EXPECT_EQ(a.got[9], Admission::kAdmitted);
  EXPECT_FALSE(a.got[10]) << "the limit is full";
  limiter_->Release(low, 5);
  EXPECT_EQ(a.got[10], Admission::kAdmitted) << "high before the older low loads";
  EXPECT_FALSE(a.got[6]);
  limiter_->Release(high, 5);
  limiter_->Release(high, 5);
  limiter_->Release(high, 5);
  EXPECT_EQ(limiter_->inflight(), 6);
  EXPECT_EQ(a.got[6], Admission::kAdmitted) << "low gets back up to its three quarters";
  EXPECT_FALSE(a.got[7]);
}

// The gradient rule: at 10x the learned load time the limit falls to where the square-root
// allowance balances the halving (about 4 from 16), never below the floor; back at the old load
// time it climbs to the ceiling again.
TEST_F(LoadLimiterTest, TheLimitFollowsTheLoadTime) {
  Make(2, 16);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  EXPECT_EQ(limiter_->limit(), 16) << "it starts at kInitialLimit (here the ceiling)";
  for (int i = 0; i < 20; ++i) Window(g, 50);
  EXPECT_EQ(limiter_->limit(), 16) << "a steady load time keeps it there";
  int windows = 0;
  while (limiter_->limit() > 5 && windows < 100) {
    Window(g, 500);
    ++windows;
  }
  EXPECT_LE(limiter_->limit(), 5) << "after " << windows << " windows of 10x load time";
  for (int i = 0; i < 50; ++i) Window(g, 500);
  EXPECT_GE(limiter_->limit(), 2);
  EXPECT_LE(limiter_->limit(), 5);
  int back = 0;
  while (limiter_->limit() < 16 && back < 200) {
    Window(g, 50);
    ++back;
  }
  EXPECT_EQ(limiter_->limit(), 16) << "after " << back << " windows back at 50 ms";
  EXPECT_LE(back, 60);
}

// Slow start: from kInitialLimit the limit doubles each window while load times stay flat...
TEST_F(LoadLimiterTest, SlowStartDoublesUpToTheCeilingWhileLoadTimesStayFlat) {
  Make(1, 128);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  EXPECT_EQ(limiter_->limit(), LoadLimiter::kInitialLimit);
  Window(g, 50);  // a window closes with the first sample kWindowMs after its first
  EXPECT_EQ(limiter_->limit(), LoadLimiter::kInitialLimit);
  Window(g, 50);
  EXPECT_EQ(limiter_->limit(), 32);
  Window(g, 50);
  EXPECT_EQ(limiter_->limit(), 64);
  Window(g, 50);
  EXPECT_EQ(limiter_->limit(), 128);
}

// ...and stops at the first rise. On a database whose load time is 2 ms per load running (its
// throughput the same at any concurrency) the limit settles where the load time is about
// kTolerance times the lowest seen, instead of at the ceiling of 128.
TEST_F(LoadLimiterTest, OnADatabaseThatSlowsWithItsLoadTheLimitSettlesLow) {
  Make(1, 128);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  for (int i = 0; i < 100; ++i) Window(g, 2 * limiter_->limit());
  EXPECT_GE(limiter_->limit(), 8);
  EXPECT_LE(limiter_->limit(), 32);
}

TEST_F(LoadLimiterTest, TheFloorHoldsHoweverSlowTheDatabase) {
  Make(6, 16);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  for (int i = 0; i < 5; ++i) Window(g, 10);
  for (int i = 0; i < 200; ++i) Window(g, 5'000);
  EXPECT_EQ(limiter_->limit(), 6);
}

// A pool that never uses half its limit learns little from its load times: a few slower loads
// one at a time do not shrink the limit (the mean of a few loads is noise)...
TEST_F(LoadLimiterTest, AnIdlePoolsSlowLoadsDoNotShrinkItsLimit) {
  Make(1, 64);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  for (int i = 0; i < 10; ++i) Window(g, 50);
  ASSERT_EQ(limiter_->limit(), 64);
  for (int i = 0; i < 100; ++i) {
    for (int k = 0; k < 10; ++k) Measure(g, 200);  // one at a time, 4x the no-load time
  }
  EXPECT_EQ(limiter_->limit(), 64);
}

// Each namespace is measured against its own no-load time: a 300 ms query sharing the pool with a
// 50 ms one is not a database six times slower, and a burst of it keeps the limit.
TEST_F(LoadLimiterTest, ASlowerNamespaceIsNotASlowerDatabase) {
  Make(1, 16);
  size_t fast = limiter_->AddGroup(0, Priority::kHigh);
  size_t slow = limiter_->AddGroup(0, Priority::kHigh);
  for (int i = 0; i < 10; ++i) Window(fast, 50);
  ASSERT_EQ(limiter_->limit(), 16);
  for (int i = 0; i < 20; ++i) Window(slow, 300);
  EXPECT_EQ(limiter_->limit(), 16);
  for (int i = 0; i < 20; ++i) Window(slow, 3000);
  EXPECT_LT(limiter_->limit(), 8) << "ten times its own no-load time is a slower database";
}

// But kBusyLoads at once, slow, bring down a limit far above them (slow start's, after a burst).
TEST_F(LoadLimiterTest, AFewBusyLoadsThatSlowDownStillLowerAHighLimit) {
  Make(1, 128);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  for (int i = 0; i < 10; ++i) Window(g, 50);
  ASSERT_EQ(limiter_->limit(), 128);
  for (int w = 0; w < 20; ++w) {
    Answers a;
    for (int64_t i = 0; i < LoadLimiter::kBusyLoads; ++i) {
      limiter_->Acquire(g, clock_.NowMs() + 10'000, a.Slot());
    }
    clock_.Advance(500);
    for (int64_t i = 0; i < LoadLimiter::kBusyLoads; ++i) limiter_->Release(g, 500);
  }
  EXPECT_LT(limiter_->limit(), 32);
}

// ...and a limit that fell while the database was slow comes back once it answers at its no-load
// time again, in a few windows, even while the pool is idle (a warm cache): to the highest limit
// a window in use found healthy, not past it.
TEST_F(LoadLimiterTest, AFallenLimitComesBackWhenTheDatabaseRecoversEvenIdle) {
  Make(1, 128);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  // A database whose load time grows with its load: the limit settles below the ceiling.
  for (int i = 0; i < 100; ++i) Window(g, 2 * limiter_->limit());
  const int64_t settled = limiter_->limit();
  ASSERT_LT(settled, 64);
  // Ten times slower, under load: the limit falls.
  for (int i = 0; i < 30; ++i) Window(g, 20 * limiter_->limit());
  ASSERT_LE(limiter_->limit(), settled / 2);
  // Healthy again, one load at a time (10 per window of at least kWindowMs).
  int windows = 0;
  while (limiter_->limit() < settled && windows < 50) {
    for (int k = 0; k < 10; ++k) Measure(g, 10);
    ++windows;
  }
  EXPECT_GE(limiter_->limit(), settled) << "after " << windows << " idle windows";
  EXPECT_LE(windows, 6);
  for (int i = 0; i < 100; ++i) {
    for (int k = 0; k < 10; ++k) Measure(g, 10);
  }
  // Slow start found 64 too slow: the highest healthy limit in use was at most 32.
  EXPECT_LE(limiter_->limit(), 32) << "idle windows prove nothing past it";
}

// Threads acquiring and releasing at once never see more loads in flight than the limit, every
// Acquire is answered exactly once, and queued loads are admitted from other threads' Release.
TEST_F(LoadLimiterTest, ConcurrentUseKeepsTheBound) {
  Make(1, 4);
  size_t g = limiter_->AddGroup(0, Priority::kHigh);
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> admitted{0};
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  auto worker = [&] {
    for (int i = 0; i < kPerThread; ++i) {
      std::atomic<bool> granted{false};
      limiter_->Acquire(g, kNever, [&](Admission a) {
        EXPECT_EQ(a, Admission::kAdmitted);
        granted.store(true);
      });
      // Queued: another thread's Release admits it (no deadline to miss).
      while (!granted.load()) std::this_thread::yield();
      admitted.fetch_add(1);
      int now = running.fetch_add(1) + 1;
      int seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
      running.fetch_sub(1);
      limiter_->Release(g, 1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), kThreads * kPerThread);
  EXPECT_LE(peak.load(), 4);
  EXPECT_EQ(limiter_->inflight(), 0);
  EXPECT_EQ(limiter_->queued(), 0);
}

}  // namespace
}  // namespace corral::lease

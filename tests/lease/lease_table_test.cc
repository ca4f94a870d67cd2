// Tests for lease/lease_table: single flight, shared results, deadlines, expiry hand-over, voiding,
// release order, stale tokens, re-entrant callbacks and concurrent use. Time is a FakeClock.
#include "lease/lease_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "lease/clock.h"

namespace corral::lease {
namespace {

using Kind = WaitOutcome::Kind;

constexpr Millis kStart = 1'000'000;

LoadResult Value(std::string data) { return {LoadResult::Kind::kValue, std::move(data)}; }

// Records the outcomes handed to waiters. Single-threaded tests only.
class Waits {
 public:
  // A fresh waiter; its outcomes land in slot(i) in creation order.
  WaiterFn Next() {
    slots_.push_back(std::make_unique<std::vector<WaitOutcome>>());
    std::vector<WaitOutcome>* slot = slots_.back().get();
    return [slot](WaitOutcome o) { slot->push_back(std::move(o)); };
  }
  const std::vector<WaitOutcome>& slot(size_t i) const { return *slots_.at(i); }
  size_t calls(size_t i) const { return slots_.at(i)->size(); }
  // The one outcome of waiter i. Called any other number of times, the test fails and this
  // returns a placeholder, so the caller can go on dereferencing `result`.
  const WaitOutcome& only(size_t i) const {
    static const WaitOutcome kPlaceholder{
        Kind::kTimedOut, std::make_shared<const LoadResult>(LoadResult::Kind::kError, "none"), 0};
    EXPECT_EQ(calls(i), 1u) << "waiter " << i;
    return calls(i) == 1 ? slots_.at(i)->front() : kPlaceholder;
  }
  size_t size() const { return slots_.size(); }

 private:
  std::vector<std::unique_ptr<std::vector<WaitOutcome>>> slots_;
};

class LeaseTableTest : public ::testing::Test {
 protected:
  LeaseTableTest() : table_(Options(), clock_) {}
  static LeaseTableOptions Options() {
    LeaseTableOptions o;
    o.wait_timeout_ms = 2000;
    o.lease_ttl_ms = 10000;
    o.shards = 4;
    return o;
  }
  LeaseToken Lead(std::string_view key) {
    auto a = table_.AcquireOrWait(key, [](WaitOutcome) { ADD_FAILURE() << "leader's fn called"; });
    EXPECT_TRUE(a.leader);
    EXPECT_NE(a.token, 0u);
    return a.token;
  }
  void Wait(std::string_view key, Millis deadline = 0) {
    auto a = table_.AcquireOrWait(key, waits_.Next(), deadline);
    EXPECT_FALSE(a.leader);
    EXPECT_EQ(a.token, 0u);
  }

  FakeClock clock_{kStart};
  LeaseTable table_;
  Waits waits_;
};

TEST_F(LeaseTableTest, LeaderAndWaitersShareOneResult) {
  LeaseToken t = Lead("user:1");
  for (int i = 0; i < 5; ++i) Wait("user:1");
  EXPECT_EQ(table_.waiters(), 5u);
  EXPECT_EQ(table_.leases(), 1u);
  EXPECT_EQ(table_.coalesced_total(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(waits_.calls(i), 0u);

  EXPECT_TRUE(table_.Complete("user:1", t, Value("alice")));
  const LoadResult* first = waits_.only(0).result.get();
  ASSERT_NE(first, nullptr);
  for (size_t i = 0; i < 5; ++i) {
    const WaitOutcome& o = waits_.only(i);
    EXPECT_EQ(o.kind, Kind::kResult);
    EXPECT_EQ(o.result.get(), first);
    EXPECT_EQ(o.result->kind, LoadResult::Kind::kValue);
    EXPECT_EQ(o.result->data, "alice");
  }
  EXPECT_EQ(table_.waiters(), 0u);
  EXPECT_EQ(table_.leases(), 0u);
  // The lease is gone: the next request for the key leads a new load.
  EXPECT_NE(Lead("user:1"), t);
}

// corral_coalesced_requests_total is this count: a holder that waits on its own lease (as the
// cache service's leader does) is no coalesced request; a wait on someone else's lease is, even
// when the caller holds an older, replaced token.
TEST_F(LeaseTableTest, HolderWaitingOnItsOwnLeaseIsNotCoalesced) {
  LeaseToken t = Lead("user:1");
  EXPECT_FALSE(table_.AcquireOrWait("user:1", waits_.Next(), 0, t).leader);
  EXPECT_EQ(table_.waiters(), 1u);
  EXPECT_EQ(table_.coalesced_total(), 0u);
  Wait("user:1");
  EXPECT_EQ(table_.coalesced_total(), 1u);
  EXPECT_TRUE(table_.Void("user:1"));
  LeaseToken newer = Lead("user:1");
  EXPECT_FALSE(table_.AcquireOrWait("user:1", waits_.Next(), 0, t).leader);
  EXPECT_EQ(table_.coalesced_total(), 2u) << "t is not the live lease: a wait on another's load";
  EXPECT_FALSE(table_.Complete("user:1", t, Value("old")));
  EXPECT_TRUE(table_.Complete("user:1", newer, Value("new")));
  EXPECT_EQ(table_.waiters(), 0u);
}

TEST_F(LeaseTableTest, KeysAreIndependent) {
  LeaseToken a = Lead("user:1");
  LeaseToken b = Lead("user:2");
  EXPECT_NE(a, b);
  Wait("user:2");
  EXPECT_TRUE(table_.Complete("user:1", a, Value("one")));
  EXPECT_EQ(waits_.calls(0), 0u);
  EXPECT_TRUE(table_.Complete("user:2", b, Value("two")));
  EXPECT_EQ(waits_.only(0).result->data, "two");
}

// HasLive: a live lease, not a voided or completed one (a reader would wait on it, not load).
TEST_F(LeaseTableTest, HasLiveIsTrueOnlyWhileALeaseCanBeWaitedOn) {
  EXPECT_FALSE(table_.HasLive("user:1"));
  LeaseToken t = Lead("user:1");
  EXPECT_TRUE(table_.HasLive("user:1"));
  EXPECT_FALSE(table_.HasLive("user:2"));
  EXPECT_TRUE(table_.Void("user:1"));
  EXPECT_FALSE(table_.HasLive("user:1")) << "voided: the next reader leads a new load";
  LeaseToken u = Lead("user:1");
  EXPECT_TRUE(table_.Complete("user:1", u, Value("v")));
  EXPECT_FALSE(table_.HasLive("user:1"));
  EXPECT_FALSE(table_.Complete("user:1", t, Value("old")));
}

TEST_F(LeaseTableTest, TenThousandWaitersGetOneSharedCopy) {
  constexpr size_t kWaiters = 10'000;
  LeaseToken t = Lead("hot:1");
  std::vector<std::shared_ptr<const LoadResult>> got;
  got.reserve(kWaiters);
  for (size_t i = 0; i < kWaiters; ++i) {
    auto a = table_.AcquireOrWait("hot:1", [&got](WaitOutcome o) {
      EXPECT_EQ(o.kind, Kind::kResult);
      got.push_back(std::move(o.result));
    });
    ASSERT_FALSE(a.leader);
  }
  EXPECT_EQ(table_.waiters(), kWaiters);
  std::string big(1 << 20, 'x');
  EXPECT_TRUE(table_.Complete("hot:1", t, Value(big)));
  ASSERT_EQ(got.size(), kWaiters);
  const LoadResult* shared = got.front().get();
  for (const auto& r : got) ASSERT_EQ(r.get(), shared);
  // Nobody but the waiters holds it: the table kept no copy and made no other.
  EXPECT_EQ(got.front().use_count(), static_cast<long>(kWaiters));
  EXPECT_EQ(shared->data, big);
  EXPECT_EQ(table_.waiters(), 0u);
  EXPECT_EQ(table_.ExpireDue(), kNever);  // no deadline of a finished waiter lingers
}

TEST_F(LeaseTableTest, WaiterTimesOutAtItsDeadlineNotBefore) {
  LeaseToken t = Lead("user:1");
  Wait("user:1");  // deadline kStart + 2000
  clock_.Advance(1999);
  EXPECT_EQ(table_.ExpireDue(), kStart + 2000);
  EXPECT_EQ(waits_.calls(0), 0u);
  clock_.Advance(1);
  EXPECT_EQ(table_.ExpireDue(), kStart + 10000);  // only the lease's expiry remains
  EXPECT_EQ(waits_.only(0).kind, Kind::kTimedOut);
  EXPECT_EQ(waits_.only(0).result, nullptr);
  EXPECT_EQ(table_.waiters(), 0u);
  EXPECT_EQ(table_.coalesced_total(), 1u);
  // Timing out waiters does not touch the lease.
  EXPECT_TRUE(table_.IsValid("user:1", t));
}

TEST_F(LeaseTableTest, DeadlinesAreKeptInOrder) {
  Lead("user:1");
  Wait("user:1");  // kStart + 2000
  clock_.Advance(500);
  Wait("user:1");                // kStart + 2500
  Wait("user:1", kStart + 700);  // custom, earlier
  EXPECT_EQ(table_.ExpireDue(), kStart + 700);
  clock_.Set(kStart + 700);
  EXPECT_EQ(table_.ExpireDue(), kStart + 2000);
  EXPECT_EQ(waits_.only(2).kind, Kind::kTimedOut);
  EXPECT_EQ(waits_.calls(0), 0u);
  clock_.Set(kStart + 2000);
  EXPECT_EQ(table_.ExpireDue(), kStart + 2500);
  EXPECT_EQ(waits_.only(0).kind, Kind::kTimedOut);
  EXPECT_EQ(waits_.calls(1), 0u);
  clock_.Set(kStart + 2500);
  table_.ExpireDue();
  EXPECT_EQ(waits_.only(1).kind, Kind::kTimedOut);
}

TEST_F(LeaseTableTest, CustomDeadlineIsCappedByWaitTimeout) {
  Lead("user:1");
  Wait("user:1", kStart + 60'000);  // later than wait_timeout_ms allows
  EXPECT_EQ(table_.ExpireDue(), kStart + 2000);
  clock_.Set(kStart + 2000);
  table_.ExpireDue();
  EXPECT_EQ(waits_.only(0).kind, Kind::kTimedOut);
}

TEST_F(LeaseTableTest, PastDeadlineTimesOutAtNextExpireDueNotInline) {
  Lead("user:1");
  Wait("user:1", kStart - 5);
  EXPECT_EQ(waits_.calls(0), 0u);  // never called from inside AcquireOrWait
  EXPECT_EQ(table_.ExpireDue(), kStart + 10000);
  EXPECT_EQ(waits_.only(0).kind, Kind::kTimedOut);
}

TEST_F(LeaseTableTest, ExpireDueOnEmptyTableIsNever) { EXPECT_EQ(table_.ExpireDue(), kNever); }

TEST_F(LeaseTableTest, LoaderFailureReachesEveryWaiter) {
  LeaseToken t = Lead("user:1");
  Wait("user:1");
  Wait("user:1");
  // The table does not judge errors: the caller decides what (if anything) to remember.
  EXPECT_TRUE(table_.Complete("user:1", t, {LoadResult::Kind::kError, "upstream: timeout"}));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(waits_.only(i).kind, Kind::kResult);
    EXPECT_EQ(waits_.only(i).result->kind, LoadResult::Kind::kError);
    EXPECT_EQ(waits_.only(i).result->data, "upstream: timeout");
  }
}

TEST_F(LeaseTableTest, NotFoundIsAResultLikeAnyOther) {
  LeaseToken t = Lead("user:404");
  Wait("user:404");
  EXPECT_TRUE(table_.Complete("user:404", t, {LoadResult::Kind::kNotFound, ""}));
  EXPECT_EQ(waits_.only(0).result->kind, LoadResult::Kind::kNotFound);
}

TEST_F(LeaseTableTest, ExpiredLeaseGoesToOldestWaiter) {
  LeaseTable table({.wait_timeout_ms = 60'000, .lease_ttl_ms = 10'000, .shards = 2}, clock_);
  LeaseToken old = table.AcquireOrWait("user:1", nullptr).token;
  clock_.Advance(1);
  ASSERT_FALSE(table.AcquireOrWait("user:1", waits_.Next()).leader);  // A, oldest
  clock_.Advance(1);
  ASSERT_FALSE(table.AcquireOrWait("user:1", waits_.Next()).leader);  // B
  clock_.Set(kStart + 9999);
  EXPECT_EQ(table.ExpireDue(), kStart + 10000);
  EXPECT_EQ(waits_.calls(0), 0u);
  clock_.Set(kStart + 10000);
  EXPECT_EQ(table.ExpireDue(), kStart + 20000);  // the new lease's expiry comes before B's deadline
  const WaitOutcome& a = waits_.only(0);
  ASSERT_EQ(a.kind, Kind::kLeaseGranted);
  EXPECT_NE(a.token, 0u);
  EXPECT_NE(a.token, old);
  EXPECT_EQ(waits_.calls(1), 0u);
  EXPECT_EQ(table.waiters(), 1u);
  EXPECT_EQ(table.leases(), 1u);
  EXPECT_FALSE(table.IsValid("user:1", old));
  EXPECT_TRUE(table.IsValid("user:1", a.token));
  // The vanished holder turns up late: refused, and B is not woken by it.
  EXPECT_FALSE(table.Complete("user:1", old, Value("late")));
  EXPECT_EQ(waits_.calls(1), 0u);
  EXPECT_TRUE(table.Complete("user:1", a.token, Value("from A")));
  EXPECT_EQ(waits_.only(1).result->data, "from A");
}

TEST_F(LeaseTableTest, ExpiredLeaseWithoutWaitersIsDropped) {
  LeaseToken old = Lead("user:1");
  clock_.Advance(10000);
  EXPECT_EQ(table_.ExpireDue(), kNever);
  EXPECT_EQ(table_.leases(), 0u);
  EXPECT_FALSE(table_.IsValid("user:1", old));
  EXPECT_FALSE(table_.Complete("user:1", old, Value("late")));
  EXPECT_NE(Lead("user:1"), old);
}

TEST_F(LeaseTableTest, LeaseIsValidUntilExpireDueRuns) {
  LeaseToken t = Lead("user:1");
  clock_.Advance(9999);
  table_.ExpireDue();
  EXPECT_TRUE(table_.IsValid("user:1", t));
}

TEST_F(LeaseTableTest, WaiterDeadlineAndLeaseExpiryAtOneInstant) {
  LeaseTable table({.wait_timeout_ms = 2000, .lease_ttl_ms = 2000, .shards = 1}, clock_);
  ASSERT_TRUE(table.AcquireOrWait("k:1", nullptr).leader);
  ASSERT_FALSE(table.AcquireOrWait("k:1", waits_.Next()).leader);
  clock_.Advance(2000);
  EXPECT_EQ(table.ExpireDue(), kNever);
  // The waiter has waited its full time: it is told so, not handed a lease.
  EXPECT_EQ(waits_.only(0).kind, Kind::kTimedOut);
  EXPECT_EQ(table.leases(), 0u);
}

TEST_F(LeaseTableTest, ResultAfterEveryWaiterGaveUpIsStillCacheable) {
  LeaseToken t = Lead("user:1");
  Wait("user:1");
  Wait("user:1");
  clock_.Advance(2000);
  table_.ExpireDue();
  EXPECT_EQ(waits_.only(0).kind, Kind::kTimedOut);
  EXPECT_EQ(waits_.only(1).kind, Kind::kTimedOut);
  EXPECT_TRUE(table_.Complete("user:1", t, Value("slow")));
  EXPECT_EQ(waits_.calls(0), 1u);  // not called a second time
  EXPECT_EQ(waits_.calls(1), 1u);
}

TEST_F(LeaseTableTest, VoidDuringLoad) {
  LeaseToken old = Lead("user:1");
  Wait("user:1");
  Wait("user:1");
  EXPECT_TRUE(table_.Void("user:1"));
  EXPECT_FALSE(table_.IsValid("user:1", old));
  // The next request starts a fresh load instead of waiting on one that may predate the write.
  LeaseToken fresh = Lead("user:1");
  EXPECT_NE(fresh, old);
  EXPECT_EQ(table_.leases(), 2u);
  Wait("user:1");  // waits on the fresh lease
  // The old holder's result answers the waiters that asked before the invalidation, uncached.
  EXPECT_FALSE(table_.Complete("user:1", old, Value("before")));
  EXPECT_EQ(waits_.only(0).result->data, "before");
  EXPECT_EQ(waits_.only(1).result->data, "before");
  EXPECT_EQ(waits_.calls(2), 0u);
  EXPECT_TRUE(table_.IsValid("user:1", fresh));
  EXPECT_TRUE(table_.Complete("user:1", fresh, Value("after")));
  EXPECT_EQ(waits_.only(2).result->data, "after");
}

TEST_F(LeaseTableTest, VoidWithoutLeaseIsFalse) {
  EXPECT_FALSE(table_.Void("user:1"));
  LeaseToken t = Lead("user:1");
  EXPECT_TRUE(table_.Void("user:1"));
  EXPECT_FALSE(table_.Void("user:1"));  // already voided: nothing live
  EXPECT_FALSE(table_.Complete("user:1", t, Value("x")));
  EXPECT_EQ(table_.leases(), 0u);
}

TEST_F(LeaseTableTest, VoidAllVoidsEveryKey) {
  std::vector<LeaseToken> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back(Lead("user:" + std::to_string(i)));
  table_.VoidAll();
  for (int i = 0; i < 20; ++i) {
    std::string key = "user:" + std::to_string(i);
    EXPECT_FALSE(table_.IsValid(key, tokens[i]));
    EXPECT_FALSE(table_.Complete(key, tokens[i], Value("x")));
  }
  EXPECT_EQ(table_.leases(), 0u);
}

TEST_F(LeaseTableTest, ReleaseHandsOverOldestFirst) {
  LeaseToken t = Lead("user:1");
  for (int i = 0; i < 3; ++i) Wait("user:1");
  EXPECT_TRUE(table_.Release("user:1", t));
  ASSERT_EQ(waits_.only(0).kind, Kind::kLeaseGranted);
  LeaseToken t1 = waits_.only(0).token;
  EXPECT_EQ(waits_.calls(1), 0u);
  EXPECT_FALSE(table_.IsValid("user:1", t));
  EXPECT_TRUE(table_.IsValid("user:1", t1));
  EXPECT_TRUE(table_.Release("user:1", t1));
  ASSERT_EQ(waits_.only(1).kind, Kind::kLeaseGranted);
  LeaseToken t2 = waits_.only(1).token;
  EXPECT_NE(t2, t1);
  EXPECT_EQ(waits_.calls(2), 0u);
  EXPECT_FALSE(table_.Release("user:1", t1));  // already given up
  EXPECT_TRUE(table_.Complete("user:1", t2, Value("third time")));
  EXPECT_EQ(waits_.only(2).kind, Kind::kResult);
  EXPECT_EQ(waits_.only(2).result->data, "third time");
  EXPECT_EQ(table_.coalesced_total(), 3u);
}

TEST_F(LeaseTableTest, HandedOverLeaseGetsAFreshTtl) {
  LeaseToken t = Lead("user:1");
  clock_.Advance(1000);
  Wait("user:1");
  EXPECT_TRUE(table_.Release("user:1", t));
  LeaseToken t1 = waits_.only(0).token;
  clock_.Set(kStart + 10'000);  // the first grant's expiry: no effect on the new one
  table_.ExpireDue();
  EXPECT_TRUE(table_.IsValid("user:1", t1));
  clock_.Set(kStart + 11'000);
  table_.ExpireDue();
  EXPECT_FALSE(table_.IsValid("user:1", t1));
}

TEST_F(LeaseTableTest, ReleaseWithoutWaitersFreesTheKey) {
  LeaseToken t = Lead("user:1");
  EXPECT_TRUE(table_.Release("user:1", t));
  EXPECT_EQ(table_.leases(), 0u);
  EXPECT_FALSE(table_.IsValid("user:1", t));
  EXPECT_NE(Lead("user:1"), t);
}

TEST_F(LeaseTableTest, ReleasedVoidedLeaseSendsWaitersToTheFreshLoad) {
  LeaseToken old = Lead("user:1");
  Wait("user:1");
  Wait("user:1");
  ASSERT_TRUE(table_.Void("user:1"));
  LeaseToken fresh = Lead("user:1");
  Wait("user:1");
  EXPECT_TRUE(table_.Release("user:1", old));
  EXPECT_EQ(table_.leases(), 1u);
  EXPECT_EQ(table_.waiters(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(waits_.calls(i), 0u);
  EXPECT_TRUE(table_.Complete("user:1", fresh, Value("after")));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(waits_.only(i).result->data, "after");
}

TEST_F(LeaseTableTest, MovedWaitersKeepTheirDeadlines) {
  LeaseToken old = Lead("user:1");
  Wait("user:1");  // kStart + 2000
  ASSERT_TRUE(table_.Void("user:1"));
  clock_.Advance(1000);
  Lead("user:1");
  Wait("user:1");  // kStart + 3000
  ASSERT_TRUE(table_.Release("user:1", old));
  clock_.Set(kStart + 2000);
  EXPECT_EQ(table_.ExpireDue(), kStart + 3000);
  EXPECT_EQ(waits_.only(0).kind, Kind::kTimedOut);
  EXPECT_EQ(waits_.calls(1), 0u);
}

TEST_F(LeaseTableTest, ReleasedVoidedLeaseWithNoFreshLoadIsRegrantedValid) {
  LeaseToken old = Lead("user:1");
  Wait("user:1");
  Wait("user:1");
  ASSERT_TRUE(table_.Void("user:1"));
  EXPECT_TRUE(table_.Release("user:1", old));
  ASSERT_EQ(waits_.only(0).kind, Kind::kLeaseGranted);
  LeaseToken t = waits_.only(0).token;
  // Its holder loads after the invalidation, so its result may be cached.
  EXPECT_TRUE(table_.IsValid("user:1", t));
  Wait("user:1");  // a new request waits on it rather than starting a second load
  EXPECT_TRUE(table_.Complete("user:1", t, Value("after")));
  EXPECT_EQ(waits_.only(1).result->data, "after");
  EXPECT_EQ(waits_.only(2).result->data, "after");
}

TEST_F(LeaseTableTest, ExpiredVoidedLeaseHandsOverToo) {
  Lead("user:1");
  clock_.Advance(9000);
  Wait("user:1");  // deadline kStart + 11000, past the lease's expiry
  ASSERT_TRUE(table_.Void("user:1"));
  clock_.Set(kStart + 10000);
  table_.ExpireDue();
  ASSERT_EQ(waits_.only(0).kind, Kind::kLeaseGranted);
  EXPECT_TRUE(table_.IsValid("user:1", waits_.only(0).token));
}

TEST_F(LeaseTableTest, StaleAndForeignTokensAreRefused) {
  // One shard, so another key's token is found by the lookup and must be refused for its key.
  LeaseTable table({.wait_timeout_ms = 2000, .lease_ttl_ms = 10000, .shards = 1}, clock_);
  LeaseToken t1 = table.AcquireOrWait("user:1", nullptr).token;
  LeaseToken t2 = table.AcquireOrWait("user:2", nullptr).token;
  ASSERT_FALSE(table.AcquireOrWait("user:1", waits_.Next()).leader);
  ASSERT_FALSE(table.AcquireOrWait("user:2", waits_.Next()).leader);
  EXPECT_FALSE(table.IsValid("user:1", 0));
  EXPECT_FALSE(table.IsValid("user:1", t2));
  EXPECT_FALSE(table.IsValid("user:3", t1));
  EXPECT_FALSE(table.Complete("user:1", t2, Value("wrong key")));
  EXPECT_FALSE(table.Complete("user:1", t1 + t2 + 1000, Value("made up")));
  EXPECT_FALSE(table.Release("user:2", t1));
  EXPECT_EQ(waits_.calls(0), 0u);
  EXPECT_EQ(waits_.calls(1), 0u);
  EXPECT_TRUE(table.IsValid("user:1", t1));
  EXPECT_TRUE(table.IsValid("user:2", t2));
  EXPECT_TRUE(table.Complete("user:1", t1, Value("ok")));
  EXPECT_FALSE(table.Complete("user:1", t1, Value("twice")));
  EXPECT_FALSE(table.Release("user:1", t1));
  EXPECT_EQ(waits_.calls(0), 1u);
  EXPECT_EQ(waits_.calls(1), 0u);
}

TEST_F(LeaseTableTest, TryAcquireNeverWaits) {
  std::optional<LeaseToken> t = table_.TryAcquire("user:1");
  ASSERT_TRUE(t.has_value());
  EXPECT_NE(*t, 0u);
  EXPECT_FALSE(table_.TryAcquire("user:1").has_value());
  EXPECT_EQ(table_.waiters(), 0u);
  EXPECT_EQ(table_.coalesced_total(), 0u);
  Wait("user:1");  // an ordinary reader waits on the refresh lease
  EXPECT_TRUE(table_.Complete("user:1", *t, Value("refreshed")));
  EXPECT_EQ(waits_.only(0).result->data, "refreshed");
  std::optional<LeaseToken> again = table_.TryAcquire("user:1");
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(*again, *t);
}

TEST_F(LeaseTableTest, TokensAreUniqueAndNonZero) {
  std::vector<LeaseToken> seen;
  for (int i = 0; i < 100; ++i) {
    LeaseToken t = Lead("k:" + std::to_string(i % 7));
    seen.push_back(t);
    ASSERT_TRUE(table_.Complete("k:" + std::to_string(i % 7), t, Value("")));
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
  EXPECT_NE(seen.front(), 0u);
}

TEST_F(LeaseTableTest, ZeroShardsMeansOne) {
  LeaseTable table({.wait_timeout_ms = 10, .lease_ttl_ms = 10, .shards = 0}, clock_);
  auto a = table.AcquireOrWait("k", nullptr);
  ASSERT_TRUE(a.leader);
  EXPECT_TRUE(table.Complete("k", a.token, Value("")));
}

// Callbacks run with no lock held, so they may call straight back into the table, even on the same
// key and shard.
TEST_F(LeaseTableTest, CallbacksMayReEnterTheTable) {
  LeaseTable table({.wait_timeout_ms = 2000, .lease_ttl_ms = 10000, .shards = 1}, clock_);
  std::vector<std::string> log;
  LeaseToken t = table.AcquireOrWait("k", nullptr).token;
  // Handed the lease, the waiter completes at once.
  table.AcquireOrWait("k", [&](WaitOutcome o) {
    ASSERT_EQ(o.kind, Kind::kLeaseGranted);
    log.push_back("granted");
    EXPECT_TRUE(table.Complete("k", o.token, Value("loaded by waiter")));
  });
  // Given the result, this waiter asks again and becomes the next leader, then voids and releases.
  table.AcquireOrWait("k", [&](WaitOutcome o) {
    ASSERT_EQ(o.kind, Kind::kResult);
    log.push_back("result " + o.result->data);
    auto a = table.AcquireOrWait("k", nullptr);
    EXPECT_TRUE(a.leader);
    EXPECT_TRUE(table.Void("k"));
    EXPECT_TRUE(table.Release("k", a.token));
    table.VoidAll();
    EXPECT_EQ(table.ExpireDue(), kNever);
  });
  EXPECT_TRUE(table.Release("k", t));
  EXPECT_EQ((std::vector<std::string>{"granted", "result loaded by waiter"}), log);
  EXPECT_EQ(table.leases(), 0u);
  EXPECT_EQ(table.waiters(), 0u);

  // A timed-out waiter re-enters ExpireDue and AcquireOrWait.
  LeaseToken u = table.AcquireOrWait("k", nullptr).token;
  int timeouts = 0;
  table.AcquireOrWait("k", [&](WaitOutcome o) {
    EXPECT_EQ(o.kind, Kind::kTimedOut);
    ++timeouts;
    table.ExpireDue();
    EXPECT_FALSE(table.AcquireOrWait("k", [&](WaitOutcome) { ++timeouts; }).leader);
  });
  clock_.Advance(2000);
  table.ExpireDue();
  EXPECT_EQ(timeouts, 1);
  EXPECT_TRUE(table.Complete("k", u, Value("")));
  EXPECT_EQ(timeouts, 2);  // the waiter added from inside the callback got the result
}

TEST_F(LeaseTableTest, ManyCompletionsWithoutExpireDueLeaveNoPhantomDeadlines) {
  for (int i = 0; i < 5000; ++i) {
    LeaseToken t = Lead("k:" + std::to_string(i % 3));
    Wait("k:" + std::to_string(i % 3));
    ASSERT_TRUE(table_.Complete("k:" + std::to_string(i % 3), t, Value("")));
  }
  EXPECT_EQ(table_.ExpireDue(), kNever);
  for (size_t i = 0; i < waits_.size(); ++i) ASSERT_EQ(waits_.only(i).kind, Kind::kResult);
}

// Several threads hammer a few keys. A key must never have two loaders at once, and every waiter
// must be answered exactly once.
TEST(LeaseTableConcurrencyTest, SingleFlightAndExactlyOnceUnderContention) {
  FakeClock clock;
  LeaseTable table({.wait_timeout_ms = 1'000'000, .lease_ttl_ms = 1'000'000, .shards = 2}, clock);
  constexpr int kThreads = 4;
  constexpr int kIterations = 5000;
  constexpr int kKeys = 5;
  std::atomic<int> loading[kKeys] = {};
  std::atomic<int> overlaps{0};
  std::atomic<int> results{0};
  std::atomic<int> wrong{0};
  std::atomic<int> leads{0};

  auto load = [&](int k, LeaseToken token) {
    if (loading[k].fetch_add(1) != 0) overlaps.fetch_add(1);
    std::this_thread::yield();  // widen the window a second loader would need
    loading[k].fetch_sub(1);
    if (!table.Complete("key:" + std::to_string(k), token, Value(std::to_string(k)))) {
      wrong.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        int k = (i * 7 + t) % kKeys;
        auto a = table.AcquireOrWait("key:" + std::to_string(k), [&, k](WaitOutcome o) {
          if (o.kind != Kind::kResult || o.result->data != std::to_string(k)) wrong.fetch_add(1);
          results.fetch_add(1);
        });
        if (a.leader) {
          leads.fetch_add(1);
          load(k, a.token);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(leads.load() + results.load(), kThreads * kIterations);
  EXPECT_EQ(static_cast<uint64_t>(results.load()), table.coalesced_total());
  EXPECT_EQ(table.waiters(), 0u);
  EXPECT_EQ(table.leases(), 0u);
}

// Voids, releases, timeouts and expiry race with loads; still every waiter hears exactly once and
// the table drains to empty.
TEST(LeaseTableConcurrencyTest, EveryWaiterAnsweredOnceWithVoidsReleasesAndExpiry) {
  FakeClock clock;
  LeaseTable table({.wait_timeout_ms = 200, .lease_ttl_ms = 50, .shards = 4}, clock);
  constexpr int kThreads = 3;
  constexpr int kIterations = 10000;
  constexpr int kKeys = 6;
  std::atomic<int> registered{0};
  std::atomic<int> answered{0};
  std::atomic<int> duplicates{0};
  std::vector<std::atomic<int>> calls(kThreads * kIterations);

  // Whoever holds a lease finishes it one way or another: half complete, some release, and the
  // rest "vanish" and leave it to expire. The choice is a fixed function of n.
  auto finish = [&](const std::string& key, LeaseToken token, uint32_t n) {
    n = (n ^ 0x9e3779b9u) * 0x85ebca6bu;
    const uint32_t pick = (n ^ (n >> 16)) % 10;
    if (pick < 5) {
      table.Complete(key, token, Value(key));
    } else if (pick < 8) {
      table.Release(key, token);
    }
  };
  std::atomic<int> ready{0};
  auto start_together = [&] {
    ready.fetch_add(1);
    while (ready.load() < kThreads + 1) std::this_thread::yield();
  };
  // Invalidations and expiry sweeps from a thread of their own; the workers move the clock.
  std::atomic<bool> stop{false};
  std::thread invalidator([&] {
    start_together();
    for (int n = 1; !stop.load(); ++n) {
      table.ExpireDue();
      if (n % 7 == 0) table.Void("key:" + std::to_string(n % kKeys));
      if (n % 501 == 0) table.VoidAll();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start_together();
      // Hold a few leases at a time so that waiters pile up behind them.
      std::deque<std::tuple<std::string, LeaseToken, int>> held;
      for (int i = 0; i < kIterations; ++i) {
        const int id = t * kIterations + i;
        const std::string key = "key:" + std::to_string((i * 5 + t) % kKeys);
        auto a = table.AcquireOrWait(key, [&, id, key](WaitOutcome o) {
          if (calls[id].fetch_add(1) != 0) duplicates.fetch_add(1);
          answered.fetch_add(1);
          if (o.kind == Kind::kLeaseGranted) finish(key, o.token, id + kThreads * kIterations);
        });
        if (a.leader) {
          held.emplace_back(key, a.token, id);
        } else {
          registered.fetch_add(1);
        }
        clock.Advance(1);  // 1 ms per request: leases expire and waiters time out as it runs
        if (i % 16 == 0) table.ExpireDue();
        if (held.size() > 3) {
          auto& [k, token, n] = held.front();
          finish(k, token, n);
          held.pop_front();
        }
      }
      for (auto& [k, token, n] : held) finish(k, token, n);
    });
  }
  for (auto& th : threads) th.join();
  stop.store(true);
  invalidator.join();
  // Drain: vanished holders expire, their waiters are handed the lease or time out.
  for (int i = 0; i < 1000 && (table.leases() > 0 || table.waiters() > 0); ++i) {
    clock.Advance(100);
    table.ExpireDue();
  }
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(answered.load(), registered.load());
  EXPECT_EQ(static_cast<uint64_t>(registered.load()), table.coalesced_total());
  EXPECT_EQ(table.waiters(), 0u);
  EXPECT_EQ(table.leases(), 0u);
  EXPECT_EQ(table.ExpireDue(), kNever);
}

}  // namespace
}  // namespace corral::lease

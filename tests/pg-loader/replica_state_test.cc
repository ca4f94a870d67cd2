// One server's queue and health bookkeeping: bounds, closing, down/up transitions, lag, wake-ups,
// and taking batches (queued loads of one statement, and those pushed while a worker gathers).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pg-loader/replica.h"
#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

Job MakeJob(std::string id, size_t statement = 0) {
  Job job;
  job.statement = statement;
  job.id = std::move(id);
  job.done = [](LoadOutcome) {};
  return job;
}

void PushAll(ReplicaState& state, std::vector<std::pair<std::string, size_t>> jobs) {
  for (auto& [id, statement] : jobs) {
    Job job = MakeJob(id, statement);
    ASSERT_EQ(state.Push(job), ReplicaState::PushResult::kOk) << id;
  }
}

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& job : jobs) ids.push_back(job.id);
  return ids;
}

using Ms = std::chrono::milliseconds;
using Strings = std::vector<std::string>;

TEST(ReplicaStateTest, QueueIsBoundedAndFifo) {
  ReplicaState state("replica0", 2, 1000);
  Job a = MakeJob("a"), b = MakeJob("b"), c = MakeJob("c");
  EXPECT_EQ(state.Push(a), ReplicaState::PushResult::kOk);
  EXPECT_EQ(state.Push(b), ReplicaState::PushResult::kOk);
  EXPECT_EQ(state.Push(c), ReplicaState::PushResult::kFull);
  EXPECT_EQ(c.id, "c");  // not moved from: the caller can still answer it
  EXPECT_TRUE(c.done);
  EXPECT_EQ(state.Load(), 2);
  std::optional<Job> first = state.Pop();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, "a");
  EXPECT_EQ(state.Load(), 2);  // one queued + one in flight
  EXPECT_EQ(state.Snapshot().inflight, 1);
  state.FinishCall();
  EXPECT_EQ(state.Load(), 1);
  EXPECT_EQ(state.Snapshot().loads, 1u);
  EXPECT_EQ(state.Snapshot().queued, 1u);
}

TEST(ReplicaStateTest, TakeAllEmptiesTheQueue) {
  ReplicaState state("replica0", 10, 1000);
  for (const char* id : {"a", "b", "c"}) {
    Job job = MakeJob(id);
    ASSERT_EQ(state.Push(job), ReplicaState::PushResult::kOk);
  }
  std::vector<Job> jobs = state.TakeAll();
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].id, "a");
  EXPECT_EQ(jobs[2].id, "c");
  EXPECT_EQ(state.Load(), 0);
}

TEST(ReplicaStateTest, CloseWakesABlockedPopAndRefusesPushes) {
  ReplicaState state("replica0", 10, 1000);
  std::optional<Job> popped = MakeJob("sentinel");
  std::thread worker([&] { popped = state.Pop(); });
  state.Close();
  worker.join();
  EXPECT_FALSE(popped.has_value());
  Job job = MakeJob("late");
  EXPECT_EQ(state.Push(job), ReplicaState::PushResult::kClosed);
  EXPECT_TRUE(state.closed());
  EXPECT_EQ(state.WaitForCheck(std::chrono::hours(1)), ReplicaState::Wake::kClosed);
}

TEST(ReplicaStateTest, PopWaitsForAPush) {
  ReplicaState state("replica0", 10, 1000);
  std::optional<Job> popped;
  std::thread worker([&] { popped = state.Pop(); });
  Job job = MakeJob("x");
  ASSERT_EQ(state.Push(job), ReplicaState::PushResult::kOk);
  worker.join();
  ASSERT_TRUE(popped);
  EXPECT_EQ(popped->id, "x");
}

TEST(ReplicaStateTest, UnknownIsRoutableButNotConfirmed) {
  ReplicaState state("replica0", 10, 1000);
  EXPECT_EQ(state.health(), Health::kUnknown);
  EXPECT_TRUE(state.Usable());
  EXPECT_FALSE(state.ConfirmedUsable());
  EXPECT_FALSE(state.Snapshot().up);
}

TEST(ReplicaStateTest, MarkDownTransitionsOnceAndBumpsTheEpoch) {
  ReplicaState state("replica0", 10, 1000);
  const uint64_t epoch = state.epoch();
  EXPECT_TRUE(state.MarkDown());
  EXPECT_FALSE(state.MarkDown());
  EXPECT_EQ(state.epoch(), epoch + 1);
  EXPECT_FALSE(state.Usable());
  state.MarkUp(0);
  EXPECT_TRUE(state.ConfirmedUsable());
  EXPECT_TRUE(state.Snapshot().up);
  EXPECT_TRUE(state.MarkDown());
  EXPECT_EQ(state.epoch(), epoch + 2);
}

TEST(ReplicaStateTest, LagAboveTheBoundMakesItUnusableUntilItCatchesUp) {
  ReplicaState state("replica0", 10, 500);
  state.MarkUp(0.4);
  EXPECT_TRUE(state.Usable());
  state.MarkUp(0.6);
  EXPECT_FALSE(state.Usable());
  EXPECT_FALSE(state.ConfirmedUsable());
  ReplicaStatus status = state.Snapshot();
  EXPECT_TRUE(status.up);
  EXPECT_TRUE(status.lagging);
  EXPECT_DOUBLE_EQ(status.lag_seconds, 0.6);
  state.MarkUp(0);
  EXPECT_TRUE(state.ConfirmedUsable());
}

// The soak's hole (2026-12-02): a replica restarted while an invalidation's marker was forgotten
// (the other replica had replayed it) came back within the lag bound but short of that position.
TEST(ReplicaStateTest, AReturningReplicaIsNotReadUntilItReachesTheForgottenPosition) {
  ReplicaState state("replica0", 10, 5000);
  state.MarkUp(0, 100);  // first check: unknown → up is no return
  EXPECT_TRUE(state.Usable());
  EXPECT_FALSE(state.Snapshot().catching_up);

  ASSERT_TRUE(state.MarkDown());
  state.NotePosition(150);
  state.MarkUp(0.2, 200);
  EXPECT_FALSE(state.Usable()) << "back within the lag bound but short of 200";
  EXPECT_FALSE(state.ConfirmedUsable());
  EXPECT_TRUE(state.HoldsMarkers()) << "markers past it must wait for it now";
  EXPECT_TRUE(state.Snapshot().catching_up);
  EXPECT_TRUE(state.Snapshot().up);

  state.NotePosition(199);
  state.MarkUp(0, 300);  // a newer target while catching up does not move the goal
  EXPECT_FALSE(state.Usable());
  state.NotePosition(200);
  state.MarkUp(0, 300);
  EXPECT_TRUE(state.ConfirmedUsable());
  EXPECT_FALSE(state.Snapshot().catching_up);
}

TEST(ReplicaStateTest, AReplicaBackFromLaggingCatchesUpToo) {
  ReplicaState state("replica0", 10, 1000);
  state.NotePosition(10);
  state.MarkUp(0, 0);
  state.MarkUp(2.0, 50);
  EXPECT_FALSE(state.Usable());
  EXPECT_FALSE(state.HoldsMarkers()) << "a lagging replica does not hold markers back";
  state.MarkUp(0.1, 50);
  EXPECT_FALSE(state.Usable());
  EXPECT_TRUE(state.HoldsMarkers());
  state.MarkUp(3.0, 60);  // lagging again: out, holding nothing, re-armed on its next return
  EXPECT_FALSE(state.HoldsMarkers());
  state.NotePosition(55);
  state.MarkUp(0.1, 60);
  EXPECT_FALSE(state.Usable()) << "re-armed with the newer target";
  state.NotePosition(60);
  state.MarkUp(0.1, 70);
  EXPECT_TRUE(state.Usable());
}

TEST(ReplicaStateTest, ThePrimaryAndAServerWithNothingForgottenAreUsableAtOnce) {
  ReplicaState state("primary", 10, 1000);
  ASSERT_TRUE(state.MarkDown());
  state.MarkUp(0, 0);  // the primary: no target
  EXPECT_TRUE(state.ConfirmedUsable());
  ASSERT_TRUE(state.MarkDown());
  state.NotePosition(500);
  state.MarkUp(0, 400);  // already past the target
  EXPECT_TRUE(state.ConfirmedUsable());
}

TEST(ReplicaStateTest, RequestCheckWakesTheCheckerOnce) {
  ReplicaState state("replica0", 10, 1000);
  state.RequestCheck();
  EXPECT_EQ(state.WaitForCheck(std::chrono::hours(1)), ReplicaState::Wake::kRecheck);
  EXPECT_EQ(state.WaitForCheck(std::chrono::milliseconds(0)), ReplicaState::Wake::kTimeout);
}

// Rechecks asked for on every read come no sooner than the gap after the last check; Close still
// ends the wait at once.
TEST(ReplicaStateTest, RecheckWaitsOutTheMinimumGap) {
  using std::chrono::milliseconds;
  ReplicaState state("replica0", 10, 1000);
  state.RequestCheck();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(state.WaitForCheck(std::chrono::hours(1), milliseconds(50)),
            ReplicaState::Wake::kRecheck);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(50));
  EXPECT_EQ(state.WaitForCheck(milliseconds(0), milliseconds(50)), ReplicaState::Wake::kTimeout)
      << "asked once, answered once";
  state.RequestCheck();
  std::thread closer([&] { state.Close(); });
  EXPECT_EQ(state.WaitForCheck(std::chrono::hours(1), std::chrono::hours(1)),
            ReplicaState::Wake::kClosed);
  closer.join();
}

TEST(ReplicaStateBatchTest, TakesQueuedJobsOfTheSameStatementUpToTheMax) {
  ReplicaState state("replica0", 100, 1000);
  PushAll(state, {{"a", 0}, {"b", 0}, {"x", 1}, {"c", 0}, {"d", 0}, {"y", 1}});
  const BatchRule rules[] = {{3, std::chrono::microseconds(0)}, {1, std::chrono::microseconds(0)}};
  std::vector<Job> batch = state.PopBatch(rules);
  EXPECT_EQ(Ids(batch), (Strings{"a", "b", "c"}));
  EXPECT_EQ(state.Snapshot().inflight, 1);  // one database call for the whole batch
  EXPECT_EQ(state.Snapshot().queued, 3u);
  // The others keep their order; statement 1 is not batched.
  EXPECT_EQ(Ids(state.PopBatch(rules)), (Strings{"x"}));
  EXPECT_EQ(Ids(state.PopBatch(rules)), (Strings{"d"}));
  EXPECT_EQ(Ids(state.PopBatch(rules)), (Strings{"y"}));
  EXPECT_EQ(state.Load(), 4);  // four calls in flight, nothing queued
}

// A call's loads are queued together (one lock), so one pop takes them as one batch; what the
// queue bound leaves out is reported, not lost, and a closed queue takes none.
TEST(ReplicaStateBatchTest, PushAllQueuesTogetherUpToTheBound) {
  ReplicaState state("replica0", 3, 1000);
  std::vector<Job> jobs;
  for (const char* id : {"a", "b", "c", "d"}) jobs.push_back(MakeJob(id));
  bool closed = true;
  EXPECT_EQ(state.PushAll(jobs, &closed), 3u);
  EXPECT_FALSE(closed);
  EXPECT_EQ(jobs[3].id, "d") << "not queued, not moved from: the caller answers it";
  const BatchRule rules[] = {{8, std::chrono::microseconds(0)}};
  EXPECT_EQ(Ids(state.PopBatch(rules)), (Strings{"a", "b", "c"}));
  state.Close();
  std::vector<Job> late;
  late.push_back(MakeJob("e"));
  EXPECT_EQ(state.PushAll(late, &closed), 0u);
  EXPECT_TRUE(closed);
}

TEST(ReplicaStateBatchTest, StatementsWithoutARuleAreTakenOneByOne) {
  ReplicaState state("replica0", 100, 1000);
  PushAll(state, {{"a", 2}, {"b", 2}});
  const BatchRule rules[] = {{8, Ms(100)}};  // only statement 0 has a rule
  EXPECT_EQ(Ids(state.PopBatch(rules)), (Strings{"a"}));
  EXPECT_EQ(Ids(state.PopBatch({})), (Strings{"b"}));
}

TEST(ReplicaStateBatchTest, GathersPushedJobsUntilFullWithoutWaitingOutTheWindow) {
  ReplicaState state("replica0", 100, 1000);
  PushAll(state, {{"a", 0}});
  const BatchRule rules[] = {{3, std::chrono::seconds(30)}, {3, std::chrono::seconds(30)}};
  std::vector<Job> batch;
  const auto start = std::chrono::steady_clock::now();
  std::thread worker([&] { batch = state.PopBatch(rules); });
  // Whether these arrive before or while the worker gathers, they end in its batch; "x" (another
  // statement) never does.
  PushAll(state, {{"b", 0}, {"x", 1}, {"c", 0}});
  worker.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(Ids(batch), (Strings{"a", "b", "c"}));
  EXPECT_EQ(state.Snapshot().queued, 1u);
  const BatchRule no_wait[] = {{3, std::chrono::microseconds(0)},
                               {3, std::chrono::microseconds(0)}};
  EXPECT_EQ(Ids(state.PopBatch(no_wait)), (Strings{"x"}));
}

TEST(ReplicaStateBatchTest, AGatheringWorkerHoldsPushedJobsAndCloseReleasesIt) {
  ReplicaState state("replica0", 100, 1000);
  PushAll(state, {{"a", 0}});
  const BatchRule rules[] = {{10, std::chrono::seconds(30)}};
  std::vector<Job> batch;
  std::thread worker([&] { batch = state.PopBatch(rules); });
  ASSERT_TRUE(testing::WaitFor([&] { return state.Snapshot().inflight == 1; }, Ms(10000)));
  // The pop and the start of gathering happen under one lock hold, so "b" joins the batch.
  PushAll(state, {{"b", 0}});
  EXPECT_EQ(state.Snapshot().queued, 1u);  // held by the gatherer, still waiting for the database
  EXPECT_EQ(state.Load(), 2);
  state.Close();
  worker.join();
  EXPECT_EQ(Ids(batch), (Strings{"a", "b"}));
  EXPECT_EQ(state.Snapshot().queued, 0u);
}

TEST(ReplicaStateBatchTest, TheWindowBoundsTheWait) {
  ReplicaState state("replica0", 100, 1000);
  PushAll(state, {{"a", 0}});
  const BatchRule rules[] = {{10, Ms(1)}};
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Ids(state.PopBatch(rules)), (Strings{"a"}));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, Ms(1));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(ReplicaStateBatchTest, AFullGathererLeavesFurtherJobsToTheQueue) {
  ReplicaState state("replica0", 100, 1000);
  PushAll(state, {{"a", 0}});
  const BatchRule rules[] = {{2, std::chrono::seconds(30)}};
  std::vector<Job> batch;
  std::thread worker([&] { batch = state.PopBatch(rules); });
  PushAll(state, {{"b", 0}, {"c", 0}});
  worker.join();
  EXPECT_EQ(Ids(batch), (Strings{"a", "b"}));
  EXPECT_EQ(state.Snapshot().queued, 1u);
  std::vector<Job> rest = state.TakeAll();
  EXPECT_EQ(Ids(rest), (Strings{"c"}));
}

TEST(ReplicaStateBatchTest, ABatchCountsAsOneCall) {
  ReplicaState state("replica0", 100, 1000);
  PushAll(state, {{"a", 0}, {"b", 0}, {"c", 0}, {"d", 0}});
  const BatchRule rules[] = {{3, std::chrono::microseconds(0)}};
  ASSERT_EQ(state.PopBatch(rules).size(), 3u);
  state.FinishCall(3);
  ASSERT_EQ(state.PopBatch(rules).size(), 1u);
  state.FinishCall(1);
  const ReplicaStatus status = state.Snapshot();
  EXPECT_EQ(status.loads, 2u);
  EXPECT_EQ(status.batches, 1u);
  EXPECT_EQ(status.batched_loads, 3u);
  EXPECT_EQ(status.inflight, 0);
}

}  // namespace
}  // namespace corral::pg

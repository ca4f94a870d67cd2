// One server's queue and health bookkeeping: bounds, closing, down/up transitions, lag, wake-ups.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "pg-loader/replica.h"

namespace corral::pg {
namespace {

Job MakeJob(std::string id) {
  Job job;
  job.id = std::move(id);
  job.done = [](LoadOutcome) {};
  return job;
}

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

TEST(ReplicaStateTest, RequestCheckWakesTheCheckerOnce) {
  ReplicaState state("replica0", 10, 1000);
  state.RequestCheck();
  EXPECT_EQ(state.WaitForCheck(std::chrono::hours(1)), ReplicaState::Wake::kRecheck);
  EXPECT_EQ(state.WaitForCheck(std::chrono::milliseconds(0)), ReplicaState::Wake::kTimeout);
}

}  // namespace
}  // namespace corral::pg

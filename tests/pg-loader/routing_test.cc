// Replica choice (round-robin, least-loaded, skipping unusable ones) and reconnect back-off.
#include "pg-loader/routing.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace corral::pg {
namespace {

TEST(PickReplicaTest, NoCandidatesOrNoneUsableGivesNothing) {
  EXPECT_EQ(PickReplica({}, Routing::kRoundRobin, 0), std::nullopt);
  std::vector<Candidate> down = {{false, 0}, {false, 0}};
  EXPECT_EQ(PickReplica(down, Routing::kRoundRobin, 5), std::nullopt);
  EXPECT_EQ(PickReplica(down, Routing::kLeastLoaded, 5), std::nullopt);
}

TEST(PickReplicaTest, RoundRobinRotatesOverAllUsable) {
  std::vector<Candidate> all = {{true, 0}, {true, 0}, {true, 0}};
  std::map<size_t, int> hits;
  for (uint64_t ticket = 0; ticket < 300; ++ticket) {
    ++hits[PickReplica(all, Routing::kRoundRobin, ticket).value()];
  }
  EXPECT_EQ(hits[0], 100);
  EXPECT_EQ(hits[1], 100);
  EXPECT_EQ(hits[2], 100);
}

TEST(PickReplicaTest, RoundRobinSkipsUnusableReplicas) {
  std::vector<Candidate> some = {{true, 0}, {false, 0}, {true, 0}};
  std::map<size_t, int> hits;
  for (uint64_t ticket = 0; ticket < 300; ++ticket) {
    ++hits[PickReplica(some, Routing::kRoundRobin, ticket).value()];
  }
  EXPECT_EQ(hits.count(1), 0u);
  EXPECT_EQ(hits[0] + hits[2], 300);
  EXPECT_GE(hits[0], 100);  // the skipped one's turns go to its successor
  EXPECT_GE(hits[2], 100);
}

TEST(PickReplicaTest, LeastLoadedTakesTheSmallestLoad) {
  std::vector<Candidate> c = {{true, 5}, {true, 2}, {true, 9}};
  for (uint64_t ticket = 0; ticket < 6; ++ticket) {
    EXPECT_EQ(PickReplica(c, Routing::kLeastLoaded, ticket), 1u);
  }
  c[1].usable = false;  // the least loaded is down: next least
  EXPECT_EQ(PickReplica(c, Routing::kLeastLoaded, 0), 0u);
}

TEST(PickReplicaTest, LeastLoadedBreaksTiesByRotation) {
  std::vector<Candidate> c = {{true, 1}, {true, 1}};
  EXPECT_EQ(PickReplica(c, Routing::kLeastLoaded, 0), 0u);
  EXPECT_EQ(PickReplica(c, Routing::kLeastLoaded, 1), 1u);
}

TEST(BackoffTest, DoublesUpToTheCapAndResets) {
  Backoff backoff(100, 2000);
  EXPECT_EQ(backoff.NextMs(), 100);
  EXPECT_EQ(backoff.NextMs(), 200);
  EXPECT_EQ(backoff.NextMs(), 400);
  EXPECT_EQ(backoff.NextMs(), 800);
  EXPECT_EQ(backoff.NextMs(), 1600);
  EXPECT_EQ(backoff.NextMs(), 2000);
  EXPECT_EQ(backoff.NextMs(), 2000);
  backoff.Reset();
  EXPECT_EQ(backoff.NextMs(), 100);
}

TEST(BackoffTest, FirstAboveCapIsCapped) {
  Backoff backoff(5000, 2000);
  EXPECT_EQ(backoff.NextMs(), 2000);
  EXPECT_EQ(backoff.NextMs(), 2000);
}

}  // namespace
}  // namespace corral::pg

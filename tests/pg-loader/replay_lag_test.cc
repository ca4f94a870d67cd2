// ReplayLagTracker: lag from replay progress, on made-up positions and times (no database).
#include "pg-loader/replay_lag.h"

#include <gtest/gtest.h>

#include <limits>

namespace corral::pg {
namespace {

using Clock = ReplayLagTracker::Clock;
using std::chrono::milliseconds;

class ReplayLagTest : public ::testing::Test {
 protected:
  double At(int64_t ms, bool recovery, double receive, double replay) {
    return lag_.Observe(t0_ + milliseconds(ms), recovery, receive, replay);
  }
  ReplayLagTracker lag_;
  Clock::time_point t0_ = Clock::now();
};

TEST_F(ReplayLagTest, PrimaryAndCaughtUpReplicaHaveNoLag) {
  EXPECT_EQ(At(0, false, -1, -1), 0);
  EXPECT_EQ(At(1000, true, 500, 500), 0);
  EXPECT_EQ(At(2000, true, 500, 600), 0);  // replay ahead of receive after a restart
}

// A standby restarted after a crash accepts reads as soon as it is consistent, while it still
// replays its own WAL and before its WAL receiver streams (receive NULL): its data can be far
// behind the primary, and behind what it served before it stopped. It is as far behind as the
// time since it was last current, and never "current" on a missing position.
TEST_F(ReplayLagTest, NoWalReceiverYetIsBehindSinceLastCurrent) {
  EXPECT_EQ(At(0, true, 500, 500), 0);
  // Killed at ~0 s (checks fail, nothing observed), back at 20 s replaying its own WAL.
  EXPECT_DOUBLE_EQ(At(20000, true, -1, 300), 20.0);
  EXPECT_DOUBLE_EQ(At(21000, true, -1, 450), 21.0);
  // Streaming again: behind until it has replayed what it received at the first streaming check.
  EXPECT_DOUBLE_EQ(At(22000, true, 900, 500), 22.0);
  EXPECT_DOUBLE_EQ(At(23000, true, 950, 900), 1.0);
  EXPECT_EQ(At(24000, true, 950, 950), 0);
}

TEST_F(ReplayLagTest, NoWalReceiverOnFirstSightIsUnknownLag) {
  EXPECT_EQ(At(0, true, -1, 700), std::numeric_limits<double>::infinity());
  EXPECT_EQ(At(1000, true, 800, 800), 0);
}

// The bug this replaces: an idle replica briefly replaying a checkpoint record looked as old as
// its last replayed transaction (minutes). Here it is behind by one check at most, then current.
TEST_F(ReplayLagTest, BriefGapOnAnIdleReplicaIsNotLag) {
  EXPECT_EQ(At(0, true, 100, 100), 0);
  EXPECT_DOUBLE_EQ(At(1000, true, 200, 100), 1.0);  // behind since the last current check
  EXPECT_EQ(At(2000, true, 200, 200), 0);
}

TEST_F(ReplayLagTest, SteadyWritesAppliedPromptlyStayNearZero) {
  // Each check sees a little unreplayed WAL, but everything from the previous check is replayed.
  At(0, true, 100, 100);
  for (int i = 1; i <= 20; ++i) {
    double lag = At(i * 1000, true, 100 + i * 100 + 50, 100 + i * 100);
    EXPECT_LE(lag, 1.0) << i;
  }
}

TEST_F(ReplayLagTest, PausedReplayGrowsWithWallClock) {
  At(0, true, 100, 100);
  EXPECT_DOUBLE_EQ(At(1000, true, 200, 100), 1.0);
  EXPECT_DOUBLE_EQ(At(2000, true, 300, 100), 2.0);
  EXPECT_DOUBLE_EQ(At(6000, true, 400, 100), 6.0);
  // Replay resumes and reaches what had been received at 2 s: at most 4 s behind now.
  EXPECT_DOUBLE_EQ(At(6000, true, 400, 300), 4.0);
  EXPECT_EQ(At(7000, true, 400, 400), 0);
}

TEST_F(ReplayLagTest, FirstSightWhileBehindCountsFromThere) {
  EXPECT_EQ(At(5000, true, 900, 100), 0);
  EXPECT_DOUBLE_EQ(At(8000, true, 900, 100), 3.0);
}

class PrimaryPositionsTest : public ::testing::Test {
 protected:
  Clock::time_point At(int64_t ms) { return t0_ + milliseconds(ms); }
  PrimaryPositions primary_{std::chrono::seconds(10)};
  Clock::time_point t0_ = Clock::now();
};

TEST_F(PrimaryPositionsTest, NoSamplesNoLag) { EXPECT_EQ(primary_.LagOf(At(0), 0), 0); }

// A replica that replayed everything it received after a restart, where its receiver starts:
// the primary had moved on, so it is behind since the primary was where it is.
TEST_F(PrimaryPositionsTest, BehindThePrimaryIsLagWhateverItReceived) {
  primary_.Add(At(0), 100);
  primary_.Add(At(1000), 200);
  primary_.Add(At(2000), 300);
  EXPECT_EQ(primary_.LagOf(At(2500), 300), 0);
  EXPECT_EQ(primary_.LagOf(At(2500), 350), 0);
  EXPECT_DOUBLE_EQ(primary_.LagOf(At(2500), 250), 1.5);  // has what the primary had at 1 s
  EXPECT_DOUBLE_EQ(primary_.LagOf(At(2500), 100), 2.5);
  EXPECT_DOUBLE_EQ(primary_.LagOf(At(2500), 50), 2.5);  // older than every sample kept
}

TEST_F(PrimaryPositionsTest, KeepsOnlyTheWindowAndIgnoresOlderNews) {
  for (int s = 0; s <= 30; ++s) primary_.Add(At(s * 1000), 100 + s);
  // Samples older than 10 s before the newest are gone: behind them all is "10 s at least".
  EXPECT_DOUBLE_EQ(primary_.LagOf(At(30000), 0), 10.0);
  primary_.Add(At(29000), 500);  // asked before the newest: ignored
  primary_.Add(At(31000), 90);   // behind the newest position: ignored
  EXPECT_EQ(primary_.LagOf(At(31000), 130), 0);
}

}  // namespace
}  // namespace corral::pg

// ReplayLagTracker: lag from replay progress, on made-up positions and times (no database).
#include "pg-loader/replay_lag.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(At(3000, true, -1, 700), 0);   // no WAL receiver yet
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

}  // namespace
}  // namespace corral::pg

// The watchdog shuts down a socket whose deadline passed, and leaves a disarmed one alone.
#include "pg-loader/watchdog.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace corral::pg {
namespace {

class SocketPair {
 public:
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  ~SocketPair() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int a() const { return fds_[0]; }
  int b() const { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

// Waits (bounded) until `fd` is readable and returns what one recv() gives: 0 means shut down.
ssize_t ReadWithin(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return -2;
  char c;
  return ::recv(fd, &c, 1, 0);
}

TEST(WatchdogTest, CutsTheSocketOnceTheDeadlinePasses) {
  SocketPair pair;
  Watchdog watchdog;
  watchdog.Start();
  const uint64_t id = watchdog.Arm(pair.a(), Watchdog::Clock::now());
  EXPECT_EQ(ReadWithin(pair.a(), 10'000), 0);  // EOF: our own end was shut down
  EXPECT_TRUE(watchdog.Disarm(id));
}

TEST(WatchdogTest, DisarmedSocketsAreLeftAlone) {
  SocketPair pair;
  Watchdog watchdog;
  watchdog.Start();
  const uint64_t id = watchdog.Arm(pair.a(), Watchdog::Clock::now() + std::chrono::hours(1));
  EXPECT_FALSE(watchdog.Disarm(id));
  // A second, expired entry on another socket fires; the disarmed one still works afterwards.
  SocketPair other;
  const uint64_t other_id = watchdog.Arm(other.a(), Watchdog::Clock::now());
  EXPECT_EQ(ReadWithin(other.a(), 10'000), 0);
  EXPECT_TRUE(watchdog.Disarm(other_id));
  ASSERT_EQ(::send(pair.b(), "x", 1, 0), 1);
  EXPECT_EQ(ReadWithin(pair.a(), 10'000), 1);
  watchdog.Stop();
}

TEST(WatchdogTest, CutAllShutsEveryWatchedSocketNow) {
  SocketPair first, second;
  Watchdog watchdog;
  watchdog.Start();
  const uint64_t a = watchdog.Arm(first.a(), Watchdog::Clock::now() + std::chrono::hours(1));
  const uint64_t b = watchdog.Arm(second.a(), Watchdog::Clock::now() + std::chrono::hours(1));
  watchdog.CutAll();
  EXPECT_EQ(ReadWithin(first.a(), 10'000), 0);
  EXPECT_EQ(ReadWithin(second.a(), 10'000), 0);
  EXPECT_TRUE(watchdog.Disarm(a));
  EXPECT_TRUE(watchdog.Disarm(b));
}

TEST(WatchdogTest, NothingFiresBeforeStart) {
  SocketPair pair;
  Watchdog watchdog;
  const uint64_t id = watchdog.Arm(pair.a(), Watchdog::Clock::now());
  EXPECT_FALSE(watchdog.Disarm(id));
  ASSERT_EQ(::send(pair.b(), "x", 1, 0), 1);
  EXPECT_EQ(ReadWithin(pair.a(), 10'000), 1);
}

}  // namespace
}  // namespace corral::pg

// CommandLog (SLOWLOG and LATENCY's store) alone: which clock the thresholds (and
// latency-tracking) choose, LATENCY HISTOGRAM's buckets, Redis's
// truncation and redaction of logged arguments, the length bound, and the latency monitor's
// one-sample-per-second series. No server, no clock: durations and times are given.
#include "cache-server/command_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace corral::server {
namespace {

using ::testing::ElementsAre;

void Record(CommandLog& log, std::vector<std::string_view> args, int64_t us,
            int64_t unix_time = 1000, bool fast = false) {
  log.Record(args, fast, us, unix_time, "127.0.0.1:5000", "name");
}

TEST(CommandLogTest, ThresholdsChooseTheClock) {
  CommandLog log;
  EXPECT_EQ(log.slower_than_us(), 10000);
  EXPECT_EQ(log.max_len(), 128u);
  EXPECT_EQ(log.latency_threshold_ms(), 0);
  EXPECT_EQ(log.min_threshold_us(), 10000);
  // Redis's default 10 ms is gated on the tick counter where the CPU has a constant-rate one.
  const CommandLog::Clock ticks =
      CommandLog::TicksUsable() ? CommandLog::Clock::kTickGate : CommandLog::Clock::kPrecise;
  EXPECT_EQ(log.clock(), ticks);

  log.SetSlowerThanUs(-1);
  EXPECT_EQ(log.clock(), CommandLog::Clock::kOff) << "both off: no clock is read";
  EXPECT_EQ(log.min_threshold_us(), std::numeric_limits<int64_t>::max());

  log.SetSlowerThanUs(0);
  EXPECT_EQ(log.clock(), CommandLog::Clock::kPrecise);
  EXPECT_EQ(log.min_threshold_us(), 0);

  // Thresholds of kCoarseGateMinUs and above gate on the coarse clock...
  log.SetSlowerThanUs(-1);
  log.SetLatencyThresholdMs(100);
  EXPECT_EQ(log.min_threshold_us(), CommandLog::kCoarseGateMinUs);
  EXPECT_EQ(log.clock(), CommandLog::Clock::kCoarseGate);
  // ... but the smallest active threshold decides.
  log.SetSlowerThanUs(CommandLog::kCoarseGateMinUs - 1);
  EXPECT_EQ(log.clock(), ticks);
  log.SetSlowerThanUs(CommandLog::kTickGateMinUs);
  EXPECT_EQ(log.clock(), ticks);
  log.SetSlowerThanUs(CommandLog::kTickGateMinUs - 1);
  EXPECT_EQ(log.clock(), CommandLog::Clock::kPrecise);
  log.SetSlowerThanUs(10'000'000);
  EXPECT_EQ(log.clock(), CommandLog::Clock::kCoarseGate);
}

// latency-tracking times every command precisely, whatever the thresholds; off, they decide again.
TEST(CommandLogTest, LatencyTrackingTimesEveryCommand) {
  CommandLog log;
  EXPECT_FALSE(log.latency_tracking());
  log.SetSlowerThanUs(-1);
  log.SetLatencyTracking(true);
  EXPECT_TRUE(log.latency_tracking());
  EXPECT_EQ(log.clock(), CommandLog::Clock::kPrecise);
  EXPECT_EQ(log.min_threshold_us(), 0);
  log.SetSlowerThanUs(CommandLog::kCoarseGateMinUs);
  EXPECT_EQ(log.clock(), CommandLog::Clock::kPrecise) << "tracking still needs every duration";
  log.SetLatencyTracking(false);
  EXPECT_EQ(log.clock(), CommandLog::Clock::kCoarseGate);
  EXPECT_EQ(log.min_threshold_us(), CommandLog::kCoarseGateMinUs);
  // A precise timer under tracking reports every command, however short.
  log.SetLatencyTracking(true);
  CommandTimer timer(log, CommandLog::PreciseUs());
  EXPECT_GE(timer.Lap(), 0);
  EXPECT_GE(timer.Lap(), 0);
}

// Redis's LATENCY HISTOGRAM buckets: below 1024 << b ns, reported as whole microseconds.
TEST(LatencyHistogramTest, PowerOfTwoBucketsClampedToOneSecond) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0);
  EXPECT_EQ(LatencyHistogram::BucketOf(1), 0);  // 1000 ns < 1024
  EXPECT_EQ(LatencyHistogram::BucketOf(2), 1);  // 2000 ns < 2048
  EXPECT_EQ(LatencyHistogram::BucketOf(3), 2);  // 3000 ns < 4096
  EXPECT_EQ(LatencyHistogram::BucketOf(4), 2);  // 4000 ns < 4096
  EXPECT_EQ(LatencyHistogram::BucketOf(5), 3);
  EXPECT_EQ(LatencyHistogram::BucketOf(32), 5);  // 32000 ns < 32768
  EXPECT_EQ(LatencyHistogram::BucketOf(33), 6);
  EXPECT_EQ(LatencyHistogram::BucketOf(1'000'000), LatencyHistogram::kBuckets - 1);
  EXPECT_EQ(LatencyHistogram::BucketOf(60'000'000), LatencyHistogram::kBuckets - 1) << "clamped";
  EXPECT_EQ(LatencyHistogram::BucketOf(-5), 0);
  EXPECT_EQ(LatencyHistogram::BoundUs(0), 1);
  EXPECT_EQ(LatencyHistogram::BoundUs(5), 32);
  EXPECT_EQ(LatencyHistogram::BoundUs(6), 65);
  EXPECT_EQ(LatencyHistogram::BoundUs(LatencyHistogram::kBuckets - 1), 1'073'741);

  LatencyHistogram h;
  for (int64_t us : {1, 1, 3, 40, 2'000'000}) h.Add(us);
  EXPECT_EQ(h.Total(), 5u);
  EXPECT_EQ(h.Count(0), 2u);
  EXPECT_EQ(h.Count(2), 1u);
  EXPECT_EQ(h.Count(6), 1u);
  EXPECT_EQ(h.Count(LatencyHistogram::kBuckets - 1), 1u);
  h.Reset();
  EXPECT_EQ(h.Total(), 0u);
}

// LATENCY GRAPH as Redis's sparkline draws it: each column rises in proportion between the low
// and the high, then a blank row and each sample's age written downwards.
TEST(LatencyGraphTest, ColumnsRiseBetweenLowAndHighWithAgesBelow) {
  LatencySeries series;
  series.event = "command";
  series.max_ms = 20;
  const int64_t now = 1'000'000;
  series.samples = {{now - 3, 1}, {now - 70, 5}, {now - 7200, 9}, {now - 2 * 86400, 13}};
  EXPECT_EQ(LatencyGraph(series, now), "command - high 13 ms, low 1 ms (all time high 20 ms)\n" +
                                           std::string(80, '-') +
                                           "\n"
                                           "   #\n"
                                           "  #|\n"
                                           " o||\n"
                                           "_|||\n"
                                           "    \n"
                                           "3122\n"
                                           "smhd\n");
  // One sample (or all alike): every column sits in the bottom row.
  series.samples = {{now - 1, 7}, {now - 2, 7}};
  EXPECT_EQ(LatencyGraph(series, now), "command - high 7 ms, low 7 ms (all time high 20 ms)\n" +
                                           std::string(80, '-') + "\n  \n  \n  \n__\n  \n12\nss\n");
  // More than 80 samples: a second block after a blank line.
  series.samples.assign(81, {now - 5, 3});
  const std::string graph = LatencyGraph(series, now);
  EXPECT_NE(graph.find(std::string(80, '_') + "\n"), std::string::npos);
  EXPECT_TRUE(graph.ends_with(std::string(80, 's') + "\n\n \n \n \n_\n \n5\ns\n")) << graph;
}

// Spins until the precise clock has moved `us` past `from`: a command that takes at least that.
int64_t SpinUntil(int64_t from, int64_t us) {
  int64_t now = CommandLog::PreciseUs();
  while (now - from < us) now = CommandLog::PreciseUs();
  return now;
}

TEST(CommandTimerTest, OffReadsNothingAndReportsNothing) {
  CommandLog log;
  log.SetSlowerThanUs(-1);
  CommandTimer timer(log, CommandLog::PreciseUs());
  EXPECT_FALSE(timer.active());
  EXPECT_EQ(timer.Lap(), -1);
}

TEST(CommandTimerTest, PreciseTimesEveryCommandFromTheLastOne) {
  CommandLog log;
  log.SetSlowerThanUs(0);
  const int64_t start = CommandLog::PreciseUs();
  CommandTimer timer(log, start);
  ASSERT_TRUE(timer.active());
  const int64_t first_end = SpinUntil(start, 2000);
  const int64_t first = timer.Lap();
  EXPECT_GE(first, 2000);
  EXPECT_LE(first, CommandLog::PreciseUs() - start);
  const int64_t second = timer.Lap();  // right after: measured from the first one's end
  EXPECT_GE(second, 0);
  EXPECT_LT(second, CommandLog::PreciseUs() - first_end + 1);
}

// Under the coarse gate, a short command is dismissed on the coarse reading alone, and one that
// reaches the threshold is timed exactly when its start was precise (the batch's first command,
// or one after a command timed precisely), else from the coarse clock.
TEST(CommandTimerTest, CoarseGateDismissesShortCommandsAndTimesLongOnes) {
  CommandLog log;
  const int64_t threshold = CommandLog::kCoarseGateMinUs;
  log.SetSlowerThanUs(threshold);
  ASSERT_EQ(log.clock(), CommandLog::Clock::kCoarseGate);

  const int64_t start = CommandLog::PreciseUs();
  CommandTimer timer(log, start);
  SpinUntil(start, threshold + 10);
  const int64_t slow = timer.Lap();
  EXPECT_GE(slow, threshold + 10) << "the first command starts at the batch's precise reading";
  EXPECT_LE(slow, CommandLog::PreciseUs() - start);

  EXPECT_EQ(timer.Lap(), -1) << "a command of a few microseconds is dismissed";

  // After a dismissed command the start is a coarse reading: a command of twice the threshold is
  // still caught, its time within the coarse clock's jitter (measured below 10 ms).
  const int64_t before = CommandLog::PreciseUs();
  SpinUntil(before, 2 * threshold);
  const int64_t caught = timer.Lap();
  const int64_t took = CommandLog::PreciseUs() - before;
  EXPECT_NEAR(static_cast<double>(caught), static_cast<double>(took), 30'000);
  EXPECT_GE(caught, threshold);
}

// Under the tick gate (Redis's default 10 ms): until the counter's rate is measured, a batch is
// timed precisely; after kTickCalibrationUs, a short command is dismissed on one counter reading
// and a long one is timed, exactly when its start was precise, else from the measured rate.
TEST(CommandTimerTest, TickGateTimesPreciselyUntilMeasuredThenDismissesShortCommands) {
  if (!CommandLog::TicksUsable()) GTEST_SKIP() << "no constant-rate tick counter on this CPU";
  const int64_t made = CommandLog::PreciseUs();
  CommandLog log;
  const int64_t threshold = log.min_threshold_us();
  ASSERT_EQ(log.clock(), CommandLog::Clock::kTickGate);
  {
    CommandTimer early(log, CommandLog::PreciseUs());
    EXPECT_EQ(early.clock(), CommandLog::Clock::kPrecise) << "the rate is not measured yet";
  }
  SpinUntil(made, CommandLog::kTickCalibrationUs + 1000);

  const int64_t start = CommandLog::PreciseUs();
  CommandTimer timer(log, start);
  ASSERT_EQ(timer.clock(), CommandLog::Clock::kTickGate);
  SpinUntil(start, threshold + 10);
  const int64_t slow = timer.Lap();
  EXPECT_GE(slow, threshold + 10) << "the first command starts at the batch's precise reading";
  EXPECT_LE(slow, CommandLog::PreciseUs() - start);

  EXPECT_EQ(timer.Lap(), -1) << "a command of a few microseconds is dismissed";

  // After a dismissed command the start is a tick reading: twice the threshold is caught, its
  // time from the measured rate within 1% (a 50 ms measurement of a rate that does not change).
  const int64_t before = CommandLog::PreciseUs();
  SpinUntil(before, 2 * threshold);
  const int64_t caught = timer.Lap();
  const int64_t took = CommandLog::PreciseUs() - before;
  EXPECT_GE(caught, threshold);
  EXPECT_NEAR(static_cast<double>(caught), static_cast<double>(took), 0.01 * took + 50);

  // A lower threshold moves the gate at once.
  log.SetSlowerThanUs(CommandLog::kTickGateMinUs);
  CommandTimer lower(log, CommandLog::PreciseUs());
  ASSERT_EQ(lower.clock(), CommandLog::Clock::kTickGate);
  const int64_t from = CommandLog::PreciseUs();
  SpinUntil(from, 2 * CommandLog::kTickGateMinUs);
  EXPECT_GE(lower.Lap(), CommandLog::kTickGateMinUs);
}

TEST(CommandLogTest, SlowEntriesNewestFirstBelowThresholdNotLogged) {
  CommandLog log;  // 10000 us
  Record(log, {"GET", "fast"}, 9999);
  EXPECT_EQ(log.SlowLogLen(), 0u);
  Record(log, {"GET", "a"}, 10000, 1001);
  Record(log, {"SET", "b", "v"}, 20000, 1002);
  std::vector<SlowLogEntry> entries = log.SlowEntries(10);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_THAT(entries[0].args, ElementsAre("SET", "b", "v"));
  EXPECT_EQ(entries[0].id, 1u);
  EXPECT_EQ(entries[0].duration_us, 20000);
  EXPECT_EQ(entries[0].unix_time, 1002);
  EXPECT_EQ(entries[0].addr, "127.0.0.1:5000");
  EXPECT_EQ(entries[0].name, "name");
  EXPECT_EQ(entries[1].id, 0u);
  EXPECT_EQ(log.SlowEntries(1).size(), 1u);

  log.SetMaxLen(1);
  EXPECT_EQ(log.SlowLogLen(), 1u) << "a shorter bound drops the oldest at once";
  EXPECT_THAT(log.SlowEntries(10)[0].args, ElementsAre("SET", "b", "v"));
  log.ResetSlowLog();
  EXPECT_EQ(log.SlowLogLen(), 0u);
  Record(log, {"PING"}, 10000);
  EXPECT_EQ(log.SlowEntries(1)[0].id, 2u) << "ids go on after RESET";
}

TEST(CommandLogTest, ArgumentsAreCutAndPasswordsRedacted) {
  CommandLog log;
  log.SetSlowerThanUs(0);
  std::vector<std::string> storage = {"MSET"};
  for (int i = 0; i < 39; ++i) storage.push_back("a" + std::to_string(i));
  std::vector<std::string_view> many(storage.begin(), storage.end());
  Record(log, many, 1);
  const std::vector<std::string> args = log.SlowEntries(1)[0].args;
  ASSERT_EQ(args.size(), CommandLog::kMaxArgs);
  EXPECT_EQ(args[30], "a29");
  EXPECT_EQ(args[31], "... (9 more arguments)");

  const std::string long_value(130, 'v');
  Record(log, {"SET", "k", long_value}, 1);
  EXPECT_EQ(log.SlowEntries(1)[0].args[2], std::string(128, 'v') + "... (2 more bytes)");

  Record(log, {"AUTH", "user", "pw"}, 1);
  EXPECT_THAT(log.SlowEntries(1)[0].args, ElementsAre("AUTH", "(redacted)", "(redacted)"));
  Record(log, {"HELLO", "3", "AUTH", "user", "pw", "SETNAME", "n"}, 1);
  EXPECT_THAT(log.SlowEntries(1)[0].args,
              ElementsAre("HELLO", "3", "AUTH", "(redacted)", "(redacted)", "SETNAME", "n"));
  Record(log, {"acl", "SetUser", "u", "on", ">secret", "~*"}, 1);
  EXPECT_THAT(log.SlowEntries(1)[0].args,
              ElementsAre("acl", "SetUser", "u", "on", "(redacted)", "~*"));
}

TEST(CommandLogTest, LatencySamplesOnePerSecond) {
  CommandLog log;
  log.SetSlowerThanUs(-1);
  log.SetLatencyThresholdMs(5);
  Record(log, {"KEYS", "*"}, 4999, 100);  // 4 ms: below
  EXPECT_TRUE(log.LatencyEvents().empty());
  EXPECT_EQ(log.SlowLogLen(), 0u) << "the slow log is off";
  Record(log, {"KEYS", "*"}, 7000, 100);
  Record(log, {"KEYS", "*"}, 5000, 100);  // the same second: the largest stays
  Record(log, {"KEYS", "*"}, 6000, 101);
  Record(log, {"GET", "k"}, 9000, 101, /*fast=*/true);
  std::optional<LatencySeries> command = log.LatencyOf("command");
  ASSERT_TRUE(command.has_value());
  ASSERT_EQ(command->samples.size(), 2u);
  EXPECT_EQ(command->samples[0].unix_time, 100);
  EXPECT_EQ(command->samples[0].ms, 7);
  EXPECT_EQ(command->samples[1].ms, 6);
  EXPECT_EQ(command->max_ms, 7);
  ASSERT_EQ(log.LatencyEvents().size(), 2u);
  EXPECT_EQ(log.LatencyEvents()[1].event, "fast-command");

  for (int64_t t = 200; t < 400; ++t) Record(log, {"KEYS", "*"}, 5000, t);
  command = log.LatencyOf("command");
  ASSERT_EQ(command->samples.size(), CommandLog::kLatencySamples);
  EXPECT_EQ(command->samples.back().unix_time, 399);

  const std::vector<std::string_view> fast = {"fast-command", "nosuch"};
  EXPECT_EQ(log.ResetLatency(fast), 1u);
  EXPECT_FALSE(log.LatencyOf("fast-command").has_value());
  EXPECT_EQ(log.ResetLatency({}), 1u);
  EXPECT_TRUE(log.LatencyEvents().empty());
}

}  // namespace
}  // namespace corral::server

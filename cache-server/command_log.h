// SLOWLOG and LATENCY (Redis 7.0's slowlog.c and latency.c): the commands that ran for at least
// slowlog-log-slower-than microseconds, the latency monitor's per-event spikes (events
// "command" and "fast-command"), and whether every command's duration goes to its histogram
// (latency-tracking, LATENCY HISTOGRAM); and which clock sessions time commands with, chosen
// from those settings, so that a server that logs nothing reads no clock per command.
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace corral::server {

// One SLOWLOG GET entry.
struct SlowLogEntry {
  uint64_t id = 0;
  int64_t unix_time = 0;
  int64_t duration_us = 0;
  // The arguments as Redis keeps them: at most 32 (the last then says "... (N more arguments)"),
  // each cut to 128 bytes plus "... (N more bytes)"; passwords are "(redacted)".
  std::vector<std::string> args;
  std::string addr, name;
};

// One latency event's record (LATENCY LATEST and HISTORY).
struct LatencySeries {
  struct Sample {
    int64_t unix_time = 0;
    int64_t ms = 0;
  };
  std::string event;
  std::vector<Sample> samples;  // oldest first; at most kLatencySamples, one per second
  int64_t max_ms = 0;           // the largest since the last reset
};

// One command's durations for LATENCY HISTOGRAM, in powers of two as Redis reports them: bucket
// b counts the durations below 1024 << b nanoseconds (and at least the bucket before's bound);
// durations are clamped to 1 s, as Redis's histograms track 1 us to 1 s. Relaxed atomics: any
// thread adds, a reader sees each count, not one instant of them all.
class LatencyHistogram {
 public:
  static constexpr int kBuckets = 21;  // 1024 << 20 ns is just over the 1 s clamp
  void Add(int64_t duration_us);
  // The bucket of a duration, and a bucket's bound in whole microseconds (1, 2, 4, ... 32, 65).
  static int BucketOf(int64_t duration_us);
  static int64_t BoundUs(int b) { return (int64_t{1024} << b) / 1000; }
  uint64_t Count(int b) const { return counts_[b].load(std::memory_order_relaxed); }
  uint64_t Total() const;
  void Reset();

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
};

// LATENCY GRAPH's picture of one event, drawn as Redis's sparkline.c draws it: a title, a rule
// of 80 dashes, then per run of 80 samples four rows where each column rises from '_' through
// 'o' and '#' to '|' in proportion to its sample between the event's low and high, a blank row,
// and each sample's age ("12s", "3m", "2h", "1d") written downwards below its column.
// `now_unix` dates the samples. `series` has at least one sample.
std::string LatencyGraph(const LatencySeries& series, int64_t now_unix);

class CommandLog {
 public:
  static constexpr size_t kMaxArgs = 32;
  static constexpr size_t kMaxArgBytes = 128;
  static constexpr size_t kLatencySamples = 160;

  // From this threshold on, commands are gated on the coarse clock (kCoarseGate).
  static constexpr int64_t kCoarseGateMinUs = 100'000;
  // From this threshold on (below kCoarseGateMinUs), on the CPU's tick counter (kTickGate).
  static constexpr int64_t kTickGateMinUs = 1000;
  // The tick counter's rate is measured against CLOCK_MONOTONIC over at least this long after
  // the log is made; until then kTickGate times as kPrecise does.
  static constexpr int64_t kTickCalibrationUs = 50'000;

  // How sessions time their commands (CommandTimer).
  enum class Clock : uint8_t {
    kOff,  // slow log and latency monitor both off: no clock is read
    // Every active threshold is at least kCoarseGateMinUs: each command reads
    // CLOCK_MONOTONIC_COARSE (a few ns), and only one whose coarse duration reaches half the
    // threshold reads CLOCK_MONOTONIC as well, for its duration. (The coarse clock is not used
    // for shorter thresholds: it was measured lagging CLOCK_MONOTONIC by 3 to 11 ms on a VM
    // whose coarse resolution is 4 ms.)
    kCoarseGate,
    // Every active threshold is at least kTickGateMinUs (as Redis's default 10 ms is), and the
    // CPU has a tick counter of constant rate (x86-64's invariant TSC, aarch64's virtual
    // counter): each command reads the counter (about 10 ns on a VM, where CLOCK_MONOTONIC
    // through kvm-clock takes 26), and only one whose ticks reach half the threshold reads
    // CLOCK_MONOTONIC as well, for its duration.
    kTickGate,
    kPrecise,  // each command reads CLOCK_MONOTONIC (steady_clock)
  };

  // Redis's defaults: 10000 us, 128 entries, latency monitor off.
  CommandLog();

  Clock clock() const { return clock_.load(std::memory_order_relaxed); }
  // CLOCK_MONOTONIC (steady_clock) and CLOCK_MONOTONIC_COARSE in microseconds: one time line,
  // but a coarse reading lags a precise one by the time since the last clock tick, or more.
  static int64_t PreciseUs();
  static int64_t CoarseUs();
  // The CPU's tick counter, and whether it runs at a constant rate on every core (kTickGate is
  // chosen only then). Its rate is measured, not assumed.
  static uint64_t Ticks() {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t ticks;
    asm volatile("mrs %0, cntvct_el0" : "=r"(ticks));
    return ticks;
#else
    return 0;
#endif
  }
  static bool TicksUsable();
  // kTickGate's gate: half the shortest threshold in ticks, and the microseconds per tick; 0 and
  // 0 until the rate is measured. `now_us` and `now_ticks`, read together, measure it once
  // kTickCalibrationUs has passed since the log was made.
  struct TickGate {
    uint64_t gate_ticks = 0;
    double us_per_tick = 0;
  };
  TickGate TickGateAt(int64_t now_us, uint64_t now_ticks) const {
    const uint64_t gate = gate_ticks_.load(std::memory_order_relaxed);
    if (gate != 0) return {gate, us_per_tick_.load(std::memory_order_relaxed)};
    return MeasureTicks(now_us, now_ticks);
  }
  // The shortest duration anything is recorded at (INT64_MAX while everything is off; 0 while
  // latency-tracking is on).
  int64_t min_threshold_us() const { return min_threshold_us_.load(std::memory_order_relaxed); }

  // A command (`args`, name first) ran for `duration_us` at `unix_time` on connection `addr`
  // named `name`: logged if it reached slowlog-log-slower-than, and sampled as "fast-command"
  // (`fast`) or "command" if it reached latency-monitor-threshold.
  void Record(std::span<const std::string_view> args, bool fast, int64_t duration_us,
              int64_t unix_time, std::string_view addr, std::string_view name);

  // CONFIG GET / SET. Negative slower-than disables the slow log, 0 logs every command; a
  // latency threshold of 0 disables the monitor. A shorter max_len drops the oldest at once.
  void SetSlowerThanUs(int64_t us);
  int64_t slower_than_us() const { return slower_than_us_.load(std::memory_order_relaxed); }
  void SetMaxLen(size_t n);
  size_t max_len() const { return max_len_.load(std::memory_order_relaxed); }
  void SetLatencyThresholdMs(int64_t ms);
  // latency-tracking: every command is timed on the precise clock and counted in its
  // histogram (LATENCY HISTOGRAM). Off by default in corral (on in Redis): it reads the clock
  // and looks the command up once more per command.
  void SetLatencyTracking(bool on);
  bool latency_tracking() const { return latency_tracking_.load(std::memory_order_relaxed); }
  int64_t latency_threshold_ms() const {
    return latency_threshold_ms_.load(std::memory_order_relaxed);
  }

  // SLOWLOG GET (newest first, at most `count`), LEN and RESET (ids keep counting).
  std::vector<SlowLogEntry> SlowEntries(size_t count) const;
  size_t SlowLogLen() const;
  void ResetSlowLog();

  // LATENCY LATEST (every event with samples, by name) and HISTORY (none for an unknown event).
  std::vector<LatencySeries> LatencyEvents() const;
  std::optional<LatencySeries> LatencyOf(std::string_view event) const;
  // LATENCY RESET: the named events (none: every event); returns how many had samples.
  size_t ResetLatency(std::span<const std::string_view> events);

 private:
  // Picks the clock and min_threshold_us_ from the thresholds, and the tick gate from them and
  // the measured rate. Called with config_mu_ held.
  void UpdateClock();
  // gate_ticks_ from min_threshold_us_ and us_per_tick_ (none while unmeasured). Called with
  // calibrate_mu_ held.
  void SetGateTicks() const;
  // TickGateAt before the rate is known: measures it once kTickCalibrationUs has passed.
  TickGate MeasureTicks(int64_t now_us, uint64_t now_ticks) const;

  std::mutex config_mu_;  // serialises the setters (each reads every threshold)
  std::atomic<int64_t> slower_than_us_{10000};
  std::atomic<size_t> max_len_{128};
  std::atomic<int64_t> latency_threshold_ms_{0};
  std::atomic<bool> latency_tracking_{false};
  std::atomic<int64_t> min_threshold_us_;
  std::atomic<Clock> clock_;
  // The tick counter's rate: the reading when the log was made, then (measured) the
  // microseconds per tick and the gate (TickGateAt). Written with config_mu_ held.
  const bool ticks_usable_;
  const int64_t origin_us_;
  const uint64_t origin_ticks_;
  mutable std::mutex calibrate_mu_;  // one thread measures the rate
  mutable std::atomic<double> us_per_tick_{0};
  mutable std::atomic<uint64_t> gate_ticks_{0};

  mutable std::mutex mu_;          // the slow log and the latency series
  std::deque<SlowLogEntry> slow_;  // newest first
  uint64_t next_id_ = 0;
  std::map<std::string, LatencySeries, std::less<>> latency_;
};

// Times the commands of one batch on one thread (a session's Process(): the commands parsed
// from one read). One clock reading per command: the end of one command is the start of the
// next, and the first starts at the batch's own precise reading. Not thread-safe; cheap to make.
class CommandTimer {
 public:
  // `batch_start_us`: the precise clock (CommandLog::PreciseUs's time line) when the batch began.
  CommandTimer(const CommandLog& log, int64_t batch_start_us)
      : clock_(log.clock()),
        threshold_us_(log.min_threshold_us()),
        batch_start_us_(batch_start_us),
        precise_mark_us_(batch_start_us) {
    if (clock_ == CommandLog::Clock::kTickGate) {
      tick_mark_ = CommandLog::Ticks();
      gate_ = log.TickGateAt(batch_start_us, tick_mark_);
      if (gate_.gate_ticks == 0) clock_ = CommandLog::Clock::kPrecise;  // not measured yet
    } else if (clock_ == CommandLog::Clock::kCoarseGate) {
      coarse_mark_us_ = CommandLog::CoarseUs();
    }
  }
  // False while the log wants nothing (CommandLog::Clock::kOff): Lap need not be called.
  bool active() const { return clock_ != CommandLog::Clock::kOff; }
  // The clock this batch is timed with: the log's, but kPrecise for kTickGate until the tick
  // rate is measured.
  CommandLog::Clock clock() const { return clock_; }
  // After a command: its duration in microseconds when it reached the log's shortest threshold,
  // else -1. Exact when the command's start was read precisely (the batch's first command, or
  // one after a command that was itself timed precisely); otherwise its start is estimated from
  // the gate's clock: under kCoarseGate off by the coarse clock's lag (a few ms), under
  // kTickGate by the measured tick rate's error (well under 0.1%).
  int64_t Lap() {
    if (clock_ == CommandLog::Clock::kTickGate) [[likely]] {
      // A thread moved to a core whose counter is behind shows a huge unsigned difference: it
      // passes the gate and is timed precisely.
      const uint64_t end = CommandLog::Ticks();
      const uint64_t ticks = end - tick_mark_;
      tick_mark_ = end;
      if (ticks < gate_.gate_ticks) {
        precise_mark_us_ = -1;
        return -1;
      }
      return Gated(static_cast<int64_t>(static_cast<double>(ticks) * gate_.us_per_tick));
    }
    return LapOtherClock();
  }

 private:
  // Lap under kPrecise, kCoarseGate and kOff.
  int64_t LapOtherClock();
  // kCoarseGate and kTickGate: a command whose gate-clock duration was `gate_us` (estimated,
  // -1 if under the gate) ended; times it precisely if it passed the gate.
  int64_t Gated(int64_t gate_us);

  CommandLog::Clock clock_;
  int64_t threshold_us_;
  const int64_t batch_start_us_;
  int64_t precise_mark_us_;      // the current command's precise start; -1: not read
  int64_t coarse_mark_us_ = -1;  // kCoarseGate: its coarse start
  uint64_t tick_mark_ = 0;       // kTickGate: its start in ticks
  CommandLog::TickGate gate_;    // kTickGate
};

}  // namespace corral::server

// SLOWLOG and LATENCY (Redis 7.0's slowlog.c and latency.c): the commands that ran for at least
// slowlog-log-slower-than microseconds, and the latency monitor's per-event spikes (events
// "command" and "fast-command"); and which clock sessions time commands with, chosen from the
// thresholds, so that a server that logs nothing reads no clock per command. Thread-safe.
#pragma once

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

class CommandLog {
 public:
  static constexpr size_t kMaxArgs = 32;
  static constexpr size_t kMaxArgBytes = 128;
  static constexpr size_t kLatencySamples = 160;
  // kCoarse is used when every active threshold is at least this many times the coarse clock's
  // resolution: the measurement's error is then at most a tenth of the threshold.
  static constexpr int64_t kCoarseFactor = 10;

  // How sessions time their commands: one reading per command (its end, which is the next
  // command's start within a batch; the batch's first command starts at the batch's own
  // reading), of the cheapest clock the thresholds allow.
  enum class Clock : uint8_t {
    kOff,      // slow log and latency monitor both off: no clock is read
    kCoarse,   // CLOCK_MONOTONIC_COARSE: every active threshold >= kCoarseFactor x its resolution
    kPrecise,  // CLOCK_MONOTONIC (std::chrono::steady_clock)
  };

  // Redis's defaults: 10000 us, 128 entries, latency monitor off.
  CommandLog();

  Clock clock() const { return clock_.load(std::memory_order_relaxed); }
  // Microseconds on `clock` (kCoarse and kPrecise share CLOCK_MONOTONIC's time line, but a
  // coarse reading may be behind a precise one by up to its resolution).
  static int64_t NowUs(Clock clock);
  // The shortest duration anything is recorded at (INT64_MAX while both are off).
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
  // Picks the clock and min_threshold_us_ from the thresholds. Called with config_mu_ held.
  void UpdateClock();

  std::mutex config_mu_;  // serialises the setters (each reads every threshold)
  std::atomic<int64_t> slower_than_us_{10000};
  std::atomic<size_t> max_len_{128};
  std::atomic<int64_t> latency_threshold_ms_{0};
  std::atomic<int64_t> min_threshold_us_;
  std::atomic<Clock> clock_;
  const int64_t coarse_resolution_us_;

  mutable std::mutex mu_;          // the slow log and the latency series
  std::deque<SlowLogEntry> slow_;  // newest first
  uint64_t next_id_ = 0;
  std::map<std::string, LatencySeries, std::less<>> latency_;
};

}  // namespace corral::server

// See command_log.h.
#include "cache-server/command_log.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <fstream>
#include <limits>
#include <sstream>

namespace corral::server {

namespace {

constexpr std::string_view kRedacted = "(redacted)";

bool EqualsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// Whether argument `i` of `args` is a secret that no log may keep: AUTH's arguments, HELLO's
// AUTH user and password (as Redis redacts them), and ACL SETUSER's password rules.
bool Secret(std::span<const std::string_view> args, size_t i) {
  if (EqualsLower(args[0], "auth")) return true;
  if (EqualsLower(args[0], "hello")) {
    for (size_t j = 2; j < args.size() && j < i; ++j) {
      if (EqualsLower(args[j], "auth") && i <= j + 2) return true;
    }
    return false;
  }
  if (EqualsLower(args[0], "acl") && args.size() > 1 && EqualsLower(args[1], "setuser") && i > 2) {
    const std::string_view rule = args[i];
    return !rule.empty() && (rule[0] == '>' || rule[0] == '<' || rule[0] == '#' || rule[0] == '!');
  }
  return false;
}

}  // namespace

CommandLog::CommandLog()
    : ticks_usable_(TicksUsable()), origin_us_(PreciseUs()), origin_ticks_(Ticks()) {
  std::lock_guard lock(config_mu_);
  UpdateClock();
}

bool CommandLog::TicksUsable() {
#if defined(__x86_64__)
  // The TSC's rate is constant (constant_tsc) and it runs in every C-state (nonstop_tsc); the
  // kernel clears these flags where it cannot trust them.
  static const bool usable = [] {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
      if (!line.starts_with("flags")) continue;
      std::istringstream flags(line.substr(line.find(':') + 1));
      bool constant = false, nonstop = false;
      for (std::string flag; flags >> flag;) {
        constant = constant || flag == "constant_tsc";
        nonstop = nonstop || flag == "nonstop_tsc";
      }
      return constant && nonstop;
    }
    return false;
  }();
  return usable;
#elif defined(__aarch64__)
  return true;  // the generic timer's virtual count runs at a fixed rate (CNTFRQ_EL0)
#else
  return false;
#endif
}

CommandLog::TickGate CommandLog::MeasureTicks(int64_t now_us, uint64_t now_ticks) const {
  if (now_us - origin_us_ < kTickCalibrationUs) return {};
  // Measured once: the ticks over the microseconds since the log was made.
  std::lock_guard lock(calibrate_mu_);
  if (us_per_tick_.load(std::memory_order_relaxed) == 0 && now_ticks > origin_ticks_) {
    us_per_tick_.store(
        static_cast<double>(now_us - origin_us_) / static_cast<double>(now_ticks - origin_ticks_),
        std::memory_order_relaxed);
    SetGateTicks();
  }
  return {gate_ticks_.load(std::memory_order_relaxed),
          us_per_tick_.load(std::memory_order_relaxed)};
}

void CommandLog::SetGateTicks() const {
  const double us_per_tick = us_per_tick_.load(std::memory_order_relaxed);
  const int64_t min_us = min_threshold_us_.load(std::memory_order_relaxed);
  if (us_per_tick <= 0 || min_us == std::numeric_limits<int64_t>::max()) return;
  gate_ticks_.store(
      std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(min_us / 2) / us_per_tick)),
      std::memory_order_relaxed);
}

int64_t CommandLog::PreciseUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t CommandLog::CoarseUs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return now.tv_sec * 1'000'000 + now.tv_nsec / 1000;
}

void CommandLog::UpdateClock() {
  int64_t min_us = std::numeric_limits<int64_t>::max();
  const int64_t slower_than = slower_than_us_.load(std::memory_order_relaxed);
  if (slower_than >= 0) min_us = slower_than;
  const int64_t latency_ms = latency_threshold_ms_.load(std::memory_order_relaxed);
  if (latency_ms > 0) {
    const int64_t us = latency_ms > std::numeric_limits<int64_t>::max() / 1000
                           ? std::numeric_limits<int64_t>::max()
                           : latency_ms * 1000;
    min_us = std::min(min_us, us);
  }
  if (latency_tracking_.load(std::memory_order_relaxed)) min_us = 0;
  min_threshold_us_.store(min_us, std::memory_order_relaxed);
  {
    std::lock_guard lock(calibrate_mu_);
    SetGateTicks();
  }
  Clock clock = Clock::kPrecise;
  if (min_us == std::numeric_limits<int64_t>::max()) {
    clock = Clock::kOff;
  } else if (min_us >= kCoarseGateMinUs) {
    clock = Clock::kCoarseGate;
  } else if (min_us >= kTickGateMinUs && ticks_usable_) {
    clock = Clock::kTickGate;
  }
  clock_.store(clock, std::memory_order_relaxed);
}

int64_t CommandTimer::LapOtherClock() {
  if (clock_ == CommandLog::Clock::kPrecise) {
    const int64_t end = CommandLog::PreciseUs();
    const int64_t us = end - precise_mark_us_;
    precise_mark_us_ = end;
    return us >= threshold_us_ ? us : -1;
  }
  if (clock_ == CommandLog::Clock::kOff) return -1;
  // kCoarseGate: the coarse clock's lag varies by a few ms, far below half the threshold, so a
  // command that reached the threshold shows at least half of it on the coarse clock.
  const int64_t coarse_end = CommandLog::CoarseUs();
  const int64_t coarse_us = coarse_end - coarse_mark_us_;
  coarse_mark_us_ = coarse_end;
  return Gated(coarse_us < threshold_us_ / 2 ? -1 : coarse_us);
}

int64_t CommandTimer::Gated(int64_t gate_us) {
  if (gate_us < 0) {
    precise_mark_us_ = -1;
    return -1;
  }
  const int64_t end = CommandLog::PreciseUs();
  // An estimate from the gate's clock is never longer than the whole batch so far.
  const int64_t us =
      precise_mark_us_ >= 0 ? end - precise_mark_us_ : std::min(gate_us, end - batch_start_us_);
  precise_mark_us_ = end;
  return us >= threshold_us_ ? us : -1;
}

void CommandLog::SetSlowerThanUs(int64_t us) {
  std::lock_guard lock(config_mu_);
  slower_than_us_.store(us, std::memory_order_relaxed);
  UpdateClock();
}

void CommandLog::SetLatencyThresholdMs(int64_t ms) {
  std::lock_guard lock(config_mu_);
  latency_threshold_ms_.store(ms, std::memory_order_relaxed);
  UpdateClock();
}

void CommandLog::SetLatencyTracking(bool on) {
  std::lock_guard lock(config_mu_);
  latency_tracking_.store(on, std::memory_order_relaxed);
  UpdateClock();
}

int LatencyHistogram::BucketOf(int64_t duration_us) {
  const int64_t ns = std::clamp<int64_t>(duration_us, 0, 1'000'000) * 1000;
  return static_cast<int>(std::bit_width(static_cast<uint64_t>(ns) >> 10));
}

void LatencyHistogram::Add(int64_t duration_us) {
  counts_[BucketOf(duration_us)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::Total() const {
  uint64_t total = 0;
  for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
  return total;
}

void LatencyHistogram::Reset() {
  for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
}

void CommandLog::SetMaxLen(size_t n) {
  max_len_.store(n, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  if (slow_.size() > n) slow_.resize(n);
}

void CommandLog::Record(std::span<const std::string_view> args, bool fast, int64_t duration_us,
                        int64_t unix_time, std::string_view addr, std::string_view name) {
  if (args.empty()) return;
  const int64_t slower_than = slower_than_us_.load(std::memory_order_relaxed);
  const bool slow = slower_than >= 0 && duration_us >= slower_than;
  const int64_t latency_ms = latency_threshold_ms_.load(std::memory_order_relaxed);
  const int64_t ms = duration_us / 1000;
  const bool spike = latency_ms > 0 && ms >= latency_ms;
  if (!slow && !spike) return;
  SlowLogEntry entry;
  if (slow) {
    // Built before taking the lock: the copies are the expensive part.
    const size_t argc = std::min(args.size(), kMaxArgs);
    entry.args.reserve(argc);
    for (size_t i = 0; i < argc; ++i) {
      if (argc != args.size() && i == argc - 1) {
        entry.args.push_back("... (" + std::to_string(args.size() - argc + 1) + " more arguments)");
      } else if (i > 0 && Secret(args, i)) {
        entry.args.emplace_back(kRedacted);
      } else if (args[i].size() > kMaxArgBytes) {
        entry.args.push_back(std::string(args[i].substr(0, kMaxArgBytes)) + "... (" +
                             std::to_string(args[i].size() - kMaxArgBytes) + " more bytes)");
      } else {
        entry.args.emplace_back(args[i]);
      }
    }
    entry.unix_time = unix_time;
    entry.duration_us = duration_us;
    entry.addr = std::string(addr);
    entry.name = std::string(name);
  }
  std::lock_guard lock(mu_);
  if (slow) {
    entry.id = next_id_++;
    slow_.push_front(std::move(entry));
    const size_t max_len = max_len_.load(std::memory_order_relaxed);
    while (slow_.size() > max_len) slow_.pop_back();
  }
  if (spike) {
    // Redis's latencyAddSample: one sample per second (the largest), the last 160 kept.
    const std::string_view event = fast ? "fast-command" : "command";
    auto it = latency_.find(event);
    if (it == latency_.end()) {
      it = latency_.emplace(std::string(event), LatencySeries{}).first;
      it->second.event = std::string(event);
    }
    LatencySeries& series = it->second;
    series.max_ms = std::max(series.max_ms, ms);
    if (!series.samples.empty() && series.samples.back().unix_time == unix_time) {
      series.samples.back().ms = std::max(series.samples.back().ms, ms);
    } else {
      series.samples.push_back({unix_time, ms});
      if (series.samples.size() > kLatencySamples) series.samples.erase(series.samples.begin());
    }
  }
}

std::vector<SlowLogEntry> CommandLog::SlowEntries(size_t count) const {
  std::lock_guard lock(mu_);
  const size_t n = std::min(count, slow_.size());
  return std::vector<SlowLogEntry>(slow_.begin(), slow_.begin() + static_cast<ptrdiff_t>(n));
}

size_t CommandLog::SlowLogLen() const {
  std::lock_guard lock(mu_);
  return slow_.size();
}

void CommandLog::ResetSlowLog() {
  std::lock_guard lock(mu_);
  slow_.clear();
}

std::vector<LatencySeries> CommandLog::LatencyEvents() const {
  std::lock_guard lock(mu_);
  std::vector<LatencySeries> out;
  for (const auto& [name, series] : latency_) out.push_back(series);
  return out;
}

std::optional<LatencySeries> CommandLog::LatencyOf(std::string_view event) const {
  std::lock_guard lock(mu_);
  auto it = latency_.find(event);
  if (it == latency_.end()) return std::nullopt;
  return it->second;
}

size_t CommandLog::ResetLatency(std::span<const std::string_view> events) {
  std::lock_guard lock(mu_);
  if (events.empty()) {
    const size_t n = latency_.size();
    latency_.clear();
    return n;
  }
  size_t n = 0;
  for (std::string_view event : events) {
    auto it = latency_.find(event);
    if (it == latency_.end()) continue;
    latency_.erase(it);
    ++n;
  }
  return n;
}

std::string LatencyGraph(const LatencySeries& series, int64_t now_unix) {
  constexpr size_t kColumns = 80;
  constexpr int kRows = 4;
  constexpr std::string_view kFill = "_o#";
  int64_t low = series.samples.front().ms, high = low;
  for (const LatencySeries::Sample& s : series.samples) {
    low = std::min(low, s.ms);
    high = std::max(high, s.ms);
  }
  std::string graph = series.event + " - high " + std::to_string(high) + " ms, low " +
                      std::to_string(low) + " ms (all time high " + std::to_string(series.max_ms) +
                      " ms)\n" + std::string(kColumns, '-') + "\n";
  const int steps = static_cast<int>(kFill.size()) * kRows;
  const double range = high == low ? 1.0 : static_cast<double>(high - low);
  for (size_t first = 0; first < series.samples.size(); first += kColumns) {
    const size_t n = std::min(kColumns, series.samples.size() - first);
    if (first != 0) graph += '\n';
    std::vector<int> step(n);
    std::vector<std::string> labels(n);
    size_t longest = 0;
    for (size_t j = 0; j < n; ++j) {
      const LatencySeries::Sample& s = series.samples[first + j];
      step[j] = std::clamp(static_cast<int>(static_cast<double>(s.ms - low) * steps / range), 0,
                           steps - 1);
      const int64_t age = std::max<int64_t>(0, now_unix - s.unix_time);
      labels[j] = age < 60      ? std::to_string(age) + "s"
                  : age < 3600  ? std::to_string(age / 60) + "m"
                  : age < 86400 ? std::to_string(age / 3600) + "h"
                                : std::to_string(age / 86400) + "d";
      longest = std::max(longest, labels[j].size());
    }
    for (int row = 0; row < kRows; ++row) {
      std::string line(n, ' ');
      for (size_t j = 0; j < n; ++j) {
        const int index = step[j] - (kRows - row - 1) * static_cast<int>(kFill.size());
        if (index >= static_cast<int>(kFill.size())) {
          line[j] = '|';
        } else if (index >= 0) {
          line[j] = kFill[static_cast<size_t>(index)];
        }
      }
      graph += line + "\n";
    }
    graph += std::string(n, ' ') + "\n";
    for (size_t c = 0; c < longest; ++c) {
      std::string line(n, ' ');
      for (size_t j = 0; j < n; ++j) {
        if (c < labels[j].size()) line[j] = labels[j][c];
      }
      graph += line + "\n";
    }
  }
  return graph;
}

}  // namespace corral::server

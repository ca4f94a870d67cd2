// Injected time for lease/: a monotonic millisecond clock, the real one and a fake one for tests.
// Everything in lease/ that needs "now" takes a const Clock&, so tests drive time by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

namespace corral::lease {

// Monotonic milliseconds. Only differences are meaningful.
using Millis = int64_t;
inline constexpr Millis kNever = std::numeric_limits<Millis>::max();

class Clock {
 public:
  virtual ~Clock() = default;
  // Thread-safe; never goes backwards.
  virtual Millis NowMs() const = 0;
};

class SteadyClock final : public Clock {
 public:
  Millis NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// Time stands still until a test moves it. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Millis start = 1'000'000) : now_(start) {}
  Millis NowMs() const override { return now_.load(std::memory_order_acquire); }
  void Set(Millis t) { now_.store(t, std::memory_order_release); }
  void Advance(Millis d) { now_.fetch_add(d, std::memory_order_acq_rel); }

 private:
  std::atomic<Millis> now_;
};

}  // namespace corral::lease

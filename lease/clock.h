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

// The time of one batch of work on one thread — a read from a socket and the commands in it —
// read once, as Redis reads it once per event-loop iteration instead of once per command. While a
// snapshot is open on a thread, SteadyNow() and SteadyClock::NowMs() on that thread return it; on
// every other thread (timers, database callbacks) they read the clock. Snapshots nest; each must
// be closed on the thread that opened it, innermost first (RAII). A FakeClock ignores them.
class ClockSnapshot {
 public:
  ClockSnapshot() : now_(std::chrono::steady_clock::now()), outer_(current_) { current_ = this; }
  ~ClockSnapshot() { current_ = outer_; }
  ClockSnapshot(const ClockSnapshot&) = delete;
  ClockSnapshot& operator=(const ClockSnapshot&) = delete;

  // The innermost open snapshot's time on this thread, or the clock's.
  static std::chrono::steady_clock::time_point Now() {
    return current_ != nullptr ? current_->now_ : std::chrono::steady_clock::now();
  }

 private:
  std::chrono::steady_clock::time_point now_;
  const ClockSnapshot* outer_;
  static inline thread_local const ClockSnapshot* current_ = nullptr;
};

// steady_clock::now(), or the open snapshot's time (see ClockSnapshot).
inline std::chrono::steady_clock::time_point SteadyNow() { return ClockSnapshot::Now(); }

class SteadyClock final : public Clock {
 public:
  Millis NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyNow().time_since_epoch())
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

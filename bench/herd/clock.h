// The one clock corral-herd measures with (steady, monotonic) and small conversions around it.
#pragma once

#include <chrono>
#include <cstdint>

namespace corral::herd {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

inline int64_t MicrosBetween(TimePoint from, TimePoint to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

inline double SecondsBetween(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

inline Clock::duration Millis(double ms) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

}  // namespace corral::herd

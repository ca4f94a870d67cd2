// Injected randomness for lease/: TTL jitter and refresh-ahead draws come from a Random&, so tests
// can fix every draw.
#pragma once

#include <atomic>
#include <cstdint>
#include <random>
#include <vector>

namespace corral::lease {

class Random {
 public:
  virtual ~Random() = default;
  // Uniform in [0, 1). Thread-safe.
  virtual double Uniform01() = 0;
};

// One engine per thread, seeded from std::random_device; no lock on the hot path.
class SystemRandom final : public Random {
 public:
  double Uniform01() override {
    thread_local std::mt19937_64 engine{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
  }
};

// Returns the given values in turn, cycling; a single value makes every draw the same. Thread-safe.
class FakeRandom final : public Random {
 public:
  explicit FakeRandom(std::vector<double> values) : values_(std::move(values)) {}
  double Uniform01() override {
    return values_[next_.fetch_add(1, std::memory_order_relaxed) % values_.size()];
  }

 private:
  std::vector<double> values_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace corral::lease

// Micro-benchmarks of lease::Store's hot path: GET hits and same-size SET overwrites of 100-byte
// values over 1M (2^20) keys, on 1 and 2 threads, keys picked at random per thread, under each
// eviction policy (the benchmark's argument: 0 tinylfu, 1 clock), so that what the policy adds to
// a hit is measured in-process, away from the network's noise.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "lease/clock.h"
#include "lease/random.h"
#include "lease/store.h"

namespace corral::lease {
namespace {

constexpr size_t kKeys = size_t{1} << 20;
constexpr size_t kValueSize = 100;

// One store filled with every key, shared by all benchmarks and threads; built on first use.
struct Filled {
  SteadyClock clock;
  SystemRandom random;
  Store store;
  std::vector<std::string> keys;
  std::string value = std::string(kValueSize, 'v');

  explicit Filled(EvictionPolicy policy)
      : store(StoreOptions{.max_bytes = size_t{512} << 20, .shards = 64, .policy = policy}, clock,
              random) {
    keys.reserve(kKeys);
    for (size_t i = 0; i < kKeys; ++i) {
      keys.push_back("key:" + std::to_string(i));
      store.Set(keys.back(), value, std::nullopt);
    }
  }
};

EvictionPolicy PolicyOf(const benchmark::State& state) {
  return state.range(0) == 0 ? EvictionPolicy::kTinyLfu : EvictionPolicy::kClock;
}

// One filled store per policy, each built on first use (and kept: both fit in memory).
Filled& Shared(EvictionPolicy policy) {
  static Filled* filled[2] = {};
  const size_t i = static_cast<size_t>(policy);
  static std::once_flag once[2];
  std::call_once(once[i], [&] { filled[i] = new Filled(policy); });
  return *filled[i];
}

// xorshift64: a cheap per-thread key picker.
uint64_t Next(uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

void BM_StoreGetHit(benchmark::State& state) {
  Filled& filled = Shared(PolicyOf(state));
  uint64_t x = 0x9e3779b97f4a7c15ull * (state.thread_index() + 1);
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string& key = filled.keys[Next(x) & (kKeys - 1)];
    const bool hit = filled.store.Get(
        key, [&](std::string_view value, const EntryMeta&) { bytes += value.size(); });
    benchmark::DoNotOptimize(hit);
  }
  if (bytes != state.iterations() * kValueSize) state.SkipWithError("a GET missed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreGetHit)->ArgName("clock")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();

void BM_StoreSetOverwrite(benchmark::State& state) {
  Filled& filled = Shared(PolicyOf(state));
  uint64_t x = 0x2545f4914f6cdd1dull * (state.thread_index() + 1);
  for (auto _ : state) {
    const std::string& key = filled.keys[Next(x) & (kKeys - 1)];
    benchmark::DoNotOptimize(filled.store.Set(key, filled.value, std::nullopt));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreSetOverwrite)
    ->ArgName("clock")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

}  // namespace
}  // namespace corral::lease

// Micro-benchmarks for lease/lease_table: the cost of a lease with no contention, of waking N
// waiters with one result, and of two threads fighting over the same or different keys.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "lease/clock.h"
#include "lease/lease_table.h"

namespace corral::lease {
namespace {

const SteadyClock kClock;

std::vector<std::string> MakeKeys(size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) keys.push_back("user:" + std::to_string(1'000'000 + i));
  return keys;
}

LoadResult Value() { return {LoadResult::Kind::kValue, "{\"id\":1,\"name\":\"alice\"}"}; }

// Acquire and complete with nobody waiting: the cost every cache miss pays.
void BM_AcquireComplete(benchmark::State& state) {
  LeaseTable table({}, kClock);
  const std::vector<std::string> keys = MakeKeys(1024);
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ & 1023];
    auto a = table.AcquireOrWait(key, nullptr);
    benchmark::DoNotOptimize(table.Complete(key, a.token, Value()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AcquireComplete);

// Refresh-ahead probing a key that is already being loaded.
void BM_TryAcquireHeld(benchmark::State& state) {
  LeaseTable table({}, kClock);
  LeaseToken t = *table.TryAcquire("user:1");
  for (auto _ : state) benchmark::DoNotOptimize(table.TryAcquire("user:1"));
  table.Complete("user:1", t, Value());
}
BENCHMARK(BM_TryAcquireHeld);

// One leader, range(0) waiters, one Complete that wakes them all with a shared result.
void BM_AcquireCompleteWithWaiters(benchmark::State& state) {
  LeaseTable table({}, kClock);
  const int64_t waiters = state.range(0);
  int64_t woken = 0;
  for (auto _ : state) {
    auto a = table.AcquireOrWait("user:1", nullptr);
    for (int64_t i = 0; i < waiters; ++i) {
      table.AcquireOrWait("user:1", [&woken](WaitOutcome o) { woken += o.result != nullptr; });
    }
    benchmark::DoNotOptimize(table.Complete("user:1", a.token, Value()));
  }
  if (woken != waiters * static_cast<int64_t>(state.iterations())) state.SkipWithError("lost");
  state.SetItemsProcessed(state.iterations() * (waiters + 1));
}
BENCHMARK(BM_AcquireCompleteWithWaiters)->Arg(1)->Arg(16)->Arg(256)->Arg(10'000);

// Waiters that all time out through ExpireDue.
void BM_WaitersTimeOut(benchmark::State& state) {
  FakeClock clock;
  LeaseTable table({.wait_timeout_ms = 10}, clock);
  const int64_t waiters = state.range(0);
  auto a = table.AcquireOrWait("user:1", nullptr);
  for (auto _ : state) {
    for (int64_t i = 0; i < waiters; ++i) table.AcquireOrWait("user:1", [](WaitOutcome) {});
    clock.Advance(10);
    benchmark::DoNotOptimize(table.ExpireDue());
  }
  table.Complete("user:1", a.token, Value());
  state.SetItemsProcessed(state.iterations() * waiters);
}
BENCHMARK(BM_WaitersTimeOut)->Arg(256);

// Two threads on one key: each either leads (and completes) or waits on the other's lease.
void BM_ContendedSameKey(benchmark::State& state) {
  static LeaseTable table({}, kClock);
  for (auto _ : state) {
    auto a = table.AcquireOrWait("user:1", [](WaitOutcome o) { benchmark::DoNotOptimize(o); });
    if (a.leader) table.Complete("user:1", a.token, Value());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ContendedSameKey)->Threads(2)->UseRealTime();

// Two threads on disjoint key sets: the shards should keep them apart.
void BM_ContendedDistinctKeys(benchmark::State& state) {
  static LeaseTable table({}, kClock);
  const std::vector<std::string> keys = MakeKeys(2048);
  const size_t base = state.thread_index() * 1024;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[base + (i++ & 1023)];
    auto a = table.AcquireOrWait(key, nullptr);
    table.Complete(key, a.token, Value());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ContendedDistinctKeys)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace corral::lease

// Unit tests for W-TinyLFU's adaptive admission window (lease/window_tuner.h): the simulated
// caches, the tuner's choice on a static and on a shifting Zipf stream, and the Store applying
// it. Deterministic: fixed seeds, no clock beyond the fake one.
#include "lease/window_tuner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "lease/clock.h"
#include "lease/random.h"
#include "lease/store.h"

namespace corral::lease {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer: a well-mixed hash of a key id
  x += 0x9E37'79B9'7F4A'7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D0'49BB'1331'11EBull;
  return x ^ (x >> 31);
}

// Zipf(alpha) over 0..n-1 by inverting the CDF, ranks mapped to keys by a fixed permutation.
class Zipf {
 public:
  Zipf(size_t n, double alpha, uint64_t seed) : cdf_(n), perm_(n), rng_(seed) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i)
      cdf_[i] = sum += 1.0 / std::pow(static_cast<double>(i + 1), alpha);
    for (double& c : cdf_) c /= sum;
    std::iota(perm_.begin(), perm_.end(), 0u);
    std::shuffle(perm_.begin(), perm_.end(), rng_);
  }
  uint32_t Next() {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    return perm_[std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()];
  }

 private:
  std::vector<double> cdf_;
  std::vector<uint32_t> perm_;
  std::mt19937_64 rng_;
};

TEST(MiniTinyLfuTest, HitsAfterAMissAndStaysWithinCapacity) {
  FrequencySketch sketch(64);
  MiniTinyLfu cache(8, 250);
  for (uint64_t k = 1; k <= 8; ++k) {
    sketch.Increment(Mix(k));
    EXPECT_FALSE(cache.Access(Mix(k), sketch));
  }
  EXPECT_EQ(cache.size(), 8u);
  for (uint64_t k = 1; k <= 8; ++k) {
    sketch.Increment(Mix(k));
    EXPECT_TRUE(cache.Access(Mix(k), sketch)) << k;
  }
  // Newcomers seen once do not displace keys seen twice: the window's share turns over.
  for (uint64_t k = 100; k < 200; ++k) {
    sketch.Increment(Mix(k));
    EXPECT_FALSE(cache.Access(Mix(k), sketch));
    EXPECT_LE(cache.size(), 8u);
  }
  int kept = 0;
  for (uint64_t k = 1; k <= 8; ++k) kept += cache.Access(Mix(k), sketch) ? 1 : 0;
  EXPECT_EQ(kept, 6);  // the main region (8 - a window of 2)

  cache.set_capacity(3);
  EXPECT_EQ(cache.size(), 3u);
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.Access(Mix(1), sketch));
}

TEST(WindowTunerTest, SamplesAShareOfTheHashes) {
  const WindowTuner tuner(64 * WindowTuner::kSimulatedEntries);
  EXPECT_NEAR(tuner.sample_rate(), 1.0 / 64, 1e-6);
  EXPECT_EQ(tuner.simulated_capacity(), WindowTuner::kSimulatedEntries);
  size_t sampled = 0;
  for (uint64_t k = 0; k < 640'000; ++k) sampled += tuner.Sampled(Mix(k)) ? 1 : 0;
  EXPECT_NEAR(static_cast<double>(sampled), 10'000, 500);
  // Six simulated caches of 1024 entries and their sketch: ~230 bytes per simulated entry.
  EXPECT_GT(tuner.bytes(), 6u * 1024 * 24);
  EXPECT_LT(tuner.bytes(), 1024u * 240);

  // A smaller store: the rate is capped, so the simulated caches are a small share of it.
  const WindowTuner small(10'000);
  EXPECT_NEAR(small.sample_rate(), WindowTuner::kMaxSampleRate, 1e-6);
  EXPECT_EQ(small.simulated_capacity(), 313u);
  EXPECT_LT(small.bytes(), 10'000u * 168 / 20);

  // Too small to simulate (below kMinSimulatedEntries), and CLOCK's: samples nothing.
  for (size_t entries : {1000, 0}) {
    const WindowTuner none(entries);
    EXPECT_EQ(none.sample_rate(), 0.0);
    EXPECT_FALSE(none.Sampled(Mix(1)));
    EXPECT_EQ(none.simulated_capacity(), 0u);
    EXPECT_EQ(none.bytes(), 0u);
  }
}

// Replays `requests` of Zipf 0.9 over `universe` keys through `tuner` (its sampled part); every
// `phase` requests the hot keys move by a quarter of the universe (phase 0: never).
void Replay(WindowTuner& tuner, size_t universe, size_t requests, size_t phase) {
  Zipf zipf(universe, 0.9, 9);
  for (size_t i = 0; i < requests; ++i) {
    const size_t shift = phase == 0 ? 0 : (i / phase) * universe / 4;
    const uint64_t hash = Mix((zipf.Next() + shift) % universe);
    if (tuner.Sampled(hash)) tuner.Record(hash);
  }
}

TEST(WindowTunerTest, KeepsTheSmallWindowOnAStaticZipf) {
  // A cache of 10% of the keys: W-TinyLFU's 1% window is best, and noise must not move it.
  WindowTuner tuner(10'000);
  Replay(tuner, 100'000, 400'000, 0);
  EXPECT_GT(tuner.epochs(), 20u);
  EXPECT_EQ(tuner.window_permille(), WindowTuner::kCandidates[0]);
}

TEST(WindowTunerTest, GrowsTheWindowWhenTheHotKeysMove) {
  // The same, but the hot set moves every 50 000 requests (bench/hitratio.cc's "shifting zipf"):
  // keys of an old phase keep their counts and block the new ones from main; a large window
  // holds the new ones meanwhile.
  WindowTuner tuner(10'000);
  Replay(tuner, 100'000, 200'000, 50'000);
  EXPECT_GE(tuner.window_permille(), 250u);
}

TEST(WindowTunerTest, KeepsTheSmallWindowOnALoopLargerThanTheCache) {
  // A loop over 1.5x the cache: LRU (a large window) never hits, TinyLFU's main region keeps
  // two thirds of it. The simulated caches see the same, so the window must not grow.
  WindowTuner tuner(10'000);
  for (int pass = 0; pass < 10; ++pass) {
    for (uint64_t k = 0; k < 15'000; ++k) {
      if (tuner.Sampled(Mix(k))) tuner.Record(Mix(k));
    }
  }
  EXPECT_GT(tuner.epochs(), 10u);
  EXPECT_EQ(tuner.window_permille(), WindowTuner::kCandidates[0]);
}

bool ReadThrough(Store& store, const std::string& key, const std::string& value) {
  if (store.Get(key, [](std::string_view, const EntryMeta&) {})) return true;
  EXPECT_TRUE(store.Fill(key, value, {.ttl_ms = kNever}).has_value());
  return false;
}

// Read-through of Zipf 0.9 over 100 000 keys into a store of ~10 000 entries; returns the
// window's share at the end.
// `switch_to`: the policy the store is switched to (SetPolicy, as CONFIG SET maxmemory-policy
// does) before the trace, if not the one it was built with.
uint32_t StoreWindowAfter(EvictionPolicy policy, size_t phase,
                          std::optional<EvictionPolicy> switch_to = std::nullopt) {
  FakeClock clock;
  FakeRandom random({0.5});
  const std::string value(100, 'v');
  Store store(
      {.max_bytes = 10'000 * (11 + 100 + Store::kEntryOverhead) + 150'000, .policy = policy}, clock,
      random);
  EXPECT_EQ(store.WindowPermille(), WindowTuner::kCandidates[0]);
  if (switch_to) {
    const size_t before = store.PolicyBytes();
    store.SetPolicy(*switch_to);
    if (*switch_to == EvictionPolicy::kTinyLfu && policy == EvictionPolicy::kClock) {
      EXPECT_GT(store.PolicyBytes(), before) << "the tuner's simulated caches are counted";
    }
    if (*switch_to == EvictionPolicy::kClock && policy == EvictionPolicy::kTinyLfu) {
      EXPECT_LT(store.PolicyBytes(), before) << "the tuner's memory is given back";
    }
  }
  Zipf zipf(100'000, 0.9, 9);
  for (size_t i = 0; i < 200'000; ++i) {
    const size_t shift = phase == 0 ? 0 : (i / phase) * 25'000;
    ReadThrough(store, "k:" + std::to_string(1'000'000'000 + (zipf.Next() + shift) % 100'000),
                value);
  }
  return store.WindowPermille();
}

TEST(StoreWindowTest, TinyLfuStoreAdaptsItsWindow) {
  EXPECT_EQ(StoreWindowAfter(EvictionPolicy::kTinyLfu, 0), WindowTuner::kCandidates[0]);
  EXPECT_GE(StoreWindowAfter(EvictionPolicy::kTinyLfu, 50'000), 250u);
  EXPECT_EQ(StoreWindowAfter(EvictionPolicy::kClock, 50'000), WindowTuner::kCandidates[0]);
}

TEST(StoreWindowTest, SwitchingPolicyStartsOrStopsTheTuner) {
  // Built for CLOCK, switched to TinyLFU: tuned as if built for it.
  EXPECT_GE(StoreWindowAfter(EvictionPolicy::kClock, 50'000, EvictionPolicy::kTinyLfu), 250u);
  EXPECT_EQ(StoreWindowAfter(EvictionPolicy::kClock, 0, EvictionPolicy::kTinyLfu),
            WindowTuner::kCandidates[0]);
  // TinyLFU to CLOCK: no tuner, no window. TinyLFU again: one tuner, not a second.
  EXPECT_EQ(StoreWindowAfter(EvictionPolicy::kTinyLfu, 50'000, EvictionPolicy::kClock),
            WindowTuner::kCandidates[0]);
  EXPECT_GE(StoreWindowAfter(EvictionPolicy::kTinyLfu, 50'000, EvictionPolicy::kTinyLfu), 250u);
}

TEST(WindowTunerTest, StartAgainAfterStop) {
  WindowTuner tuner(10'000);
  const size_t bytes = tuner.bytes();
  Replay(tuner, 100'000, 200'000, 50'000);
  ASSERT_GE(tuner.window_permille(), 250u);
  tuner.Stop();
  EXPECT_EQ(tuner.bytes(), 0u);
  size_t sampled = 0;
  for (uint64_t k = 0; k < 10'000; ++k) sampled += tuner.Sampled(Mix(k)) ? 1 : 0;
  EXPECT_EQ(sampled, 0u) << "stopped: nothing is sampled";
  EXPECT_EQ(tuner.window_permille(), WindowTuner::kCandidates[0]);
  tuner.Start(10'000);
  EXPECT_EQ(tuner.bytes(), bytes);
  EXPECT_EQ(tuner.window_permille(), WindowTuner::kCandidates[0]) << "from nothing";
  Replay(tuner, 100'000, 400'000, 0);
  EXPECT_EQ(tuner.window_permille(), WindowTuner::kCandidates[0]);
}

TEST(StoreWindowTest, ShardAppliesThePublishedShareOnItsNextPut) {
  std::atomic<uint32_t> permille{10};
  StoreShard shard;
  shard.set_policy(EvictionPolicy::kTinyLfu);
  shard.set_window_source(&permille);
  shard.set_budget(1 << 20);
  const size_t budget = shard.budget();
  EXPECT_EQ(shard.window_budget(), budget * 10 / 1000);
  permille = 450;
  EXPECT_EQ(shard.window_budget(), budget * 10 / 1000);  // not before a Put
  ASSERT_NE(shard.Put(nullptr, "a", StoreShard::HashKey("a"), "v", EntryOrigin::kSet, 0), nullptr);
  EXPECT_EQ(shard.window_budget(), budget * 450 / 1000);
}

}  // namespace
}  // namespace corral::lease

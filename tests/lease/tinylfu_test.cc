// Unit tests for the W-TinyLFU policy of lease::Store (memory.policy "tinylfu"): the frequency
// sketch and its aging, the admission rule, scan resistance, the memory bound with the policy's
// own bytes counted, and what OBJECT FREQ / IDLETIME read (Store::Inspect) and MEMORY USAGE
// (Store::Peek).
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "lease/frequency_sketch.h"
#include "lease/store.h"

namespace corral::lease {
namespace {

constexpr Millis kStart = 1'000'000;

bool Hit(Store& store, std::string_view key) {
  return store.Get(key, [](std::string_view, const EntryMeta&) {});
}

// Read-through as the service does it: a miss is followed by a fill.
bool ReadThrough(Store& store, std::string_view key, std::string_view value) {
  if (Hit(store, key)) return true;
  EXPECT_TRUE(store.Fill(key, value, {.ttl_ms = kNever}).has_value());
  return false;
}

uint64_t H(std::string_view key) { return StoreShard::HashKey(key); }

TEST(FrequencySketchTest, CountsSaturatesAndClears) {
  FrequencySketch sketch(1024);
  EXPECT_EQ(sketch.bytes(), 128u * 64);  // 16 counters per key, 128 per 64-byte block
  EXPECT_EQ(sketch.sample_size(), 40'960u);
  for (int i = 0; i < 3; ++i) sketch.Increment(H("a"));
  EXPECT_EQ(sketch.Frequency(H("a")), 3u);  // an empty sketch has nothing to collide with
  EXPECT_EQ(sketch.Frequency(H("b")), 0u);
  for (int i = 0; i < 100; ++i) sketch.Increment(H("b"));
  EXPECT_EQ(sketch.Frequency(H("b")), FrequencySketch::kMaxCount);
  sketch.Clear();
  EXPECT_EQ(sketch.Frequency(H("a")), 0u);
  EXPECT_EQ(sketch.Frequency(H("b")), 0u);
  EXPECT_EQ(sketch.additions(), 0u);
}

// Conservative updates raise only a key's lowest counters; the estimate (their minimum) must
// still never fall below the true count while nothing has aged, however the keys collide.
TEST(FrequencySketchTest, ConservativeUpdatesNeverUnderestimate) {
  FrequencySketch sketch(64);  // 8 blocks: 600 keys collide a lot
  std::mt19937 rng(7);
  std::vector<std::pair<std::string, uint32_t>> keys;
  std::vector<size_t> order;
  for (int k = 0; k < 600; ++k) {
    keys.emplace_back("key:" + std::to_string(k), 1 + rng() % 4);
    for (uint32_t n = 0; n < keys.back().second; ++n) order.push_back(k);
  }
  std::shuffle(order.begin(), order.end(), rng);
  ASSERT_LT(order.size(), sketch.sample_size()) << "the test must not age the sketch";
  for (size_t k : order) sketch.Increment(H(keys[k].first));
  size_t over = 0;
  for (const auto& [key, count] : keys) {
    ASSERT_GE(sketch.Frequency(H(key)), count) << key;
    over += sketch.Frequency(H(key)) - count;
  }
  // Collisions do inflate estimates: the sketch is far too small for 600 keys.
  EXPECT_GT(over, 0u);
}

// Growing keeps every estimate: each key's counters are where they were, in a copy of its block.
TEST(FrequencySketchTest, GrowKeepsEveryCount) {
  FrequencySketch sketch(64);
  std::vector<std::pair<std::string, uint32_t>> keys;
  for (int k = 0; k < 200; ++k) {
    keys.emplace_back("key:" + std::to_string(k), 0);
    for (int n = 0; n < k % 7; ++n) sketch.Increment(H(keys.back().first));
  }
  for (auto& [key, count] : keys) count = sketch.Frequency(H(key));
  sketch.Grow(4096);
  EXPECT_EQ(sketch.capacity(), 4096u);
  EXPECT_EQ(sketch.bytes(), 512u * 64);
  EXPECT_EQ(sketch.sample_size(), 40u * 4096);
  for (const auto& [key, count] : keys) EXPECT_EQ(sketch.Frequency(H(key)), count) << key;
  // A key new to the grown sketch is counted from there on.
  sketch.Increment(H("new"));
  EXPECT_GE(sketch.Frequency(H("new")), 1u);
  sketch.Grow(100);  // never shrinks
  EXPECT_EQ(sketch.capacity(), 4096u);
  FrequencySketch empty;
  empty.Grow(8);
  EXPECT_EQ(empty.bytes(), 64u);
}

TEST(FrequencySketchTest, EmptySketchCountsNothing) {
  FrequencySketch sketch;
  sketch.Increment(H("a"));
  EXPECT_EQ(sketch.Frequency(H("a")), 0u);
  EXPECT_EQ(sketch.bytes(), 0u);
}

TEST(FrequencySketchTest, AgingHalvesEveryCountAfterTheSampleSize) {
  FrequencySketch sketch(1024);
  for (int i = 0; i < 20; ++i) sketch.Increment(H("hot"));
  ASSERT_EQ(sketch.Frequency(H("hot")), 15u);
  // Other keys until the additions reach the sample size and the sketch halves itself.
  size_t before = sketch.additions();
  for (int i = 0; sketch.additions() >= before; ++i) {
    before = sketch.additions();
    sketch.Increment(H("other:" + std::to_string(i)));
    ASSERT_LT(i, 100'000) << "never aged";
  }
  EXPECT_EQ(sketch.Frequency(H("hot")), 7u);  // 15 >> 1: its four counters were saturated
  EXPECT_EQ(sketch.additions(), sketch.sample_size() / 2);
}

TEST(TinyLfuStoreTest, PolicyBytesAreTakenOffTheBudget) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  const StoreOptions options{.max_bytes = 8 << 20, .shards = 4, .policy = EvictionPolicy::kTinyLfu};
  Store store(options, clock, random);
  // The window tuner's simulated caches (lease/window_tuner.h: for 8 MiB / (104 + 64) = 49932
  // keys), and each shard's sketch with room for 1024 keys (128 blocks of 8 keys) to start with.
  const size_t tuner = WindowTuner(49'932).bytes();
  EXPECT_EQ(store.PolicyBytes(), 4u * 128 * 64 + tuner);
  const std::string value(300, 'v');
  size_t sketch = 4u * 128 * 64;
  for (int i = 0; i < 60'000; ++i) {
    ASSERT_EQ(store.Set("key:" + std::to_string(i), value, std::nullopt), SetResult::kStored);
    ASSERT_LE(store.MemoryBytes() + store.PolicyBytes(), options.max_bytes) << "insert " << i;
    // The sketches grow (never shrink) with the keys: 8 bytes for each key they have room for,
    // at least as many as the shards hold, up to what a shard's share can hold: (8 MiB - tuner)
    // / 4 / (104 + 64) = ~12200 keys per shard -> 1525 blocks -> 2048.
    const size_t now = store.PolicyBytes() - tuner;
    ASSERT_GE(now, sketch) << "insert " << i;
    ASSERT_GE(now, store.Size() * 8) << "insert " << i;
    ASSERT_LE(now, 4u * 2048 * 64) << "insert " << i;
    sketch = now;
  }
  // ~5200 entries of 300 bytes per shard: past a quarter of the ~12200 a shard can hold, each
  // sketch has taken its full size (2048 blocks).
  EXPECT_EQ(sketch, 4u * 2048 * 64);
  EXPECT_GT(store.MemoryBytes() + store.PolicyBytes(), options.max_bytes * 99 / 100);
  // FLUSHALL gives the sketches' memory back too.
  store.Clear();
  EXPECT_EQ(store.PolicyBytes(), 4u * 128 * 64 + tuner);
  Store clock_store({.max_bytes = 8 << 20, .shards = 4}, clock, random);
  EXPECT_EQ(clock_store.PolicyBytes(), 0u);
}

TEST(TinyLfuStoreTest, StaysWithinMaxBytesUnderMixedOperations) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  const StoreOptions options{.max_bytes = 1 << 20, .shards = 4, .policy = EvictionPolicy::kTinyLfu};
  Store store(options, clock, random);
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> size_dist(0, 600);
  std::uniform_int_distribution<int> key_dist(0, 20'000);
  for (int i = 0; i < 100'000; ++i) {
    if (i % 100 == 0) clock.Advance(1);
    const std::string key = "key:" + std::to_string(key_dist(rng));
    const std::string value(size_dist(rng), 'x');
    switch (i % 5) {
      case 0:
        ASSERT_EQ(store.Set(key, value, i % 3 == 0 ? std::optional<Millis>(2) : std::nullopt),
                  SetResult::kStored);
        ASSERT_TRUE(store.Exists(key)) << "the entry just written survives its own eviction";
        break;
      case 1:
        ASSERT_TRUE(store.Fill(key, value, {.ttl_ms = 50, .stale_ms = 50}).has_value());
        break;
      case 2:
        store.Del(key);
        break;
      default:
        Hit(store, key);
    }
    ASSERT_LE(store.MemoryBytes() + store.PolicyBytes(), options.max_bytes) << "op " << i;
  }
  EXPECT_GT(store.evictions(), 1'000u);
  size_t found = 0;
  for (int i = 0; i <= 20'000; ++i) found += store.Inspect("key:" + std::to_string(i)) ? 1 : 0;
  EXPECT_EQ(found, store.Size());
}

// The scan test at a tenth of its scale: 2 000 hot keys of 200 bytes read five times,
// one pass of 30 000 keys written once, then the hot keys again.
double HotKeptAfterScan(EvictionPolicy policy) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store({.max_bytes = 3 << 20, .policy = policy}, clock, random);
  const std::string hot_value(200, 'h');
  const std::string cold_value(200, 'c');
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 2'000; ++i) ReadThrough(store, "hot:" + std::to_string(i), hot_value);
  }
  for (int i = 0; i < 30'000; ++i) {
    EXPECT_EQ(store.Set("scan:" + std::to_string(i), cold_value, std::nullopt), SetResult::kStored);
  }
  int kept = 0;
  for (int i = 0; i < 2'000; ++i) kept += Hit(store, "hot:" + std::to_string(i)) ? 1 : 0;
  return kept / 2'000.0;
}

TEST(TinyLfuStoreTest, OneOffScanKeepsTheHotSet) {
  EXPECT_GE(HotKeptAfterScan(EvictionPolicy::kTinyLfu), 0.99);
  // CLOCK, for contrast: the scan pushes the hot set out.
  EXPECT_LT(HotKeptAfterScan(EvictionPolicy::kClock), 0.5);
}

// One shard with room for exactly ten entries of a 2-byte key and a 10-byte value; the window
// (1%) holds just the newest entry.
class TinyLfuAdmissionTest : public ::testing::Test {
 protected:
  static constexpr size_t kCost = 2 + 10 + Store::kEntryOverhead;
  static constexpr size_t kSketch = 64;  // 1144 / 160 = 7 keys: one block
  FakeClock clock_{kStart};
  FakeRandom random_{{0.5}};
  Store store_{
      StoreOptions{
          .max_bytes = kSketch + 10 * kCost, .shards = 1, .policy = EvictionPolicy::kTinyLfu},
      clock_, random_};
  const std::string value_ = std::string(10, 'v');

  std::string Region(std::string_view key) {
    std::optional<PolicyView> view = store_.Inspect(key);
    return view ? view->region : "absent";
  }
};

TEST_F(TinyLfuAdmissionTest, CandidateIsAdmittedOnlyIfMoreFrequentThanTheVictim) {
  ASSERT_EQ(store_.PolicyBytes(), kSketch);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(store_.Set("k" + std::to_string(i), value_, std::nullopt), SetResult::kStored);
  }
  EXPECT_EQ(store_.MemoryBytes(), 10 * kCost);
  EXPECT_EQ(store_.evictions(), 0u);
  EXPECT_EQ(Region("k9"), "window");
  EXPECT_EQ(Region("k0"), "probation");
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(Hit(store_, "k" + std::to_string(i)));
  }
  EXPECT_EQ(Region("k0"), "protected");  // a hit in probation promotes

  // n0 (seen once) enters the window; the window's k9 (seen once) loses to probation's LRU k5
  // (seen once): a tie keeps the victim.
  ASSERT_EQ(store_.Set("n0", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(Region("k9"), "absent");
  EXPECT_EQ(Region("k5"), "probation");
  EXPECT_EQ(Region("n0"), "window");
  EXPECT_EQ(store_.evictions(), 1u);

  // n1 missed five times before it was stored: the misses count. When it becomes the candidate
  // it beats k5, which is evicted; n1 moves to probation.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(Hit(store_, "n1"));
  ASSERT_EQ(store_.Set("n1", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(Region("n0"), "absent");  // n0 lost to k5
  EXPECT_GE(store_.Inspect("n1")->frequency, 6u);
  ASSERT_EQ(store_.Set("n2", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(Region("n1"), "probation");
  EXPECT_EQ(Region("k5"), "absent");
  EXPECT_EQ(Region("n2"), "window");
  EXPECT_EQ(store_.evictions(), 3u);
  // The frequently read keys were never at risk.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Region("k" + std::to_string(i)), "protected");
  EXPECT_EQ(store_.MemoryBytes(), 10 * kCost);
}

TEST_F(TinyLfuAdmissionTest, GoneEntriesGoBeforeAnyLiveOne) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(store_.Set("k" + std::to_string(i), value_,
                         i == 7 ? std::optional<Millis>(5) : std::nullopt),
              SetResult::kStored);
  }
  clock_.Advance(5);
  ASSERT_EQ(store_.Set("n0", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.expirations(), 1u);
  EXPECT_EQ(store_.evictions(), 0u);
  for (int i = 0; i < 10; ++i) {
    if (i != 7) {
      EXPECT_TRUE(store_.Exists("k" + std::to_string(i))) << i;
    }
  }
}

TEST_F(TinyLfuAdmissionTest, InspectReadsFrequencyAndIdleTimeWithoutTouching) {
  ASSERT_EQ(store_.Set("a", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.Inspect("a")->frequency, 1u);  // the write
  EXPECT_EQ(store_.Inspect("a")->idle_ms, 0);
  clock_.Advance(4'500);
  EXPECT_EQ(store_.Inspect("a")->idle_ms, 4'000);  // whole seconds
  EXPECT_EQ(store_.Inspect("a")->frequency, 1u);   // Inspect is not an access
  ASSERT_TRUE(Hit(store_, "a"));
  EXPECT_EQ(store_.Inspect("a")->idle_ms, 0);
  EXPECT_EQ(store_.Inspect("a")->frequency, 2u);
  EXPECT_FALSE(store_.Inspect("missing").has_value());
}

// Peek (MEMORY USAGE, OBJECT ENCODING): the value, its meta and its accounted bytes, and no
// access counted, as Inspect.
TEST_F(TinyLfuAdmissionTest, PeekReadsValueAndBytesWithoutTouching) {
  ASSERT_EQ(store_.Set("a", value_, std::nullopt), SetResult::kStored);
  clock_.Advance(2'000);
  std::string seen;
  size_t bytes = 0;
  EXPECT_TRUE(store_.Peek("a", [&](std::string_view value, const EntryMeta& meta, size_t cost) {
    seen = std::string(value);
    bytes = cost;
    EXPECT_EQ(meta.kind, EntryKind::kValue);
  }));
  EXPECT_EQ(seen, value_);
  EXPECT_EQ(bytes, 1 + value_.size() + Store::kEntryOverhead);
  EXPECT_EQ(store_.Inspect("a")->frequency, 1u) << "Peek is not an access";
  EXPECT_EQ(store_.Inspect("a")->idle_ms, 2'000);
  EXPECT_FALSE(store_.Peek("missing", [](std::string_view, const EntryMeta&, size_t) {
    ADD_FAILURE() << "called for a missing key";
  }));
}

TEST(TinyLfuStoreTest, ClockInspectHasIdleTimeButNoFrequency) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store({.max_bytes = 1 << 20}, clock, random);
  ASSERT_EQ(store.Set("a", "1", std::nullopt), SetResult::kStored);
  clock.Advance(3'000);
  EXPECT_EQ(store.Inspect("a")->idle_ms, 3'000);
  EXPECT_EQ(store.Inspect("a")->frequency, 0u);
  EXPECT_STREQ(store.Inspect("a")->region, "");
}

TEST(TinyLfuStoreTest, ClearEmptiesListsAndSketch) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store({.max_bytes = 1 << 20, .shards = 1, .policy = EvictionPolicy::kTinyLfu}, clock,
              random);
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(store.Set("k" + std::to_string(i), "v", std::nullopt), SetResult::kStored);
  ASSERT_TRUE(Hit(store, "k1"));
  store.Clear();
  EXPECT_EQ(store.Size(), 0u);
  EXPECT_EQ(store.MemoryBytes(), 0u);
  ASSERT_EQ(store.Set("k1", "v", std::nullopt), SetResult::kStored);
  EXPECT_EQ(store.Inspect("k1")->frequency, 1u);
  EXPECT_STREQ(store.Inspect("k1")->region, "window");
}

// The shard defers TinyLFU's count and move of each access (StoreShard::FlushReads) and applies
// them before anything looks at or changes the policy's state. These drive one shard directly.
class DeferredReadsTest : public ::testing::Test {
 protected:
  using Region = StoreShard::Region;
  void SetUp() override {
    shard_.set_policy(EvictionPolicy::kTinyLfu);
    shard_.set_budget(20000);  // a window of one small entry
  }
  void Put(std::string_view key) {
    StoreShard::Entry* existing = shard_.FindLive(key, H(key), kStart);
    ASSERT_NE(shard_.Put(existing, key, H(key), "v", EntryOrigin::kSet, kStart), nullptr);
  }
  void Read(std::string_view key) {
    StoreShard::Entry* entry = shard_.FindLive(key, H(key), kStart);
    ASSERT_NE(entry, nullptr) << key;
    shard_.OnHit(entry, H(key), kStart);
  }
  std::vector<std::string_view> Keys(Region region) { return shard_.RegionKeys(region); }
  using Keys_ = std::vector<std::string_view>;

  StoreShard shard_;
};

TEST_F(DeferredReadsTest, ReadsAreAppliedBeforeTheStateIsLookedAt) {
  for (const char* key : {"a", "b", "c"}) Put(key);
  // The window holds one entry; the others spilled to probation.
  EXPECT_EQ(Keys(Region::kWindow), Keys_({"c"}));
  EXPECT_EQ(Keys(Region::kProbation), Keys_({"b", "a"}));
  Read("a");
  Read("a");
  Read("b");
  // Probation hits go to protected, in the order they were read.
  EXPECT_EQ(Keys(Region::kProtected), Keys_({"b", "a"}));
  EXPECT_EQ(Keys(Region::kProbation), Keys_());
  const StoreShard::Entry* a = shard_.FindLive("a", H("a"), kStart);
  ASSERT_NE(a, nullptr);
  // Two reads (a Put alone counts nothing: Store::Set's OnWrite does).
  EXPECT_EQ(shard_.View(*a, H("a"), kStart).frequency, 2u);
  EXPECT_STREQ(shard_.View(*a, H("a"), kStart).region, "protected");
}

TEST_F(DeferredReadsTest, AReadIsAppliedBeforeItsEntryIsRemoved) {
  for (const char* key : {"a", "b", "c"}) Put(key);
  Read("b");
  StoreShard::Entry* b = shard_.FindLive("b", H("b"), kStart);
  ASSERT_NE(b, nullptr);
  shard_.Remove(b);  // b's slot is free: the read naming it must not move its next owner
  Put("d");          // takes b's slot
  Put("e");
  EXPECT_EQ(Keys(Region::kWindow), Keys_({"e"}));
  EXPECT_EQ(Keys(Region::kProbation), Keys_({"d", "c", "a"}));
  EXPECT_EQ(Keys(Region::kProtected), Keys_());
}

TEST_F(DeferredReadsTest, AFullBufferIsAppliedWithoutBeingAsked) {
  Put("a");
  // Misses are counted too; the sketch sees nothing of them until the buffer is applied.
  for (int i = 0; i < 15; ++i) shard_.OnMiss(H("x"));
  EXPECT_EQ(shard_.sketch().Frequency(H("x")), 0u);
  shard_.OnMiss(H("x"));  // the 16th fills the buffer
  EXPECT_EQ(shard_.sketch().Frequency(H("x")), FrequencySketch::kMaxCount);
  for (int i = 0; i < 3; ++i) shard_.OnMiss(H("y"));
  shard_.FlushReads();
  EXPECT_EQ(shard_.sketch().Frequency(H("y")), 3u);
}

// A key whose estimate is at the maximum is not counted again (it would change nothing) until
// the counts go down: halved by aging, or a new sketch. Then its reads count again.
TEST_F(DeferredReadsTest, ASaturatedKeyCountsAgainOnceTheCountsAreHalved) {
  Put("a");
  for (int i = 0; i < 20; ++i) Read("a");
  shard_.FlushReads();
  ASSERT_EQ(shard_.sketch().Frequency(H("a")), FrequencySketch::kMaxCount);
  const size_t additions = shard_.sketch().additions();
  for (int i = 0; i < 20; ++i) Read("a");
  shard_.FlushReads();
  EXPECT_EQ(shard_.sketch().additions(), additions);  // nothing counted
  // Misses of other keys until the counts are halved.
  const size_t sample = shard_.sketch().sample_size();
  for (size_t i = 0, before = additions;; ++i) {
    ASSERT_LT(i, 2 * sample);
    shard_.OnMiss(H("x" + std::to_string(i)));
    shard_.FlushReads();
    if (shard_.sketch().additions() < before) break;  // halved
    before = shard_.sketch().additions();
  }
  ASSERT_EQ(shard_.sketch().Frequency(H("a")), FrequencySketch::kMaxCount / 2);
  Read("a");
  shard_.FlushReads();
  EXPECT_EQ(shard_.sketch().Frequency(H("a")), FrequencySketch::kMaxCount / 2 + 1);
}

TEST_F(DeferredReadsTest, ASaturatedKeyCountsAgainInANewSketch) {
  Put("a");
  for (int i = 0; i < 20; ++i) Read("a");
  shard_.FlushReads();
  ASSERT_EQ(shard_.sketch().Frequency(H("a")), FrequencySketch::kMaxCount);
  shard_.set_budget(10000);  // room for fewer keys than the sketch has: a new, empty one
  ASSERT_EQ(shard_.sketch().Frequency(H("a")), 0u);
  Read("a");
  shard_.FlushReads();
  EXPECT_EQ(shard_.sketch().Frequency(H("a")), 1u);
}

TEST_F(DeferredReadsTest, ClearDropsWhatIsBuffered) {
  for (const char* key : {"a", "b", "c"}) Put(key);
  Read("a");
  shard_.Clear();
  Put("z");
  EXPECT_EQ(Keys(Region::kWindow), Keys_({"z"}));
  EXPECT_EQ(Keys(Region::kProtected), Keys_());
  EXPECT_EQ(shard_.sketch().Frequency(H("a")), 0u);
}

}  // namespace
}  // namespace corral::lease

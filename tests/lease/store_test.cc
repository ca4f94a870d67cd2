// Unit tests for lease::Store: Redis SET/GET/DEL/EXPIRE semantics, read-through fills with jitter
// and stale windows, the memory bound and eviction order, expiry, and concurrent use.
#include "lease/store.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace corral::lease {
namespace {

constexpr Millis kStart = 1'000'000;

// What Get handed to its callback.
struct Got {
  std::string value;
  EntryMeta meta;
};

std::optional<Got> GetCopy(Store& store, std::string_view key) {
  std::optional<Got> got;
  store.Get(key, [&](std::string_view value, const EntryMeta& meta) {
    got = Got{std::string(value), meta};
  });
  return got;
}

class StoreTest : public ::testing::Test {
 protected:
  FakeClock clock_{kStart};
  FakeRandom random_{{0.5}};
  Store store_{StoreOptions{}, clock_, random_};
};

TEST_F(StoreTest, SetGetDelExists) {
  EXPECT_FALSE(GetCopy(store_, "k").has_value());
  EXPECT_FALSE(store_.Exists("k"));
  EXPECT_EQ(store_.Set("k", "v1", std::nullopt), SetResult::kStored);
  auto got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, "v1");
  EXPECT_EQ(got->meta.kind, EntryKind::kValue);
  EXPECT_EQ(got->meta.filled_at, kStart);
  EXPECT_EQ(got->meta.fresh_until, kNever);
  EXPECT_EQ(got->meta.stale_until, kNever);
  EXPECT_EQ(got->meta.load_ms, 0u);
  EXPECT_TRUE(store_.Exists("k"));
  EXPECT_EQ(store_.Size(), 1u);
  EXPECT_EQ(store_.MemoryBytes(), 1 + 2 + Store::kEntryOverhead);

  EXPECT_TRUE(store_.Del("k"));
  EXPECT_FALSE(store_.Del("k"));
  EXPECT_FALSE(store_.Exists("k"));
  EXPECT_FALSE(GetCopy(store_, "k").has_value());
  EXPECT_EQ(store_.Size(), 0u);
  EXPECT_EQ(store_.MemoryBytes(), 0u);
}

TEST_F(StoreTest, AFillKeepsTheWalPositionItWasReadAtASetHasNone) {
  FillOptions fill{.ttl_ms = 1000, .position = 0x1'0000'0002};
  ASSERT_TRUE(store_.Fill("k", "v1", fill).has_value());
  EXPECT_EQ(GetCopy(store_, "k")->meta.position, 0x1'0000'0002u);
  // Overwritten in place (same size) and anew (another size): the newest fill's position.
  fill.position = 7;
  ASSERT_TRUE(store_.Fill("k", "v2", fill).has_value());
  EXPECT_EQ(GetCopy(store_, "k")->meta.position, 7u);
  EXPECT_EQ(GetCopy(store_, "k")->value, "v2");
  fill.position = 9;
  ASSERT_TRUE(store_.Fill("k", "a longer value", fill).has_value());
  EXPECT_EQ(GetCopy(store_, "k")->meta.position, 9u);
  EXPECT_EQ(GetCopy(store_, "k")->value, "a longer value");
  // A SET is nobody's read: no position, even over a fill of the same size.
  EXPECT_EQ(store_.Set("k", "a longer VALUE", std::nullopt), SetResult::kStored);
  EXPECT_EQ(GetCopy(store_, "k")->meta.position, 0u);
  EXPECT_EQ(GetCopy(store_, "k")->value, "a longer VALUE");
  // Marking stale keeps it.
  fill.position = 11;
  ASSERT_TRUE(store_.Fill("k", "", fill).has_value());
  EXPECT_TRUE(store_.MarkStale("k"));
  EXPECT_EQ(GetCopy(store_, "k")->meta.position, 11u);
  EXPECT_EQ(GetCopy(store_, "k")->value, "");
}

TEST_F(StoreTest, OverwriteSameAndOtherSizeUpdatesValueMetaAndBytes) {
  ASSERT_EQ(store_.Set("k", "aaaa", 5000), SetResult::kStored);
  clock_.Advance(1010);
  ASSERT_EQ(store_.Set("k", "bbbb", std::nullopt), SetResult::kStored);  // in place
  auto got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, "bbbb");
  // A SET entry's store time is kept in whole seconds (it feeds Age only).
  EXPECT_EQ(got->meta.filled_at, kStart + 1000);
  EXPECT_EQ(got->meta.fresh_until, kNever);
  EXPECT_EQ(store_.MemoryBytes(), 1 + 4 + Store::kEntryOverhead);

  ASSERT_EQ(store_.Set("k", "a much longer value", 100), SetResult::kStored);
  got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, "a much longer value");
  EXPECT_EQ(got->meta.fresh_until, kStart + 1110);
  EXPECT_EQ(store_.Size(), 1u);
  EXPECT_EQ(store_.MemoryBytes(), 1 + 19 + Store::kEntryOverhead);

  ASSERT_EQ(store_.Set("k", "", std::nullopt), SetResult::kStored);  // empty values are values
  got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, "");
  EXPECT_TRUE(store_.Exists("k"));
}

TEST_F(StoreTest, EmptyKeyAndBinaryBytesAreKeys) {
  const std::string binary("a\0b\r\n", 5);
  ASSERT_EQ(store_.Set("", "empty", std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set(binary, binary, std::nullopt), SetResult::kStored);
  EXPECT_EQ(GetCopy(store_, "")->value, "empty");
  EXPECT_EQ(GetCopy(store_, binary)->value, binary);
  EXPECT_FALSE(store_.Exists(std::string_view("a", 1)));
}

TEST_F(StoreTest, NxStoresOnlyWhenAbsent) {
  EXPECT_EQ(store_.Set("k", "1", std::nullopt, SetCondition::kIfAbsent), SetResult::kStored);
  EXPECT_EQ(store_.Set("k", "2", std::nullopt, SetCondition::kIfAbsent), SetResult::kNotStored);
  EXPECT_EQ(GetCopy(store_, "k")->value, "1");
  // An expired key is absent.
  ASSERT_EQ(store_.Set("t", "1", 10), SetResult::kStored);
  clock_.Advance(10);
  EXPECT_EQ(store_.Set("t", "2", std::nullopt, SetCondition::kIfAbsent), SetResult::kStored);
  EXPECT_EQ(GetCopy(store_, "t")->value, "2");
}

TEST_F(StoreTest, XxStoresOnlyWhenPresent) {
  EXPECT_EQ(store_.Set("k", "1", std::nullopt, SetCondition::kIfPresent), SetResult::kNotStored);
  EXPECT_FALSE(store_.Exists("k"));
  ASSERT_EQ(store_.Set("k", "1", std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.Set("k", "2", 100, SetCondition::kIfPresent), SetResult::kStored);
  EXPECT_EQ(GetCopy(store_, "k")->value, "2");
  EXPECT_EQ(store_.Pttl("k"), 100);
  clock_.Advance(100);
  EXPECT_EQ(store_.Set("k", "3", std::nullopt, SetCondition::kIfPresent), SetResult::kNotStored);
}

TEST_F(StoreTest, KeepTtlKeepsExpiryOfPresentKeyOnly) {
  ASSERT_EQ(store_.Set("k", "1", 1000), SetResult::kStored);
  clock_.Advance(400);
  ASSERT_EQ(store_.Set("k", "2", std::nullopt, SetCondition::kAlways, /*keep_ttl=*/true),
            SetResult::kStored);
  EXPECT_EQ(store_.Pttl("k"), 600);
  EXPECT_EQ(GetCopy(store_, "k")->value, "2");
  // ttl_ms is ignored with keep_ttl.
  ASSERT_EQ(store_.Set("k", "3", 5, SetCondition::kAlways, true), SetResult::kStored);
  EXPECT_EQ(store_.Pttl("k"), 600);
  // A missing key gets no expiry, as in Redis.
  ASSERT_EQ(store_.Set("new", "1", std::nullopt, SetCondition::kAlways, true), SetResult::kStored);
  EXPECT_EQ(store_.Pttl("new"), -1);
  // Without keep_ttl a plain SET clears the TTL.
  ASSERT_EQ(store_.Set("k", "4", std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.Pttl("k"), -1);
}

TEST_F(StoreTest, TtlEndsExactlyAtFreshUntil) {
  ASSERT_EQ(store_.Set("k", "v", 100), SetResult::kStored);
  clock_.Advance(99);
  EXPECT_TRUE(store_.Exists("k"));
  EXPECT_EQ(store_.Pttl("k"), 1);
  auto got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.fresh_until, kStart + 100);
  EXPECT_EQ(got->meta.stale_until, kStart + 100);
  clock_.Advance(1);
  EXPECT_FALSE(store_.Exists("k"));
  EXPECT_EQ(store_.Pttl("k"), -2);
  EXPECT_FALSE(GetCopy(store_, "k").has_value());
  EXPECT_FALSE(store_.Del("k"));
  EXPECT_EQ(store_.Size(), 0u);  // removed lazily on first access
  EXPECT_EQ(store_.expirations(), 1u);
  EXPECT_EQ(store_.evictions(), 0u);
}

TEST_F(StoreTest, SetWithNonPositiveTtlDeletes) {
  ASSERT_EQ(store_.Set("k", "v", std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.Set("k", "w", 0), SetResult::kStored);
  EXPECT_FALSE(store_.Exists("k"));
  EXPECT_EQ(store_.Size(), 0u);
  EXPECT_EQ(store_.Set("other", "w", -5), SetResult::kStored);
  EXPECT_EQ(store_.Size(), 0u);
}

TEST_F(StoreTest, PttlValues) {
  EXPECT_EQ(store_.Pttl("missing"), -2);
  ASSERT_EQ(store_.Set("forever", "v", std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.Pttl("forever"), -1);
  ASSERT_EQ(store_.Set("ttl", "v", 2500), SetResult::kStored);
  EXPECT_EQ(store_.Pttl("ttl"), 2500);
  clock_.Advance(1000);
  EXPECT_EQ(store_.Pttl("ttl"), 1500);
  clock_.Advance(1500);
  EXPECT_EQ(store_.Pttl("ttl"), -2);
}

TEST_F(StoreTest, ExpireSetsReplacesAndDeletes) {
  EXPECT_FALSE(store_.Expire("missing", 100));
  ASSERT_EQ(store_.Set("k", "v", std::nullopt), SetResult::kStored);
  EXPECT_TRUE(store_.Expire("k", 100));
  EXPECT_EQ(store_.Pttl("k"), 100);
  clock_.Advance(50);
  EXPECT_TRUE(store_.Expire("k", 300));
  EXPECT_EQ(store_.Pttl("k"), 300);
  clock_.Advance(300);
  EXPECT_FALSE(store_.Expire("k", 100));  // expired keys are missing

  ASSERT_EQ(store_.Set("z", "v", std::nullopt), SetResult::kStored);
  EXPECT_TRUE(store_.Expire("z", 0));
  EXPECT_FALSE(store_.Exists("z"));
  ASSERT_EQ(store_.Set("n", "v", std::nullopt), SetResult::kStored);
  EXPECT_TRUE(store_.Expire("n", -7));
  EXPECT_FALSE(store_.Exists("n"));
  EXPECT_EQ(store_.Size(), 0u);
}

TEST_F(StoreTest, ExpireOnFillKeepsStaleWindowLength) {
  ASSERT_TRUE(store_.Fill("k", "v", {.ttl_ms = 1000, .jitter = 0, .stale_ms = 500}).has_value());
  EXPECT_TRUE(store_.Expire("k", 200));
  auto got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.fresh_until, kStart + 200);
  EXPECT_EQ(got->meta.stale_until, kStart + 700);
}

TEST(StoreFillTest, JitteredTtlIsExactForFixedDraws) {
  FakeClock clock(kStart);
  FakeRandom random({0.0, 0.5, 0.999});
  Store store(StoreOptions{}, clock, random);
  const FillOptions options{.ttl_ms = 10'000, .jitter = 0.2, .stale_ms = 0};
  const Millis expected[] = {8'000, 10'000, 11'996};
  for (int i = 0; i < 3; ++i) {
    const std::string key = "k" + std::to_string(i);
    std::optional<EntryMeta> meta = store.Fill(key, "v", options);
    ASSERT_TRUE(meta.has_value());
    EXPECT_EQ(meta->fresh_until, kStart + expected[i]) << "draw " << i;
    EXPECT_EQ(meta->stale_until, meta->fresh_until);
    EXPECT_EQ(store.Pttl(key), expected[i]);
    auto got = GetCopy(store, key);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->meta.fresh_until, meta->fresh_until);
  }
}

TEST(StoreFillTest, JitterEdges) {
  FakeClock clock(kStart);
  FakeRandom random({0.999});
  Store store(StoreOptions{}, clock, random);
  EXPECT_EQ(store.Fill("a", "v", {.ttl_ms = 1000, .jitter = 0})->fresh_until, kStart + 1000);
  // Jitter above 1 is taken as 1: TTL within [0, 2 * ttl].
  EXPECT_EQ(store.Fill("b", "v", {.ttl_ms = 1000, .jitter = 5})->fresh_until, kStart + 1998);
  std::optional<EntryMeta> forever =
      store.Fill("c", "v", {.ttl_ms = kNever, .jitter = 0.5, .stale_ms = 100});
  ASSERT_TRUE(forever.has_value());
  EXPECT_EQ(forever->fresh_until, kNever);
  EXPECT_EQ(forever->stale_until, kNever);
  EXPECT_EQ(store.Pttl("c"), -1);
}

TEST_F(StoreTest, FillStaleWindowServesUntilStaleUntil) {
  std::optional<EntryMeta> meta =
      store_.Fill("k", "v", {.ttl_ms = 100, .jitter = 0, .stale_ms = 50, .load_ms = 7});
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->filled_at, kStart);
  EXPECT_EQ(meta->fresh_until, kStart + 100);
  EXPECT_EQ(meta->stale_until, kStart + 150);
  EXPECT_EQ(meta->load_ms, 7u);

  clock_.Advance(99);
  EXPECT_TRUE(store_.Exists("k"));
  clock_.Advance(1);  // at fresh_until: stale, still served
  auto got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, "v");
  EXPECT_EQ(got->meta.fresh_until, kStart + 100);
  EXPECT_EQ(got->meta.stale_until, kStart + 150);
  EXPECT_FALSE(store_.Exists("k"));  // Redis view: expired
  EXPECT_EQ(store_.Pttl("k"), -2);
  clock_.Advance(49);
  EXPECT_TRUE(GetCopy(store_, "k").has_value());
  clock_.Advance(1);  // at stale_until: gone
  EXPECT_FALSE(GetCopy(store_, "k").has_value());
  EXPECT_EQ(store_.Size(), 0u);
}

TEST_F(StoreTest, DelRemovesStaleEntries) {
  ASSERT_TRUE(store_.Fill("k", "v", {.ttl_ms = 100, .jitter = 0, .stale_ms = 50}).has_value());
  clock_.Advance(120);
  EXPECT_TRUE(store_.Del("k"));
  EXPECT_FALSE(GetCopy(store_, "k").has_value());
}

TEST_F(StoreTest, NegativeEntries) {
  ASSERT_TRUE(store_.Fill("user:404", "", {.ttl_ms = 50, .jitter = 0, .kind = EntryKind::kNotFound})
                  .has_value());
  auto got = GetCopy(store_, "user:404");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.kind, EntryKind::kNotFound);
  EXPECT_EQ(got->value, "");
  // A cached "not found" is no key in the Redis view.
  EXPECT_FALSE(store_.Exists("user:404"));
  EXPECT_EQ(store_.Pttl("user:404"), -2);
  EXPECT_FALSE(store_.Expire("user:404", 1000));
  EXPECT_EQ(store_.Set("user:404", "x", std::nullopt, SetCondition::kIfPresent),
            SetResult::kNotStored);
  clock_.Advance(50);
  EXPECT_FALSE(GetCopy(store_, "user:404").has_value());

  // A fill of a value replaces a negative entry and vice versa.
  ASSERT_TRUE(store_.Fill("k", "", {.ttl_ms = 50, .kind = EntryKind::kNotFound}).has_value());
  ASSERT_TRUE(store_.Fill("k", "row", {.ttl_ms = 50}).has_value());
  got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.kind, EntryKind::kValue);
  EXPECT_EQ(got->value, "row");
  EXPECT_TRUE(store_.Del("k"));
}

TEST_F(StoreTest, MarkAllStaleBeforeCapsFillsNotSets) {
  ASSERT_TRUE(store_.Fill("fill", "v", {.ttl_ms = 1000, .jitter = 0, .stale_ms = 500}).has_value());
  ASSERT_EQ(store_.Set("set", "v", 1000), SetResult::kStored);
  clock_.Advance(10);
  ASSERT_TRUE(store_.Fill("at", "v", {.ttl_ms = 1000, .jitter = 0}).has_value());
  const Millis lost = clock_.NowMs();
  store_.MarkAllStaleBefore(lost);

  auto got = GetCopy(store_, "fill");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.fresh_until, lost);  // stale now
  EXPECT_EQ(got->meta.stale_until, kStart + 1500);
  EXPECT_FALSE(store_.Exists("fill"));
  EXPECT_EQ(store_.Pttl("fill"), -2);
  // Filled in the very millisecond the listener was lost: stale too.
  got = GetCopy(store_, "at");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.fresh_until, lost);
  // Plain SET entries keep their TTL.
  EXPECT_TRUE(store_.Exists("set"));
  EXPECT_EQ(store_.Pttl("set"), 990);

  // Fills after the mark are fresh; an older mark does not move the epoch back.
  clock_.Advance(1);
  ASSERT_TRUE(store_.Fill("later", "v", {.ttl_ms = 1000, .jitter = 0}).has_value());
  store_.MarkAllStaleBefore(lost - 5);
  EXPECT_TRUE(store_.Exists("later"));
  EXPECT_FALSE(store_.Exists("fill"));
  // Refilling a stale key makes it fresh again.
  ASSERT_TRUE(store_.Fill("fill", "v2", {.ttl_ms = 1000, .jitter = 0}).has_value());
  EXPECT_EQ(GetCopy(store_, "fill")->meta.fresh_until, lost + 1 + 1000);
}

TEST_F(StoreTest, MarkAllStaleBeforeLeavesEntriesAlreadyStale) {
  ASSERT_TRUE(store_.Fill("k", "v", {.ttl_ms = 100, .jitter = 0, .stale_ms = 1000}).has_value());
  clock_.Advance(200);
  store_.MarkAllStaleBefore(clock_.NowMs());
  auto got = GetCopy(store_, "k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.fresh_until, kStart + 100);  // the cap never extends freshness
}

TEST(StoreMemoryTest, StaysWithinMaxBytesOver100kInserts) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  const StoreOptions options{.max_bytes = 64 << 10, .shards = 4};
  Store store(options, clock, random);
  std::mt19937 rng(42);
  std::uniform_int_distribution<size_t> size_dist(0, 400);
  size_t max_seen = 0;
  for (int i = 0; i < 100'000; ++i) {
    if (i % 100 == 0) clock.Advance(1);  // expires the short-TTL third written before
    const std::string key = "key:" + std::to_string(i);
    const std::string value(size_dist(rng), 'x');
    ASSERT_EQ(store.Set(key, value, i % 3 == 0 ? std::optional<Millis>(1) : std::nullopt),
              SetResult::kStored);
    if (i % 7 == 0) GetCopy(store, "key:" + std::to_string(i / 2));
    max_seen = std::max(max_seen, store.MemoryBytes());
    ASSERT_LE(store.MemoryBytes(), options.max_bytes) << "after insert " << i;
    ASSERT_TRUE(store.Exists(key)) << "the entry just written survives its own eviction";
  }
  EXPECT_GT(max_seen, options.max_bytes * 9 / 10);  // the budget is used, not just respected
  EXPECT_GT(store.evictions(), 50'000u);
  EXPECT_GT(store.expirations(), 1'000u);  // expired entries were taken before live ones
  EXPECT_GT(store.Size(), 0u);
  // Size agrees with what is really there (the loop also drops the expired leftovers lazily).
  size_t found = 0;
  for (int i = 0; i < 100'000; ++i) found += store.Exists("key:" + std::to_string(i)) ? 1 : 0;
  EXPECT_EQ(found, store.Size());
}

// One shard that fits exactly four entries of a two-byte key and a ten-byte value.
class StoreEvictionTest : public ::testing::Test {
 protected:
  static constexpr size_t kCost = 2 + 10 + Store::kEntryOverhead;
  FakeClock clock_{kStart};
  FakeRandom random_{{0.5}};
  Store store_{StoreOptions{.max_bytes = 4 * kCost, .shards = 1}, clock_, random_};
  const std::string value_ = std::string(10, 'v');
};

TEST_F(StoreEvictionTest, PrefersExpiredThenUnreferencedEntries) {
  ASSERT_EQ(store_.Set("k0", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k1", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k2", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k3", value_, 10), SetResult::kStored);
  ASSERT_EQ(store_.MemoryBytes(), 4 * kCost);
  ASSERT_TRUE(GetCopy(store_, "k1").has_value());
  ASSERT_TRUE(GetCopy(store_, "k2").has_value());
  ASSERT_TRUE(GetCopy(store_, "k3").has_value());
  clock_.Advance(10);  // k3 expires, referenced or not

  // First the expired entry goes, though k0 is unreferenced and comes first.
  ASSERT_EQ(store_.Set("k4", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.expirations(), 1u);
  EXPECT_EQ(store_.evictions(), 0u);
  EXPECT_TRUE(store_.Exists("k0"));
  EXPECT_EQ(store_.Size(), 4u);

  // Then the unreferenced k0, not the referenced k1 and k2.
  ASSERT_EQ(store_.Set("k5", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.evictions(), 1u);
  EXPECT_FALSE(store_.Exists("k0"));
  EXPECT_TRUE(store_.Exists("k1"));
  EXPECT_TRUE(store_.Exists("k2"));
  EXPECT_TRUE(store_.Exists("k4"));

  // The hand passes k1 and k2 (clearing their bits) and takes the unreferenced k4.
  ASSERT_EQ(store_.Set("k6", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.evictions(), 2u);
  EXPECT_FALSE(store_.Exists("k4"));
  EXPECT_TRUE(store_.Exists("k1"));
  EXPECT_TRUE(store_.Exists("k2"));
  EXPECT_TRUE(store_.Exists("k5"));
  EXPECT_TRUE(store_.Exists("k6"));

  // The hand goes on in slot order: k5, then k1, whose bit it cleared on the previous turn (a
  // second chance, not immunity).
  ASSERT_EQ(store_.Set("k7", value_, std::nullopt), SetResult::kStored);
  EXPECT_FALSE(store_.Exists("k5"));
  EXPECT_TRUE(store_.Exists("k1"));
  ASSERT_EQ(store_.Set("k8", value_, std::nullopt), SetResult::kStored);
  EXPECT_FALSE(store_.Exists("k1"));
  EXPECT_TRUE(store_.Exists("k2"));
  EXPECT_EQ(store_.evictions(), 4u);
  EXPECT_EQ(store_.Size(), 4u);
  EXPECT_EQ(store_.MemoryBytes(), 4 * kCost);
}

// The removal hook hears of every entry the store drops on its own, with the reason: lazily and
// actively expired, evicted; never of DEL, an overwrite or Clear.
TEST_F(StoreEvictionTest, TheRemovalHookIsToldOfExpiriesAndEvictionsOnly) {
  std::vector<std::pair<std::string, Removal>> removed;
  store_.SetRemovalHook(
      [&](std::string_view key, Removal why) { removed.emplace_back(std::string(key), why); });
  ASSERT_EQ(store_.Set("k0", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k1", value_, 10), SetResult::kStored);
  ASSERT_EQ(store_.Set("k2", value_, 10), SetResult::kStored);
  ASSERT_EQ(store_.Set("k3", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k3", std::string(9, 'w'), std::nullopt), SetResult::kStored);
  ASSERT_TRUE(store_.Del("k3"));
  EXPECT_TRUE(removed.empty());
  clock_.Advance(10);
  EXPECT_FALSE(GetCopy(store_, "k1").has_value());  // lazily expired
  EXPECT_EQ(store_.ExpireSome(16), 1u);             // k2, actively
  for (const char* key : {"k4", "k5", "k6", "k7"}) {
    ASSERT_EQ(store_.Set(key, value_, std::nullopt), SetResult::kStored);
  }
  store_.Clear();
  const std::vector<std::pair<std::string, Removal>> expected = {
      {"k1", Removal::kExpired}, {"k2", Removal::kExpired}, {"k0", Removal::kEvicted}};
  EXPECT_EQ(removed, expected);
  EXPECT_EQ(store_.expirations(), 2u);
  EXPECT_EQ(store_.evictions(), 1u);
}

// A smaller bound evicts at once (expired entries first), a larger one makes room again.
TEST_F(StoreEvictionTest, SetMaxBytesShrinksAtOnce) {
  std::vector<std::pair<std::string, Removal>> removed;
  store_.SetRemovalHook(
      [&](std::string_view key, Removal why) { removed.emplace_back(std::string(key), why); });
  ASSERT_EQ(store_.Set("k0", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k1", value_, 10), SetResult::kStored);
  ASSERT_EQ(store_.Set("k2", value_, std::nullopt), SetResult::kStored);
  clock_.Advance(10);
  store_.SetMaxBytes(2 * kCost);
  EXPECT_EQ(store_.max_bytes(), 2 * kCost);
  EXPECT_EQ(store_.MemoryBytes(), 2 * kCost);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], std::make_pair(std::string("k1"), Removal::kExpired));
  store_.SetMaxBytes(1);
  EXPECT_EQ(store_.Size(), 0u);
  EXPECT_EQ(removed.size(), 3u);
  EXPECT_EQ(store_.Set("k3", value_, std::nullopt), SetResult::kTooLarge);
  store_.SetMaxBytes(4 * kCost);
  EXPECT_EQ(store_.Set("k3", value_, std::nullopt), SetResult::kStored);
}

TEST_F(StoreEvictionTest, GrowingAnEntryEvictsOthersNotItself) {
  for (const char* key : {"k0", "k1", "k2", "k3"}) {
    ASSERT_EQ(store_.Set(key, value_, std::nullopt), SetResult::kStored);
  }
  ASSERT_TRUE(GetCopy(store_, "k3").has_value());
  // k3 now costs two entries: one other entry (the unreferenced k0) makes room.
  ASSERT_EQ(store_.Set("k3", std::string(10 + kCost, 'w'), std::nullopt), SetResult::kStored);
  EXPECT_EQ(GetCopy(store_, "k3")->value.size(), 10 + kCost);
  EXPECT_EQ(store_.MemoryBytes(), 4 * kCost);
  EXPECT_EQ(store_.Size(), 3u);
  EXPECT_EQ(store_.evictions(), 1u);
  EXPECT_FALSE(store_.Exists("k0"));
}

// Redis's noeviction: writes that fit go in, one that does not is refused (and leaves what it
// would have replaced), nothing live is evicted, gone entries still make room, and the store
// reports itself out of memory once no smallest entry fits.
TEST_F(StoreEvictionTest, NoEvictionRefusesWhatDoesNotFitAndEvictsNothing) {
  std::vector<std::pair<std::string, Removal>> removed;
  store_.SetRemovalHook(
      [&](std::string_view key, Removal why) { removed.emplace_back(std::string(key), why); });
  store_.SetEvict(false);
  EXPECT_FALSE(store_.evict());
  EXPECT_FALSE(store_.out_of_memory());
  ASSERT_EQ(store_.Set("k0", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k1", value_, std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("k2", value_, 10), SetResult::kStored);
  ASSERT_EQ(store_.Set("k3", value_, std::nullopt), SetResult::kStored);
  // Full, but a successful write does not look (that would cost every write): found out when
  // a write is refused, or by RefreshOutOfMemory.
  EXPECT_FALSE(store_.out_of_memory());
  EXPECT_EQ(store_.Set("k4", value_, std::nullopt), SetResult::kTooLarge);
  EXPECT_TRUE(store_.out_of_memory());
  EXPECT_EQ(store_.Set("k3", value_ + "x", std::nullopt), SetResult::kTooLarge);
  EXPECT_EQ(GetCopy(store_, "k3")->value, value_);  // left as it was
  // A same-size overwrite fits; so does a smaller one.
  EXPECT_EQ(store_.Set("k3", std::string(10, 'w'), std::nullopt), SetResult::kStored);
  EXPECT_FALSE(store_.Update("k1", [](const Current*, Millis) {
    return Change{.kind = Change::Kind::kStore, .value = std::string(11, 'u')};
  }));
  EXPECT_EQ(GetCopy(store_, "k1")->value, value_);
  const std::pair<std::string_view, std::string_view> pairs[] = {{"k5", "v"}};
  EXPECT_EQ(store_.SetMany(pairs, false), SetResult::kTooLarge);
  EXPECT_FALSE(store_.Exists("k5"));
  EXPECT_EQ(store_.Rename("k0", "k9", false), RenameResult::kTooLarge);
  EXPECT_TRUE(store_.Exists("k0"));
  EXPECT_FALSE(store_.Fill("f", "v", {.ttl_ms = 100}).has_value());
  EXPECT_EQ(store_.evictions(), 0u);
  EXPECT_EQ(store_.Size(), 4u);

  // A gone entry makes room, as it does when evicting.
  clock_.Advance(10);
  EXPECT_EQ(store_.Set("k4", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.expirations(), 1u);
  EXPECT_EQ(store_.evictions(), 0u);
  // DEL frees room, and the store is no longer out of memory at once.
  EXPECT_TRUE(store_.out_of_memory());
  EXPECT_TRUE(store_.Del("k0"));
  EXPECT_FALSE(store_.out_of_memory());
  EXPECT_EQ(store_.Rename("k1", "k9", false), RenameResult::kRenamed);
  EXPECT_EQ(store_.Set("k5", value_, std::nullopt), SetResult::kStored);
  const std::vector<std::pair<std::string, Removal>> expected = {{"k2", Removal::kExpired}};
  EXPECT_EQ(removed, expected);
}

// Under noeviction a smaller bound evicts nothing live and leaves the store out of memory;
// evicting again brings it down to the bound at once.
TEST_F(StoreEvictionTest, NoEvictionShrinkKeepsEntriesAndEvictingAgainEvicts) {
  store_.SetEvict(false);
  for (const char* key : {"k0", "k1", "k2"}) {
    ASSERT_EQ(store_.Set(key, value_, std::nullopt), SetResult::kStored);
  }
  EXPECT_FALSE(store_.out_of_memory());
  store_.SetMaxBytes(1);
  EXPECT_EQ(store_.Size(), 3u);
  EXPECT_EQ(store_.evictions(), 0u);
  EXPECT_TRUE(store_.out_of_memory());
  EXPECT_EQ(store_.Set("k3", "", std::nullopt), SetResult::kTooLarge);
  store_.SetMaxBytes(4 * kCost);
  EXPECT_FALSE(store_.out_of_memory());
  store_.SetMaxBytes(2 * kCost);
  EXPECT_TRUE(store_.out_of_memory());
  store_.SetEvict(true);
  EXPECT_EQ(store_.MemoryBytes(), 2 * kCost);
  EXPECT_EQ(store_.evictions(), 1u);
  // Evicting, full is not out of memory: the policy makes room.
  EXPECT_FALSE(store_.out_of_memory());
  EXPECT_EQ(store_.Set("k3", value_, std::nullopt), SetResult::kStored);
}

// Under any policy a bound too small for one entry is out of memory (Redis's EVICT_FAIL);
// RefreshOutOfMemory sees room freed by expiry.
TEST_F(StoreEvictionTest, OutOfMemoryWhenNothingFitsAndRefreshSeesExpiry) {
  EXPECT_FALSE(store_.out_of_memory());
  store_.SetMaxBytes(Store::kEntryOverhead - 1);
  EXPECT_TRUE(store_.out_of_memory());
  store_.SetMaxBytes(Store::kEntryOverhead);
  EXPECT_FALSE(store_.out_of_memory());
  EXPECT_EQ(store_.Set("", "", std::nullopt), SetResult::kStored);
  EXPECT_FALSE(store_.out_of_memory());

  store_.SetMaxBytes(4 * kCost);
  store_.SetEvict(false);
  for (const char* key : {"k0", "k1", "k2"}) {
    ASSERT_EQ(store_.Set(key, value_, 10), SetResult::kStored);
  }
  EXPECT_EQ(store_.Set("k3", value_, std::nullopt), SetResult::kTooLarge);
  EXPECT_TRUE(store_.out_of_memory());
  clock_.Advance(10);
  store_.RefreshOutOfMemory();
  EXPECT_TRUE(store_.out_of_memory());  // gone entries still count until removed
  EXPECT_EQ(store_.ExpireSome(16), 3u);
  store_.RefreshOutOfMemory();
  EXPECT_FALSE(store_.out_of_memory());
}

// CONFIG SET maxmemory-policy allkeys-lfu / allkeys-lru on a store that holds entries: the
// algorithm changes in place, what the old one knew is forgotten, and the sketch's bytes come
// off the budget (evicting if need be) or go back to it.
TEST_F(StoreEvictionTest, SetPolicySwitchesTheAlgorithmOfAFullStore) {
  for (const char* key : {"k0", "k1", "k2", "k3"}) {
    ASSERT_EQ(store_.Set(key, value_, std::nullopt), SetResult::kStored);
  }
  ASSERT_EQ(store_.policy(), EvictionPolicy::kClock);
  store_.SetPolicy(EvictionPolicy::kTinyLfu);
  EXPECT_EQ(store_.policy(), EvictionPolicy::kTinyLfu);
  EXPECT_GT(store_.PolicyBytes(), 0u);
  // The sketch took its bytes: three entries fit now, one was evicted.
  EXPECT_EQ(store_.Size(), 3u);
  EXPECT_EQ(store_.evictions(), 1u);
  EXPECT_LE(store_.MemoryBytes() + store_.PolicyBytes(), 4 * kCost);
  size_t in_probation = 0;
  for (const char* key : {"k0", "k1", "k2", "k3"}) {
    if (auto view = store_.Inspect(key)) {
      EXPECT_EQ(std::string(view->region), "probation") << key;
      ++in_probation;
    }
  }
  EXPECT_EQ(in_probation, 3u);
  // TinyLFU runs on them: a read moves a key to protected, new keys enter the window.
  ASSERT_TRUE(GetCopy(store_, "k3").has_value() || GetCopy(store_, "k2").has_value());
  ASSERT_EQ(store_.Set("n0", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(std::string(store_.Inspect("n0")->region), "window");
  EXPECT_EQ(store_.Size(), 3u);

  store_.SetPolicy(EvictionPolicy::kClock);
  EXPECT_EQ(store_.policy(), EvictionPolicy::kClock);
  EXPECT_EQ(store_.PolicyBytes(), 0u);
  EXPECT_EQ(std::string(store_.Inspect("n0")->region), "");
  // The sketch's bytes are back: a fourth entry fits without an eviction.
  const uint64_t evictions = store_.evictions();
  ASSERT_EQ(store_.Set("n1", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.evictions(), evictions);
  EXPECT_EQ(store_.Size(), 4u);
  ASSERT_EQ(store_.Set("n2", value_, std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.evictions(), evictions + 1);
  EXPECT_EQ(store_.MemoryBytes(), 4 * kCost);
}

TEST(StoreNoEvictionTest, StartsWithoutEvictingFromItsOptions) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store(StoreOptions{.max_bytes = 2 * (1 + 1 + Store::kEntryOverhead),
                           .shards = 1,
                           .policy = EvictionPolicy::kTinyLfu,
                           .evict = false},
              clock, random);
  EXPECT_FALSE(store.evict());
  // TinyLFU's sketch takes its bytes off the budget: one entry fits, and the next is refused.
  EXPECT_EQ(store.Set("a", "1", std::nullopt), SetResult::kStored);
  EXPECT_EQ(store.Set("b", "2", std::nullopt), SetResult::kTooLarge);
  EXPECT_TRUE(store.Exists("a"));
  EXPECT_EQ(store.evictions(), 0u);
  EXPECT_TRUE(store.out_of_memory());
  store.Clear();
  EXPECT_FALSE(store.out_of_memory());
}

TEST(StoreTooLargeTest, TooLargeForAShard) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  // 4 shards of 250 bytes: at most 250 - kEntryOverhead bytes of key and value.
  Store store(StoreOptions{.max_bytes = 1000, .shards = 4}, clock, random);
  const size_t room = 250 - Store::kEntryOverhead;
  EXPECT_EQ(store.Set("k", std::string(room - 1, 'a'), std::nullopt), SetResult::kStored);
  EXPECT_EQ(store.Set("k", std::string(room, 'b'), std::nullopt), SetResult::kTooLarge);
  EXPECT_EQ(GetCopy(store, "k")->value, std::string(room - 1, 'a'));  // left as it was
  EXPECT_FALSE(store.Fill("k", std::string(room, 'c'), {.ttl_ms = 100}).has_value());
  EXPECT_FALSE(GetCopy(store, "k").has_value());  // a superseded fill's old value is dropped
  EXPECT_EQ(store.MemoryBytes(), 0u);
  EXPECT_EQ(store.Set("n", std::string(room, 'b'), std::nullopt, SetCondition::kIfAbsent),
            SetResult::kTooLarge);
}

TEST(StoreTooLargeTest, ZeroBudgetStoresNothing) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store(StoreOptions{.max_bytes = 0, .shards = 0}, clock, random);
  EXPECT_EQ(store.Set("k", "v", std::nullopt), SetResult::kTooLarge);
  EXPECT_EQ(store.Size(), 0u);
}

TEST(StoreExpiryTest, ExpireSomeRemovesGoneEntriesWithinBudget) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store(StoreOptions{.shards = 1}, clock, random);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(store.Set("t" + std::to_string(i), "v", 10), SetResult::kStored);
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(store.Set("p" + std::to_string(i), "v", std::nullopt), SetResult::kStored);
  }
  ASSERT_TRUE(store.Fill("s", "v", {.ttl_ms = 10, .jitter = 0, .stale_ms = 100}).has_value());
  EXPECT_EQ(store.ExpireSome(100), 0u);  // nothing is gone yet
  clock.Advance(10);
  EXPECT_EQ(store.ExpireSome(5), 5u);  // looks at five slots only
  EXPECT_EQ(store.Size(), 16u);
  EXPECT_EQ(store.ExpireSome(100), 5u);
  EXPECT_EQ(store.Size(), 11u);  // the stale fill is kept until stale_until
  EXPECT_EQ(store.expirations(), 10u);
  EXPECT_EQ(store.MemoryBytes(),
            10 * (2 + 1 + Store::kEntryOverhead) + 1 + 1 + Store::kEntryOverhead);
  clock.Advance(100);
  EXPECT_EQ(store.ExpireSome(100), 1u);
  EXPECT_EQ(store.Size(), 10u);
  EXPECT_EQ(store.evictions(), 0u);
}

TEST(StoreExpiryTest, ExpireSomeCoversEveryShard) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store(StoreOptions{.shards = 8}, clock, random);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(store.Set("k" + std::to_string(i), "v", i % 2 == 0 ? 5 : 50), SetResult::kStored);
  }
  clock.Advance(5);
  size_t removed = 0;
  for (int round = 0; round < 100 && removed < 500; ++round) removed += store.ExpireSome(20);
  EXPECT_EQ(removed, 500u);
  EXPECT_EQ(store.Size(), 500u);
}

TEST_F(StoreTest, ClearRemovesEverythingKeepsCounters) {
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(store_.Set("k" + std::to_string(i), "v", 5), SetResult::kStored);
  }
  clock_.Advance(5);
  EXPECT_FALSE(store_.Exists("k1"));
  EXPECT_EQ(store_.expirations(), 1u);
  store_.Clear();
  EXPECT_EQ(store_.Size(), 0u);
  EXPECT_EQ(store_.MemoryBytes(), 0u);
  EXPECT_FALSE(GetCopy(store_, "k2").has_value());
  EXPECT_EQ(store_.expirations(), 1u);
  EXPECT_EQ(store_.ExpireSome(100), 0u);
  ASSERT_EQ(store_.Set("again", "v", std::nullopt), SetResult::kStored);
  EXPECT_EQ(GetCopy(store_, "again")->value, "v");
  EXPECT_EQ(store_.Size(), 1u);
}

// Random operations on one shard against a std::map model: exercises index growth, probe runs
// and backward-shift deletion, slot reuse and byte accounting.
TEST(StoreModelTest, MatchesAMapUnderRandomOperations) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  Store store(StoreOptions{.max_bytes = size_t{1} << 30, .shards = 1}, clock, random);
  std::map<std::string, std::string> model;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> key_dist(0, 2999);
  std::uniform_int_distribution<int> op_dist(0, 9);
  std::uniform_int_distribution<size_t> size_dist(0, 40);
  for (int i = 0; i < 60'000; ++i) {
    const std::string key = "m" + std::to_string(key_dist(rng));
    const int op = op_dist(rng);
    if (op < 5) {
      const std::string value(size_dist(rng), static_cast<char>('a' + i % 26));
      ASSERT_EQ(store.Set(key, value, std::nullopt), SetResult::kStored);
      model[key] = value;
    } else if (op < 8) {
      ASSERT_EQ(store.Del(key), model.erase(key) == 1) << key;
    } else {
      auto got = GetCopy(store, key);
      auto it = model.find(key);
      ASSERT_EQ(got.has_value(), it != model.end()) << key;
      if (got.has_value()) {
        ASSERT_EQ(got->value, it->second) << key;
      }
    }
  }
  size_t bytes = 0;
  for (const auto& [key, value] : model) {
    auto got = GetCopy(store, key);
    ASSERT_TRUE(got.has_value()) << key;
    EXPECT_EQ(got->value, value);
    bytes += key.size() + value.size() + Store::kEntryOverhead;
  }
  EXPECT_EQ(store.Size(), model.size());
  EXPECT_EQ(store.MemoryBytes(), bytes);
}

// Values are self-describing (length and fill character agree), so a reader can tell a torn or
// mixed-up value from a good one without knowing which write it sees.
std::string MakeValue(size_t size) { return std::string(size, static_cast<char>('a' + size % 26)); }
bool ValueIsWhole(std::string_view value) {
  const char want = static_cast<char>('a' + value.size() % 26);
  for (char c : value) {
    if (c != want) return false;
  }
  return true;
}

TEST(StoreConcurrencyTest, ReadersAndWritersOnSharedAndOwnKeys) {
  FakeClock clock(kStart);
  FakeRandom random({0.0, 0.3, 0.7});
  Store store(StoreOptions{.shards = 8}, clock, random);
  constexpr int kThreads = 4;
  constexpr int kOps = 20'000;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kOps; ++i) {
        const std::string shared = "shared:" + std::to_string(rng() % 64);
        switch (rng() % 6) {
          case 0:
            store.Set(shared, MakeValue(rng() % 300), std::nullopt);
            break;
          case 1:
            store.Fill(shared, MakeValue(rng() % 300), {.ttl_ms = 1000, .jitter = 0.1});
            break;
          case 2:
            store.Del(shared);
            break;
          case 3:
            store.Expire(shared, 1000);
            break;
          default:
            store.Get(shared, [&](std::string_view value, const EntryMeta&) {
              if (!ValueIsWhole(value)) bad.fetch_add(1);
            });
        }
        // Own keys: only this thread writes them, so it must read back exactly what it wrote.
        const std::string own = "own:" + std::to_string(t) + ":" + std::to_string(i % 500);
        const std::string value = MakeValue(i % 97);
        store.Set(own, value, std::nullopt);
        bool same = false;
        store.Get(own, [&](std::string_view got, const EntryMeta&) { same = got == value; });
        if (!same) bad.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = kOps - 500; i < kOps; ++i) {
      auto got = GetCopy(store, "own:" + std::to_string(t) + ":" + std::to_string(i % 500));
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(got->value, MakeValue(i % 97));
    }
  }
}

TEST(StoreConcurrencyTest, EvictionUnderConcurrentWritersKeepsTheBound) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  const StoreOptions options{.max_bytes = 32 << 10, .shards = 4};
  Store store(options, clock, random);
  constexpr int kThreads = 4;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < 20'000; ++i) {
        const std::string key = "e:" + std::to_string(rng() % 5000);
        if (rng() % 2 == 0) {
          if (store.Set(key, MakeValue(rng() % 200), std::nullopt) != SetResult::kStored) {
            bad.fetch_add(1);
          }
        } else {
          store.Get(key, [&](std::string_view value, const EntryMeta&) {
            if (!ValueIsWhole(value)) bad.fetch_add(1);
          });
        }
        if (store.MemoryBytes() > options.max_bytes) bad.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(store.evictions(), 0u);
  EXPECT_LE(store.MemoryBytes(), options.max_bytes);
}

// CONFIG SET maxmemory-policy while clients read and write: the algorithm and eviction switch
// under each shard's lock, values stay whole, the bound holds whenever the store evicts, and
// under noeviction a refused write is the only other outcome.
TEST(StoreConcurrencyTest, SwitchingPolicyUnderConcurrentReadersAndWriters) {
  FakeClock clock(kStart);
  FakeRandom random({0.5});
  const StoreOptions options{.max_bytes = 32 << 10, .shards = 4};
  Store store(options, clock, random);
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(200 + t);
      for (int i = 0; i < 20'000; ++i) {
        const std::string key = "p:" + std::to_string(rng() % 3000);
        if (rng() % 2 == 0) {
          const SetResult r = store.Set(key, MakeValue(rng() % 200), std::nullopt);
          if (r == SetResult::kTooLarge) {
            refused.fetch_add(1);
          } else if (r != SetResult::kStored) {
            bad.fetch_add(1);
          }
        } else {
          store.Get(key, [&](std::string_view value, const EntryMeta&) {
            if (!ValueIsWhole(value)) bad.fetch_add(1);
          });
        }
      }
    });
  }
  std::thread switcher([&] {
    for (int round = 0; !done.load(); ++round) {
      store.SetPolicy(round % 2 == 0 ? EvictionPolicy::kTinyLfu : EvictionPolicy::kClock);
      store.SetEvict(round % 3 != 0);
      if (store.evict() && store.MemoryBytes() + store.PolicyBytes() > options.max_bytes) {
        bad.fetch_add(1000);
      }
    }
  });
  for (std::thread& thread : threads) thread.join();
  done.store(true);
  switcher.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(store.evictions(), 0u);
  store.SetEvict(true);
  EXPECT_LE(store.MemoryBytes() + store.PolicyBytes(), options.max_bytes);
}

}  // namespace
}  // namespace corral::lease

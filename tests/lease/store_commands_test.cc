// Unit tests for the Store operations behind Redis's string and key commands: read-modify-write
// (Update), MSET/MSETNX (SetMany), RENAME (Rename), TOUCH, SCAN and RANDOMKEY. Fake clock and
// fake randomness; the concurrency cases check atomicity with real threads.
#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lease/store.h"

namespace corral::lease {
namespace {

constexpr Millis kStart = 1'000'000;

std::optional<std::string> Value(Store& store, std::string_view key) {
  std::optional<std::string> got;
  store.Get(key, [&](std::string_view value, const EntryMeta&) { got = std::string(value); });
  return got;
}

// An INCR as corral's handler writes it: the value + 1, the expiry kept.
bool Increment(Store& store, std::string_view key) {
  return store.Update(key, [](const Current* current, Millis) {
    Change change;
    change.kind = Change::Kind::kStore;
    const int64_t n = current == nullptr ? 0 : std::stoll(std::string(current->value));
    change.value = std::to_string(n + 1);
    if (current != nullptr) change.expire_at = current->expire_at;
    return change;
  });
}

// GETEX / PERSIST's change: only the expiry, to `at`.
Change ExpiryAt(Millis at) {
  Change change;
  change.expire_at = at;
  change.set_expiry = true;
  return change;
}

Change Of(Change::Kind kind, std::string value = {}) {
  Change change;
  change.kind = kind;
  change.value = std::move(value);
  return change;
}

std::set<std::string> ScanAll(Store& store, size_t count) {
  std::set<std::string> keys;
  uint64_t cursor = 0;
  do {
    cursor = store.Scan(cursor, count, [&](std::string_view k) { keys.emplace(k); });
  } while (cursor != 0);
  return keys;
}

class StoreCommandsTest : public ::testing::Test {
 protected:
  FakeClock clock_{kStart};
  FakeRandom random_{{0.5}};
  Store store_{StoreOptions{}, clock_, random_};
};

TEST_F(StoreCommandsTest, UpdateSeesPresentValueAndKeepsItsExpiry) {
  ASSERT_EQ(store_.Set("n", "41", 5000), SetResult::kStored);
  ASSERT_TRUE(Increment(store_, "n"));
  EXPECT_EQ(Value(store_, "n"), "42");
  EXPECT_EQ(store_.Pttl("n"), 5000);  // INCR keeps the TTL
  clock_.Advance(5000);
  // Expired: absent to the update, which starts from nothing and stores without expiry.
  ASSERT_TRUE(Increment(store_, "n"));
  EXPECT_EQ(Value(store_, "n"), "1");
  EXPECT_EQ(store_.Pttl("n"), -1);
}

TEST_F(StoreCommandsTest, UpdateTreatsStaleAndNegativeFillsAsAbsent) {
  ASSERT_TRUE(store_.Fill("user:1", "row", FillOptions{.ttl_ms = 100, .stale_ms = 1000}));
  ASSERT_TRUE(store_.Fill("user:2", "", FillOptions{.ttl_ms = 100, .kind = EntryKind::kNotFound}));
  clock_.Advance(100);
  bool saw_present = false;
  store_.Update("user:1", [&](const Current* c, Millis) {
    saw_present = c != nullptr;
    return Change{};
  });
  EXPECT_FALSE(saw_present);
  store_.Update("user:2", [&](const Current* c, Millis) {
    saw_present = c != nullptr;
    return Change{};
  });
  EXPECT_FALSE(saw_present);
}

TEST_F(StoreCommandsTest, UpdateExpiryOnlyDeleteAndTooLarge) {
  ASSERT_EQ(store_.Set("k", "v", std::nullopt), SetResult::kStored);
  // GETEX PX 300: only the expiry changes.
  store_.Update("k", [](const Current*, Millis now) { return ExpiryAt(now + 300); });
  EXPECT_EQ(store_.Pttl("k"), 300);
  EXPECT_EQ(Value(store_, "k"), "v");
  // PERSIST.
  store_.Update("k", [](const Current*, Millis) { return ExpiryAt(kNever); });
  EXPECT_EQ(store_.Pttl("k"), -1);
  // An expiry at or before now deletes.
  store_.Update("k", [](const Current*, Millis now) { return ExpiryAt(now); });
  EXPECT_EQ(store_.Pttl("k"), -2);
  // kStore of something no shard can hold changes nothing.
  Store small(StoreOptions{.max_bytes = 64 * 1024, .shards = 1}, clock_, random_);
  ASSERT_EQ(small.Set("k", "old", std::nullopt), SetResult::kStored);
  EXPECT_FALSE(small.Update("k", [](const Current*, Millis) {
    return Of(Change::Kind::kStore, std::string(100 * 1024, 'x'));
  }));
  EXPECT_EQ(Value(small, "k"), "old");
  // kDelete.
  small.Update("k", [](const Current*, Millis) { return Of(Change::Kind::kDelete); });
  EXPECT_FALSE(small.Exists("k"));
}

TEST_F(StoreCommandsTest, ConcurrentIncrementsAreNotLost) {
  constexpr int kThreads = 8, kEach = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) Increment(store_, "counter");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Value(store_, "counter"), std::to_string(kThreads * kEach));
}

TEST_F(StoreCommandsTest, SetManyStoresAllClearsExpiryAndLastDuplicateWins) {
  ASSERT_EQ(store_.Set("a", "old", 1000), SetResult::kStored);
  std::vector<std::pair<std::string_view, std::string_view>> pairs = {
      {"a", "1"}, {"b", "2"}, {"a", "3"}};
  EXPECT_EQ(store_.SetMany(pairs, false), SetResult::kStored);
  EXPECT_EQ(Value(store_, "a"), "3");
  EXPECT_EQ(Value(store_, "b"), "2");
  EXPECT_EQ(store_.Pttl("a"), -1);
}

TEST_F(StoreCommandsTest, SetManyIfNoneExistWritesNothingWhenOneExists) {
  ASSERT_EQ(store_.Set("b", "there", std::nullopt), SetResult::kStored);
  std::vector<std::pair<std::string_view, std::string_view>> pairs = {{"a", "1"}, {"b", "2"}};
  EXPECT_EQ(store_.SetMany(pairs, true), SetResult::kNotStored);
  EXPECT_FALSE(store_.Exists("a"));
  EXPECT_EQ(Value(store_, "b"), "there");
  // An expired key does not count as existing.
  ASSERT_EQ(store_.Set("b", "there", 10), SetResult::kStored);
  clock_.Advance(10);
  EXPECT_EQ(store_.SetMany(pairs, true), SetResult::kStored);
  EXPECT_EQ(Value(store_, "a"), "1");
  EXPECT_EQ(Value(store_, "b"), "2");
}

TEST_F(StoreCommandsTest, SetManyTooLargeWritesNothing) {
  Store small(StoreOptions{.max_bytes = 64 * 1024, .shards = 4}, clock_, random_);
  const std::string big(100 * 1024, 'x');
  std::vector<std::pair<std::string_view, std::string_view>> pairs = {{"a", "1"}, {"b", big}};
  EXPECT_EQ(small.SetMany(pairs, false), SetResult::kTooLarge);
  EXPECT_FALSE(small.Exists("a"));
}

TEST_F(StoreCommandsTest, SetManyIsAtomicAgainstAnotherSetMany) {
  // Two writers set the same 16 keys (spread over shards) to their own letter, over and over;
  // a reader takes snapshots with SetMany's own locking order being the only guard. Atomic
  // means: after both are done, every key holds the same letter.
  std::vector<std::string> keys;
  for (int i = 0; i < 16; ++i) keys.push_back("key" + std::to_string(i));
  auto writer = [&](std::string_view letter) {
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
    for (const auto& k : keys) pairs.emplace_back(k, letter);
    for (int i = 0; i < 2000; ++i) store_.SetMany(pairs, false);
  };
  for (int round = 0; round < 5; ++round) {
    std::thread a(writer, "A"), b(writer, "B");
    a.join();
    b.join();
    const std::optional<std::string> first = Value(store_, keys[0]);
    for (const auto& k : keys) EXPECT_EQ(Value(store_, k), first) << k;
  }
}

TEST_F(StoreCommandsTest, SetManyIfNoneExistLetsExactlyOneOfOverlappingWritersIn) {
  for (int round = 0; round < 50; ++round) {
    store_.Clear();
    std::atomic<int> stored{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        // Every writer's set includes "shared", so at most one can win.
        std::string mine = "own" + std::to_string(t);
        std::vector<std::pair<std::string_view, std::string_view>> pairs = {{mine, "x"},
                                                                            {"shared", mine}};
        if (store_.SetMany(pairs, true) == SetResult::kStored) ++stored;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(stored.load(), 1);
    const std::string winner = *Value(store_, "shared");
    EXPECT_TRUE(store_.Exists(winner));
    EXPECT_EQ(store_.Size(), 2u);
  }
}

TEST_F(StoreCommandsTest, RenameMovesValueAndExpiry) {
  ASSERT_EQ(store_.Set("from", "v", 2000), SetResult::kStored);
  ASSERT_EQ(store_.Set("to", "old", std::nullopt), SetResult::kStored);
  EXPECT_EQ(store_.Rename("from", "to", true), RenameResult::kTargetExists);
  EXPECT_EQ(store_.Rename("from", "to", false), RenameResult::kRenamed);
  EXPECT_FALSE(store_.Exists("from"));
  EXPECT_EQ(Value(store_, "to"), "v");
  EXPECT_EQ(store_.Pttl("to"), 2000);
  EXPECT_EQ(store_.Rename("from", "to", false), RenameResult::kNoSuchKey);
  EXPECT_EQ(store_.Rename("to", "to", false), RenameResult::kRenamed);
  EXPECT_EQ(store_.Rename("to", "to", true), RenameResult::kTargetExists);
  EXPECT_EQ(Value(store_, "to"), "v");
  EXPECT_EQ(store_.Rename("to", "fresh", true), RenameResult::kRenamed);
  EXPECT_EQ(Value(store_, "fresh"), "v");
  clock_.Advance(2000);
  EXPECT_EQ(store_.Rename("fresh", "x", false), RenameResult::kNoSuchKey);
}

TEST_F(StoreCommandsTest, ConcurrentRenamesInBothDirectionsDoNotDeadlockOrLose) {
  // Keys in different shards renamed back and forth by two threads in opposite orders.
  ASSERT_EQ(store_.Set("p0", "v", std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("q0", "w", std::nullopt), SetResult::kStored);
  auto flip = [&](std::string_view a, std::string_view b) {
    for (int i = 0; i < 5000; ++i) {
      store_.Rename(a, b, false);
      store_.Rename(b, a, false);
    }
  };
  std::thread t1(flip, "p0", "p1"), t2(flip, "q1", "q0");
  t1.join();
  t2.join();
  EXPECT_EQ(store_.Size(), 2u);
  EXPECT_TRUE(Value(store_, "p0") == "v" || Value(store_, "p1") == "v");
  EXPECT_TRUE(Value(store_, "q0") == "w" || Value(store_, "q1") == "w");
}

TEST_F(StoreCommandsTest, TouchCountsPresentKeysOnly) {
  ASSERT_EQ(store_.Set("k", "v", 100), SetResult::kStored);
  EXPECT_TRUE(store_.Touch("k"));
  EXPECT_FALSE(store_.Touch("missing"));
  clock_.Advance(100);
  EXPECT_FALSE(store_.Touch("k"));
}

TEST_F(StoreCommandsTest, ScanReturnsEveryPresentKeyOnceWhenNothingChanges) {
  std::set<std::string> want;
  for (int i = 0; i < 3000; ++i) {
    want.insert("k" + std::to_string(i));
    ASSERT_EQ(store_.Set("k" + std::to_string(i), "v", std::nullopt), SetResult::kStored);
  }
  ASSERT_EQ(store_.Set("expiring", "v", 10), SetResult::kStored);
  clock_.Advance(10);
  for (size_t count : {1, 10, 1000, 100000}) {
    size_t returned = 0;
    std::set<std::string> got;
    uint64_t cursor = 0;
    do {
      cursor = store_.Scan(cursor, count, [&](std::string_view k) {
        got.emplace(k);
        ++returned;
      });
    } while (cursor != 0);
    EXPECT_EQ(got, want) << "count " << count;
    EXPECT_EQ(returned, want.size()) << "no growth, no duplicates; count " << count;
  }
}

TEST_F(StoreCommandsTest, ScanOfAnEmptyStoreEndsAtOnce) {
  EXPECT_EQ(ScanAll(store_, 10).size(), 0u);
  Store one(StoreOptions{.shards = 1}, clock_, random_);
  EXPECT_EQ(one.Scan(0, 10, [](std::string_view) {}), 0u);
}

// Redis's SCAN guarantee while the store grows and shrinks between calls: keys present for the
// whole scan are all returned. Few shards, so that each shard's index doubles several times.
TEST_F(StoreCommandsTest, ScanReturnsStableKeysWhileTheStoreGrowsAndShrinks) {
  for (size_t shards : {1, 4, 64}) {
    Store store(StoreOptions{.max_bytes = 1u << 30, .shards = shards}, clock_, random_);
    std::set<std::string> stable;
    for (int i = 0; i < 500; ++i) {
      stable.insert("stable" + std::to_string(i));
      ASSERT_EQ(store.Set("stable" + std::to_string(i), "v", std::nullopt), SetResult::kStored);
    }
    std::vector<std::string> transient;
    for (int i = 0; i < 300; ++i) {
      transient.push_back("t" + std::to_string(i));
      store.Set(transient.back(), "v", std::nullopt);
    }
    std::set<std::string> got;
    uint64_t cursor = 0;
    int step = 0, next = 300;
    do {
      cursor = store.Scan(cursor, 5, [&](std::string_view k) { got.emplace(k); });
      // Between calls: 40 new keys (the indexes double), and 25 old transient ones deleted
      // (backward-shift deletion moves index cells).
      for (int i = 0; i < 40; ++i) {
        transient.push_back("t" + std::to_string(next++));
        store.Set(transient.back(), "v", std::nullopt);
      }
      for (int i = 0; i < 25 && !transient.empty(); ++i) {
        store.Del(transient[(step * 7 + i) % transient.size()]);
      }
      ++step;
    } while (cursor != 0);
    for (const auto& k : stable) EXPECT_TRUE(got.count(k)) << k << " with " << shards << " shards";
    EXPECT_GT(store.Size(), 800u);  // it did grow
  }
}

TEST_F(StoreCommandsTest, ScanAcrossAClearStillEnds) {
  for (int i = 0; i < 200; ++i) store_.Set("k" + std::to_string(i), "v", std::nullopt);
  uint64_t cursor = store_.Scan(0, 5, [](std::string_view) {});
  ASSERT_NE(cursor, 0u);
  store_.Clear();  // the indexes shrink back to their first size
  store_.Set("after", "v", std::nullopt);
  std::set<std::string> got;
  int calls = 0;
  do {
    cursor = store_.Scan(cursor, 5, [&](std::string_view k) { got.emplace(k); });
  } while (cursor != 0 && ++calls < 100000);
  EXPECT_EQ(cursor, 0u);
}

TEST_F(StoreCommandsTest, RandomKeyPicksAPresentKey) {
  EXPECT_EQ(store_.RandomKey(), std::nullopt);
  ASSERT_EQ(store_.Set("gone", "v", 10), SetResult::kStored);
  clock_.Advance(10);
  EXPECT_EQ(store_.RandomKey(), std::nullopt);
  ASSERT_EQ(store_.Set("a", "v", std::nullopt), SetResult::kStored);
  ASSERT_EQ(store_.Set("b", "v", std::nullopt), SetResult::kStored);
  std::optional<std::string> key = store_.RandomKey();
  ASSERT_TRUE(key.has_value());
  EXPECT_TRUE(*key == "a" || *key == "b");
}

}  // namespace
}  // namespace corral::lease

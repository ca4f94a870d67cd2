// Proves that lease::Store's hit path does not touch the heap: this binary replaces the global
// operator new with a counting one, so it is kept apart from store_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "lease/store.h"
#include "tests/sanitizer.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<size_t> g_allocations{0};
}  // namespace

void* operator new(size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// GCC takes free() inside a replacement operator delete for a mismatch; here it is the match.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace corral::lease {
namespace {

TEST(StoreAllocTest, GetHitAndMissDoNotAllocate) {
  CORRAL_SKIP_IF_SANITIZED();
  FakeClock clock;
  FakeRandom random({0.5});
  Store store(StoreOptions{}, clock, random);
  const std::string value(100, 'v');
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(store.Set("key:" + std::to_string(i), value, std::nullopt), SetResult::kStored);
  }
  ASSERT_TRUE(store.Fill("fill", value, {.ttl_ms = 1000, .jitter = 0.1, .stale_ms = 10}));
  std::string keys[1001];
  for (int i = 0; i < 1000; ++i) keys[i] = "key:" + std::to_string(i);
  keys[1000] = "fill";
  const std::string missing = "missing-key-that-is-long-enough-to-defeat-sso";

  size_t hits = 0;
  size_t bytes = 0;
  g_allocations.store(0);
  g_counting.store(true);
  for (const std::string& key : keys) {
    hits += store.Get(key, [&](std::string_view got, const EntryMeta&) { bytes += got.size(); });
  }
  const bool missed = store.Get(missing, [&](std::string_view, const EntryMeta&) {});
  // Same-size overwrites reuse the entry's block too.
  const SetResult overwrite = store.Set(keys[7], std::string_view(value), std::nullopt);
  g_counting.store(false);

  EXPECT_EQ(hits, 1001u);
  EXPECT_EQ(bytes, 1001u * 100);
  EXPECT_FALSE(missed);
  EXPECT_EQ(overwrite, SetResult::kStored);
  EXPECT_EQ(g_allocations.load(), 0u);

  // The counter works: a new key allocates.
  g_counting.store(true);
  ASSERT_EQ(store.Set(missing, value, std::nullopt), SetResult::kStored);
  g_counting.store(false);
  EXPECT_GT(g_allocations.load(), 0u);
}

TEST(StoreAllocTest, TinyLfuHitMissAndPromotionDoNotAllocate) {
  CORRAL_SKIP_IF_SANITIZED();
  FakeClock clock;
  FakeRandom random({0.5});
  Store store(StoreOptions{.max_bytes = 1 << 20, .policy = EvictionPolicy::kTinyLfu}, clock,
              random);
  const std::string value(100, 'v');
  std::string keys[1000];
  for (int i = 0; i < 1000; ++i) {
    keys[i] = "key:" + std::to_string(i);
    ASSERT_EQ(store.Set(keys[i], value, std::nullopt), SetResult::kStored);
  }
  const std::string missing = "missing-key-that-is-long-enough-to-defeat-sso";

  size_t hits = 0;
  g_allocations.store(0);
  g_counting.store(true);
  // Three rounds: window and probation hits, promotions to protected, demotions, misses counted.
  for (int round = 0; round < 3; ++round) {
    for (const std::string& key : keys) {
      hits += store.Get(key, [](std::string_view, const EntryMeta&) {});
    }
    hits += store.Get(missing, [](std::string_view, const EntryMeta&) {});
  }
  g_counting.store(false);
  EXPECT_EQ(hits, 3000u);
  EXPECT_EQ(g_allocations.load(), 0u);
}

}  // namespace
}  // namespace corral::lease

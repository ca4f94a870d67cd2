// Heap behaviour of the RESP parser and writer, measured by replacing global operator new in
// this test binary: announced lengths never turn into allocations, and steady-state parsing
// and writing allocate nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>

#include "proto/resp_parser.h"
#include "proto/resp_writer.h"
#include "tests/sanitizer.h"

namespace {

std::atomic<size_t> g_allocations{0};
std::atomic<size_t> g_largest{0};

void* CountedAlloc(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  size_t largest = g_largest.load(std::memory_order_relaxed);
  while (size > largest && !g_largest.compare_exchange_weak(largest, size)) {
  }
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t size) { return CountedAlloc(size); }
void* operator new[](size_t size) { return CountedAlloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace corral::proto {
namespace {

// Heap use while `fn` runs.
struct HeapUse {
  size_t allocations;
  size_t largest;
};

template <typename Fn>
HeapUse Measure(Fn&& fn) {
  const size_t before = g_allocations.load();
  g_largest.store(0);
  fn();
  return HeapUse{g_allocations.load() - before, g_largest.load()};
}

TEST(RespAlloc, TheCounterSeesAllocations) {
  CORRAL_SKIP_IF_SANITIZED();
  // Guards the tests below against a replacement that is not in effect.
  const HeapUse use = Measure([] {
    std::string s(100000, 'x');
    EXPECT_EQ(s.size(), 100000u);
  });
  EXPECT_EQ(use.allocations, 1u);
  EXPECT_GE(use.largest, 100000u);
}

TEST(RespAlloc, AnnouncedBulkLengthIsNotAllocated) {
  CORRAL_SKIP_IF_SANITIZED();
  RespParser parser;
  const std::string input = "*1\r\n$67108864\r\nabc";
  std::string buffer = input;
  const HeapUse use = Measure([&] {
    EXPECT_EQ(parser.Parse(buffer), ParseStatus::kNeedMore);
    buffer += std::string_view("defgh");
    EXPECT_EQ(parser.Parse(buffer), ParseStatus::kNeedMore);
  });
  EXPECT_LT(use.largest, 4096u);
}

TEST(RespAlloc, AnnouncedElementCountIsNotAllocated) {
  CORRAL_SKIP_IF_SANITIZED();
  RespParser parser;
  const HeapUse use = Measure([&] {
    EXPECT_EQ(parser.Parse("*2000000000\r\n$1\r\na\r\n$1\r\nb\r\n"), ParseStatus::kNeedMore);
    EXPECT_EQ(parser.Parse("*2000000000\r\n$1\r\na\r\n$1\r\nb\r\n$3"), ParseStatus::kNeedMore);
  });
  EXPECT_LT(use.largest, 4096u);
}

std::string PipelinedGets(int count) {
  std::string batch;
  for (int i = 0; i < count; ++i) {
    std::string key = "key:" + std::to_string(1000000000000 + i).substr(1);
    batch += "*2\r\n$3\r\nGET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
  }
  return batch;
}

// Parses every command in `batch`; returns how many.
int ParseAll(RespParser& parser, std::string_view batch) {
  int parsed = 0;
  while (parser.Parse(batch) == ParseStatus::kCommand) {
    batch.remove_prefix(parser.consumed());
    ++parsed;
  }
  return parsed;
}

TEST(RespAlloc, SteadyStateParsingAllocatesNothing) {
  CORRAL_SKIP_IF_SANITIZED();
  const std::string gets = PipelinedGets(1000);
  std::string inline_commands;
  for (int i = 0; i < 100; ++i) inline_commands += "SET k \"quoted value\"\r\nPING\r\n";
  RespParser parser;
  ASSERT_EQ(ParseAll(parser, gets), 1000);  // warm-up grows the reusable buffers
  ASSERT_EQ(ParseAll(parser, inline_commands), 200);
  const HeapUse use = Measure([&] {
    EXPECT_EQ(ParseAll(parser, gets), 1000);
    EXPECT_EQ(ParseAll(parser, inline_commands), 200);
  });
  EXPECT_EQ(use.allocations, 0u);
}

TEST(RespAlloc, SteadyStateWritingAllocatesNothing) {
  CORRAL_SKIP_IF_SANITIZED();
  std::string out;
  const std::string value(100, 'v');
  auto write = [&] {
    out.clear();
    for (int i = 0; i < 100; ++i) {
      AppendArrayHeader(out, 2);
      AppendBulk(out, value);
      AppendInteger(out, -1234567890123);
      AppendSimple(out, "OK");
      AppendError(out, "ERR x");
      AppendNullBulk(out);
      AppendNullArray(out);
    }
  };
  write();
  EXPECT_EQ(Measure(write).allocations, 0u);
}

}  // namespace
}  // namespace corral::proto

// TinyLFU's frequency sketch: a count-min sketch of 4-bit counters, four per key, kept in one
// 64-byte block per key so that a count costs one cache line, halved every `sample_size` counts
// (aging). Counts are conservative updates: only the counters at the key's minimum go up, so a
// key shares less of its neighbours' counts (with 16 counters per key and aging every 40 times
// the capacity, Zipf 0.8 with a 10% cache hit 57.7% against a static optimum of 60.2%; plain
// updates, 8 counters and 10 times gave 56.2%: bench/hitratio.cc, --scale 0.1). Pure, not
// thread-safe: each Store shard owns one and uses it under the shard's lock.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace corral::lease {

class FrequencySketch {
 public:
  static constexpr uint32_t kMaxCount = 15;

  // Room for about `capacity` distinct keys (kCountersPerKey counters per key, at least one
  // block); the counts are halved after kSampleFactor * capacity increments. capacity 0 makes an
  // empty sketch that counts nothing and estimates 0.
  static constexpr size_t kCountersPerKey = 16;
  static constexpr size_t kSampleFactor = 40;
  explicit FrequencySketch(size_t capacity = 0);

  // Makes room for `capacity` keys when that needs more blocks (capacity() grows to it either
  // way), keeping every key's counts: the table doubles until it is large enough, each new block
  // a copy of the one its keys came from (a key's block is its hash under a wider mask, and its
  // counters' places in the block do not change), so no estimate goes down. O(new blocks).
  void Grow(size_t capacity);
  // The keys it was sized for (the constructor's or the last Grow's).
  size_t capacity() const { return capacity_; }

  // Counts one access to the key whose (well mixed, 64-bit) hash is `hash`: its counters that
  // hold its estimate (the minimum) go up by one, unless that is kMaxCount. No allocation.
  // kFull: the estimate is kMaxCount now, so until the counts are next halved (or cleared)
  // another count of this key changes nothing. kAged: this count halved every counter.
  enum class Counted { kCounted, kFull, kAged };
  Counted Increment(uint64_t hash);
  // Starts fetching the block Increment(hash) and Frequency(hash) read (a hint; no effect on
  // the counts).
  void Prefetch(uint64_t hash) const {
    if (blocks_ != 0) __builtin_prefetch(&table_[BlockOf(Mix(hash))], 1);
  }
  // The estimate of the key's accesses since the last halvings, in [0, kMaxCount]; never below
  // the true count decayed by the halvings (count-min), sometimes above it (collisions).
  uint32_t Frequency(uint64_t hash) const;

  // Bytes the sketch holds (its table).
  size_t bytes() const { return blocks_ * sizeof(Block); }
  // Increments since the last halving, and how many trigger the next one.
  size_t additions() const { return additions_; }
  size_t sample_size() const { return sample_size_; }
  // Halves every counter (done by Increment every sample_size additions).
  void Age();
  // Zeroes every counter.
  void Clear();

 private:
  struct alignas(64) Block {
    uint64_t words[8];
  };
  // The counter of row i (0..3) for `mixed`: word and nibble within the block.
  static void Locate(uint64_t mixed, int i, size_t* word, int* shift) {
    const uint64_t bits = mixed >> (8 * i);
    *word = static_cast<size_t>(2 * i + (bits & 1));
    *shift = static_cast<int>(((bits >> 1) & 15) * 4);
  }
  static uint64_t Mix(uint64_t hash) {
    uint64_t h = hash * 0x9E37'79B9'7F4A'7C15ull;
    return h ^ (h >> 29);
  }
  size_t BlockOf(uint64_t mixed) const { return static_cast<size_t>(mixed >> 32) & block_mask_; }

  std::unique_ptr<Block[]> table_;
  size_t capacity_ = 0;
  size_t blocks_ = 0;
  size_t block_mask_ = 0;
  size_t sample_size_ = 0;
  size_t additions_ = 0;
};

inline FrequencySketch::Counted FrequencySketch::Increment(uint64_t hash) {
  if (blocks_ == 0) return Counted::kCounted;
  const uint64_t mixed = Mix(hash);
  uint64_t* const words = table_[BlockOf(mixed)].words;
  // Row i's counter is in word 2i or 2i + 1: the four rows never share a word, so each word is
  // read once and written once, without branches (this runs on every read of a key). Values,
  // not std::min's references, so that the counts stay in registers.
  size_t w0, w1, w2, w3;
  int s0, s1, s2, s3;
  Locate(mixed, 0, &w0, &s0);
  Locate(mixed, 1, &w1, &s1);
  Locate(mixed, 2, &w2, &s2);
  Locate(mixed, 3, &w3, &s3);
  const uint64_t c0 = (words[w0] >> s0) & 15;
  const uint64_t c1 = (words[w1] >> s1) & 15;
  const uint64_t c2 = (words[w2] >> s2) & 15;
  const uint64_t c3 = (words[w3] >> s3) & 15;
  const uint64_t min01 = c0 < c1 ? c0 : c1;
  const uint64_t min23 = c2 < c3 ? c2 : c3;
  const uint64_t min = min01 < min23 ? min01 : min23;
  if (min == kMaxCount) return Counted::kFull;
  words[w0] += uint64_t{c0 == min} << s0;
  words[w1] += uint64_t{c1 == min} << s1;
  words[w2] += uint64_t{c2 == min} << s2;
  words[w3] += uint64_t{c3 == min} << s3;
  if (++additions_ >= sample_size_) {
    Age();
    return Counted::kAged;
  }
  // The counters at the minimum went up by one, and the others were above it.
  return min + 1 == kMaxCount ? Counted::kFull : Counted::kCounted;
}

inline uint32_t FrequencySketch::Frequency(uint64_t hash) const {
  if (blocks_ == 0) return 0;
  const uint64_t mixed = Mix(hash);
  const Block& block = table_[BlockOf(mixed)];
  uint32_t min = kMaxCount;
  for (int i = 0; i < 4; ++i) {
    size_t word;
    int shift;
    Locate(mixed, i, &word, &shift);
    const uint32_t count = static_cast<uint32_t>((block.words[word] >> shift) & 15);
    if (count < min) min = count;
  }
  return min;
}

}  // namespace corral::lease

// See frequency_sketch.h.
#include "lease/frequency_sketch.h"

#include <algorithm>
#include <bit>

namespace corral::lease {

namespace {

// The blocks for `capacity` keys: a block holds 128 counters.
size_t BlocksFor(size_t capacity) {
  constexpr size_t kKeysPerBlock = 128 / FrequencySketch::kCountersPerKey;
  return std::bit_ceil(std::max<size_t>(1, (capacity + kKeysPerBlock - 1) / kKeysPerBlock));
}

}  // namespace

FrequencySketch::FrequencySketch(size_t capacity) {
  if (capacity == 0) return;
  capacity_ = capacity;
  blocks_ = BlocksFor(capacity);
  block_mask_ = blocks_ - 1;
  sample_size_ = kSampleFactor * capacity;
  table_ = std::make_unique<Block[]>(blocks_);  // zeroed
}

void FrequencySketch::Grow(size_t capacity) {
  if (capacity <= capacity_) return;
  if (blocks_ == 0) {
    *this = FrequencySketch(capacity);
    return;
  }
  const size_t blocks = BlocksFor(capacity);
  if (blocks > blocks_) {
    auto table = std::make_unique_for_overwrite<Block[]>(blocks);
    for (size_t b = 0; b < blocks; ++b) table[b] = table_[b & block_mask_];
    table_ = std::move(table);
    blocks_ = blocks;
    block_mask_ = blocks - 1;
  }
  capacity_ = capacity;
  sample_size_ = kSampleFactor * capacity;
}

void FrequencySketch::Age() {
  for (size_t b = 0; b < blocks_; ++b) {
    for (uint64_t& word : table_[b].words) word = (word >> 1) & 0x7777'7777'7777'7777ull;
  }
  additions_ /= 2;
}

void FrequencySketch::Clear() {
  for (size_t b = 0; b < blocks_; ++b) {
    for (uint64_t& word : table_[b].words) word = 0;
  }
  additions_ = 0;
}

}  // namespace corral::lease

// See frequency_sketch.h.
#include "lease/frequency_sketch.h"

#include <algorithm>
#include <bit>

namespace corral::lease {

FrequencySketch::FrequencySketch(size_t capacity) {
  if (capacity == 0) return;
  // A block holds 128 counters.
  constexpr size_t kKeysPerBlock = 128 / kCountersPerKey;
  blocks_ = std::bit_ceil(std::max<size_t>(1, (capacity + kKeysPerBlock - 1) / kKeysPerBlock));
  block_mask_ = blocks_ - 1;
  sample_size_ = kSampleFactor * capacity;
  // Value-initialized: zeroed pages that the kernel maps on first touch.
  table_ = std::make_unique<Block[]>(blocks_);
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

// How the fuzz targets split an input into reads: a peer's bytes can arrive in any chunks, so
// each target also feeds its input in pieces drawn from a seed taken from the input itself.
#pragma once

#include <cstddef>
#include <cstdint>

namespace corral::fuzz {

// The next chunk's size (xorshift32 on `seed`): 1..16 bytes, sometimes up to 256, never more
// than `left` (> 0).
inline size_t NextChunk(uint32_t& seed, size_t left) {
  seed ^= seed << 13;
  seed ^= seed >> 17;
  seed ^= seed << 5;
  const size_t chunk = (seed & 0x100) ? 1 + (seed & 0xf) : 1 + (seed & 0xff);
  return chunk < left ? chunk : left;
}

}  // namespace corral::fuzz

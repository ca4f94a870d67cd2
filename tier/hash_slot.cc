// Redis Cluster's key -> hash slot function: CRC16 (XMODEM: polynomial 0x1021, initial value 0, no
// reflection) of the key's hash tag, modulo 16384. Pure; no I/O.
#include <array>

#include "tier/redis_client.h"

namespace corral::tier {
namespace {

constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (int byte = 0; byte < 256; ++byte) {
    uint16_t crc = static_cast<uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

uint16_t Crc16(std::string_view bytes) {
  uint16_t crc = 0;
  for (unsigned char c : bytes) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

}  // namespace

uint16_t HashSlot(std::string_view key) {
  // The hash tag: between the first '{' and the first '}' after it, when that is non-empty.
  // Otherwise (no '{', no '}' after it, or "{}") the whole key is hashed.
  if (size_t open = key.find('{'); open != std::string_view::npos) {
    if (size_t close = key.find('}', open + 1);
        close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & 16383;
}

}  // namespace corral::tier

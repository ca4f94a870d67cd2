// See wal_position.h.
#include "lease/wal_position.h"

#include <charconv>
#include <cstdio>

namespace corral::lease {

namespace {
// One half of an LSN: 1 to 8 hexadecimal digits.
std::optional<uint32_t> ParseHalf(std::string_view s) {
  if (s.empty() || s.size() > 8) return std::nullopt;
  uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace

std::optional<WalPosition> ParseWalPosition(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::optional<uint32_t> hi = ParseHalf(text.substr(0, slash));
  std::optional<uint32_t> lo = ParseHalf(text.substr(slash + 1));
  if (!hi || !lo) return std::nullopt;
  return static_cast<WalPosition>(*hi) << 32 | *lo;
}

std::string FormatWalPosition(WalPosition position) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(position >> 32),
                static_cast<unsigned>(position & 0xffffffffu));
  return buf;
}

}  // namespace corral::lease

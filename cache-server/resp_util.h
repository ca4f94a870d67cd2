// Small helpers shared by the RESP command files (resp_commands.cc, resp_server_commands.cc).
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace corral::server {

inline constexpr std::string_view kCompatVersion = "7.0.0";  // INFO/HELLO's redis_version
inline constexpr std::string_view kCorralVersion = "0.1.0";

// ASCII lower case, without the C locale's table lookup (command names are ASCII).
constexpr char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality, as Redis compares command names and options.
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

inline std::string AsciiLowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

// Wall-clock milliseconds since the Unix epoch (EXAT/PXAT and expiry overflow checks).
inline int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace corral::server

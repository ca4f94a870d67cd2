// Small helpers shared by the RESP command files (resp_commands.cc, resp_server_commands.cc).
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace corral::server {

inline constexpr std::string_view kCompatVersion = "7.0.0";  // INFO/HELLO's redis_version
inline constexpr std::string_view kCorralVersion = "0.1.0";

// ASCII case-insensitive equality, as Redis compares command names and options.
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Wall-clock milliseconds since the Unix epoch (EXAT/PXAT and expiry overflow checks).
inline int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace corral::server

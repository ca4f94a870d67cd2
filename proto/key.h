// corral's key syntax: NAMESPACE:ID, split at the first ':' (SPEC "Keys and values").
#pragma once

#include <optional>
#include <string_view>

namespace corral::proto {

// Views into the key passed to SplitKey(); valid as long as its bytes are.
struct KeyParts {
  std::string_view ns;
  std::string_view id;
};

// Splits at the FIRST ':'. No ':' or an empty namespace gives nullopt: a plain cache key. The id
// may be empty and may contain further ':' ("user:" → {"user", ""}, "a:b:c" → {"a", "b:c"}).
std::optional<KeyParts> SplitKey(std::string_view key);

}  // namespace corral::proto

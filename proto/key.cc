// corral's key syntax: NAMESPACE:ID.
#include "proto/key.h"

namespace corral::proto {

std::optional<KeyParts> SplitKey(std::string_view key) {
  const size_t colon = key.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  return KeyParts{key.substr(0, colon), key.substr(colon + 1)};
}

}  // namespace corral::proto

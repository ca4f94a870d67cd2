// Helpers for libpq connection strings: adding default parameters (connect timeout, TCP keepalives)
// without overriding what the operator wrote.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corral::pg {

using ConnParams = std::vector<std::pair<std::string, std::string>>;

// Returns `conninfo` with each (key, value) of `defaults` appended unless `conninfo` already sets
// that key. Works for both libpq forms: "key=value ..." and "postgresql://...?key=value". Values
// must be plain tokens (digits, letters); they are not quoted.
std::string WithDefaultParams(std::string_view conninfo, const ConnParams& defaults);

// True when `conninfo` is in URI form ("postgresql://" or "postgres://").
bool IsConnUri(std::string_view conninfo);

}  // namespace corral::pg

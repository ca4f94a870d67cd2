// The lease module's options as the configuration sees them: a field table per option struct and
// one Validate each, which corral's JSON loader calls with the section's path.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "lease/error_holdoff.h"
#include "lease/lease_table.h"
#include "lease/option_table.h"
#include "lease/store.h"

namespace corral::lease {

// JSON "memory": max_bytes. (shards is not configurable.)
const std::vector<options::Field<StoreOptions>>& StoreFields();
// JSON "lease": wait_timeout_ms, lease_ttl_ms. (shards is not configurable.)
const std::vector<options::Field<LeaseTableOptions>>& LeaseTableFields();
// JSON "lease": error_holdoff_ms.
const std::vector<options::Field<ErrorHoldoffOptions>>& ErrorHoldoffFields();

// The first rule `o` breaks, its path under `path`; nullopt when valid. Pure.
std::optional<options::OptionError> Validate(const StoreOptions& o, std::string_view path);
std::optional<options::OptionError> Validate(const LeaseTableOptions& o, std::string_view path);
std::optional<options::OptionError> Validate(const ErrorHoldoffOptions& o, std::string_view path);

}  // namespace corral::lease

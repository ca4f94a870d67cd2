// See options.h.
#include "lease/options.h"

namespace corral::lease {

using options::Field;
using options::kMaxMs;

const std::vector<Field<StoreOptions>>& StoreFields() {
  // Below 1 MiB the 64 shards would each hold only a handful of entries.
  static const std::vector<Field<StoreOptions>> fields = {
      {.name = "max_bytes", .member = &StoreOptions::max_bytes, .min = 1 << 20},
  };
  return fields;
}

const std::vector<Field<LeaseTableOptions>>& LeaseTableFields() {
  static const std::vector<Field<LeaseTableOptions>> fields = {
      {.name = "wait_timeout_ms", .member = &LeaseTableOptions::wait_timeout_ms, .max = kMaxMs},
      {.name = "lease_ttl_ms", .member = &LeaseTableOptions::lease_ttl_ms, .min = 1, .max = kMaxMs},
  };
  return fields;
}

const std::vector<Field<ErrorHoldoffOptions>>& ErrorHoldoffFields() {
  static const std::vector<Field<ErrorHoldoffOptions>> fields = {
      {.name = "error_holdoff_ms", .member = &ErrorHoldoffOptions::error_holdoff_ms, .max = kMaxMs},
  };
  return fields;
}

std::optional<options::OptionError> Validate(const StoreOptions& o, std::string_view path) {
  return options::CheckFields(o, StoreFields(), path);
}

std::optional<options::OptionError> Validate(const LeaseTableOptions& o, std::string_view path) {
  return options::CheckFields(o, LeaseTableFields(), path);
}

std::optional<options::OptionError> Validate(const ErrorHoldoffOptions& o, std::string_view path) {
  return options::CheckFields(o, ErrorHoldoffFields(), path);
}

}  // namespace corral::lease

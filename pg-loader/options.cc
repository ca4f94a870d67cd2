// See options.h. Every range rule of the loader's options is here, once: the JSON loader and the
// Loader's constructor both call these.
#include "pg-loader/options.h"

#include <cctype>
#include <set>

#include "pg-loader/wal_keys.h"

namespace corral::pg {

using options::Field;
using options::JoinPath;
using options::kMaxMs;
using options::kMaxUs;
using options::OptionError;

namespace {
constexpr size_t kMaxChannelBytes = 63;  // PostgreSQL identifiers (NAMEDATALEN - 1)

// A replication slot's or publication's name as corral writes it unquoted: [a-z0-9_], 1-63 bytes.
bool IsPlainName(std::string_view name) {
  if (name.empty() || name.size() > kMaxChannelBytes) return false;
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string Quote(std::string_view text) {
  std::string quoted = JoinPath("", text);  // plain words stay bare; quote them anyway
  return quoted.front() == '"' ? quoted : "\"" + quoted + "\"";
}
}  // namespace

const std::vector<Field<LoaderOptions>>& LoaderFields() {
  static const std::vector<Field<LoaderOptions>> fields = {
      {.name = "primary",
       .member = &LoaderOptions::primary,
       .non_empty = true,
       .default_text = "required"},
      {.name = "statement_timeout_ms",
       .member = &LoaderOptions::statement_timeout_ms,
       .max = kMaxMs},
      {.name = "max_replica_lag_ms", .member = &LoaderOptions::max_replica_lag_ms, .max = kMaxMs},
      {.name = "health_check_interval_ms",
       .member = &LoaderOptions::health_check_interval_ms,
       .min = 1,
       .max = kMaxMs},
      {.name = "fallback_to_primary", .member = &LoaderOptions::fallback_to_primary},
      {.name = "prepared_statements", .member = &LoaderOptions::prepared_statements},
  };
  return fields;
}

const std::vector<Field<PoolOptions>>& PoolFields() {
  static const std::vector<Field<PoolOptions>> fields = {
      {.name = "connections", .member = &PoolOptions::connections, .min = 1},
      {.name = "max_inflight_loads", .member = &PoolOptions::max_inflight_loads},
      {.name = "min_inflight_loads", .member = &PoolOptions::min_inflight_loads, .min = 1},
  };
  return fields;
}

const std::vector<Field<Statement>>& StatementFields() {
  static const std::vector<Field<Statement>> fields = {
      {.name = "query", .member = &Statement::query, .non_empty = true, .default_text = "required"},
      {.name = "batch_query", .member = &Statement::batch_query, .non_empty = true},
      {.name = "pool", .member = &Statement::pool, .non_empty = true},
      {.name = "batch_max", .member = &Statement::batch_max, .min = 1},
      {.name = "batch_window_us", .member = &Statement::batch_window_us, .max = kMaxUs},
      {.name = "table", .member = &Statement::table, .non_empty = true, .default_text = "none"},
      {.name = "key_column", .member = &Statement::key_column, .non_empty = true},
  };
  return fields;
}

const std::vector<Field<ListenerOptions>>& ListenerFields() {
  static const std::vector<Field<ListenerOptions>> fields = {
      {.name = "invalidation_channel",
       .member = &ListenerOptions::invalidation_channel,
       .non_empty = true},
      {.name = "slot", .member = &ListenerOptions::slot, .non_empty = true},
      {.name = "publication", .member = &ListenerOptions::publication, .non_empty = true},
  };
  return fields;
}

void AddDefaultPool(LoaderOptions& o) {
  if (!o.pools.empty()) return;
  PoolOptions& pool = o.pools[kDefaultPool];
  for (size_t i = 0; i < o.replicas.size(); ++i) pool.replicas.push_back(i);
}

bool UsesParameterOne(std::string_view sql) {
  for (size_t at = sql.find("$1"); at != std::string_view::npos; at = sql.find("$1", at + 2)) {
    if (at + 2 == sql.size() || !std::isdigit(static_cast<unsigned char>(sql[at + 2]))) return true;
  }
  return false;
}

std::optional<OptionError> Validate(const LoaderOptions& o, std::string_view path) {
  const std::string fallback = JoinPath(path, "fallback_to_primary");
  // The JSON requires a primary (the invalidation listener runs there); the loader alone needs
  // one only to fall back to.
  if (o.fallback_to_primary && o.primary.empty()) {
    return OptionError{JoinPath(path, "primary"), "fallback_to_primary needs a primary"};
  }
  if (auto error = options::CheckFields(o, LoaderFields(), path)) return error;
  // The fields below are not in the JSON: their names are the struct's.
  if (o.connect_timeout_ms <= 0) {
    return OptionError{JoinPath(path, "connect_timeout_ms"), "must be positive"};
  }
  if (o.max_queued_per_replica == 0) {
    return OptionError{JoinPath(path, "max_queued_per_replica"), "must be positive"};
  }
  if (o.fallback_to_primary && o.primary_connections <= 0) {
    return OptionError{JoinPath(path, "primary_connections"), "must be positive"};
  }
  const std::string replicas_path = JoinPath(path, "replicas");
  for (size_t i = 0; i < o.replicas.size(); ++i) {
    if (o.replicas[i].empty()) {
      return OptionError{options::IndexPath(replicas_path, i),
                         "expected a non-empty string, got \"\""};
    }
  }
  if (o.pools.empty() && o.replicas.empty() && !o.fallback_to_primary) {
    return OptionError{replicas_path,
                       "no replicas and " + fallback + " is false: loads have nowhere to go"};
  }
  const std::string pools_path = JoinPath(path, "pools");
  for (const auto& [name, pool] : o.pools) {
    const std::string pool_path = JoinPath(pools_path, name);
    if (name.empty()) return OptionError{pool_path, "pool name must be non-empty"};
    const std::string members_path = JoinPath(pool_path, "replicas");
    std::set<size_t> seen;
    for (size_t i = 0; i < pool.replicas.size(); ++i) {
      const std::string at = options::IndexPath(members_path, i);
      const size_t index = pool.replicas[i];
      if (o.replicas.empty()) {
        return OptionError{at, "no replica to refer to: " + replicas_path + " is empty"};
      }
      if (index >= o.replicas.size()) {
        return OptionError{at, "expected an integer in [0, " +
                                   std::to_string(o.replicas.size() - 1) + "], got " +
                                   std::to_string(index)};
      }
      if (!seen.insert(index).second) {
        return OptionError{at, "replica " + std::to_string(index) + " listed twice"};
      }
    }
    if (pool.replicas.empty() && !o.fallback_to_primary) {
      return OptionError{members_path, "pool has no replicas and " + fallback + " is false"};
    }
    if (auto error = options::CheckFields(pool, PoolFields(), pool_path)) return error;
    if (pool.max_inflight_loads > 0 && pool.min_inflight_loads > pool.max_inflight_loads) {
      return OptionError{JoinPath(pool_path, "min_inflight_loads"),
                         "must not exceed max_inflight_loads (" +
                             std::to_string(pool.max_inflight_loads) + "), got " +
                             std::to_string(pool.min_inflight_loads)};
    }
  }
  return std::nullopt;
}

std::optional<OptionError> Validate(const ListenerOptions& o, std::string_view path) {
  const std::string channel_path = JoinPath(path, "invalidation_channel");
  if (o.invalidation_channel.empty()) {
    return OptionError{channel_path, "expected a non-empty string, got \"\""};
  }
  if (o.invalidation_channel.size() > kMaxChannelBytes) {
    return OptionError{channel_path, "longer than PostgreSQL's 63-byte identifier limit"};
  }
  for (const auto& [name, value] : {std::pair<std::string_view, const std::string&>{"slot", o.slot},
                                    {"publication", o.publication}}) {
    if (!IsPlainName(value)) {
      return OptionError{
          JoinPath(path, name),
          "expected lower-case letters, digits and underscores (at most 63), got " + Quote(value)};
    }
  }
  return std::nullopt;
}

std::string WalSlotName(std::string_view slot, std::string_view node) {
  std::string name(slot);
  name += '_';
  for (const char c : node) {
    const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    name +=
        (std::isalnum(static_cast<unsigned char>(lower)) && static_cast<unsigned char>(c) < 0x80)
            ? lower
            : '_';
  }
  if (name.size() > kMaxChannelBytes) name.resize(kMaxChannelBytes);
  return name;
}

std::optional<OptionError> Validate(const Statement& s, std::string_view path,
                                    const LoaderOptions& loader, std::string_view loader_path) {
  if (!UsesParameterOne(s.query)) {
    return OptionError{JoinPath(path, "query"), "must use $1 (the key's ID)"};
  }
  if (!s.batch_query.empty() && !UsesParameterOne(s.batch_query)) {
    return OptionError{JoinPath(path, "batch_query"), "must use $1 (the array of IDs)"};
  }
  const std::string pool = s.pool.empty() ? kDefaultPool : s.pool;
  const bool known = loader.pools.empty() ? pool == kDefaultPool : loader.pools.contains(pool);
  if (!known) {
    std::string names;
    for (const auto& [name, options] : loader.pools) names += (names.empty() ? "" : ", ") + name;
    if (loader.pools.empty()) names = kDefaultPool;
    return OptionError{JoinPath(path, "pool"),
                       "unknown pool " + Quote(pool) + " (" + JoinPath(loader_path, "pools") +
                           " has: " + (names.empty() ? "none" : names) + ")"};
  }
  if (auto error = options::CheckFields(s, StatementFields(), path)) return error;
  if (!s.table.empty() && !MakeKeySource(s.name.empty() ? "ns" : s.name, s.table, s.key_column)) {
    return OptionError{JoinPath(path, "table"),
                       "expected \"schema.table\" or \"table\", got " + Quote(s.table)};
  }
  return std::nullopt;
}

}  // namespace corral::pg

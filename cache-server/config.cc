// Parses and validates corral's JSON configuration (SPEC.md "Configuration (JSON)"). One small
// helper per JSON type, each naming the JSON path it failed on; sections below follow the layout.
#include "cache-server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

namespace corral::server {

ConfigError::ConfigError(std::string path_in, std::string problem_in)
    : std::runtime_error(path_in.empty() ? problem_in : path_in + ": " + problem_in),
      path(std::move(path_in)),
      problem(std::move(problem_in)) {}

int DefaultThreads() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));
}

namespace {

using Json = nlohmann::json;

constexpr int64_t kMiB = 1LL << 20;
// Durations are capped so that callers may convert them to nanoseconds and add them to a clock.
constexpr int64_t kMaxSeconds = 365LL * 24 * 3600;  // one year
constexpr int64_t kMaxMs = kMaxSeconds * 1000;
constexpr int64_t kMaxUs = kMaxMs * 1000;
constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxChannelBytes = 63;  // PostgreSQL identifiers (NAMEDATALEN - 1)

[[noreturn]] void Fail(const std::string& path, std::string problem) {
  throw ConfigError(path, std::move(problem));
}

// Appends `key` to a JSON path; keys that are not plain words are quoted so the path stays
// unambiguous ("namespaces.\"a.b\"").
std::string Join(const std::string& path, std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) {
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  }
  std::string segment = plain ? std::string(key) : Json(std::string(key)).dump();
  return path.empty() ? segment : path + "." + segment;
}

std::string Index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// The offending value as JSON, shortened so that a misplaced section does not flood the message.
std::string Show(const Json& value) {
  constexpr size_t kMaxShown = 40;
  std::string text = value.dump();
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

[[noreturn]] void FailExpected(const std::string& path, std::string_view expected,
                               const Json& got) {
  Fail(path, "expected " + std::string(expected) + ", got " + Show(got));
}

const Json* Find(const Json& object, std::string_view key) {
  auto it = object.find(std::string(key));
  return it == object.end() ? nullptr : &*it;
}

void CheckObject(const std::string& path, const Json& value) {
  if (!value.is_object()) FailExpected(path, "an object", value);
}

// Rejects keys outside `known`, naming the first unknown key and listing the known ones.
void CheckKnownKeys(const std::string& path, const Json& object,
                    std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (std::string_view k : known) found = found || k == key;
    if (found) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    Fail(Join(path, key), "unknown field (expected one of: " + list + ")");
  }
}

// The section `key` of `parent`, checked to be an object with only `known` keys; null if absent.
const Json* GetSection(const std::string& path, const Json& parent, std::string_view key,
                       std::initializer_list<std::string_view> known) {
  const Json* section = Find(parent, key);
  if (section == nullptr) return nullptr;
  CheckObject(Join(path, key), *section);
  CheckKnownKeys(Join(path, key), *section, known);
  return section;
}

std::string DescribeIntRange(int64_t min, int64_t max, int64_t type_max) {
  if (max < type_max) {
    return "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  }
  if (min == 0) return "a non-negative integer";
  if (min == 1) return "a positive integer";
  return "an integer >= " + std::to_string(min);
}

// An integer in [min, max]. Integral floats (1e9) are accepted; 2.5, "2", true are not.
int64_t AsInt(const std::string& path, const Json& value, int64_t min, int64_t max,
              int64_t type_max) {
  std::string expected = DescribeIntRange(min, max, type_max);
  int64_t n = 0;
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(kNoMax)) FailExpected(path, expected, value);
    n = static_cast<int64_t>(u);
  } else if (value.is_number_integer()) {
    n = value.get<int64_t>();
  } else if (value.is_number_float()) {
    double d = value.get<double>();
    // 2^63 is exact as a double; anything at or past it does not fit.
    if (!std::isfinite(d) || d != std::trunc(d) || d < -0x1p63 || d >= 0x1p63) {
      FailExpected(path, expected, value);
    }
    n = static_cast<int64_t>(d);
  } else {
    FailExpected(path, expected, value);
  }
  if (n < min || n > max) FailExpected(path, expected, value);
  return n;
}

// Reads object[key] into *out when present (else *out keeps its default). Same for the Get*
// helpers below. T is an integer type; `max` defaults to T's own limit.
template <typename T>
void GetInt(const std::string& path, const Json& object, std::string_view key, T* out, int64_t min,
            int64_t max = static_cast<int64_t>(std::numeric_limits<T>::max())) {
  constexpr int64_t kTypeMax = static_cast<int64_t>(std::numeric_limits<T>::max());
  if (const Json* value = Find(object, key)) {
    *out = static_cast<T>(AsInt(Join(path, key), *value, min, std::min(max, kTypeMax), kTypeMax));
  }
}

void GetDouble(const std::string& path, const Json& object, std::string_view key, double* out,
               double min, double max = std::numeric_limits<double>::infinity()) {
  const Json* value = Find(object, key);
  if (value == nullptr) return;
  auto show = [](double d) {  // "1", not "1.0"
    std::ostringstream out;
    out << d;
    return out.str();
  };
  std::string expected = std::isinf(max)
                             ? (min == 0 ? "a non-negative number" : "a number >= " + show(min))
                             : "a number in [" + show(min) + ", " + show(max) + "]";
  if (!value->is_number()) FailExpected(Join(path, key), expected, *value);
  double d = value->get<double>();
  if (!std::isfinite(d) || d < min || d > max) FailExpected(Join(path, key), expected, *value);
  *out = d;
}

void GetBool(const std::string& path, const Json& object, std::string_view key, bool* out) {
  const Json* value = Find(object, key);
  if (value == nullptr) return;
  if (!value->is_boolean()) FailExpected(Join(path, key), "true or false", *value);
  *out = value->get<bool>();
}

enum class Empty { kAllowed, kRejected };

std::string AsString(const std::string& path, const Json& value, Empty empty) {
  if (!value.is_string() ||
      (empty == Empty::kRejected && value.get_ref<const std::string&>().empty())) {
    FailExpected(path, empty == Empty::kRejected ? "a non-empty string" : "a string", value);
  }
  return value.get<std::string>();
}

// Returns whether object[key] was present.
bool GetString(const std::string& path, const Json& object, std::string_view key, std::string* out,
               Empty empty) {
  const Json* value = Find(object, key);
  if (value == nullptr) return false;
  *out = AsString(Join(path, key), *value, empty);
  return true;
}

void GetChoice(const std::string& path, const Json& object, std::string_view key, std::string* out,
               std::initializer_list<std::string_view> choices) {
  const Json* value = Find(object, key);
  if (value == nullptr) return;
  std::string list;
  for (std::string_view c : choices) list += (list.empty() ? "" : ", ") + Json(c).dump();
  std::string expected = "one of " + list;
  if (!value->is_string()) FailExpected(Join(path, key), expected, *value);
  for (std::string_view c : choices) {
    if (c == value->get_ref<const std::string&>()) {
      *out = c;
      return;
    }
  }
  FailExpected(Join(path, key), expected, *value);
}

void RequirePresent(const std::string& path, bool present) {
  if (!present) Fail(path, "required field is missing");
}

// True when `sql` uses parameter $1 ("$10" alone does not count).
bool UsesParameterOne(std::string_view sql) {
  for (size_t at = sql.find("$1"); at != std::string_view::npos; at = sql.find("$1", at + 2)) {
    if (at + 2 == sql.size() || !std::isdigit(static_cast<unsigned char>(sql[at + 2]))) return true;
  }
  return false;
}

HostPort AsHostPort(const std::string& path, const Json& value) {
  std::optional<HostPort> address;
  if (value.is_string()) address = ParseHostPort(value.get_ref<const std::string&>());
  if (!address) {
    FailExpected(path, "an address \"ipv4:port\", \"[ipv6]:port\" or \":port\" (port 0-65535)",
                 value);
  }
  return *address;
}

// ---- Sections, in the order of SPEC.md's example. ----

PoolConfig ParsePool(const std::string& path, const Json& json, const PostgresConfig& pg) {
  CheckObject(path, json);
  CheckKnownKeys(path, json, {"replicas", "connections", "routing", "max_inflight_loads"});
  PoolConfig pool;
  const std::string replicas_path = Join(path, "replicas");
  const Json* replicas = Find(json, "replicas");
  if (replicas == nullptr || *replicas == "all") {
    pool.replicas = pg.replicas;
  } else if (replicas->is_array()) {
    std::set<int64_t> seen;
    for (size_t i = 0; i < replicas->size(); ++i) {
      const std::string at = Index(replicas_path, i);
      if (pg.replicas.empty()) Fail(at, "no replica to refer to: postgres.replicas is empty");
      int64_t index =
          AsInt(at, (*replicas)[i], 0, static_cast<int64_t>(pg.replicas.size()) - 1, kNoMax);
      if (!seen.insert(index).second) {
        Fail(at, "replica " + std::to_string(index) + " listed twice");
      }
      pool.replicas.push_back(pg.replicas[index]);
    }
  } else {
    FailExpected(replicas_path, "\"all\" or an array of indices into postgres.replicas", *replicas);
  }
  if (pool.replicas.empty() && !pg.fallback_to_primary) {
    Fail(replicas_path, "pool has no replicas and postgres.fallback_to_primary is false");
  }
  GetInt(path, json, "connections", &pool.connections, 1);
  GetChoice(path, json, "routing", &pool.routing, {"round_robin", "least_loaded"});
  GetInt(path, json, "max_inflight_loads", &pool.max_inflight_loads, 0);
  return pool;
}

PostgresConfig ParsePostgres(const std::string& path, const Json& json) {
  PostgresConfig pg;
  RequirePresent(Join(path, "primary"),
                 GetString(path, json, "primary", &pg.primary, Empty::kRejected));
  if (const Json* replicas = Find(json, "replicas")) {
    const std::string replicas_path = Join(path, "replicas");
    if (!replicas->is_array()) {
      FailExpected(replicas_path, "an array of connection strings", *replicas);
    }
    for (size_t i = 0; i < replicas->size(); ++i) {
      pg.replicas.push_back(AsString(Index(replicas_path, i), (*replicas)[i], Empty::kRejected));
    }
  }
  GetInt(path, json, "statement_timeout_ms", &pg.statement_timeout_ms, 0, kMaxMs);
  GetInt(path, json, "max_replica_lag_ms", &pg.max_replica_lag_ms, 0, kMaxMs);
  GetInt(path, json, "health_check_interval_ms", &pg.health_check_interval_ms, 1, kMaxMs);
  GetBool(path, json, "fallback_to_primary", &pg.fallback_to_primary);
  GetBool(path, json, "prepared_statements", &pg.prepared_statements);
  if (GetString(path, json, "invalidation_channel", &pg.invalidation_channel, Empty::kRejected) &&
      pg.invalidation_channel.size() > kMaxChannelBytes) {
    Fail(Join(path, "invalidation_channel"), "longer than PostgreSQL's 63-byte identifier limit");
  }

  const std::string pools_path = Join(path, "pools");
  if (const Json* pools = Find(json, "pools")) {
    CheckObject(pools_path, *pools);
    for (const auto& [name, pool] : pools->items()) {
      if (name.empty()) Fail(Join(pools_path, name), "pool name must be non-empty");
      pg.pools.emplace(name, ParsePool(Join(pools_path, name), pool, pg));
    }
  } else {
    if (pg.replicas.empty() && !pg.fallback_to_primary) {
      Fail(Join(path, "replicas"),
           "no replicas and postgres.fallback_to_primary is false: loads have nowhere to go");
    }
    pg.pools.emplace("default", PoolConfig{pg.replicas});
  }
  return pg;
}

NamespaceConfig ParseNamespace(const std::string& path, const std::string& name, const Json& json,
                               const std::optional<PostgresConfig>& pg) {
  if (name.empty() || name.find(':') != std::string::npos) {
    Fail(path, "a namespace name must be non-empty and contain no ':'");
  }
  CheckObject(path, json);
  CheckKnownKeys(
      path, json,
      {"query", "batch_query", "pool", "ttl_ms", "ttl_jitter", "stale_ms", "negative_ttl_ms",
       "max_inflight_loads", "max_loads_per_s", "blocked", "batch_max", "batch_window_us"});
  NamespaceConfig ns;
  ns.name = name;
  const std::string query_path = Join(path, "query");
  RequirePresent(query_path, GetString(path, json, "query", &ns.query, Empty::kRejected));
  if (!UsesParameterOne(ns.query)) Fail(query_path, "must use $1 (the key's ID)");
  if (!pg) Fail(query_path, "a namespace with a query needs a \"postgres\" section");
  if (GetString(path, json, "batch_query", &ns.batch_query, Empty::kRejected) &&
      !UsesParameterOne(ns.batch_query)) {
    Fail(Join(path, "batch_query"), "must use $1 (the array of IDs)");
  }
  GetString(path, json, "pool", &ns.pool, Empty::kRejected);
  if (!pg->pools.contains(ns.pool)) {
    std::string known;
    for (const auto& [pool_name, pool] : pg->pools) {
      known += (known.empty() ? "" : ", ") + pool_name;
    }
    Fail(Join(path, "pool"), "unknown pool " + Json(ns.pool).dump() +
                                 " (postgres.pools has: " + (known.empty() ? "none" : known) + ")");
  }
  GetInt(path, json, "ttl_ms", &ns.ttl_ms, 1, kMaxMs);
  GetDouble(path, json, "ttl_jitter", &ns.ttl_jitter, 0, 1);
  GetInt(path, json, "stale_ms", &ns.stale_ms, 0, kMaxMs);
  GetInt(path, json, "negative_ttl_ms", &ns.negative_ttl_ms, 0, kMaxMs);
  GetInt(path, json, "max_inflight_loads", &ns.max_inflight_loads, 1);
  GetDouble(path, json, "max_loads_per_s", &ns.max_loads_per_s, 0);
  GetBool(path, json, "blocked", &ns.blocked);
  GetInt(path, json, "batch_max", &ns.batch_max, 1);
  GetInt(path, json, "batch_window_us", &ns.batch_window_us, 0, kMaxUs);
  return ns;
}

Config ParseRoot(const Json& root) {
  if (!root.is_object()) FailExpected("", "a JSON object at the top level", root);
  CheckKnownKeys("", root,
                 {"listen", "threads", "memory", "log_level", "postgres", "namespaces", "lease",
                  "shedding", "resp", "http", "shutdown"});
  Config config;
  if (const Json* listen = GetSection("", root, "listen", {"resp", "http"})) {
    if (const Json* resp = Find(*listen, "resp")) config.resp = AsHostPort("listen.resp", *resp);
    if (const Json* http = Find(*listen, "http")) config.http = AsHostPort("listen.http", *http);
  }
  GetInt("", root, "threads", &config.threads, 1, 256);
  if (const Json* memory = GetSection("", root, "memory", {"max_bytes"})) {
    GetInt("memory", *memory, "max_bytes", &config.max_bytes, kMiB);
  }
  GetChoice("", root, "log_level", &config.log_level, {"debug", "info", "warn", "error"});
  if (const Json* pg =
          GetSection("", root, "postgres",
                     {"primary", "replicas", "pools", "statement_timeout_ms", "max_replica_lag_ms",
                      "health_check_interval_ms", "fallback_to_primary", "invalidation_channel",
                      "prepared_statements"})) {
    config.postgres = ParsePostgres("postgres", *pg);
  }
  if (const Json* namespaces = Find(root, "namespaces")) {
    CheckObject("namespaces", *namespaces);
    for (const auto& [name, ns] : namespaces->items()) {
      config.namespaces.emplace(
          name, ParseNamespace(Join("namespaces", name), name, ns, config.postgres));
    }
  }
  if (const Json* lease =
          GetSection("", root, "lease", {"wait_timeout_ms", "lease_ttl_ms", "error_holdoff_ms"})) {
    GetInt("lease", *lease, "wait_timeout_ms", &config.lease.wait_timeout_ms, 0, kMaxMs);
    GetInt("lease", *lease, "lease_ttl_ms", &config.lease.lease_ttl_ms, 1, kMaxMs);
    GetInt("lease", *lease, "error_holdoff_ms", &config.lease.error_holdoff_ms, 0, kMaxMs);
  }
  if (const Json* shed = GetSection("", root, "shedding", {"max_pending_loads", "max_clients"})) {
    GetInt("shedding", *shed, "max_pending_loads", &config.shedding.max_pending_loads, 1);
    GetInt("shedding", *shed, "max_clients", &config.shedding.max_clients, 1);
  }
  if (const Json* resp =
          GetSection("", root, "resp",
                     {"requirepass", "proto_max_bulk_len", "max_query_buffer", "idle_timeout_s"})) {
    RespConfig& r = config.resp_options;
    GetString("resp", *resp, "requirepass", &r.requirepass, Empty::kAllowed);
    GetInt("resp", *resp, "proto_max_bulk_len", &r.proto_max_bulk_len, 1);
    GetInt("resp", *resp, "max_query_buffer", &r.max_query_buffer, 1);
    GetInt("resp", *resp, "idle_timeout_s", &r.idle_timeout_s, 0, kMaxSeconds);
  }
  if (const Json* http = GetSection("", root, "http",
                                    {"max_header_bytes", "max_body_bytes", "read_timeout_ms",
                                     "idle_timeout_ms", "max_pipelined"})) {
    HttpConfig& h = config.http_options;
    // Beast's header limit is a uint32_t.
    GetInt("http", *http, "max_header_bytes", &h.max_header_bytes, 1,
           std::numeric_limits<uint32_t>::max());
    GetInt("http", *http, "max_body_bytes", &h.max_body_bytes, 0);
    GetInt("http", *http, "read_timeout_ms", &h.read_timeout_ms, 1, kMaxMs);
    GetInt("http", *http, "idle_timeout_ms", &h.idle_timeout_ms, 1, kMaxMs);
    GetInt("http", *http, "max_pipelined", &h.max_pipelined, 1);
  }
  if (const Json* shutdown = GetSection("", root, "shutdown", {"drain_grace_ms", "timeout_ms"})) {
    GetInt("shutdown", *shutdown, "drain_grace_ms", &config.shutdown.drain_grace_ms, 0, kMaxMs);
    GetInt("shutdown", *shutdown, "timeout_ms", &config.shutdown.timeout_ms, 0, kMaxMs);
  }
  return config;
}

// nlohmann keeps the last of two equal keys silently; a config that sets ttl_ms twice is a
// mistake, so the parser callback tracks where it is and rejects a repeated key.
class DuplicateKeyCheck {
 public:
  bool operator()(int /*depth*/, nlohmann::json::parse_event_t event, Json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        CountArrayElement();
        frames_.push_back(Frame{event == Event::array_start, {}, "", 0});
        break;
      case Event::object_end:
      case Event::array_end:
        frames_.pop_back();
        break;
      case Event::key: {
        Frame& top = frames_.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second) Fail(Join(PathOfTop(), top.key), "duplicate field");
        break;
      }
      case Event::value:
        CountArrayElement();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array;
    std::set<std::string> keys;  // objects: keys seen so far
    std::string key;             // objects: the current key
    size_t elements;             // arrays: elements seen so far
  };

  void CountArrayElement() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().elements;
  }

  // The JSON path of the innermost open object or array.
  std::string PathOfTop() const {
    std::string path;
    for (size_t i = 0; i + 1 < frames_.size(); ++i) {
      path = frames_[i].array ? Index(path, frames_[i].elements - 1) : Join(path, frames_[i].key);
    }
    return path;
  }

  std::vector<Frame> frames_;
};

}  // namespace

Config ParseConfig(std::string_view json_text) {
  Json root;
  try {
    root = Json::parse(json_text, DuplicateKeyCheck());
  } catch (const Json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 2, column 5: ...".
    std::string_view message = e.what();
    if (size_t end = message.find("] "); end != std::string_view::npos)
      message.remove_prefix(end + 2);
    Fail("", "invalid JSON: " + std::string(message));
  }
  return ParseRoot(root);
}

Config LoadConfigFile(const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    Fail("", "cannot read config file \"" + file + "\": is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) Fail("", "cannot read config file \"" + file + "\": " + std::strerror(errno));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) Fail("", "cannot read config file \"" + file + "\": " + std::strerror(errno));
  return ParseConfig(text);
}

std::optional<HostPort> ParseHostPort(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string host(text.substr(0, colon));
  const std::string_view port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
    return std::nullopt;
  }
  const int port_number = std::stoi(std::string(port));
  if (port_number > 65535) return std::nullopt;
  if (host.empty()) return HostPort{"0.0.0.0", static_cast<uint16_t>(port_number)};
  // Only IP literals: the server binds without resolving names.
  unsigned char buffer[sizeof(in6_addr)];
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (inet_pton(AF_INET6, host.c_str(), buffer) != 1) return std::nullopt;
  } else if (inet_pton(AF_INET, host.c_str(), buffer) != 1) {
    return std::nullopt;
  }
  return HostPort{host, static_cast<uint16_t>(port_number)};
}

std::string FormatHostPort(const HostPort& address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

std::string DescribeConfig(const Config& config) {
  auto join_names = [](const auto& map) {
    std::string names;
    for (const auto& [name, value] : map) names += (names.empty() ? "" : ",") + name;
    return names.empty() ? std::string("none") : names;
  };
  std::string line =
      "resp=" + FormatHostPort(config.resp) + " http=" + FormatHostPort(config.http) +
      " threads=" + std::to_string(config.threads) +
      " max_bytes=" + std::to_string(config.max_bytes) + " log_level=" + config.log_level +
      " auth=" + (config.resp_options.requirepass.empty() ? "off" : "on");
  if (!config.postgres) return line + " postgres=off namespaces=" + join_names(config.namespaces);
  const PostgresConfig& pg = *config.postgres;
  line += " postgres=on replicas=" + std::to_string(pg.replicas.size()) + " pools=";
  bool first = true;
  for (const auto& [name, pool] : pg.pools) {
    line += (first ? "" : ",") + name + "(replicas=" + std::to_string(pool.replicas.size()) +
            ",connections=" + std::to_string(pool.connections) + ",routing=" + pool.routing + ")";
    first = false;
  }
  return line + " fallback_to_primary=" + (pg.fallback_to_primary ? "true" : "false") +
         " prepared_statements=" + (pg.prepared_statements ? "true" : "false") +
         " namespaces=" + join_names(config.namespaces);
}

}  // namespace corral::server

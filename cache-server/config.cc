// Parses and validates corral's JSON configuration (SPEC.md "Configuration (JSON)"). One small
// helper per JSON type, each naming the JSON path it failed on; sections below follow the layout.
#include "cache-server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <sstream>
#include <thread>
#include <utility>

#include "cache-server/keyspace_events.h"

namespace corral::server {

ConfigError::ConfigError(std::string path_in, std::string problem_in)
    : std::runtime_error(path_in.empty() ? problem_in : path_in + ": " + problem_in),
      path(std::move(path_in)),
      problem(std::move(problem_in)) {}

namespace {
// The cache-server's own tables, declared below with the JSON helpers.
const std::vector<options::Field<Config>>& RootFields();
const std::vector<options::Field<SheddingConfig>>& SheddingFields();
const std::vector<options::Field<RespConfig>>& RespFields();
const std::vector<options::Field<HttpConfig>>& HttpFields();
const std::vector<options::Field<ShutdownConfig>>& ShutdownFields();
const std::vector<options::Field<RedisConfig>>& RedisFields();
const std::vector<options::Field<TlsConfig>>& TlsFields();
}  // namespace

int DefaultThreads() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));
}

namespace {

using Json = nlohmann::json;
using options::Field;
using options::kMaxMs;
using options::kMaxSeconds;
using options::kNoMax;

// ---- The cache-server's own field tables (the modules' are in lease/options.h and
// pg-loader/options.h). Ranges are inclusive; see options::Field. ----

const std::vector<Field<Config>>& RootFields() {
  static const std::vector<Field<Config>> fields = {
      {.name = "threads",
       .member = &Config::threads,
       .min = 1,
       .max = 256,
       .default_text = "half the cores, at least 1"},
      {.name = "protected_mode", .member = &Config::protected_mode},
  };
  return fields;
}

const std::vector<Field<NamespaceCacheOptions>>& NamespaceCacheFields() {
  using N = NamespaceCacheOptions;
  static const std::vector<Field<N>> fields = {
      {.name = "ttl_ms", .member = &N::ttl_ms, .min = 1, .max = kMaxMs},
      {.name = "ttl_jitter", .member = &N::ttl_jitter, .max_number = 1},
      {.name = "stale_ms", .member = &N::stale_ms, .max = kMaxMs},
      {.name = "negative_ttl_ms", .member = &N::negative_ttl_ms, .max = kMaxMs},
      {.name = "max_inflight_loads", .member = &N::max_inflight_loads, .min = 1},
      {.name = "max_loads_per_s", .member = &N::max_loads_per_s},
      {.name = "blocked", .member = &N::blocked},
  };
  return fields;
}

const std::vector<Field<SheddingConfig>>& SheddingFields() {
  static const std::vector<Field<SheddingConfig>> fields = {
      {.name = "max_pending_loads", .member = &SheddingConfig::max_pending_loads, .min = 1},
      {.name = "max_clients", .member = &SheddingConfig::max_clients, .min = 1},
  };
  return fields;
}

const std::vector<Field<RespConfig>>& RespFields() {
  static const std::vector<Field<RespConfig>> fields = {
      {.name = "requirepass", .member = &RespConfig::requirepass},
      {.name = "proto_max_bulk_len", .member = &RespConfig::proto_max_bulk_len, .min = 1},
      {.name = "max_query_buffer", .member = &RespConfig::max_query_buffer, .min = 1},
      {.name = "idle_timeout_s", .member = &RespConfig::idle_timeout_s, .max = kMaxSeconds},
      {.name = "tracking_table_max_keys", .member = &RespConfig::tracking_table_max_keys, .min = 1},
  };
  return fields;
}

const std::vector<Field<HttpConfig>>& HttpFields() {
  static const std::vector<Field<HttpConfig>> fields = {
      // Beast's header limit is a uint32_t.
      {.name = "max_header_bytes",
       .member = &HttpConfig::max_header_bytes,
       .min = 1,
       .max = std::numeric_limits<uint32_t>::max()},
      {.name = "max_body_bytes", .member = &HttpConfig::max_body_bytes},
      {.name = "read_timeout_ms", .member = &HttpConfig::read_timeout_ms, .min = 1, .max = kMaxMs},
      {.name = "idle_timeout_ms", .member = &HttpConfig::idle_timeout_ms, .min = 1, .max = kMaxMs},
      {.name = "max_pipelined", .member = &HttpConfig::max_pipelined, .min = 1},
      {.name = "open_metrics", .member = &HttpConfig::open_metrics},
  };
  return fields;
}

const std::vector<Field<ShutdownConfig>>& ShutdownFields() {
  static const std::vector<Field<ShutdownConfig>> fields = {
      {.name = "drain_grace_ms", .member = &ShutdownConfig::drain_grace_ms, .max = kMaxMs},
      {.name = "timeout_ms", .member = &ShutdownConfig::timeout_ms, .max = kMaxMs},
  };
  return fields;
}

const std::vector<Field<TlsConfig>>& TlsFields() {
  static const std::vector<Field<TlsConfig>> fields = {
      {.name = "cert_file", .member = &TlsConfig::cert_file},
      {.name = "key_file", .member = &TlsConfig::key_file},
      {.name = "ca_file", .member = &TlsConfig::ca_file},
      {.name = "handshake_timeout_ms",
       .member = &TlsConfig::handshake_timeout_ms,
       .min = 1,
       .max = kMaxMs},
  };
  return fields;
}

constexpr std::string_view kLogLevels[] = {"debug", "info", "warn", "error"};
// JSON memory.policy: lease::EvictionPolicy's names, then Redis's noeviction.
constexpr std::string_view kMemoryPolicyNames[] = {"tinylfu", "clock", "noeviction"};
constexpr size_t kNoEvictionChoice = 2;
static_assert(std::size(lease::kEvictionPolicyNames) == kNoEvictionChoice);
constexpr std::string_view kTlsAuthClients[] = {"no", "optional", "yes"};
constexpr std::string_view kTlsVersions[] = {"1.2", "1.3"};
constexpr char kAddressExpected[] =
    "an address \"ipv4:port\", \"[ipv6]:port\" or \":port\" (port 0-65535)";

// ---- JSON helpers: each names the JSON path it failed on. ----

[[noreturn]] void Fail(const std::string& path, std::string problem) {
  throw ConfigError(path, std::move(problem));
}

// A module's Validate result, thrown when it found a problem.
void Check(const std::optional<options::OptionError>& error) {
  if (error) Fail(error->path, error->problem);
}

std::string Join(const std::string& path, std::string_view key) {
  return options::JoinPath(path, key);
}

std::string Index(const std::string& path, size_t i) { return options::IndexPath(path, i); }

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
                    const std::vector<std::string_view>& known) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    Fail(Join(path, key), "unknown field (expected one of: " + list + ")");
  }
}

// `extra` followed by the names of every field table given.
template <typename... S>
std::vector<std::string_view> Names(std::vector<std::string_view> extra,
                                    const std::vector<Field<S>>&... tables) {
  (..., [&] {
    for (const auto& field : tables) extra.push_back(field.name);
  }());
  return extra;
}

// The section `key` of `parent`, checked to be an object with only `known` keys; null if absent.
const Json* GetSection(const std::string& path, const Json& parent, std::string_view key,
                       const std::vector<std::string_view>& known) {
  const Json* section = Find(parent, key);
  if (section == nullptr) return nullptr;
  CheckObject(Join(path, key), *section);
  CheckKnownKeys(Join(path, key), *section, known);
  return section;
}

// An integer in [min, max]. Integral floats (1e9) are accepted; 2.5, "2", true are not.
int64_t AsInt(const std::string& path, const Json& value, int64_t min, int64_t max,
              const std::string& expected) {
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

enum class Empty { kAllowed, kRejected };

std::string AsString(const std::string& path, const Json& value, Empty empty) {
  if (!value.is_string() ||
      (empty == Empty::kRejected && value.get_ref<const std::string&>().empty())) {
    FailExpected(path, empty == Empty::kRejected ? "a non-empty string" : "a string", value);
  }
  return value.get<std::string>();
}

// Reads every field of `fields` present in `object` into `out` (absent ones keep their
// defaults), checking each value's type and range as the table says.
template <typename S>
void ReadFields(const std::string& path, const Json& object, S& out,
                const std::vector<Field<S>>& fields) {
  for (const Field<S>& field : fields) {
    const Json* value = Find(object, field.name);
    if (value == nullptr) continue;
    const std::string at = Join(path, field.name);
    if (field.is_integer()) {
      field.SetInteger(out, AsInt(at, *value, field.min, field.effective_max(), field.Expected()));
    } else if (auto number = std::get_if<double S::*>(&field.member)) {
      if (!value->is_number()) FailExpected(at, field.Expected(), *value);
      double d = value->get<double>();
      if (!std::isfinite(d) || d < field.min_number || d > field.max_number) {
        FailExpected(at, field.Expected(), *value);
      }
      out.** number = d;
    } else if (auto flag = std::get_if<bool S::*>(&field.member)) {
      if (!value->is_boolean()) FailExpected(at, field.Expected(), *value);
      out.** flag = value->get<bool>();
    } else {
      out.*std::get<std::string S::*>(field.member) =
          AsString(at, *value, field.non_empty ? Empty::kRejected : Empty::kAllowed);
    }
  }
}

std::string ChoiceList(std::span<const std::string_view> choices) {
  std::string list;
  for (std::string_view c : choices) list += (list.empty() ? "" : ", ") + Json(c).dump();
  return "one of " + list;
}

// The index in `choices` of object[key], or nullopt when absent.
std::optional<size_t> GetChoice(const std::string& path, const Json& object, std::string_view key,
                                std::span<const std::string_view> choices) {
  const Json* value = Find(object, key);
  if (value == nullptr) return std::nullopt;
  if (value->is_string()) {
    for (size_t i = 0; i < choices.size(); ++i) {
      if (choices[i] == value->get_ref<const std::string&>()) return i;
    }
  }
  FailExpected(Join(path, key), ChoiceList(choices), *value);
}

void RequirePresent(const std::string& path, bool present) {
  if (!present) Fail(path, "required field is missing");
}

HostPort AsHostPort(const std::string& path, const Json& value) {
  std::optional<HostPort> address;
  if (value.is_string()) address = ParseHostPort(value.get_ref<const std::string&>());
  if (!address) FailExpected(path, kAddressExpected, value);
  return *address;
}

// ---- Sections, in the order of SPEC.md's example. ----

PoolConfig ParsePool(const std::string& path, const Json& json, const PostgresConfig& pg) {
  CheckObject(path, json);
  CheckKnownKeys(path, json, Names({"replicas", "routing"}, pg::PoolFields()));
  PoolConfig pool;
  const std::string replicas_path = Join(path, "replicas");
  const Json* replicas = Find(json, "replicas");
  if (replicas == nullptr || *replicas == "all") {
    for (size_t i = 0; i < pg.replicas.size(); ++i) pool.replicas.push_back(i);
  } else if (replicas->is_array()) {
    // Only the type here: range and repeats are pg::Validate's.
    const std::string expected =
        pg.replicas.empty() ? "an index into postgres.replicas"
                            : "an integer in [0, " + std::to_string(pg.replicas.size() - 1) + "]";
    for (size_t i = 0; i < replicas->size(); ++i) {
      pool.replicas.push_back(
          static_cast<size_t>(AsInt(Index(replicas_path, i), (*replicas)[i], 0, kNoMax, expected)));
    }
  } else {
    FailExpected(replicas_path, "\"all\" or an array of indices into postgres.replicas", *replicas);
  }
  ReadFields(path, json, pool, pg::PoolFields());
  if (auto routing = GetChoice(path, json, "routing", pg::kRoutingNames)) {
    pool.routing = static_cast<pg::Routing>(*routing);
  }
  return pool;
}

PostgresConfig ParsePostgres(const std::string& path, const Json& json) {
  PostgresConfig pg;
  RequirePresent(Join(path, "primary"), Find(json, "primary") != nullptr);
  ReadFields<pg::LoaderOptions>(path, json, pg, pg::LoaderFields());
  ReadFields<pg::ListenerOptions>(path, json, pg, pg::ListenerFields());
  if (auto mode = GetChoice(path, json, "invalidation", pg::kInvalidationModeNames)) {
    pg.invalidation = static_cast<pg::InvalidationMode>(*mode);
  }
  if (const Json* replicas = Find(json, "replicas")) {
    const std::string replicas_path = Join(path, "replicas");
    if (!replicas->is_array()) {
      FailExpected(replicas_path, "an array of connection strings", *replicas);
    }
    for (size_t i = 0; i < replicas->size(); ++i) {
      pg.replicas.push_back(AsString(Index(replicas_path, i), (*replicas)[i], Empty::kRejected));
    }
  }
  const std::string pools_path = Join(path, "pools");
  if (const Json* pools = Find(json, "pools")) {
    CheckObject(pools_path, *pools);
    for (const auto& [name, pool] : pools->items()) {
      pg.pools.emplace(name, ParsePool(Join(pools_path, name), pool, pg));
    }
  }
  Check(pg::Validate(static_cast<const pg::LoaderOptions&>(pg), path));
  Check(pg::Validate(static_cast<const pg::ListenerOptions&>(pg), path));
  pg::AddDefaultPool(pg);
  return pg;
}

NamespaceConfig ParseNamespace(const std::string& path, const std::string& name, const Json& json,
                               const std::optional<PostgresConfig>& pg) {
  if (name.empty() || name.find(':') != std::string::npos) {
    Fail(path, "a namespace name must be non-empty and contain no ':'");
  }
  CheckObject(path, json);
  CheckKnownKeys(path, json, Names({"priority"}, pg::StatementFields(), NamespaceCacheFields()));
  NamespaceConfig ns;
  ns.name = name;
  const std::string query_path = Join(path, "query");
  RequirePresent(query_path, Find(json, "query") != nullptr);
  ReadFields<pg::Statement>(path, json, ns, pg::StatementFields());
  ReadFields<NamespaceCacheOptions>(path, json, ns, NamespaceCacheFields());
  if (auto priority = GetChoice(path, json, "priority", lease::kPriorityNames)) {
    ns.priority = static_cast<lease::Priority>(*priority);
  }
  if (!pg) {
    if (!pg::UsesParameterOne(ns.query)) Fail(query_path, "must use $1 (the key's ID)");
    Fail(query_path, "a namespace with a query needs a \"postgres\" section");
  }
  Check(pg::Validate(static_cast<const pg::Statement&>(ns), path, *pg, "postgres"));
  Check(options::CheckFields<NamespaceCacheOptions>(ns, NamespaceCacheFields(), path));
  return ns;
}

// An optional string: absent or null is "not set".
std::optional<std::string> AsOptionalString(const std::string& path, const Json& object,
                                            std::string_view key) {
  const Json* value = Find(object, key);
  if (value == nullptr || value->is_null()) return std::nullopt;
  if (!value->is_string()) FailExpected(Join(path, key), "a string or null", *value);
  return value->get<std::string>();
}

RedisConfig ParseRedis(const std::string& path, const Json& json) {
  RedisConfig redis;
  ReadFields(path, json, redis, RedisFields());
  if (const Json* cluster = Find(json, "cluster")) {
    if (cluster->is_boolean()) {
      redis.cluster = cluster->get<bool>() ? "true" : "false";
    } else if (cluster->is_string() && *cluster == "auto") {
      redis.cluster = "auto";
    } else {
      FailExpected(Join(path, "cluster"), "\"auto\", true or false", *cluster);
    }
  }
  redis.user = AsOptionalString(path, json, "user");
  redis.password = AsOptionalString(path, json, "password");
  const std::string nodes_path = Join(path, "nodes");
  const Json* nodes = Find(json, "nodes");
  RequirePresent(nodes_path, nodes != nullptr);
  if (!nodes->is_array() || nodes->empty()) {
    FailExpected(nodes_path, "a non-empty array of \"host:port\"", *nodes);
  }
  for (size_t i = 0; i < nodes->size(); ++i) {
    const std::string at = Index(nodes_path, i);
    std::string node = AsString(at, (*nodes)[i], Empty::kRejected);
    // A host name is fine here (the tier resolves it); the port must be there.
    const size_t colon = node.rfind(':');
    const std::string port = colon == std::string::npos ? "" : node.substr(colon + 1);
    if (colon == 0 || port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) == 0 ||
        std::stoi(port) > 65535) {
      FailExpected(at, "\"host:port\"", (*nodes)[i]);
    }
    redis.nodes.push_back(std::move(node));
  }
  if (redis.user && !redis.password) {
    Fail(Join(path, "user"), "a user needs a password (AUTH user password)");
  }
  return redis;
}

// One secret per line of `file` (trailing spaces and CR stripped, empty lines skipped), as a
// Kubernetes Secret is mounted; at least one.
std::vector<std::string> ReadSecretFile(const std::string& path, const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    Fail(path, "cannot read \"" + file + "\": is a directory");
  std::ifstream in(file, std::ios::binary);
  if (!in) Fail(path, "cannot read \"" + file + "\": " + std::strerror(errno));
  std::vector<std::string> secrets;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) secrets.push_back(line);
  }
  if (secrets.empty()) Fail(path, "\"" + file + "\" holds no secret (every line is empty)");
  return secrets;
}

std::string ReadSecretEnv(const std::string& path, const std::string& variable) {
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr || *value == 0) {
    Fail(path, "environment variable " + variable + " is not set or empty");
  }
  return value;
}

UserConfig ParseUser(const std::string& path, const std::string& name, const Json& json) {
  if (name.empty() || name.find_first_of(" \t\r\n") != std::string::npos) {
    Fail(path, "a user name must be non-empty and contain no spaces");
  }
  CheckObject(path, json);
  CheckKnownKeys(
      path, json,
      {"acl", "password", "password_file", "password_env", "tokens", "token_file", "token_env"});
  UserConfig user;
  if (const Json* acl = Find(json, "acl"))
    user.acl = AsString(Join(path, "acl"), *acl, Empty::kAllowed);
  if (const Json* v = Find(json, "password")) {
    user.passwords.push_back(AsString(Join(path, "password"), *v, Empty::kRejected));
  }
  if (const Json* v = Find(json, "password_file")) {
    const std::string at = Join(path, "password_file");
    for (std::string& p : ReadSecretFile(at, AsString(at, *v, Empty::kRejected))) {
      user.passwords.push_back(std::move(p));
    }
  }
  if (const Json* v = Find(json, "password_env")) {
    const std::string at = Join(path, "password_env");
    user.passwords.push_back(ReadSecretEnv(at, AsString(at, *v, Empty::kRejected)));
  }
  if (const Json* v = Find(json, "tokens")) {
    const std::string at = Join(path, "tokens");
    if (!v->is_array()) FailExpected(at, "an array of tokens", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      user.tokens.push_back(AsString(Index(at, i), (*v)[i], Empty::kRejected));
    }
  }
  if (const Json* v = Find(json, "token_file")) {
    const std::string at = Join(path, "token_file");
    for (std::string& t : ReadSecretFile(at, AsString(at, *v, Empty::kRejected))) {
      user.tokens.push_back(std::move(t));
    }
  }
  if (const Json* v = Find(json, "token_env")) {
    const std::string at = Join(path, "token_env");
    user.tokens.push_back(ReadSecretEnv(at, AsString(at, *v, Empty::kRejected)));
  }
  for (const std::string& token : user.tokens) {
    // A bearer token travels in a header: no spaces or control bytes.
    for (char c : token) {
      if (c <= ' ' || c == 127)
        Fail(Join(path, "tokens"), "a token must not contain spaces or control characters");
    }
  }
  return user;
}

Config ParseRoot(const Json& root) {
  if (!root.is_object()) FailExpected("", "a JSON object at the top level", root);
  CheckKnownKeys(
      "", root,
      {"listen", "threads", "memory", "log_level", "postgres", "namespaces", "lease", "shedding",
       "resp", "http", "shutdown", "redis", "users", "protected_mode", "tls"});
  Config config;
  if (const Json* listen =
          GetSection("", root, "listen", {"resp", "http", "resp_tls", "http_tls"})) {
    if (const Json* resp = Find(*listen, "resp")) config.resp = AsHostPort("listen.resp", *resp);
    if (const Json* http = Find(*listen, "http")) config.http = AsHostPort("listen.http", *http);
    if (const Json* v = Find(*listen, "resp_tls"))
      config.resp_tls = AsHostPort("listen.resp_tls", *v);
    if (const Json* v = Find(*listen, "http_tls"))
      config.http_tls = AsHostPort("listen.http_tls", *v);
  }
  if (const Json* tls =
          GetSection("", root, "tls", Names({"auth_clients", "min_version"}, TlsFields()))) {
    config.tls.emplace();
    ReadFields("tls", *tls, *config.tls, TlsFields());
    if (auto a = GetChoice("tls", *tls, "auth_clients", kTlsAuthClients)) {
      config.tls->auth_clients = kTlsAuthClients[*a];
    }
    if (auto v = GetChoice("tls", *tls, "min_version", kTlsVersions)) {
      config.tls->min_version = kTlsVersions[*v];
    }
  }
  if (config.resp_tls || config.http_tls) {
    if (!config.tls) Fail("tls", "required when listen.resp_tls or listen.http_tls is set");
    if (config.tls->cert_file.empty()) Fail("tls.cert_file", "required field is missing");
    if (config.tls->key_file.empty()) Fail("tls.key_file", "required field is missing");
  }
  if (config.tls && config.tls->auth_clients != "no" && config.tls->ca_file.empty()) {
    Fail("tls.ca_file",
         "required to verify client certificates (auth_clients " + config.tls->auth_clients + ")");
  }
  ReadFields("", root, config, RootFields());
  if (const Json* memory =
          GetSection("", root, "memory", Names({"policy"}, lease::StoreFields()))) {
    ReadFields("memory", *memory, config.memory, lease::StoreFields());
    if (auto policy = GetChoice("memory", *memory, "policy", kMemoryPolicyNames)) {
      // "noeviction" keeps CLOCK's bookkeeping (the cheaper one) for CONFIG SET maxmemory-policy
      // to evict by later.
      config.memory.evict = *policy != kNoEvictionChoice;
      config.memory.policy = *policy == kNoEvictionChoice
                                 ? lease::EvictionPolicy::kClock
                                 : static_cast<lease::EvictionPolicy>(*policy);
    }
  }
  Check(lease::Validate(config.memory, "memory"));
  if (auto level = GetChoice("", root, "log_level", kLogLevels))
    config.log_level = kLogLevels[*level];
  if (const Json* pg = GetSection(
          "", root, "postgres",
          Names({"replicas", "pools", "invalidation"}, pg::LoaderFields(), pg::ListenerFields()))) {
    config.postgres = ParsePostgres("postgres", *pg);
  }
  if (const Json* namespaces = Find(root, "namespaces")) {
    CheckObject("namespaces", *namespaces);
    for (const auto& [name, ns] : namespaces->items()) {
      config.namespaces.emplace(
          name, ParseNamespace(Join("namespaces", name), name, ns, config.postgres));
    }
  }
  if (config.postgres && config.postgres->invalidation == pg::InvalidationMode::kLogical &&
      std::none_of(config.namespaces.begin(), config.namespaces.end(),
                   [](const auto& ns) { return !ns.second.table.empty(); })) {
    Fail("postgres.invalidation",
         "\"logical\" needs a namespace with a \"table\" (whose changes invalidate it)");
  }
  if (const Json* lease = GetSection(
          "", root, "lease", Names({}, lease::LeaseTableFields(), lease::ErrorHoldoffFields()))) {
    ReadFields<lease::LeaseTableOptions>("lease", *lease, config.lease, lease::LeaseTableFields());
    ReadFields<lease::ErrorHoldoffOptions>("lease", *lease, config.lease,
                                           lease::ErrorHoldoffFields());
  }
  Check(lease::Validate(static_cast<const lease::LeaseTableOptions&>(config.lease), "lease"));
  Check(lease::Validate(static_cast<const lease::ErrorHoldoffOptions&>(config.lease), "lease"));
  if (const Json* shed = GetSection("", root, "shedding", Names({}, SheddingFields()))) {
    ReadFields("shedding", *shed, config.shedding, SheddingFields());
  }
  if (const Json* resp =
          GetSection("", root, "resp", Names({"notify_keyspace_events"}, RespFields()))) {
    ReadFields("resp", *resp, config.resp_options, RespFields());
    if (auto it = resp->find("notify_keyspace_events"); it != resp->end()) {
      const std::string path = "resp.notify_keyspace_events";
      if (!it->is_string()) Fail(path, "expected a string of Redis's event class letters");
      config.resp_options.notify_keyspace_events = it->get<std::string>();
      if (!ParseKeyspaceEvents(config.resp_options.notify_keyspace_events)) {
        Fail(path,
             "\"" + config.resp_options.notify_keyspace_events +
                 "\" has a letter that is no event class (Redis's: K E g $ l s h z x e t m d n A)");
      }
    }
  }
  if (const Json* http = GetSection("", root, "http", Names({}, HttpFields()))) {
    ReadFields("http", *http, config.http_options, HttpFields());
  }
  if (const Json* shutdown = GetSection("", root, "shutdown", Names({}, ShutdownFields()))) {
    ReadFields("shutdown", *shutdown, config.shutdown, ShutdownFields());
  }
  if (const Json* redis = GetSection(
          "", root, "redis", Names({"nodes", "cluster", "user", "password"}, RedisFields()))) {
    config.redis = ParseRedis("redis", *redis);
  }
  if (const Json* users = Find(root, "users")) {
    CheckObject("users", *users);
    for (const auto& [name, user] : users->items()) {
      config.users.emplace(name, ParseUser(Join("users", name), name, user));
    }
  }
  Check(ValidateServerOptions(config));
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
const std::vector<Field<RedisConfig>>& RedisFields() {
  static const std::vector<Field<RedisConfig>> fields = {
      {.name = "prefix", .member = &RedisConfig::prefix},
      {.name = "timeout_ms", .member = &RedisConfig::timeout_ms, .min = 1, .max = kMaxMs},
      {.name = "l1_ttl_ms", .member = &RedisConfig::l1_ttl_ms, .min = 1, .max = kMaxMs},
  };
  return fields;
}

}  // namespace

std::optional<options::OptionError> ValidateServerOptions(const Config& config) {
  if (auto error = options::CheckFields(config, RootFields(), "")) return error;
  if (auto error = options::CheckFields(config.shedding, SheddingFields(), "shedding"))
    return error;
  if (auto error = options::CheckFields(config.resp_options, RespFields(), "resp")) return error;
  if (auto error = options::CheckFields(config.http_options, HttpFields(), "http")) return error;
  if (auto error = options::CheckFields(config.shutdown, ShutdownFields(), "shutdown"))
    return error;
  if (config.tls) {
    if (auto error = options::CheckFields(*config.tls, TlsFields(), "tls")) return error;
  }
  if (config.redis) return options::CheckFields(*config.redis, RedisFields(), "redis");
  return std::nullopt;
}

std::optional<options::OptionError> Validate(const NamespaceCacheOptions& o,
                                             std::string_view path) {
  return options::CheckFields(o, NamespaceCacheFields(), path);
}

namespace {
// Appends one ConfigField per entry of `fields`, under `path`.
template <typename S>
void AddFields(std::vector<ConfigField>& out, const std::string& path,
               const std::vector<Field<S>>& fields) {
  for (const Field<S>& field : fields) {
    out.push_back(
        ConfigField{Join(path, field.name), field.DefaultText(), field.InvalidExamples()});
  }
}
}  // namespace

std::vector<ConfigField> ConfigFields() {
  // Sections in ParseRoot's order; fields not in a table (addresses, choices, arrays) by hand.
  std::vector<ConfigField> out;
  const std::vector<std::string> bad_address = {"\"localhost:1\"", "\":65536\"", "6380"};
  out.push_back({"listen.resp", FormatHostPort(Config{}.resp), bad_address});
  out.push_back({"listen.http", FormatHostPort(Config{}.http), bad_address});
  out.push_back({"listen.resp_tls", "none", bad_address});
  out.push_back({"listen.http_tls", "none", bad_address});
  AddFields(out, "", RootFields());
  AddFields(out, "memory", lease::StoreFields());
  out.push_back({"memory.policy",
                 std::string(kMemoryPolicyNames[static_cast<size_t>(Config{}.memory.policy)]),
                 {"\"lru\"", "1"}});
  out.push_back({"log_level", Config{}.log_level, {"\"trace\"", "1"}});
  AddFields(out, "postgres", pg::LoaderFields());
  out.push_back({"postgres.replicas", "[]", {"\"R\"", "[\"\"]", "[1]"}});
  AddFields(out, "postgres", pg::ListenerFields());
  out.push_back(
      {"postgres.invalidation", std::string(pg::kInvalidationModeNames[0]), {"\"wal\"", "1"}});
  out.push_back({"postgres.pools.NAME.replicas", "all", {"\"some\"", "[9]", "[0,0]", "[\"0\"]"}});
  AddFields(out, "postgres.pools.NAME", pg::PoolFields());
  out.push_back(
      {"postgres.pools.NAME.routing", std::string(pg::kRoutingNames[0]), {"\"random\"", "1"}});
  AddFields(out, "namespaces.NAME", pg::StatementFields());
  AddFields(out, "namespaces.NAME", NamespaceCacheFields());
  out.push_back({"namespaces.NAME.priority",
                 std::string(lease::kPriorityNames[static_cast<size_t>(lease::Priority::kHigh)]),
                 {"\"urgent\"", "1"}});
  AddFields(out, "lease", lease::LeaseTableFields());
  AddFields(out, "lease", lease::ErrorHoldoffFields());
  AddFields(out, "shedding", SheddingFields());
  AddFields(out, "resp", RespFields());
  out.push_back({"resp.notify_keyspace_events", "\"\"", {"\"KEQ\"", "1"}});
  AddFields(out, "http", HttpFields());
  AddFields(out, "shutdown", ShutdownFields());
  out.push_back({"redis.nodes", "required", {"[]", "\"127.0.0.1:6379\"", "[\"127.0.0.1\"]"}});
  out.push_back({"redis.cluster", "auto", {"\"yes\"", "1"}});
  AddFields(out, "redis", RedisFields());
  out.push_back({"redis.user", "none", {"1"}});
  out.push_back({"redis.password", "none", {"1"}});
  AddFields(out, "tls", TlsFields());
  out.push_back({"tls.auth_clients", "no", {"\"maybe\"", "true"}});
  out.push_back({"tls.min_version", "1.2", {"\"1.1\"", "1.3"}});
  out.push_back({"users.NAME.acl", "none", {"1"}});
  out.push_back({"users.NAME.password", "none", {"\"\"", "1"}});
  out.push_back({"users.NAME.password_file", "none", {"\"/nonexistent/corral-secret\"", "1"}});
  out.push_back({"users.NAME.password_env", "none", {"\"CORRAL_TEST_UNSET_VARIABLE\"", "1"}});
  out.push_back({"users.NAME.tokens", "[]", {"\"t\"", "[\"a b\"]", "[1]"}});
  out.push_back({"users.NAME.token_file", "none", {"\"/nonexistent/corral-secret\"", "1"}});
  out.push_back({"users.NAME.token_env", "none", {"\"CORRAL_TEST_UNSET_VARIABLE\"", "1"}});
  return out;
}

Config ParseConfig(std::string_view json_text) {
  Json root;
  try {
    root = Json::parse(json_text, DuplicateKeyCheck());
  } catch (const Json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 2, column 5: ...", or
    // "[json.exception.out_of_range.406] number overflow parsing '1e600'" (found by fuzzing).
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
      " max_bytes=" + std::to_string(config.memory.max_bytes) + " log_level=" + config.log_level +
      " auth=" + (config.resp_options.requirepass.empty() && config.users.empty() ? "off" : "on") +
      " users=" + join_names(config.users) +
      " protected_mode=" + (config.protected_mode ? "yes" : "no");
  if (config.resp_tls) line += " resp_tls=" + FormatHostPort(*config.resp_tls);
  if (config.http_tls) line += " http_tls=" + FormatHostPort(*config.http_tls);
  if (config.tls) line += " tls_auth_clients=" + config.tls->auth_clients;
  if (config.redis) {
    std::string nodes;
    for (const std::string& n : config.redis->nodes) nodes += (nodes.empty() ? "" : ",") + n;
    line += " redis=" + nodes + " redis_cluster=" + config.redis->cluster +
            " redis_auth=" + (config.redis->password ? "on" : "off");
  }
  if (!config.postgres) return line + " postgres=off namespaces=" + join_names(config.namespaces);
  const PostgresConfig& pg = *config.postgres;
  line += " postgres=on replicas=" + std::to_string(pg.replicas.size()) + " pools=";
  bool first = true;
  for (const auto& [name, pool] : pg.pools) {
    line += (first ? "" : ",") + name + "(replicas=" + std::to_string(pool.replicas.size()) +
            ",connections=" + std::to_string(pool.connections) +
            ",routing=" + std::string(pg::kRoutingNames[static_cast<size_t>(pool.routing)]) + ")";
    first = false;
  }
  return line + " fallback_to_primary=" + (pg.fallback_to_primary ? "true" : "false") +
         " prepared_statements=" + (pg.prepared_statements ? "true" : "false") + " invalidation=" +
         std::string(pg::kInvalidationModeNames[static_cast<size_t>(pg.invalidation)]) +
         " namespaces=" + join_names(config.namespaces);
}

}  // namespace corral::server

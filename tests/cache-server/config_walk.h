// For the tests that walk every configuration field (config_test, config_cli_test): a valid base
// configuration with a pool and a namespace, and the same with one field set to a given value.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace corral::server::config_walk {

// Valid: two replicas, pool "p", namespace "n" on it.
inline nlohmann::json BaseConfig() {
  return nlohmann::json::parse(R"({
    "postgres": {"primary": "host=P", "replicas": ["host=R0", "host=R1"], "pools": {"p": {}}},
    "namespaces": {"n": {"query": "SELECT $1", "pool": "p"}}})");
}

// The concrete path of a ConfigField path: NAME is the pool "p" under postgres.pools, else the
// namespace "n".
inline std::string ConcretePath(std::string path) {
  const std::string pools = "postgres.pools.NAME";
  if (path.starts_with(pools)) return "postgres.pools.p" + path.substr(pools.size());
  if (size_t at = path.find("NAME"); at != std::string::npos) path.replace(at, 4, "n");
  return path;
}

// BaseConfig() with the field at `concrete_path` (dotted, plain words) set to `value_json`.
inline std::string ConfigWith(const std::string& concrete_path, const std::string& value_json) {
  nlohmann::json config = BaseConfig();
  nlohmann::json* at = &config;
  std::string_view rest = concrete_path;
  while (true) {
    const size_t dot = rest.find('.');
    const std::string key(rest.substr(0, dot));
    if (dot == std::string_view::npos) {
      (*at)[key] = nlohmann::json::parse(value_json);
      return config.dump();
    }
    at = &(*at)[key];
    rest.remove_prefix(dot + 1);
  }
}

}  // namespace corral::server::config_walk

// Declarative option fields, shared by corral's modules: each module lists the fields of its option
// structs once (JSON name, member, allowed range) and the JSON loader, the module's Validate, the
// README check and the config walker test all read that list. Pure: no JSON library, no I/O.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace corral::options {

// Durations are capped so that callers may convert them to nanoseconds and add them to a clock.
inline constexpr int64_t kMaxSeconds = 365LL * 24 * 3600;  // one year
inline constexpr int64_t kMaxMs = kMaxSeconds * 1000;
inline constexpr int64_t kMaxUs = kMaxMs * 1000;
inline constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
inline constexpr double kNoMaxNumber = std::numeric_limits<double>::infinity();

// What is wrong with one option. `path` is the JSON path of the field ("namespaces.user.ttl_ms",
// "postgres.replicas[1]"; a key that is not a plain word is quoted: namespaces."a.b");
// `problem` says what is wrong, without the path.
struct OptionError {
  std::string path;
  std::string problem;
};

// Appends `key` to a JSON path, quoting keys that are not plain words so the path stays
// unambiguous. An empty `path` is the document root.
inline std::string JoinPath(std::string_view path, std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) {
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  }
  std::string segment;
  if (plain) {
    segment = key;
  } else {  // as a JSON string literal
    segment = "\"";
    for (char c : key) {
      switch (c) {
        case '"':
          segment += "\\\"";
          break;
        case '\\':
          segment += "\\\\";
          break;
        case '\b':
          segment += "\\b";
          break;
        case '\f':
          segment += "\\f";
          break;
        case '\n':
          segment += "\\n";
          break;
        case '\r':
          segment += "\\r";
          break;
        case '\t':
          segment += "\\t";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
            segment += escaped;
          } else {
            segment += c;
          }
      }
    }
    segment += "\"";
  }
  return path.empty() ? segment : std::string(path) + "." + segment;
}

inline std::string IndexPath(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

// "1", not "1.0"; "0.1", not "0.10000000000000001".
inline std::string ShowNumber(double d) {
  std::ostringstream out;
  out << d;
  return out.str();
}

// One field of option struct S as it appears in the configuration. Integers must lie in
// [min, max] (max clamped to the member type's limit), numbers in [min_number, max_number];
// strings with non_empty must not be "" when given. Booleans and other strings take any value.
template <typename S>
struct Field {
  using Member =
      std::variant<bool S::*, int S::*, int64_t S::*, size_t S::*, double S::*, std::string S::*>;
  std::string_view name;  // the JSON key
  Member member;
  int64_t min = 0;
  int64_t max = kNoMax;
  double min_number = 0;
  double max_number = kNoMaxNumber;
  bool non_empty = false;
  std::string_view default_text = {};  // for README when the default is not a plain value

  bool is_integer() const {
    return std::holds_alternative<int S::*>(member) ||
           std::holds_alternative<int64_t S::*>(member) ||
           std::holds_alternative<size_t S::*>(member);
  }
  bool is_number() const { return std::holds_alternative<double S::*>(member); }
  bool is_bool() const { return std::holds_alternative<bool S::*>(member); }
  bool is_string() const { return std::holds_alternative<std::string S::*>(member); }

  // The largest value the member's type holds, as an int64 (integers only).
  int64_t type_max() const {
    if (std::holds_alternative<int S::*>(member)) return std::numeric_limits<int>::max();
    return kNoMax;
  }
  int64_t effective_max() const { return std::min(max, type_max()); }

  // What a valid value looks like: "a positive integer", "an integer in [1, 256]", ...
  std::string Expected() const {
    if (is_integer()) {
      if (max < type_max()) {
        return "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
      }
      if (min == 0) return "a non-negative integer";
      if (min == 1) return "a positive integer";
      return "an integer >= " + std::to_string(min);
    }
    if (is_number()) {
      if (max_number == kNoMaxNumber) {
        return min_number == 0 ? "a non-negative number" : "a number >= " + ShowNumber(min_number);
      }
      return "a number in [" + ShowNumber(min_number) + ", " + ShowNumber(max_number) + "]";
    }
    if (is_bool()) return "true or false";
    return non_empty ? "a non-empty string" : "a string";
  }

  // The integer value of this field in `s` (integers only).
  int64_t GetInteger(const S& s) const {
    if (auto m = std::get_if<int S::*>(&member)) return s.**m;
    if (auto m = std::get_if<int64_t S::*>(&member)) return s.**m;
    if (auto m = std::get_if<size_t S::*>(&member)) {
      size_t v = s.**m;
      return v > static_cast<size_t>(kNoMax) ? kNoMax : static_cast<int64_t>(v);
    }
    return 0;
  }
  void SetInteger(S& s, int64_t v) const {
    if (auto m = std::get_if<int S::*>(&member)) s.** m = static_cast<int>(v);
    if (auto m = std::get_if<int64_t S::*>(&member)) s.** m = v;
    if (auto m = std::get_if<size_t S::*>(&member)) s.** m = static_cast<size_t>(v);
  }

  // The default of this field as README shows it: 60000, 0.1, true, corral_invalidate.
  std::string DefaultText() const {
    if (!default_text.empty()) return std::string(default_text);
    static const S defaults{};
    if (is_integer()) return std::to_string(GetInteger(defaults));
    if (auto m = std::get_if<double S::*>(&member)) return ShowNumber(defaults.**m);
    if (auto m = std::get_if<bool S::*>(&member)) return defaults.**m ? "true" : "false";
    // (A struct smaller than a string has no string member; the guard spares GCC's -Warray-bounds
    // a branch it cannot prove dead.)
    if constexpr (sizeof(S) >= sizeof(std::string)) {
      if (auto m = std::get_if<std::string S::*>(&member)) {
        return (defaults.**m).empty() ? "none" : defaults.**m;
      }
    }
    return {};
  }

  // The problem with this field's value in `s`, if it breaks the range rule.
  std::optional<std::string> Check(const S& s) const {
    if (is_integer()) {
      int64_t v = GetInteger(s);
      if (v < min || v > effective_max())
        return "expected " + Expected() + ", got " + std::to_string(v);
    } else if (auto m = std::get_if<double S::*>(&member)) {
      double v = s.**m;
      if (!(v >= min_number && v <= max_number)) {
        return "expected " + Expected() + ", got " + ShowNumber(v);
      }
    }
    return std::nullopt;
  }

  // JSON texts of values this field rejects, for the walker test: just out of range, and a wrong
  // type.
  std::vector<std::string> InvalidExamples() const {
    std::vector<std::string> bad;
    if (is_integer()) {
      if (min > std::numeric_limits<int64_t>::min()) bad.push_back(std::to_string(min - 1));
      if (effective_max() < kNoMax) bad.push_back(std::to_string(effective_max() + 1));
      bad.push_back("\"1\"");
    } else if (is_number()) {
      bad.push_back(ShowNumber(min_number - 1));
      if (max_number != kNoMaxNumber) bad.push_back(ShowNumber(max_number + 1));
      bad.push_back("\"1\"");
    } else if (is_bool()) {
      bad.push_back("\"yes\"");
    } else {
      if (non_empty) bad.push_back("\"\"");
      bad.push_back("1");
    }
    return bad;
  }
};

// The first field of `fields` whose value in `s` breaks its range, as an error under `path`.
template <typename S>
std::optional<OptionError> CheckFields(const S& s, const std::vector<Field<S>>& fields,
                                       std::string_view path) {
  for (const Field<S>& field : fields) {
    if (auto problem = field.Check(s)) return OptionError{JoinPath(path, field.name), *problem};
  }
  return std::nullopt;
}

}  // namespace corral::options

// Turns one PostgreSQL result row into corral's value text (SPEC "Keys and values"): one column is
// its text, several columns become a JSON object of column name to value. Pure, so unit-tested
// without a database; the libpqxx side only fills in Column.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace corral::pg {

// Type OIDs (pg_type.dat; fixed since PostgreSQL 7.x) that map to a JSON type other than string.
inline constexpr uint32_t kBoolOid = 16;
inline constexpr uint32_t kInt8Oid = 20;
inline constexpr uint32_t kInt2Oid = 21;
inline constexpr uint32_t kInt4Oid = 23;
inline constexpr uint32_t kJsonOid = 114;
inline constexpr uint32_t kFloat4Oid = 700;
inline constexpr uint32_t kFloat8Oid = 701;
inline constexpr uint32_t kNumericOid = 1700;
inline constexpr uint32_t kJsonbOid = 3802;

// One field of a result row, as PostgreSQL's text output. Views are borrowed from the caller.
struct Column {
  std::string_view name;
  uint32_t type_oid = 0;
  bool is_null = false;
  std::string_view text;  // ignored when is_null
};

// The value of a row of one or more columns: one column → its text, or nullopt when NULL ("not
// found"); several → RowToJson(columns). An empty span is nullopt.
std::optional<std::string> RowToValue(std::span<const Column> columns);

// A JSON object, in column order: int2/int4/int8/float4/float8/numeric → numbers (NaN and Infinity
// → strings, since JSON has no such numbers), bool → true/false, json/jsonb → embedded as is,
// NULL → null, every other type → a string. Duplicate column names are kept as PostgreSQL sent
// them.
std::string RowToJson(std::span<const Column> columns);

// Appends `s` as a JSON string literal (quotes included). Invalid UTF-8 bytes become U+FFFD so the
// output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

// True when `s` is exactly a JSON number (RFC 8259 grammar).
bool IsJsonNumber(std::string_view s);

}  // namespace corral::pg

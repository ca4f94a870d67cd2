// libFuzzer target for pg-loader's row-to-value conversion (pg-loader/value.h), the pure part that
// turns what PostgreSQL sent into the value corral caches and serves. Checks: several columns
// always make valid JSON (nlohmann's strict parser, which also checks UTF-8) with one member per
// column; AppendJsonString always makes a valid JSON string; IsJsonNumber agrees with JSON's
// number grammar; one column is its text unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "pg-loader/value.h"

namespace {

using namespace corral::pg;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "row_value_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

std::string WithoutNul(std::string s) {
  std::erase(s, '\0');
  return s;
}

constexpr uint32_t kOids[] = {kBoolOid,  kInt8Oid,      kInt2Oid,           kInt4Oid,
                              kJsonOid,  kFloat4Oid,    kFloat8Oid,         kNumericOid,
                              kJsonbOid, 25 /* text */, 1043 /* varchar */, 17 /* bytea */};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const size_t count = in.ConsumeIntegralInRange<size_t>(0, 8);
  std::vector<std::string> names(count), texts(count);
  std::vector<Column> columns(count);
  for (size_t i = 0; i < count; ++i) {
    // PostgreSQL's text output never holds a NUL byte (and nlohmann would read one as the end).
    names[i] = WithoutNul(in.ConsumeRandomLengthString(32));
    texts[i] = WithoutNul(in.ConsumeRandomLengthString(256));
    Column& c = columns[i];
    c.name = names[i];
    c.type_oid = in.PickValueInArray(kOids);
    c.is_null = in.ConsumeBool() && in.ConsumeBool();
    // PostgreSQL only ever sends valid JSON text in a json/jsonb column; anything else here is
    // the text it would have been had the column been text.
    if ((c.type_oid == kJsonOid || c.type_oid == kJsonbOid) && !nlohmann::json::accept(texts[i])) {
      c.type_oid = 25;
    }
    c.text = texts[i];
  }

  const std::optional<std::string> value = RowToValue(columns);
  if (count == 0) {
    Check(!value.has_value(), "an empty row has a value");
  } else if (count == 1) {
    Check(value.has_value() == !columns[0].is_null, "one column: NULL must be not found");
    if (value) Check(*value == columns[0].text, "one column: the value is not its text");
  } else {
    Check(value.has_value(), "several columns without a value");
    try {
      const nlohmann::json parsed = nlohmann::json::parse(*value);
      Check(parsed.is_object(), "RowToJson made something other than an object");
    } catch (const nlohmann::json::out_of_range&) {
      // A column that is a JSON number too large for a double ("1e600"): valid JSON that
      // nlohmann will not hold (RFC 8259 section 6 bounds no magnitude).
    } catch (const nlohmann::json::exception&) {
      Check(false, "RowToJson made invalid JSON");
    }
  }

  // Every text as a JSON string literal: valid, and the same text back when it was valid UTF-8.
  // The rest of the input, NULs and all, goes through AppendJsonString too.
  texts.push_back(in.ConsumeRemainingBytesAsString());
  for (const std::string& text : texts) {
    std::string literal;
    AppendJsonString(literal, text);
    const nlohmann::json parsed = nlohmann::json::parse(literal, nullptr, false);
    Check(!parsed.is_discarded() && parsed.is_string(), "AppendJsonString made invalid JSON");
    bool valid_utf8 = true;
    try {
      (void)nlohmann::json(text).dump();  // strict: throws on invalid UTF-8
    } catch (const nlohmann::json::type_error&) {
      valid_utf8 = false;
    }
    if (valid_utf8) {
      Check(parsed.get<std::string>() == text, "AppendJsonString changed valid UTF-8 text");
    }
    // IsJsonNumber is exactly RFC 8259's number grammar (section 6), which bounds no magnitude:
    // nlohmann refuses a number that overflows a double, so the oracle is the grammar itself.
    static const std::regex kJsonNumber(R"(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
    const bool json_number = std::regex_match(text, kJsonNumber);
    Check(IsJsonNumber(text) == json_number, "IsJsonNumber disagrees with the JSON number grammar");
  }
  return 0;
}

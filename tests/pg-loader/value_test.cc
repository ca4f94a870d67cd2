// Row-to-value conversion: one column as text, several as a typed JSON object, NULL and edge cases.
#include "pg-loader/value.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace corral::pg {
namespace {

using nlohmann::json;

Column Text(std::string_view name, std::string_view text, uint32_t oid = 25) {
  return Column{name, oid, false, text};
}
Column Null(std::string_view name, uint32_t oid = 25) { return Column{name, oid, true, {}}; }

TEST(RowToValueTest, OneColumnIsItsTextUnchanged) {
  std::vector<Column> row = {Text("v", "{\"id\": 1}", kJsonOid)};
  EXPECT_EQ(RowToValue(row), "{\"id\": 1}");
  row = {Text("n", "42", kInt4Oid)};
  EXPECT_EQ(RowToValue(row), "42");
  row = {Text("s", "")};
  EXPECT_EQ(RowToValue(row), "");  // an empty string is a value, not "not found"
}

TEST(RowToValueTest, OneNullColumnOrNoColumnsIsNotFound) {
  std::vector<Column> row = {Null("v")};
  EXPECT_EQ(RowToValue(row), std::nullopt);
  EXPECT_EQ(RowToValue({}), std::nullopt);
}

TEST(RowToValueTest, SeveralColumnsBecomeATypedJsonObject) {
  std::vector<Column> row = {
      Text("id", "7", kInt8Oid),
      Text("small", "-3", kInt2Oid),
      Text("ratio", "0.25", kFloat8Oid),
      Text("big", "1e+100", kFloat8Oid),
      Text("price", "12.50", kNumericOid),
      Text("active", "t", kBoolOid),
      Text("off", "f", kBoolOid),
      Text("meta", "{\"a\": [1, 2]}", kJsonbOid),
      Text("name", "Ann \"A\" O'Neil"),
      Null("email"),
      Text("at", "2024-01-02 03:04:05+00", 1184),
  };
  const std::string text = RowToValue(row).value();
  const json parsed = json::parse(text);
  ASSERT_TRUE(parsed.is_object());
  EXPECT_EQ(parsed["id"], 7);
  EXPECT_EQ(parsed["small"], -3);
  EXPECT_DOUBLE_EQ(parsed["ratio"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(parsed["big"].get<double>(), 1e100);
  EXPECT_TRUE(parsed["price"].is_number());
  EXPECT_EQ(parsed["active"], true);
  EXPECT_EQ(parsed["off"], false);
  EXPECT_EQ(parsed["meta"], json::parse(R"({"a":[1,2]})"));
  EXPECT_EQ(parsed["name"], "Ann \"A\" O'Neil");
  EXPECT_TRUE(parsed["email"].is_null());
  EXPECT_EQ(parsed["at"], "2024-01-02 03:04:05+00");
  // Column order is kept.
  EXPECT_EQ(text.substr(0, 15), R"({"id":7,"small")");
}

TEST(RowToValueTest, NumbersJsonCannotHoldBecomeStrings) {
  std::vector<Column> row = {Text("a", "NaN", kFloat8Oid), Text("b", "Infinity", kNumericOid),
                             Text("c", "-Infinity", kFloat4Oid)};
  const json parsed = json::parse(RowToValue(row).value());
  EXPECT_EQ(parsed["a"], "NaN");
  EXPECT_EQ(parsed["b"], "Infinity");
  EXPECT_EQ(parsed["c"], "-Infinity");
}

TEST(RowToValueTest, BigIntegersKeepEveryDigit) {
  std::vector<Column> row = {Text("n", "123456789012345678901234567890", kNumericOid),
                             Text("m", "x")};
  EXPECT_EQ(RowToValue(row), R"({"n":123456789012345678901234567890,"m":"x"})");
}

TEST(AppendJsonStringTest, EscapesControlCharactersQuotesAndBackslashes) {
  std::string out;
  AppendJsonString(out, std::string_view("a\"b\\c\n\t\r\b\f\x01\x1f", 12));
  EXPECT_EQ(out, R"("a\"b\\c\n\t\r\b\f\u0001\u001f")");
  EXPECT_EQ(json::parse(out).get<std::string>(), std::string("a\"b\\c\n\t\r\b\f\x01\x1f", 12));
}

TEST(AppendJsonStringTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  std::string out;
  AppendJsonString(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // é € 😀
  EXPECT_EQ(out, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  for (std::string bad : {std::string("\xff"), std::string("\xc3"), std::string("\xc0\xaf"),
                          std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
    out.clear();
    AppendJsonString(out, "x" + bad + "y");
    EXPECT_NO_THROW(json::parse(out)) << out;
    EXPECT_NE(out.find("\\ufffd"), std::string::npos) << out;
    EXPECT_EQ(out.front(), '"');
  }
}

TEST(AppendJsonStringTest, ColumnNamesAreEscapedToo) {
  std::vector<Column> row = {Text("we\"ird", "1", kInt4Oid), Text("ok", "2", kInt4Oid)};
  const json parsed = json::parse(RowToJson(row));
  EXPECT_EQ(parsed["we\"ird"], 1);
}

TEST(IsJsonNumberTest, FollowsTheJsonGrammar) {
  for (const char* ok : {"0", "-0", "7", "-12", "0.5", "10.25", "1e5", "1E+5", "2.5e-3"}) {
    EXPECT_TRUE(IsJsonNumber(ok)) << ok;
  }
  for (const char* bad : {"", "-", "01", "+1", ".5", "5.", "1e", "1e+", "NaN", "Infinity", "0x10",
                          "1 ", " 1", "1.2.3"}) {
    EXPECT_FALSE(IsJsonNumber(bad)) << bad;
  }
}

}  // namespace
}  // namespace corral::pg

// Row-to-value conversion for read-through loads: column text as is, or a JSON object whose value
// types follow the PostgreSQL column types.
#include "pg-loader/value.h"

namespace corral::pg {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are rejected, as RFC 3629 says).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return len;
}

}  // namespace

bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (IsDigit(s[i])) {
    while (i < n && IsDigit(s[i])) ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !IsDigit(s[i])) return false;
    while (i < n && IsDigit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !IsDigit(s[i])) return false;
    while (i < n && IsDigit(s[i])) ++i;
  }
  return i == n;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);
      if (len == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

std::string RowToJson(std::span<const Column> columns) {
  std::string out = "{";
  bool first = true;
  for (const Column& column : columns) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, column.name);
    out.push_back(':');
    if (column.is_null) {
      out += "null";
      continue;
    }
    switch (column.type_oid) {
      case kInt2Oid:
      case kInt4Oid:
      case kInt8Oid:
      case kFloat4Oid:
      case kFloat8Oid:
      case kNumericOid:
        // PostgreSQL prints these as JSON numbers except NaN and +-Infinity.
        if (IsJsonNumber(column.text)) {
          out.append(column.text);
        } else {
          AppendJsonString(out, column.text);
        }
        break;
      case kBoolOid:
        out += (column.text == "t" || column.text == "true") ? "true" : "false";
        break;
      case kJsonOid:
      case kJsonbOid:
        // The server validated it on input; json keeps its original whitespace, which is legal.
        out.append(column.text);
        break;
      default:
        AppendJsonString(out, column.text);
    }
  }
  out.push_back('}');
  return out;
}

std::optional<std::string> RowToValue(std::span<const Column> columns) {
  if (columns.empty()) return std::nullopt;
  if (columns.size() == 1) {
    if (columns[0].is_null) return std::nullopt;
    return std::string(columns[0].text);
  }
  return RowToJson(columns);
}

}  // namespace corral::pg

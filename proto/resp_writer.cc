// RESP2 reply writer. Numbers are formatted with std::to_chars into a stack buffer, so a reply
// costs one or two appends and no temporaries.
#include "proto/resp_writer.h"

#include <charconv>

namespace corral::proto {
namespace {

// Longest header: a type byte, 20 digits of a uint64_t or a '-' and 19 digits, then CRLF.
constexpr size_t kMaxHeader = 1 + 20 + 2;

// Writes "<type><v>\r\n" into buf and returns its length.
template <typename Int>
size_t FormatHeader(char (&buf)[kMaxHeader], char type, Int v) {
  buf[0] = type;
  char* end = std::to_chars(buf + 1, buf + kMaxHeader - 2, v).ptr;
  *end++ = '\r';
  *end++ = '\n';
  return static_cast<size_t>(end - buf);
}

template <typename Int>
void AppendHeader(std::string& out, char type, Int v) {
  char buf[kMaxHeader];
  out.append(buf, FormatHeader(buf, type, v));
}

void AppendLine(std::string& out, char type, std::string_view s) {
  out.reserve(out.size() + s.size() + 3);
  out.push_back(type);
  out.append(s);
  out.append("\r\n", 2);
}

}  // namespace

void AppendSimple(std::string& out, std::string_view s) { AppendLine(out, '+', s); }

void AppendError(std::string& out, std::string_view s) { AppendLine(out, '-', s); }

void AppendError(std::string& out, std::string_view prefix, std::string_view s) {
  out.reserve(out.size() + prefix.size() + s.size() + 3);
  out.push_back('-');
  out.append(prefix);
  out.append(s);
  out.append("\r\n", 2);
}

void AppendInteger(std::string& out, int64_t v) { AppendHeader(out, ':', v); }

void AppendBulk(std::string& out, std::string_view s) {
  char buf[kMaxHeader];
  const size_t header = FormatHeader(buf, '$', s.size());
  // One capacity check for the whole reply. libstdc++'s reserve() at least doubles the
  // capacity when it must grow, so this keeps appends amortised O(1).
  out.reserve(out.size() + header + s.size() + 2);
  out.append(buf, header);
  out.append(s);
  out.append("\r\n", 2);
}

void AppendNullBulk(std::string& out) { out.append("$-1\r\n", 5); }

void AppendArrayHeader(std::string& out, size_t n) { AppendHeader(out, '*', n); }

void AppendNullArray(std::string& out) { out.append("*-1\r\n", 5); }

void AppendNull(std::string& out) { out.append("_\r\n", 3); }

void AppendMapHeader(std::string& out, size_t pairs) {
  out.push_back('%');
  out.append(std::to_string(pairs));
  out.append("\r\n", 2);
}

void AppendPushHeader(std::string& out, size_t n) {
  out.push_back('>');
  out.append(std::to_string(n));
  out.append("\r\n", 2);
}

void AppendVerbatim(std::string& out, std::string_view format, std::string_view s) {
  out.push_back('=');
  out.append(std::to_string(format.size() + 1 + s.size()));
  out.append("\r\n", 2);
  out.append(format);
  out.push_back(':');
  out.append(s);
  out.append("\r\n", 2);
}

void AppendNil(std::string& out, int protocol) {
  if (protocol >= 3) {
    AppendNull(out);
  } else {
    AppendNullBulk(out);
  }
}

void AppendMap(std::string& out, size_t pairs, int protocol) {
  if (protocol >= 3) {
    AppendMapHeader(out, pairs);
  } else {
    AppendArrayHeader(out, 2 * pairs);
  }
}

void AppendText(std::string& out, std::string_view s, int protocol) {
  if (protocol >= 3) {
    AppendVerbatim(out, "txt", s);
  } else {
    AppendBulk(out, s);
  }
}

void AppendSet(std::string& out, size_t n, int protocol) {
  if (protocol < 3) return AppendArrayHeader(out, n);
  out.push_back('~');
  out.append(std::to_string(n));
  out.append("\r\n", 2);
}

}  // namespace corral::proto

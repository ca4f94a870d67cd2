// Default parameters for libpq connection strings, for both the key=value and the URI forms.
#include "pg-loader/conninfo.h"

#include <cctype>

namespace corral::pg {
namespace {

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Does the key=value string set `key`? Keys appear at the start or after whitespace, followed by
// optional spaces and '='. Quoted values could in theory contain "key=", which only makes us skip
// adding a default; it never overrides the operator's choice.
bool KeyValueHasKey(std::string_view conninfo, std::string_view key) {
  size_t pos = 0;
  while ((pos = conninfo.find(key, pos)) != std::string_view::npos) {
    const bool at_word_start = pos == 0 || IsSpace(conninfo[pos - 1]);
    size_t after = pos + key.size();
    while (after < conninfo.size() && IsSpace(conninfo[after])) ++after;
    if (at_word_start && after < conninfo.size() && conninfo[after] == '=') return true;
    pos += key.size();
  }
  return false;
}

bool UriHasKey(std::string_view uri, std::string_view key) {
  const size_t query = uri.find('?');
  if (query == std::string_view::npos) return false;
  size_t pos = query;
  while (pos != std::string_view::npos && pos < uri.size()) {
    const size_t start = pos + 1;
    if (uri.substr(start, key.size()) == key && start + key.size() < uri.size() &&
        uri[start + key.size()] == '=') {
      return true;
    }
    pos = uri.find('&', start);
  }
  return false;
}

}  // namespace

bool IsConnUri(std::string_view conninfo) {
  return conninfo.starts_with("postgresql://") || conninfo.starts_with("postgres://");
}

std::string WithDefaultParams(std::string_view conninfo, const ConnParams& defaults) {
  std::string out(conninfo);
  const bool uri = IsConnUri(conninfo);
  for (const auto& [key, value] : defaults) {
    if (uri) {
      if (UriHasKey(out, key)) continue;
      out += out.find('?') == std::string::npos ? '?' : '&';
    } else {
      if (KeyValueHasKey(out, key)) continue;
      if (!out.empty() && !IsSpace(out.back())) out += ' ';
    }
    out += key;
    out += '=';
    out += value;
  }
  return out;
}

}  // namespace corral::pg

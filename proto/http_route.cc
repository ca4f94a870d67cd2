// HTTP request-target routing: path matching and percent-decoding.
#include "proto/http_route.h"

namespace corral::proto {
namespace {

constexpr std::string_view kCachePrefix = "/v1/cache/";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 percent-decoding of one path segment (or the id's run of segments). Returns false on
// a '%' not followed by two hex digits.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

// The path of an origin-form or absolute-form target, without its query.
std::string_view PathOf(std::string_view target) {
  target = target.substr(0, target.find('?'));
  for (std::string_view scheme : {"http://", "https://"}) {
    if (StartsWithNoCase(target, scheme)) {
      const size_t slash = target.find('/', scheme.size());
      return slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
  }
  return target;
}

Route Kind(RouteKind kind) { return Route{kind, {}, {}}; }

}  // namespace

Route ParseRoute(std::string_view target) {
  const std::string_view path = PathOf(target);
  if (path == "/metrics") return Kind(RouteKind::kMetrics);
  if (path == "/healthz") return Kind(RouteKind::kHealthz);
  if (path == "/readyz") return Kind(RouteKind::kReadyz);
  if (path == "/readyz/database") return Kind(RouteKind::kReadyzDatabase);
  if (path == "/v1/stats") return Kind(RouteKind::kStats);
  if (!path.starts_with(kCachePrefix)) return Kind(RouteKind::kNotFound);

  const std::string_view rest = path.substr(kCachePrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) {
    return Kind(RouteKind::kNotFound);
  }
  Route route{RouteKind::kCache, {}, {}};
  if (!PercentDecode(rest.substr(0, slash), &route.ns) ||
      !PercentDecode(rest.substr(slash + 1), &route.id) ||
      route.ns.find(':') != std::string::npos) {
    return Kind(RouteKind::kBadRequest);
  }
  return route;
}

}  // namespace corral::proto

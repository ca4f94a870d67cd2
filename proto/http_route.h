// HTTP request-target routing for corral's HTTP endpoint (SPEC "HTTP endpoint"). Pure string
// work: the Beast session hands the target here and dispatches on the result.
#pragma once

#include <string>
#include <string_view>

namespace corral::proto {

enum class RouteKind {
  kCache,
  kMetrics,
  kHealthz,
  kReadyz,
  kReadyzDatabase,
  kStats,
  kNotFound,
  kBadRequest
};

// ns and id are set (percent-decoded) only for kCache.
struct Route {
  RouteKind kind;
  std::string ns;
  std::string id;
};

// Routes an origin-form target ("/v1/cache/user/42?x=1"); an absolute-form target
// ("http://host/path") is routed by its path. The query string is ignored. Methods are the
// caller's business.
//  /v1/cache/{ns}/{id}: kCache. The namespace ends at the first raw '/'; the id is everything
//      after it, so it may hold raw or encoded ('%2F') slashes. Both are percent-decoded ('+'
//      stays '+'). A missing or empty ns or id is kNotFound; a malformed %-escape, or a ':' in
//      the decoded namespace (it would split the key NAMESPACE:ID elsewhere), is kBadRequest.
//  /metrics, /healthz, /readyz, /readyz/database, /v1/stats: their kinds (exact paths, no
//      trailing '/').
//  Anything else: kNotFound.
Route ParseRoute(std::string_view target);

}  // namespace corral::proto

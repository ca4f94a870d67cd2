// ParseRoute: HTTP request targets to routes, with percent-decoding.
#include "proto/http_route.h"

#include <gtest/gtest.h>

#include <string>

namespace corral::proto {
namespace {

using namespace std::string_literals;

TEST(ParseRoute, FixedPaths) {
  EXPECT_EQ(ParseRoute("/metrics").kind, RouteKind::kMetrics);
  EXPECT_EQ(ParseRoute("/healthz").kind, RouteKind::kHealthz);
  EXPECT_EQ(ParseRoute("/readyz").kind, RouteKind::kReadyz);
  EXPECT_EQ(ParseRoute("/readyz/database").kind, RouteKind::kReadyzDatabase);
  EXPECT_EQ(ParseRoute("/readyz/database/").kind, RouteKind::kNotFound);
  EXPECT_EQ(ParseRoute("/v1/stats").kind, RouteKind::kStats);
  EXPECT_EQ(ParseRoute("/metrics?name[]=x").kind, RouteKind::kMetrics);
  EXPECT_EQ(ParseRoute("/healthz?").kind, RouteKind::kHealthz);
}

TEST(ParseRoute, NotFound) {
  for (const char* target : {"", "/", "*", "/metrics/", "/Metrics", "/v1/stats/x", "/v1/cache",
                             "/v1/cache/", "/v1/cache/user", "/v1/cache/user/", "/v1/cache//42",
                             "/v2/cache/user/42", "/v1/cachex/user/42", "/%6Detrics"}) {
    EXPECT_EQ(ParseRoute(target).kind, RouteKind::kNotFound) << target;
  }
}

TEST(ParseRoute, Cache) {
  const Route r = ParseRoute("/v1/cache/user/42");
  EXPECT_EQ(r.kind, RouteKind::kCache);
  EXPECT_EQ(r.ns, "user");
  EXPECT_EQ(r.id, "42");
}

TEST(ParseRoute, CacheQueryIgnored) {
  const Route r = ParseRoute("/v1/cache/user/42?fresh=1&x=%zz");
  EXPECT_EQ(r.kind, RouteKind::kCache);
  EXPECT_EQ(r.ns, "user");
  EXPECT_EQ(r.id, "42");
}

TEST(ParseRoute, IdTakesTheRestOfThePathDecoded) {
  const Route raw = ParseRoute("/v1/cache/files/a/b/c");
  EXPECT_EQ(raw.kind, RouteKind::kCache);
  EXPECT_EQ(raw.ns, "files");
  EXPECT_EQ(raw.id, "a/b/c");

  const Route encoded = ParseRoute("/v1/cache/files/a%2Fb%2fc%20d+e%3A%00");
  EXPECT_EQ(encoded.kind, RouteKind::kCache);
  EXPECT_EQ(encoded.id, "a/b/c d+e:\0"s);

  const Route ns = ParseRoute("/v1/cache/my%20ns/x");
  EXPECT_EQ(ns.kind, RouteKind::kCache);
  EXPECT_EQ(ns.ns, "my ns");
}

TEST(ParseRoute, BadRequest) {
  for (const char* target : {"/v1/cache/user/4%2", "/v1/cache/user/%", "/v1/cache/user/%zz",
                             "/v1/cache/us%g1er/42", "/v1/cache/a:b/42", "/v1/cache/a%3Ab/42"}) {
    const Route r = ParseRoute(target);
    EXPECT_EQ(r.kind, RouteKind::kBadRequest) << target;
    EXPECT_TRUE(r.ns.empty() && r.id.empty()) << target;
  }
}

TEST(ParseRoute, AbsoluteForm) {
  const Route r = ParseRoute("http://corral:8080/v1/cache/user/42?x");
  EXPECT_EQ(r.kind, RouteKind::kCache);
  EXPECT_EQ(r.ns, "user");
  EXPECT_EQ(r.id, "42");
  EXPECT_EQ(ParseRoute("HTTPS://h/metrics").kind, RouteKind::kMetrics);
  EXPECT_EQ(ParseRoute("http://h").kind, RouteKind::kNotFound);
}

}  // namespace
}  // namespace corral::proto

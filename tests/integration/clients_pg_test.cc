// A mainstream client's near cache kept right by the database: node-redis (npm, pinned by
// tests/clients/node/package-lock.json) with clientSideCache on, RESP3 and CLIENT TRACKING, reads
// a read-through key; an UPDATE of its row committed on the PostgreSQL primary reaches corral
// (NOTIFY) and corral pushes the invalidation, so the client's next read is the new row.
// tests/clients/node/near_cache.mjs asserts each round and prints the delay; this runs it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

const std::string kClients = std::string(CORRAL_SOURCE_DIR) + "/tests/clients";

class ClientsPgTest : public PgTest {};

TEST_F(ClientsPgTest, NodeRedisNearCacheDropsAKeyWhenItsRowChanges) {
  ASSERT_TRUE(InPath("node")) << "node is not in PATH";
  ASSERT_TRUE(InPath("psql"));
  ASSERT_TRUE(std::filesystem::exists(kClients + "/node/node_modules/redis"))
      << "the Node clients are not installed: (cd tests/clients/node && npm ci)";
  auto server = StartCorral(
      R"({"user": {"query": "SELECT version::text AS near_cache FROM users WHERE id = $1::bigint"}})");
  ASSERT_NE(server, nullptr);
  const int id = 640;
  const int rounds = 20;
  ProcessResult r =
      RunProcess({"env", "CORRAL_RESP_PORT=" + std::to_string(server->resp_port()),
                  "CORRAL_KEY=user:" + std::to_string(id), "CORRAL_ROW_ID=" + std::to_string(id),
                  "CORRAL_ROUNDS=" + std::to_string(rounds), "CORRAL_PG_PRIMARY=" + pg_.primary,
                  "node", kClients + "/node/near_cache.mjs"},
                 {}, Millis(120000));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("[figures] node-redis near cache")) << r.out << r.err;
  std::printf("%s", r.out.c_str());
  // At least one load per round plus the first (a reread from a replica behind is another).
  EXPECT_GE(pg_.Calls("near_cache"), rounds + 1);
  EXPECT_GE(Metric(server->http_port(), "corral_invalidations_total{source=\"notify\"}"), rounds);
}

}  // namespace
}  // namespace corral::integration

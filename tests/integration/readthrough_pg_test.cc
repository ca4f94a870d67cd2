// Read-through against the real PostgreSQL primary + 2 replicas (SPEC rules 1-3, 5-7, 9): herds of
// concurrent requests cause one query per key, counted by pg_stat_statements at the database.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "tests/integration/pg_support.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using Clock = std::chrono::steady_clock;

class ReadThroughPgTest : public PgTest {};

constexpr const char* kSlowQuery = "SELECT name FROM users, pg_sleep(0.2) WHERE id = $1::bigint";

// Issue 3: 1 000 concurrent connections, one cold key whose query takes 200 ms: one query, 1 000
// right answers.
TEST_F(ReadThroughPgTest, ThousandClientsOneColdKeyCauseOneQuery) {
  auto server = StartCorral(std::string("{\"slow\": {\"query\": \"") + kSlowQuery + "\"}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  std::vector<std::vector<std::string>> commands(1000, {"GET", "slow:4242"});
  auto start = Clock::now();
  std::vector<HerdReply> replies = RespHerd(server->resp_port(), commands);
  double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  for (size_t i = 0; i < replies.size(); ++i) {
    ASSERT_EQ(RespValue(replies[i].reply), "user 4242") << "client " << i;
  }
  int64_t queries = pg_.Calls("pg_sleep");
  ReportHerd("cold key, 1000 RESP clients, 200 ms query", replies, queries);
  std::printf("[figures] herd wall time %.1f ms\n", wall_ms);
  EXPECT_EQ(queries, 1);
  EXPECT_GE(Metric(server->http_port(), "corral_coalesced_requests_total"), 1);
}

// Issue 3: 200 cold keys x 10 concurrent clients each: at most 200 queries, every answer right.
TEST_F(ReadThroughPgTest, TwoHundredKeysTimesTenClients) {
  auto server = StartCorral(
      "{\"slow\": {\"query\": \"SELECT name FROM users, pg_sleep(0.05) WHERE id = $1::bigint\","
      " \"max_inflight_loads\": 256}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  std::vector<HerdReply> replies = ManyKeysHerd(server->resp_port(), "slow", 1000, 200, 10);
  int64_t queries = pg_.Calls("pg_sleep");
  ReportHerd("200 keys x 10 clients", replies, queries);
  EXPECT_LE(queries, 200);
  EXPECT_GE(queries, 200);  // every key is cold, so each is loaded exactly once
}

// Issue 3: the same herd over HTTP, with X-Cache telling the loader from the waiters.
TEST_F(ReadThroughPgTest, HttpHerdCausesOneQuery) {
  auto server = StartCorral(std::string("{\"slow\": {\"query\": \"") + kSlowQuery + "\"}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  std::vector<std::string> targets(300, "/v1/cache/slow/77");
  std::vector<HerdReply> replies = HttpHerd(server->http_port(), targets);
  int miss = 0, waited = 0, hit = 0;
  for (const auto& r : replies) {
    ASSERT_EQ(r.reply.rfind("HTTP/1.1 200", 0), 0u) << r.reply;
    ASSERT_NE(r.reply.find("\r\n\r\nuser 77"), std::string::npos) << r.reply;
    if (r.reply.find("X-Cache: MISS") != std::string::npos) ++miss;
    if (r.reply.find("X-Cache: WAITED") != std::string::npos) ++waited;
    if (r.reply.find("X-Cache: HIT") != std::string::npos) ++hit;
  }
  int64_t queries = pg_.Calls("pg_sleep");
  ReportHerd("cold key, 300 HTTP clients", replies, queries);
  EXPECT_EQ(queries, 1);
  EXPECT_EQ(miss, 1);
  EXPECT_EQ(miss + waited + hit, 300);
}

// Issue 3: zero rows is "not found", answered as nil and cached for negative_ttl_ms.
TEST_F(ReadThroughPgTest, NotFoundIsCached) {
  auto server = StartCorral(
      "{\"user\": {\"query\": \"SELECT row_to_json(u)::text FROM users u WHERE u.id = "
      "$1::bigint\", \"negative_ttl_ms\": 60000}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  for (int i = 0; i < 5; ++i) {
    auto r = RespHerd(server->resp_port(), {{"GET", "user:987654321"}});
    EXPECT_EQ(RespValue(r[0].reply), "<nil>");
  }
  auto http = HttpHerd(server->http_port(), {"/v1/cache/user/987654321"});
  EXPECT_EQ(http[0].reply.rfind("HTTP/1.1 404", 0), 0u) << http[0].reply;
  EXPECT_EQ(pg_.Calls("row_to_json"), 1);
  // A found row is JSON, served with application/json.
  http = HttpHerd(server->http_port(), {"/v1/cache/user/42"});
  EXPECT_NE(http[0].reply.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(http[0].reply.find("\"id\":42"), std::string::npos) << http[0].reply;
}

// Issue 3: a query error reaches every waiter as an error; the server stays up; the error is
// held off (no second query within error_holdoff_ms).
TEST_F(ReadThroughPgTest, QueryErrorReachesAllWaiters) {
  auto server = StartCorral(
      "{\"bad\": {\"query\": \"SELECT (1/(id - id))::text FROM users, pg_sleep(0.2) WHERE id = "
      "$1::bigint\"}}",
      "\"lease\": {\"error_holdoff_ms\": 60000}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  std::vector<std::vector<std::string>> commands(100, {"GET", "bad:5"});
  std::vector<HerdReply> replies = RespHerd(server->resp_port(), commands);
  for (const auto& r : replies) {
    ASSERT_EQ(r.reply.rfind("-ERR upstream: ", 0), 0u) << r.reply;
    EXPECT_NE(r.reply.find("division by zero"), std::string::npos) << r.reply;
  }
  auto again = RespHerd(server->resp_port(), {{"GET", "bad:5"}, {"PING"}});
  EXPECT_EQ(again[0].reply.rfind("-ERR upstream: ", 0), 0u) << again[0].reply;
  EXPECT_EQ(again[1].reply, "+PONG\r\n");
  // pg_stat_statements records only statements that complete, so a failing query is counted by
  // corral's own load counter instead.
  EXPECT_EQ(Metric(server->http_port(),
                   "corral_db_loads_total{namespace=\"bad\",pool=\"default\",outcome=\"error\"}"),
            1);
  auto http = HttpHerd(server->http_port(), {"/v1/cache/bad/5"});
  EXPECT_EQ(http[0].reply.rfind("HTTP/1.1 502", 0), 0u) << http[0].reply;
}

// MGET reads through too, keeping key order, mixing hits, loads and not-found.
TEST_F(ReadThroughPgTest, MgetReadsThrough) {
  auto server =
      StartCorral("{\"user\": {\"query\": \"SELECT name FROM users WHERE id = $1::bigint\"}}");
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitReady(server->http_port()));
  auto warm = RespHerd(server->resp_port(), {{"GET", "user:3"}});
  ASSERT_EQ(RespValue(warm[0].reply), "user 3");
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_TRUE(c);
  auto* reply = static_cast<redisReply*>(
      redisCommand(c.get(), "MGET user:1 user:3 plain user:99999999 user:2"));
  ASSERT_NE(reply, nullptr);
  ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(reply->elements, 5u);
  EXPECT_EQ(std::string(reply->element[0]->str), "user 1");
  EXPECT_EQ(std::string(reply->element[1]->str), "user 3");
  EXPECT_EQ(reply->element[2]->type, REDIS_REPLY_NIL);
  EXPECT_EQ(reply->element[3]->type, REDIS_REPLY_NIL);
  EXPECT_EQ(std::string(reply->element[4]->str), "user 2");
  freeReplyObject(reply);
}

}  // namespace
}  // namespace corral::integration

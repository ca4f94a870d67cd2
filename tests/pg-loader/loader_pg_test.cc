// Loader against a real PostgreSQL (deploy/pg-local.sh: a primary and two streaming replicas):
// value conversion, not found, NULL, SQL errors, the statement timeout, round-robin and
// least-loaded spreading, fallback to the primary. Nothing here stops nodes or writes data, so it
// may run beside other tests; the disruptive cases live in failover_pg_test.cc.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "pg-loader/loader.h"
#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::Collector;
using testing::LoadSync;
using testing::PgEnv;
using testing::WaitFor;
using Kind = LoadOutcome::Kind;
using nlohmann::json;

enum StatementIndex : size_t {
  kRowJson,
  kColumns,
  kNullColumn,
  kManyRows,
  kBadColumn,
  kSleep,
  kTypes,
  kShortSleep,
};

std::vector<Statement> TestStatements() {
  using testing::MakeStatement;
  return {
      MakeStatement("row_json", "SELECT row_to_json(u)::text FROM users u WHERE u.id = $1"),
      MakeStatement("columns", "SELECT id, name, email, version FROM users WHERE id = $1"),
      MakeStatement("null_column", "SELECT NULL::text FROM users WHERE id = $1"),
      MakeStatement("many_rows", "SELECT id FROM users WHERE id <= $1::bigint ORDER BY id"),
      MakeStatement("bad_column", "SELECT no_such_column FROM users WHERE id = $1"),
      MakeStatement("sleep", "SELECT pg_sleep(5)::text || $1"),
      MakeStatement(
          "types",
          "SELECT $1::int AS i, 2.5::float8 AS f, 12.50::numeric AS n, 'NaN'::float8 AS nan,"
          " true AS b, false AS b2, '{\"k\": [1, \"two\"]}'::jsonb AS jb, '[1, 2]'::json AS js,"
          " NULL::int AS nothing, 'say \"hi\"\n'::text AS t, '2024-01-01'::date AS d"),
      MakeStatement("short_sleep", "SELECT pg_sleep(1.3)::text || $1"),
  };
}

class LoaderPgTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    env_ = PgEnv::FromEnvironment();
    CORRAL_REQUIRE_PG(env_, false);
  }

  LoaderOptions Options() const {
    LoaderOptions options;
    options.primary = env_.primary;
    options.replicas = {env_.replicas[0], env_.replicas[1]};
    options.pools = {{"default", PoolOptions{{0, 1}, 2}}};
    options.health_check_interval_ms = 200;
    options.prepared_statements = GetParam();
    return options;
  }

  std::unique_ptr<Loader> StartLoader(LoaderOptions options) {
    auto loader = std::make_unique<Loader>(std::move(options), TestStatements());
    loader->Start();
    EXPECT_TRUE(WaitFor([&] { return loader->Ready(); })) << "replicas never became ready";
    return loader;
  }

  PgEnv env_;
};

TEST_P(LoaderPgTest, OneColumnIsTheValue) {
  auto loader = StartLoader(Options());
  LoadOutcome outcome = LoadSync(*loader, kRowJson, "42");
  ASSERT_EQ(outcome.kind, Kind::kValue) << outcome.data;
  const json row = json::parse(outcome.data);
  EXPECT_EQ(row["id"], 42);
  EXPECT_EQ(row["email"], "user42@example.com");
  EXPECT_TRUE(outcome.replica == "replica0" || outcome.replica == "replica1") << outcome.replica;
  EXPECT_GT(outcome.micros, 0);
  // The same statement again, on whichever connection: prepared once per connection is enough.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(LoadSync(*loader, kRowJson, "42").data, outcome.data);
}

TEST_P(LoaderPgTest, SeveralColumnsBecomeAJsonObject) {
  auto loader = StartLoader(Options());
  LoadOutcome outcome = LoadSync(*loader, kColumns, "7");
  ASSERT_EQ(outcome.kind, Kind::kValue) << outcome.data;
  EXPECT_EQ(outcome.data, R"({"id":7,"name":"user 7","email":"user7@example.com","version":1})");
}

TEST_P(LoaderPgTest, ColumnTypesMapToJsonTypes) {
  auto loader = StartLoader(Options());
  LoadOutcome outcome = LoadSync(*loader, kTypes, "5");
  ASSERT_EQ(outcome.kind, Kind::kValue) << outcome.data;
  const json value = json::parse(outcome.data);
  EXPECT_EQ(value["i"], 5);
  EXPECT_DOUBLE_EQ(value["f"].get<double>(), 2.5);
  EXPECT_TRUE(value["n"].is_number());
  EXPECT_DOUBLE_EQ(value["n"].get<double>(), 12.5);
  EXPECT_EQ(value["nan"], "NaN");
  EXPECT_EQ(value["b"], true);
  EXPECT_EQ(value["b2"], false);
  EXPECT_EQ(value["jb"], json::parse(R"({"k":[1,"two"]})"));
  EXPECT_EQ(value["js"], json::parse("[1,2]"));
  EXPECT_TRUE(value["nothing"].is_null());
  EXPECT_EQ(value["t"], "say \"hi\"\n");
  EXPECT_EQ(value["d"], "2024-01-01");
}

TEST_P(LoaderPgTest, ZeroRowsIsNotFound) {
  auto loader = StartLoader(Options());
  LoadOutcome outcome = LoadSync(*loader, kRowJson, "987654321");
  EXPECT_EQ(outcome.kind, Kind::kNotFound) << outcome.data;
  EXPECT_EQ(outcome.data, "");
  EXPECT_FALSE(outcome.replica.empty());
}

TEST_P(LoaderPgTest, NullSingleColumnIsNotFound) {
  auto loader = StartLoader(Options());
  EXPECT_EQ(LoadSync(*loader, kNullColumn, "3").kind, Kind::kNotFound);
}

TEST_P(LoaderPgTest, SeveralRowsIsAnError) {
  auto loader = StartLoader(Options());
  LoadOutcome outcome = LoadSync(*loader, kManyRows, "3");
  EXPECT_EQ(outcome.kind, Kind::kError);
  EXPECT_EQ(outcome.data, "query returned 3 rows");
}

TEST_P(LoaderPgTest, SqlErrorsCarryPostgresMessageAndAreNotRetried) {
  auto loader = StartLoader(Options());
  auto total_loads = [&] {
    uint64_t sum = 0;
    for (const ReplicaStatus& s : loader->Status()) sum += s.loads;
    return sum;
  };
  const uint64_t before = total_loads();
  LoadOutcome outcome = LoadSync(*loader, kBadColumn, "1");
  EXPECT_EQ(outcome.kind, Kind::kError);
  EXPECT_EQ(outcome.data, "column \"no_such_column\" does not exist");
  EXPECT_EQ(total_loads(), before + 1);

  outcome = LoadSync(*loader, kRowJson, "not-a-number");
  EXPECT_EQ(outcome.kind, Kind::kError);
  EXPECT_EQ(outcome.data, "invalid input syntax for type bigint: \"not-a-number\"");
  EXPECT_EQ(total_loads(), before + 2);

  // The connection is still good afterwards (the failed transaction was rolled back).
  EXPECT_EQ(LoadSync(*loader, kRowJson, "1").kind, Kind::kValue);
  EXPECT_TRUE(loader->Status()[0].up && loader->Status()[1].up);
}

TEST_P(LoaderPgTest, StatementTimeoutIsAnErrorNotARetry) {
  LoaderOptions options = Options();
  options.statement_timeout_ms = 200;
  auto loader = StartLoader(options);
  const auto start = testing::Clock::now();
  LoadOutcome outcome = LoadSync(*loader, kSleep, "x");
  const auto elapsed = testing::Clock::now() - start;
  EXPECT_EQ(outcome.kind, Kind::kError);
  EXPECT_EQ(outcome.data, "canceling statement due to statement timeout");
  EXPECT_LT(elapsed, std::chrono::seconds(4));  // pg_sleep(5) was cut short, and not run twice
  uint64_t loads = 0;
  for (const ReplicaStatus& s : loader->Status()) loads += s.loads;
  EXPECT_EQ(loads, 1u);
  EXPECT_TRUE(loader->Status()[0].up && loader->Status()[1].up);  // a timeout is not "down"
  EXPECT_EQ(LoadSync(*loader, kRowJson, "1").kind, Kind::kValue);
}

// statement_timeout_ms 0 is "no statement timeout" (as the configuration documents): no SET LOCAL
// limit, and no watchdog cut-off either (with a timeout it would cut this load after 1 s).
TEST_P(LoaderPgTest, ZeroStatementTimeoutLetsAQueryRunLong) {
  LoaderOptions options = Options();
  options.statement_timeout_ms = 0;
  auto loader = StartLoader(options);
  LoadOutcome outcome = LoadSync(*loader, kShortSleep, "x");
  EXPECT_EQ(outcome.kind, Kind::kValue) << outcome.data;
  EXPECT_EQ(outcome.data, "x");
  EXPECT_GE(outcome.micros, 1'200'000);
}

TEST_P(LoaderPgTest, RoundRobinSpreadsLoadsOverBothReplicas) {
  auto loader = StartLoader(Options());
  std::map<std::string, int> served_by;
  for (int i = 1; i <= 100; ++i) {
    LoadOutcome outcome = LoadSync(*loader, kRowJson, std::to_string(i));
    ASSERT_EQ(outcome.kind, Kind::kValue) << outcome.data;
    ++served_by[outcome.replica];
  }
  EXPECT_EQ(served_by["replica0"], 50);
  EXPECT_EQ(served_by["replica1"], 50);
  EXPECT_EQ(loader->Status()[0].loads, 50u);
  EXPECT_EQ(loader->Status()[1].loads, 50u);
}

TEST_P(LoaderPgTest, ConcurrentLoadsAllComplete) {
  LoaderOptions options = Options();
  options.pools["default"].routing = Routing::kLeastLoaded;
  auto loader = StartLoader(options);
  Collector collector;
  constexpr int kLoads = 400;
  for (int i = 1; i <= kLoads; ++i) loader->Load(kRowJson, std::to_string(i), collector.Callback());
  ASSERT_TRUE(collector.WaitCount(kLoads));
  std::map<std::string, int> served_by;
  for (const LoadOutcome& outcome : collector.outcomes()) {
    EXPECT_EQ(outcome.kind, Kind::kValue) << outcome.data;
    ++served_by[outcome.replica];
  }
  EXPECT_GT(served_by["replica0"], 0);
  EXPECT_GT(served_by["replica1"], 0);
  EXPECT_EQ(served_by["replica0"] + served_by["replica1"], kLoads);
}

TEST_P(LoaderPgTest, PoolWithoutReplicasFallsBackToThePrimary) {
  LoaderOptions options = Options();
  options.fallback_to_primary = true;
  options.replicas.clear();
  options.pools = {{"default", PoolOptions{{}, 2}}};  // no replicas at all: only the primary serves
  auto loader = std::make_unique<Loader>(options, TestStatements());
  loader->Start();
  ASSERT_TRUE(WaitFor([&] { return loader->Ready(); }));
  LoadOutcome outcome = LoadSync(*loader, kRowJson, "9");
  ASSERT_EQ(outcome.kind, Kind::kValue) << outcome.data;
  EXPECT_EQ(outcome.replica, "primary");
  ASSERT_EQ(loader->Status().size(), 1u);
  EXPECT_EQ(loader->Status()[0].name, "primary");
  EXPECT_DOUBLE_EQ(loader->Status()[0].lag_seconds, 0);
}

TEST_P(LoaderPgTest, HealthyReplicasReportNoLag) {
  auto loader = StartLoader(Options());
  ASSERT_TRUE(WaitFor([&] { return loader->Status()[0].up && loader->Status()[1].up; }));
  for (const ReplicaStatus& status : loader->Status()) {
    EXPECT_TRUE(status.up) << status.name;
    EXPECT_FALSE(status.lagging) << status.name;
    EXPECT_LT(status.lag_seconds, 5.0) << status.name;
  }
}

INSTANTIATE_TEST_SUITE_P(PreparedAndPlain, LoaderPgTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Prepared" : "ExecParams";
                         });

}  // namespace
}  // namespace corral::pg

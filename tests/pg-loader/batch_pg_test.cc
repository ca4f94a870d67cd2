// Batching against a real PostgreSQL (deploy/pg-local.sh): concurrent loads of one statement become
// few = ANY($1) queries (counted by pg_stat_statements on the replicas), with the same values as
// the single query, not-found ids, duplicate ids, ids that need quoting, SQL errors for the whole
// batch, and the retry of a whole batch after its connection breaks. Nothing here stops nodes.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "pg-loader/loader.h"
#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::Collector;
using testing::LoadSync;
using testing::PgEnv;
using testing::RunSql;
using testing::WaitFor;
using Kind = LoadOutcome::Kind;

enum StatementIndex : size_t {
  kUser,         // batched users by id; the aliases mark its queries in pg_stat_statements
  kUserSingle,   // the same value by the plain single query, for comparison
  kColumns,      // several value columns → a JSON object
  kEcho,         // 'v:' || id for any text id; the batch adds a row nobody asked for
  kBadColumn,    // the batch query fails
  kOneColumn,    // the batch query has no value column
  kKillOnFirst,  // the batch query ends its own session on replica0 only
};

// pg_stat_statements keys statements by parse tree, not text: kUserSingle's calls would be counted
// under kUser's single query (aliases do not count), so counts are taken before comparing.
constexpr char kBatchMarker[] = "batch_u";
constexpr char kSingleMarker[] = "single_u";
constexpr int64_t kLongWindowUs = 10'000'000;  // tests fill batches exactly, so never waited out

class BatchPgTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    env_ = PgEnv::FromEnvironment();
    CORRAL_REQUIRE_PG(env_, false);
    std::smatch match;
    static const std::regex kPort("port=([0-9]+)");
    ASSERT_TRUE(std::regex_search(env_.replicas[0], match, kPort)) << env_.replicas[0];
    first_port_ = match[1];
  }

  // `connections` workers on replica0, or on both replicas (round-robin).
  LoaderOptions Options(int connections, bool both_replicas) const {
    LoaderOptions options;
    options.primary = env_.primary;
    options.replicas = {env_.replicas[0], env_.replicas[1]};
    options.pools = {{"default", PoolOptions{{0}, connections}}};
    if (both_replicas) options.pools["default"].replicas = {0, 1};
    options.health_check_interval_ms = 200;
    options.prepared_statements = GetParam();
    return options;
  }

  std::vector<Statement> Statements(int batch_max, int64_t window_us) const {
    using testing::MakeBatchStatement;
    return {
        MakeBatchStatement(
            "user", "SELECT row_to_json(single_u)::text FROM users single_u WHERE single_u.id = $1",
            "SELECT batch_u.id::text, row_to_json(batch_u)::text FROM users batch_u"
            " WHERE batch_u.id = ANY($1::bigint[])",
            batch_max, window_us),
        testing::MakeStatement("user_single",
                               "SELECT row_to_json(u)::text FROM users u WHERE u.id = $1"),
        MakeBatchStatement("columns", "SELECT id, name, email, version FROM users WHERE id = $1",
                           "SELECT id::text, id, name, email, version FROM users"
                           " WHERE id = ANY($1::bigint[])",
                           batch_max, window_us),
        // unnest() gives a row per array element: an id asked twice would be answered twice.
        MakeBatchStatement("echo", "SELECT 'v:' || $1::text",
                           "SELECT e.x, 'v:' || e.x FROM unnest($1::text[]) AS e(x)"
                           " UNION ALL SELECT 'not-asked', 'zzz'",
                           batch_max, window_us),
        MakeBatchStatement(
            "bad_column", "SELECT no_such_column FROM users WHERE id = $1",
            "SELECT id::text, no_such_column FROM users WHERE id = ANY($1::bigint[])", batch_max,
            window_us),
        MakeBatchStatement("one_column", "SELECT $1::text", "SELECT x FROM unnest($1::text[]) AS x",
                           batch_max, window_us),
        MakeBatchStatement(
            "kill_on_first", "SELECT 'v:' || $1::text",
            "SELECT k.x, CASE WHEN inet_server_port() = " + first_port_ +
                " THEN pg_terminate_backend(pg_backend_pid())::text ELSE 'v:' || k.x END"
                " FROM unnest($1::text[]) AS k(x)",
            batch_max, window_us),
    };
  }

  std::unique_ptr<Loader> StartLoader(LoaderOptions options, std::vector<Statement> statements) {
    auto loader = std::make_unique<Loader>(std::move(options), std::move(statements));
    loader->Start();
    EXPECT_TRUE(WaitFor([&] { return loader->Ready(); })) << "replicas never became ready";
    return loader;
  }

  // Issues every load at once and returns the outcomes in the order of `ids`.
  static std::vector<LoadOutcome> LoadAll(Loader& loader, size_t statement,
                                          const std::vector<std::string>& ids) {
    std::vector<Collector> collectors(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      loader.Load(statement, ids[i], collectors[i].Callback());
    }
    std::vector<LoadOutcome> outcomes;
    for (Collector& collector : collectors) {
      if (!collector.WaitCount(1, std::chrono::seconds(30))) {
        ADD_FAILURE() << "a load did not complete within 30 s";
        outcomes.emplace_back();
        continue;
      }
      outcomes.push_back(collector.outcomes().front());
    }
    return outcomes;
  }

  void ResetStatements() {
    for (const std::string& replica : env_.replicas) {
      RunSql(replica, "SELECT pg_stat_statements_reset()");
    }
  }

  // Completed calls of statements whose text contains `marker`, over both replicas.
  int64_t Calls(const std::string& marker) {
    int64_t calls = 0;
    for (const std::string& replica : env_.replicas) {
      calls += std::stoll(RunSql(replica,
                                 "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
                                 " WHERE query LIKE '%" +
                                     marker + "%' AND query NOT LIKE '%pg_stat_statements%'"));
    }
    return calls;
  }

  static uint64_t Sum(const Loader& loader, uint64_t ReplicaStatus::*field) {
    uint64_t sum = 0;
    for (const ReplicaStatus& status : loader.Status()) sum += status.*field;
    return sum;
  }

  PgEnv env_;
  std::string first_port_;
};

TEST_P(BatchPgTest, ConcurrentLoadsBecomeFewQueriesWithTheSingleQuerysValues) {
  constexpr int kLoads = 100;
  constexpr int kBatchMax = 64;
  constexpr int kConnections = 2;  // per replica, two replicas
  auto loader = StartLoader(Options(kConnections, true), Statements(kBatchMax, 100'000));
  ResetStatements();
  std::vector<std::string> ids;
  for (int i = 1; i <= kLoads; ++i) ids.push_back(std::to_string(i * 97));  // distinct, all exist
  const std::vector<LoadOutcome> outcomes = LoadAll(*loader, kUser, ids);

  const int64_t batch_calls = Calls(kBatchMarker);
  const int64_t single_calls = Calls(kSingleMarker);
  const int64_t bound = (kLoads + kBatchMax - 1) / kBatchMax + 2 * kConnections;
  EXPECT_GE(batch_calls, 1);
  EXPECT_LE(batch_calls + single_calls, bound)
      << batch_calls << " batch queries, " << single_calls << " single ones";
  // The loader counts the same calls, a batch as one.
  EXPECT_EQ(Sum(*loader, &ReplicaStatus::loads), static_cast<uint64_t>(batch_calls + single_calls));
  EXPECT_EQ(Sum(*loader, &ReplicaStatus::batches), static_cast<uint64_t>(batch_calls));
  EXPECT_EQ(Sum(*loader, &ReplicaStatus::batched_loads) + static_cast<uint64_t>(single_calls),
            static_cast<uint64_t>(kLoads));

  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_EQ(outcomes[i].kind, Kind::kValue) << ids[i] << ": " << outcomes[i].data;
    EXPECT_GT(outcomes[i].micros, 0);
    EXPECT_EQ(outcomes[i].data, LoadSync(*loader, kUserSingle, ids[i]).data) << ids[i];
  }
}

TEST_P(BatchPgTest, SeveralValueColumnsBecomeTheSameJsonObject) {
  auto loader = StartLoader(Options(1, false), Statements(2, kLongWindowUs));
  const std::vector<LoadOutcome> outcomes = LoadAll(*loader, kColumns, {"7", "8"});
  EXPECT_EQ(outcomes[0].data,
            R"({"id":7,"name":"user 7","email":"user7@example.com","version":1})");
  EXPECT_EQ(outcomes[1].data,
            R"({"id":8,"name":"user 8","email":"user8@example.com","version":1})");
  EXPECT_EQ(loader->Status()[0].batches, 1u);
}

TEST_P(BatchPgTest, IdsWithoutARowAreNotFound) {
  auto loader = StartLoader(Options(1, false), Statements(4, kLongWindowUs));
  const std::vector<std::string> ids = {"1", "987654321", "2", "987654322"};
  const std::vector<LoadOutcome> outcomes = LoadAll(*loader, kUser, ids);
  EXPECT_EQ(outcomes[0].kind, Kind::kValue) << outcomes[0].data;
  EXPECT_EQ(outcomes[1].kind, Kind::kNotFound) << outcomes[1].data;
  EXPECT_EQ(outcomes[1].data, "");
  EXPECT_EQ(outcomes[2].kind, Kind::kValue) << outcomes[2].data;
  EXPECT_EQ(outcomes[3].kind, Kind::kNotFound) << outcomes[3].data;
  EXPECT_EQ(outcomes[0].data, LoadSync(*loader, kUserSingle, "1").data);
  EXPECT_EQ(outcomes[2].data, LoadSync(*loader, kUserSingle, "2").data);
  for (const LoadOutcome& outcome : outcomes) {
    EXPECT_EQ(outcome.replica, "replica0");
    EXPECT_GT(outcome.micros, 0);
    EXPECT_EQ(outcome.micros, outcomes[0].micros);  // all timed by the one batch query
  }
  const ReplicaStatus status = loader->Status()[0];
  EXPECT_EQ(status.batches, 1u);
  EXPECT_EQ(status.batched_loads, 4u);
}

TEST_P(BatchPgTest, DuplicateIdsAreAskedOnceAndAnsweredToEveryLoad) {
  auto loader = StartLoader(Options(1, false), Statements(5, kLongWindowUs));
  ResetStatements();
  // Asked twice, "a" would get two rows from unnest() and so an error.
  const std::vector<std::string> ids = {"a", "b", "a", "c", "a"};
  const std::vector<LoadOutcome> outcomes = LoadAll(*loader, kEcho, ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(outcomes[i].kind, Kind::kValue) << ids[i] << ": " << outcomes[i].data;
    EXPECT_EQ(outcomes[i].data, "v:" + ids[i]);
  }
  EXPECT_EQ(Calls("unnest($1::text[]) AS e(x)"), 1);
  const ReplicaStatus status = loader->Status()[0];
  EXPECT_EQ(status.loads, 1u);
  EXPECT_EQ(status.batches, 1u);
  EXPECT_EQ(status.batched_loads, 5u);
}

TEST_P(BatchPgTest, IdsThatNeedQuotingRoundTripThroughTheArray) {
  const std::vector<std::string> ids = {"",     "a\"b", "c\\d",        "e,f",       "{g}",
                                        "NULL", " h ",  "caf\xc3\xa9", "\\\"x\"\\", "not asked"};
  auto loader =
      StartLoader(Options(1, false), Statements(static_cast<int>(ids.size()), kLongWindowUs));
  const std::vector<LoadOutcome> outcomes = LoadAll(*loader, kEcho, ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(outcomes[i].kind, Kind::kValue) << "[" << ids[i] << "]: " << outcomes[i].data;
    EXPECT_EQ(outcomes[i].data, "v:" + ids[i]);  // and the extra 'not-asked' row was ignored
  }
  EXPECT_EQ(loader->Status()[0].batches, 1u);
}

TEST_P(BatchPgTest, AnIdWithANulByteFailsAloneNotTheBatch) {
  auto loader = StartLoader(Options(1, false), Statements(3, kLongWindowUs));
  const std::string nul_id("2\0x", 3);  // libpq would send "2": the wrong row
  const std::vector<LoadOutcome> outcomes = LoadAll(*loader, kUser, {"1", nul_id, "3"});
  EXPECT_EQ(outcomes[0].kind, Kind::kValue) << outcomes[0].data;
  EXPECT_EQ(outcomes[1].kind, Kind::kError);
  EXPECT_EQ(outcomes[1].data, "id contains a NUL byte");
  EXPECT_EQ(outcomes[2].kind, Kind::kValue) << outcomes[2].data;
  EXPECT_EQ(loader->Status()[0].batches, 1u);
  // The single query refuses it too.
  const LoadOutcome single = LoadSync(*loader, kUserSingle, nul_id);
  EXPECT_EQ(single.kind, Kind::kError);
  EXPECT_EQ(single.data, "id contains a NUL byte");
}

TEST_P(BatchPgTest, AnSqlErrorReachesEveryLoadOfTheBatchAndIsNotRetried) {
  auto single = StartLoader(Options(1, false), Statements(3, kLongWindowUs));
  const std::vector<LoadOutcome> outcomes = LoadAll(*single, kBadColumn, {"1", "2", "3"});
  for (const LoadOutcome& outcome : outcomes) {
    EXPECT_EQ(outcome.kind, Kind::kError);
    EXPECT_EQ(outcome.data, "column \"no_such_column\" does not exist");
    EXPECT_EQ(outcome.replica, "replica0");
  }
  EXPECT_EQ(single->Status()[0].loads, 1u);
  EXPECT_TRUE(single->Status()[0].up);

  // An error raised by one id (bad bigint input, a data exception) fails only that id: the batch
  // is asked again id by id, so the others get their own answers.
  const std::vector<LoadOutcome> mixed = LoadAll(*single, kUser, {"1", "abc", "2"});
  ASSERT_EQ(mixed.size(), 3u);
  EXPECT_EQ(mixed[0].kind, Kind::kValue) << mixed[0].data;
  EXPECT_EQ(mixed[1].kind, Kind::kError);
  EXPECT_EQ(mixed[1].data, "invalid input syntax for type bigint: \"abc\"");
  EXPECT_EQ(mixed[2].kind, Kind::kValue) << mixed[2].data;
  // The connection is fine afterwards.
  const std::vector<LoadOutcome> after = LoadAll(*single, kUser, {"1", "2", "3"});
  for (const LoadOutcome& outcome : after) EXPECT_EQ(outcome.kind, Kind::kValue) << outcome.data;
  EXPECT_EQ(single->Status()[0].loads, 3u);
}

TEST_P(BatchPgTest, ABatchQueryWithoutAValueColumnIsAnError) {
  auto loader = StartLoader(Options(1, false), Statements(2, kLongWindowUs));
  for (const LoadOutcome& outcome : LoadAll(*loader, kOneColumn, {"1", "2"})) {
    EXPECT_EQ(outcome.kind, Kind::kError);
    EXPECT_EQ(outcome.data, "batch query returned 1 column(s); it needs the id and the value");
  }
}

TEST_P(BatchPgTest, ABatchOfOneUsesTheSingleQuery) {
  auto loader = StartLoader(Options(1, false), Statements(64, 0));
  ResetStatements();
  const LoadOutcome outcome = LoadSync(*loader, kUser, "5");
  ASSERT_EQ(outcome.kind, Kind::kValue) << outcome.data;
  EXPECT_EQ(Calls(kBatchMarker), 0);
  EXPECT_EQ(Calls(kSingleMarker), 1);
  EXPECT_EQ(loader->Status()[0].loads, 1u);
  EXPECT_EQ(loader->Status()[0].batches, 0u);
  EXPECT_EQ(outcome.data, LoadSync(*loader, kUserSingle, "5").data);
}

TEST_P(BatchPgTest, ABrokenConnectionRetriesTheWholeBatchOnTheOtherReplica) {
  // Round-robin over two replicas with one worker each: ids alternate between them, and each
  // worker's batch fills at four. replica0's batch kills its own session, so all four move to
  // replica1 together.
  auto loader = StartLoader(Options(1, true), Statements(4, kLongWindowUs));
  const std::vector<std::string> ids = {"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"};
  const std::vector<LoadOutcome> outcomes = LoadAll(*loader, kKillOnFirst, ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(outcomes[i].kind, Kind::kValue) << ids[i] << ": " << outcomes[i].data;
    EXPECT_EQ(outcomes[i].data, "v:" + ids[i]);
    EXPECT_EQ(outcomes[i].replica, "replica1") << ids[i];
  }
  const std::vector<ReplicaStatus> status = loader->Status();
  EXPECT_EQ(status[0].batches, 1u);  // the failed one
  EXPECT_EQ(status[1].batches, 2u);  // its own batch and the retried one
  EXPECT_EQ(status[1].batched_loads, 8u);
  // replica0 comes back after its health check.
  EXPECT_TRUE(WaitFor([&] { return loader->Status()[0].up; }));
}

INSTANTIATE_TEST_SUITE_P(PreparedAndPlain, BatchPgTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Prepared" : "ExecParams";
                         });

}  // namespace
}  // namespace corral::pg

// Loader behaviour that needs no database: option validation, answers before Start()/after Stop(),
// rejections off the caller's thread, unreachable replicas marked down, bounded queues.
#include "pg-loader/loader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::Collector;
using testing::LoadSync;
using testing::LoopbackSocket;
using testing::WaitFor;
using Kind = LoadOutcome::Kind;

LoaderOptions OptionsFor(std::vector<std::string> replicas) {
  LoaderOptions options;
  options.primary = "host=127.0.0.1 port=1 dbname=app user=app";
  options.replicas = std::move(replicas);
  options.health_check_interval_ms = 50;
  return options;
}

std::vector<Statement> OneStatement(std::string pool = "") {
  return {testing::MakeStatement("user", "SELECT $1::text", std::move(pool))};
}

void ExpectInvalid(LoaderOptions options, std::vector<Statement> statements,
                   const std::string& needle) {
  try {
    Loader loader(std::move(options), std::move(statements));
    ADD_FAILURE() << "expected std::invalid_argument mentioning " << needle;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(LoaderOptionsTest, RejectsBadOptionsAtConstruction) {
  LoaderOptions base = OptionsFor({"host=a", "host=b"});
  {
    LoaderOptions o = base;
    o.pools = {{"p", PoolOptions{{0, 2}}}};
    ExpectInvalid(o, OneStatement("p"),
                  "pools.p.replicas[1]: expected an integer in [0, 1], got 2");
  }
  {
    LoaderOptions o = base;
    o.pools = {{"p", PoolOptions{{0, 0}}}};
    ExpectInvalid(o, OneStatement("p"), "listed twice");
  }
  {
    LoaderOptions o = base;
    o.pools = {{"p", PoolOptions{{0}, 0}}};
    ExpectInvalid(o, OneStatement("p"), "pools.p.connections: expected a positive integer, got 0");
  }
  ExpectInvalid(base, OneStatement("nope"), "user.pool: unknown pool \"nope\"");
  ExpectInvalid(base, {testing::MakeStatement("user", "")}, "user.query: must use $1");
  {
    LoaderOptions o = base;
    o.statement_timeout_ms = -1;
    ExpectInvalid(o, OneStatement(), "statement_timeout_ms");
    o.statement_timeout_ms = 0;  // no statement timeout, as the configuration allows
    EXPECT_NO_THROW(Loader(o, OneStatement()));
  }
  {
    LoaderOptions o = base;
    o.health_check_interval_ms = 0;
    ExpectInvalid(o, OneStatement(), "health_check_interval_ms");
  }
  {
    LoaderOptions o = base;
    o.max_queued_per_replica = 0;
    ExpectInvalid(o, OneStatement(), "max_queued_per_replica");
  }
  {
    LoaderOptions o = OptionsFor({});
    ExpectInvalid(o, OneStatement(), "no replicas");
  }
  {
    LoaderOptions o = base;
    o.fallback_to_primary = true;
    o.primary.clear();
    ExpectInvalid(o, OneStatement(), "needs a primary");
  }
  {
    Statement batched = testing::MakeBatchStatement(
        "user", "SELECT $1::text", "SELECT x, x FROM unnest($1::text[]) x", 0, 200);
    ExpectInvalid(base, {batched}, "user.batch_max: expected a positive integer, got 0");
    batched.batch_max = 4;
    batched.batch_window_us = -1;
    ExpectInvalid(base, {batched}, "user.batch_window_us: expected an integer in [0, ");
    // The batch fields are checked without batch_query too, as the configuration does.
    batched.batch_query.clear();
    batched.batch_max = 0;
    ExpectInvalid(base, {batched}, "user.batch_max");
  }
}

TEST(LoaderOptionsTest, AcceptsDefaultsAndListsServersInStatus) {
  LoaderOptions options = OptionsFor({"host=a", "host=b"});
  options.fallback_to_primary = true;
  Loader loader(options, OneStatement());  // no pools: "default" over all replicas
  std::vector<ReplicaStatus> status = loader.Status();
  ASSERT_EQ(status.size(), 3u);
  EXPECT_EQ(status[0].name, "replica0");
  EXPECT_EQ(status[1].name, "replica1");
  EXPECT_EQ(status[2].name, "primary");
  EXPECT_FALSE(status[0].up);
  EXPECT_FALSE(loader.Ready());
}

TEST(LoaderTest, AnswersInlineBeforeStartAndAfterStop) {
  LoopbackSocket refused(/*listen=*/false);
  Loader loader(OptionsFor({refused.conninfo()}), OneStatement());
  Collector before;
  loader.Load(0, "1", before.Callback());
  ASSERT_EQ(before.outcomes().size(), 1u);  // ran inline
  EXPECT_EQ(before.outcomes()[0].kind, Kind::kError);
  EXPECT_EQ(before.outcomes()[0].data, "loader not started");

  loader.Start();
  loader.Stop();
  loader.Stop();  // idempotent
  Collector after;
  loader.Load(0, "1", after.Callback());
  ASSERT_EQ(after.outcomes().size(), 1u);
  EXPECT_EQ(after.outcomes()[0].data, "shutting down");
}

TEST(LoaderTest, RejectionsRunOnALoaderThread) {
  LoopbackSocket refused(/*listen=*/false);
  Loader loader(OptionsFor({refused.conninfo()}), OneStatement());
  loader.Start();
  Collector collector;
  loader.Load(7, "1", collector.Callback());
  ASSERT_TRUE(collector.WaitCount(1));
  EXPECT_EQ(collector.outcomes()[0].kind, Kind::kError);
  EXPECT_EQ(collector.outcomes()[0].data, "unknown statement 7");
  EXPECT_NE(collector.threads()[0], std::this_thread::get_id());
}

TEST(LoaderTest, UnreachableReplicaIsMarkedDownAndLoadsFailFast) {
  LoopbackSocket refused(/*listen=*/false);
  Loader loader(OptionsFor({refused.conninfo()}), OneStatement());
  loader.Start();
  LoadOutcome first = LoadSync(loader, 0, "1");
  EXPECT_EQ(first.kind, Kind::kError);
  ASSERT_TRUE(WaitFor([&] { return !loader.Status()[0].up; }));
  EXPECT_FALSE(loader.Ready());
  // With every replica of the pool down, loads still try them (panic mode: a health check can be
  // wrong), and a refused connection fails them at once.
  auto start = std::chrono::steady_clock::now();
  LoadOutcome later = LoadSync(loader, 0, "1");
  EXPECT_EQ(later.kind, Kind::kError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << later.data;
}

TEST(LoaderTest, BrokenConnectionIsRetriedOnceThenReported) {
  LoopbackSocket refused0(/*listen=*/false);
  LoopbackSocket refused1(/*listen=*/false);
  LoaderOptions options = OptionsFor({refused0.conninfo(), refused1.conninfo()});
  options.health_check_interval_ms = 60'000;  // the first checks run at Start(), then not again
  Loader loader(options, OneStatement());
  loader.Start();
  // Either the load meets both replicas (fails on one, retried on the other, fails again), or a
  // health check got there first; in every case the answer names a lost connection or no replica.
  LoadOutcome outcome = LoadSync(loader, 0, "1");
  EXPECT_EQ(outcome.kind, Kind::kError);
  const bool retried = outcome.data.find("lost") != std::string::npos;
  const bool rejected = outcome.data == "no healthy replica for pool default";
  EXPECT_TRUE(retried || rejected) << outcome.data;
  EXPECT_TRUE(WaitFor([&] { return !loader.Status()[0].up && !loader.Status()[1].up; }));
}

TEST(LoaderTest, FullQueueIsRefusedAtOnceAndStopAnswersTheQueue) {
  // A server that accepts TCP and never speaks: the one worker blocks connecting, loads queue up.
  LoopbackSocket silent(/*listen=*/true);
  LoaderOptions options = OptionsFor({silent.conninfo()});
  options.pools = {{"default", PoolOptions{{0}, 1}}};
  options.max_queued_per_replica = 2;
  options.health_check_interval_ms = 60'000;
  Loader loader(options, OneStatement());
  loader.Start();
  Collector collector;
  loader.Load(0, "1", collector.Callback());
  ASSERT_TRUE(WaitFor([&] { return loader.Status()[0].inflight == 1; }));
  loader.Load(0, "2", collector.Callback());
  loader.Load(0, "3", collector.Callback());
  EXPECT_EQ(loader.Status()[0].queued, 2u);
  loader.Load(0, "4", collector.Callback());
  ASSERT_TRUE(collector.WaitCount(1));
  EXPECT_EQ(collector.outcomes()[0].data, "queue full for replica0");
  loader.Stop();  // waits for the connect attempt to time out (libpq's minimum is 2 s)
  ASSERT_TRUE(collector.WaitCount(4, std::chrono::seconds(0)));
  int shutting_down = 0;
  for (const LoadOutcome& outcome : collector.outcomes()) {
    EXPECT_EQ(outcome.kind, Kind::kError);
    if (outcome.data == "shutting down") ++shutting_down;
  }
  EXPECT_GE(shutting_down, 2);  // the two queued loads
}

TEST(LoaderTest, PoolWithoutReplicasUsesThePrimaryOnlyWithFallback) {
  LoopbackSocket refused(/*listen=*/false);
  LoaderOptions options = OptionsFor({});
  options.primary = refused.conninfo();
  options.fallback_to_primary = true;
  Loader loader(options, OneStatement());
  loader.Start();
  LoadOutcome outcome = LoadSync(loader, 0, "1");
  EXPECT_EQ(outcome.kind, Kind::kError);
  // Either tried on the primary (and lost) or refused once the primary was known down.
  EXPECT_TRUE(outcome.replica == "primary" || outcome.data == "no healthy replica for pool default")
      << outcome.replica << ": " << outcome.data;
  EXPECT_TRUE(WaitFor(
      [&] { return LoadSync(loader, 0, "1").data == "no healthy replica for pool default"; }));
}

}  // namespace
}  // namespace corral::pg

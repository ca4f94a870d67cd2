// ReplicationStream against a real primary: it creates its slot, streams pgoutput over
// START_REPLICATION, the payloads decode to the keys of the rows changed meanwhile, and a confirmed
// commit moves the slot's confirmed_flush_lsn. Uses a table, publication and slot of its own and
// drops them (a leftover slot keeps WAL forever).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <variant>
#include <vector>

#include "pg-loader/pgoutput.h"
#include "pg-loader/replication_stream.h"
#include "pg-loader/wal_keys.h"
#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::PgEnv;
using testing::RunSql;
using testing::WaitFor;

class ReplicationStreamPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = PgEnv::FromEnvironment();
    CORRAL_REQUIRE_PG(env_, false);
    ASSERT_EQ(RunSql(env_.primary, "SHOW wal_level"), "logical");
    const std::string suffix = std::to_string(::getpid());
    table_ = "wal_stream_items_" + suffix;
    slot_ = "corral_stream_test_" + suffix;
    publication_ = "corral_stream_test_" + suffix;
    RunSql(env_.primary, "SET client_min_messages = warning; DROP TABLE IF EXISTS " + table_ +
                             "; CREATE TABLE " + table_ + " (id bigint PRIMARY KEY, note text)");
    RunSql(env_.primary, "CREATE PUBLICATION " + publication_ + " FOR TABLE " + table_);
    created_ = true;
  }

  void TearDown() override {
    if (!created_) return;
    // The walsender exits shortly after the connection closes; the slot can be dropped then.
    EXPECT_TRUE(WaitFor([&] {
      return RunSql(env_.primary, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" +
                                      slot_ + "' AND active") == "0";
    }));
    RunSql(env_.primary,
           "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
           "WHERE slot_name = '" +
               slot_ + "'");
    RunSql(env_.primary, "DROP PUBLICATION " + publication_);
    RunSql(env_.primary, "DROP TABLE " + table_);
  }

  std::string SlotState(const std::string& column) {
    return RunSql(env_.primary, "SELECT " + column +
                                    " FROM pg_replication_slots WHERE slot_name = '" + slot_ + "'");
  }

  PgEnv env_;
  std::string table_, slot_, publication_;
  bool created_ = false;
};

TEST_F(ReplicationStreamPgTest, StreamsChangesAndConfirms) {
  ReplicationStream stream({env_.primary, slot_, publication_});
  ASSERT_EQ(stream.Start(), "");
  EXPECT_FALSE(stream.system_id().empty());
  EXPECT_EQ(SlotState("plugin"), "pgoutput");
  // A new slot: its consistent point is where its changes begin (what PostgreSQL recorded).
  EXPECT_EQ(stream.slot_state(), ReplicationStream::SlotState::kCreated);
  EXPECT_GT(stream.created_at(), 0u);
  EXPECT_EQ(FormatLsn(stream.created_at()), SlotState("confirmed_flush_lsn"));

  RunSql(env_.primary, "INSERT INTO " + table_ + " VALUES (1, 'a'), (2, 'b')");
  RunSql(env_.primary, "UPDATE " + table_ + " SET id = 3 WHERE id = 2");

  WalKeyMapper mapper({*MakeKeySource("item", table_, "id")});
  std::vector<std::string> keys;
  std::vector<Lsn> commits;
  int keepalives = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (commits.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    const ReplicationStream::ReadResult read = stream.Read(std::chrono::milliseconds(500));
    ASSERT_NE(read.status, ReplicationStream::ReadResult::Status::kClosed) << read.error;
    if (read.status != ReplicationStream::ReadResult::Status::kData) continue;
    const Decoded<CopyMessage> copy = DecodeCopyData(read.payload);
    ASSERT_TRUE(std::holds_alternative<CopyMessage>(copy)) << std::get<DecodeError>(copy).message;
    const auto* xlog = std::get_if<XLogData>(&std::get<CopyMessage>(copy));
    if (!xlog) {
      ++keepalives;
      continue;
    }
    const Decoded<PgoutputMessage> message = DecodePgoutput(xlog->payload);
    ASSERT_TRUE(std::holds_alternative<PgoutputMessage>(message))
        << std::get<DecodeError>(message).message;
    const Decoded<WalChanges> changes = mapper.Apply(std::get<PgoutputMessage>(message));
    ASSERT_TRUE(std::holds_alternative<WalChanges>(changes))
        << std::get<DecodeError>(changes).message;
    for (const WalInvalidation& i : std::get<WalChanges>(changes).invalidations) {
      keys.push_back(i.key);
    }
    if (const auto end = std::get<WalChanges>(changes).commit_end_lsn) {
      commits.push_back(*end);
      // Confirm after "applying" the transaction's invalidations.
      ASSERT_EQ(stream.Confirm(*end), "");
    }
  }
  ASSERT_EQ(commits.size(), 2u) << "no commits within 20 s (" << keepalives << " keepalives)";
  EXPECT_LT(commits[0], commits[1]);
  EXPECT_EQ(keys, (std::vector<std::string>{"item:1", "item:2", "item:2", "item:3"}));
  // The server records the confirmed position from the status update.
  EXPECT_TRUE(WaitFor([&] {
    return RunSql(env_.primary, "SELECT confirmed_flush_lsn >= '" + FormatLsn(commits[1]) +
                                    "'::pg_lsn FROM pg_replication_slots WHERE slot_name = '" +
                                    slot_ + "'") == "t";
  })) << "confirmed_flush_lsn "
      << SlotState("confirmed_flush_lsn") << " < " << FormatLsn(commits[1]);
  stream.Close();

  // A new stream resumes after the confirmed position: only later changes arrive.
  RunSql(env_.primary, "DELETE FROM " + table_ + " WHERE id = 1");
  ASSERT_TRUE(WaitFor([&] { return SlotState("active") == "f"; }));
  ReplicationStream again({env_.primary, slot_, publication_});
  ASSERT_EQ(again.Start(), "");
  WalKeyMapper mapper2({*MakeKeySource("item", table_, "id")});
  std::vector<std::string> later;
  bool committed = false;
  const auto deadline2 = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!committed && std::chrono::steady_clock::now() < deadline2) {
    const ReplicationStream::ReadResult read = again.Read(std::chrono::milliseconds(500));
    ASSERT_NE(read.status, ReplicationStream::ReadResult::Status::kClosed) << read.error;
    if (read.status != ReplicationStream::ReadResult::Status::kData) continue;
    const Decoded<CopyMessage> copy = DecodeCopyData(read.payload);
    ASSERT_TRUE(std::holds_alternative<CopyMessage>(copy));
    const auto* xlog = std::get_if<XLogData>(&std::get<CopyMessage>(copy));
    if (!xlog) continue;
    const Decoded<PgoutputMessage> message = DecodePgoutput(xlog->payload);
    ASSERT_TRUE(std::holds_alternative<PgoutputMessage>(message));
    const Decoded<WalChanges> changes = mapper2.Apply(std::get<PgoutputMessage>(message));
    ASSERT_TRUE(std::holds_alternative<WalChanges>(changes));
    for (const WalInvalidation& i : std::get<WalChanges>(changes).invalidations) {
      later.push_back(i.key);
    }
    committed = std::get<WalChanges>(changes).commit_end_lsn.has_value();
  }
  EXPECT_EQ(later, (std::vector<std::string>{"item:1"}));
  again.Close();
}

TEST_F(ReplicationStreamPgTest, BadNamesAndAnUnreachableServerAreReported) {
  ReplicationStream bad({env_.primary, "Bad-Slot", publication_});
  EXPECT_EQ(bad.Start(), "replication: slot and publication names must be [a-z0-9_]+ (at most 63)");
  ReplicationStream unreachable(
      {"host=127.0.0.1 port=1 dbname=app user=app connect_timeout=2", slot_, publication_});
  EXPECT_NE(unreachable.Start().find("replication: connect:"), std::string::npos);
  const ReplicationStream::ReadResult read = unreachable.Read(std::chrono::milliseconds(10));
  EXPECT_EQ(read.status, ReplicationStream::ReadResult::Status::kClosed);
}

}  // namespace
}  // namespace corral::pg

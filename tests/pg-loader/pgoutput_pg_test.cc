// The pgoutput decoder and WAL key mapping against real PostgreSQL bytes: a publication and a
// logical slot over a table of the test's own, INSERT / UPDATE (one changing the key) / DELETE /
// TRUNCATE, and the slot's pgoutput output read with pg_logical_slot_get_binary_changes (no
// streaming connection). Needs wal_level = logical (deploy/pg-local.sh). The slot is dropped at
// the end: a leftover slot would hold WAL forever.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "pg-loader/pgoutput.h"
#include "pg-loader/wal_keys.h"
#include "tests/pg-loader/test_support.h"

namespace corral::pg {
namespace {

using testing::PgEnv;
using testing::RunSql;

// "16/B374D848" → its 64-bit position.
Lsn ParseLsn(const std::string& text) {
  uint32_t high = 0, low = 0;
  EXPECT_EQ(std::sscanf(text.c_str(), "%" SCNx32 "/%" SCNx32, &high, &low), 2) << text;
  return (static_cast<Lsn>(high) << 32) | low;
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// One row of pg_logical_slot_get_binary_changes: the position and the pgoutput message.
struct SlotRow {
  Lsn lsn = 0;
  std::string data;
};

class PgoutputPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = PgEnv::FromEnvironment();
    CORRAL_REQUIRE_PG(env_, false);
    ASSERT_EQ(RunSql(env_.primary, "SHOW wal_level"), "logical")
        << "the cluster predates wal_level = logical in deploy/pg-local.sh; rebuild it (stop, "
           "start)";
    const std::string suffix = std::to_string(::getpid());
    table_ = "wal_items_" + suffix;
    slot_ = "corral_wal_test_" + suffix;
    publication_ = "corral_wal_test_" + suffix;
    RunSql(env_.primary, "SET client_min_messages = warning; DROP TABLE IF EXISTS " + table_ +
                             "; CREATE TABLE " + table_ +
                             " (id bigint PRIMARY KEY, email text, note text)");
    RunSql(env_.primary, "CREATE PUBLICATION " + publication_ + " FOR TABLE " + table_);
    RunSql(env_.primary,
           "SELECT 1 FROM pg_create_logical_replication_slot('" + slot_ + "', 'pgoutput')");
    created_ = true;
  }

  void TearDown() override {
    if (!created_) return;
    RunSql(env_.primary, "SELECT pg_drop_replication_slot('" + slot_ + "')");
    RunSql(env_.primary, "DROP PUBLICATION " + publication_);
    RunSql(env_.primary, "DROP TABLE " + table_);
    EXPECT_EQ(RunSql(env_.primary,
                     "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + slot_ + "'"),
              "0");
  }

  // The position the next WAL record will be written at.
  Lsn InsertLsn() { return ParseLsn(RunSql(env_.primary, "SELECT pg_current_wal_insert_lsn()")); }

  // Runs `sql` (one transaction) and returns the WAL position before it. The commit waits for its
  // WAL to be flushed (the cluster runs with synchronous_commit off): a slot decodes only flushed
  // WAL, so the changes are there when ReadSlot asks.
  Lsn Run(const std::string& sql) {
    const Lsn before = InsertLsn();
    RunSql(env_.primary, "SET synchronous_commit = on; " + sql);
    return before;
  }

  std::vector<SlotRow> ReadSlot() {
    const std::string out =
        RunSql(env_.primary,
               "SELECT lsn || ' ' || encode(data, 'hex') FROM "
               "pg_logical_slot_get_binary_changes('" +
                   slot_ + "', NULL, NULL, 'proto_version', '1', 'publication_names', '" +
                   publication_ + "')");
    std::vector<SlotRow> rows;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
      const size_t space = line.find(' ');
      if (space == std::string::npos) continue;
      rows.push_back({ParseLsn(line.substr(0, space)), FromHex(line.substr(space + 1))});
    }
    return rows;
  }

  PgEnv env_;
  std::string table_, slot_, publication_;
  bool created_ = false;
};

TEST_F(PgoutputPgTest, RealChangesBecomeKeysInCommitOrder) {
  std::vector<Lsn> before;
  before.push_back(Run("INSERT INTO " + table_ + " VALUES (1, 'a@x', 'one'), (2, 'b@x', 'two')"));
  before.push_back(Run("UPDATE " + table_ + " SET note = 'uno' WHERE id = 1"));
  before.push_back(Run("UPDATE " + table_ + " SET id = 3 WHERE id = 2"));
  before.push_back(Run("DELETE FROM " + table_ + " WHERE id = 1"));
  before.push_back(Run("TRUNCATE " + table_));
  before.push_back(InsertLsn());

  // Two namespaces over the table: by id (the primary key, the replica identity) and by email
  // (outside it, so UPDATE and DELETE cannot say its old key).
  WalKeyMapper mapper({*MakeKeySource("item", table_, "id"),
                       *MakeKeySource("item_email", "public." + table_, "email")});
  struct Transaction {
    Lsn commit_lsn = 0;
    Lsn end_lsn = 0;
    std::vector<std::string> keys;
    std::vector<std::string> errors;
  };
  std::vector<Transaction> transactions;
  Transaction current;
  std::string types;
  for (const SlotRow& row : ReadSlot()) {
    const Decoded<PgoutputMessage> decoded = DecodePgoutput(row.data);
    const auto* error = std::get_if<DecodeError>(&decoded);
    ASSERT_EQ(error, nullptr) << error->message;
    types.push_back(row.data[0]);
    const Decoded<WalChanges> applied = mapper.Apply(std::get<PgoutputMessage>(decoded));
    const auto* apply_error = std::get_if<DecodeError>(&applied);
    ASSERT_EQ(apply_error, nullptr) << apply_error->message;
    const WalChanges& changes = std::get<WalChanges>(applied);
    for (const WalInvalidation& i : changes.invalidations) {
      current.commit_lsn = i.commit_lsn;
      current.keys.push_back(i.kind == WalInvalidation::Kind::kKey ? i.key : "flush " + i.ns);
    }
    for (const WalKeyError& e : changes.errors) current.errors.push_back(e.ns);
    if (const auto* begin = std::get_if<BeginMessage>(&std::get<PgoutputMessage>(decoded))) {
      current.commit_lsn = begin->final_lsn;
    }
    if (changes.commit_end_lsn) {
      current.end_lsn = *changes.commit_end_lsn;
      // The Commit row's position is the end of the commit record, what a client confirms.
      EXPECT_EQ(row.lsn, current.end_lsn);
      transactions.push_back(current);
      current = Transaction{};
    }
  }
  // Begin, Relation, the rows, Commit: the Relation is sent before the first change to the table
  // in a session, and again before a TRUNCATE.
  EXPECT_EQ(types, "BRIICBUCBUCBDCBRTC");
  ASSERT_EQ(transactions.size(), 5u);
  using V = std::vector<std::string>;
  EXPECT_EQ(transactions[0].keys, (V{"item:1", "item_email:a@x", "item:2", "item_email:b@x"}));
  EXPECT_EQ(transactions[0].errors, V{});
  EXPECT_EQ(transactions[1].keys, (V{"item:1", "item_email:a@x"}));
  EXPECT_EQ(transactions[1].errors, V{"item_email"});
  EXPECT_EQ(transactions[2].keys, (V{"item:2", "item:3", "item_email:b@x"}));
  EXPECT_EQ(transactions[2].errors, V{"item_email"});
  EXPECT_EQ(transactions[3].keys, (V{"item:1"}));
  EXPECT_EQ(transactions[3].errors, V{"item_email"});
  EXPECT_EQ(transactions[4].keys, (V{"flush item", "flush item_email"}));
  EXPECT_EQ(transactions[4].errors, V{});
  for (size_t t = 0; t < transactions.size(); ++t) {
    SCOPED_TRACE("transaction " + std::to_string(t));
    // Each commit lies within its statement's span of WAL, so commits come in order.
    EXPECT_GT(transactions[t].commit_lsn, before[t]);
    EXPECT_LT(transactions[t].commit_lsn, transactions[t].end_lsn);
    EXPECT_LE(transactions[t].end_lsn, before[t + 1]);
  }
  EXPECT_FALSE(mapper.in_transaction());
}

TEST_F(PgoutputPgTest, ReplicaIdentityFullGivesTheOldKeyOfEveryNamespace) {
  RunSql(env_.primary, "ALTER TABLE " + table_ + " REPLICA IDENTITY FULL");
  Run("INSERT INTO " + table_ + " VALUES (1, 'a@x', 'one')");
  Run("UPDATE " + table_ + " SET email = 'c@x' WHERE id = 1");
  Run("DELETE FROM " + table_ + " WHERE id = 1");
  WalKeyMapper mapper(
      {*MakeKeySource("item", table_, "id"), *MakeKeySource("item_email", table_, "email")});
  std::vector<std::string> keys;
  std::string types;
  for (const SlotRow& row : ReadSlot()) {
    const Decoded<PgoutputMessage> decoded = DecodePgoutput(row.data);
    ASSERT_TRUE(std::holds_alternative<PgoutputMessage>(decoded));
    types.push_back(row.data[0]);
    const Decoded<WalChanges> applied = mapper.Apply(std::get<PgoutputMessage>(decoded));
    ASSERT_TRUE(std::holds_alternative<WalChanges>(applied));
    const WalChanges& changes = std::get<WalChanges>(applied);
    EXPECT_TRUE(changes.errors.empty());
    for (const WalInvalidation& i : changes.invalidations) keys.push_back(i.key);
  }
  EXPECT_EQ(types, "BRICBUCBDC");
  EXPECT_EQ(keys, (std::vector<std::string>{"item:1", "item_email:a@x", "item:1", "item_email:a@x",
                                            "item_email:c@x", "item:1", "item_email:c@x"}));
}

}  // namespace
}  // namespace corral::pg

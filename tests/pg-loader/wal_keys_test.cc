// Tests for pg-loader/wal_keys.h: decoded pgoutput messages → the keys to invalidate, with the
// commit LSN; the replica identity and unchanged-TOAST cases; streams pgoutput never sends.
#include "pg-loader/wal_keys.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "tests/pg-loader/pgoutput_bytes.h"

namespace corral::pg {
namespace {

using testing::BeginBytes;
using testing::Bytes;
using testing::CommitBytes;
using testing::Null;
using testing::RelationBytes;
using testing::Text;
using testing::Toast;

constexpr Lsn kCommit = 0x0000000100000abc;

class WalKeysTest : public ::testing::Test {
 protected:
  WalKeysTest() : mapper_(Sources()) {}

  static std::vector<KeySource> Sources() {
    std::vector<KeySource> sources;
    sources.push_back(*MakeKeySource("user", "public.users", "id"));
    sources.push_back(*MakeKeySource("by_email", "users", "email"));
    sources.push_back(*MakeKeySource("order", "shop.orders", "id"));
    return sources;
  }

  // Decodes and applies `bytes`; fails the test on either error.
  WalChanges Apply(std::string_view bytes) {
    Decoded<PgoutputMessage> decoded = DecodePgoutput(bytes);
    if (const auto* e = std::get_if<DecodeError>(&decoded)) {
      ADD_FAILURE() << "decode: " << e->message;
      return {};
    }
    Decoded<WalChanges> changes = mapper_.Apply(std::get<PgoutputMessage>(decoded));
    if (const auto* e = std::get_if<DecodeError>(&changes)) {
      ADD_FAILURE() << "apply: " << e->message;
      return {};
    }
    return std::get<WalChanges>(std::move(changes));
  }

  std::string ApplyError(std::string_view bytes) {
    Decoded<PgoutputMessage> decoded = DecodePgoutput(bytes);
    if (!std::holds_alternative<PgoutputMessage>(decoded)) return "(not decoded)";
    Decoded<WalChanges> changes = mapper_.Apply(std::get<PgoutputMessage>(decoded));
    const auto* e = std::get_if<DecodeError>(&changes);
    return e ? e->message : std::string("(applied)");
  }

  // users (relid 1, identity = the primary key id) inside a transaction committing at kCommit.
  void BeginUsers(char identity = 'd', bool email_in_identity = false) {
    Apply(BeginBytes(kCommit));
    Apply(RelationBytes(1, "public", "users", identity,
                        {{identity != 'n', "id"}, {false, "name"}, {email_in_identity, "email"}}));
  }

  static std::vector<std::string> Keys(const WalChanges& changes) {
    std::vector<std::string> keys;
    for (const WalInvalidation& i : changes.invalidations) {
      EXPECT_EQ(i.commit_lsn, kCommit);
      keys.push_back(i.kind == WalInvalidation::Kind::kKey ? i.key : "flush " + i.ns);
    }
    return keys;
  }

  static std::vector<std::string> Errors(const WalChanges& changes) {
    std::vector<std::string> errors;
    for (const WalKeyError& e : changes.errors) {
      EXPECT_EQ(e.commit_lsn, kCommit);
      errors.push_back(e.message);
    }
    return errors;
  }

  using V = std::vector<std::string>;
  WalKeyMapper mapper_;
};

TEST_F(WalKeysTest, MakeKeySource) {
  const auto qualified = MakeKeySource("a", "shop.orders", "id");
  ASSERT_TRUE(qualified);
  EXPECT_EQ(qualified->schema, "shop");
  EXPECT_EQ(qualified->table, "orders");
  const auto bare = MakeKeySource("a", "users", "id");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->schema, "public");
  EXPECT_FALSE(MakeKeySource("a", "", "id"));
  EXPECT_FALSE(MakeKeySource("a", "s.", "id"));
  EXPECT_FALSE(MakeKeySource("a", ".t", "id"));
  EXPECT_FALSE(MakeKeySource("a", "t", ""));
  EXPECT_FALSE(MakeKeySource("", "t", "id"));
}

TEST_F(WalKeysTest, InsertInvalidatesTheNewKeyOfEveryNamespaceOverTheTable) {
  BeginUsers();
  const WalChanges changes =
      Apply(Bytes('I').U32(1).U8('N').Tuple({Text("42"), Text("n"), Text("a@x")}).str());
  EXPECT_EQ(Keys(changes), (V{"user:42", "by_email:a@x"}));
  EXPECT_TRUE(changes.errors.empty());
  EXPECT_FALSE(changes.commit_end_lsn);
}

TEST_F(WalKeysTest, UpdateWithoutKeyChange) {
  BeginUsers('d', false);
  // No old row: the identity (id) did not change. email is outside the identity, so its old
  // value is unknown and by_email reports it.
  const WalChanges changes =
      Apply(Bytes('U').U32(1).U8('N').Tuple({Text("42"), Text("n2"), Text("b@x")}).str());
  EXPECT_EQ(Keys(changes), (V{"user:42", "by_email:b@x"}));
  ASSERT_EQ(changes.errors.size(), 1u);
  EXPECT_EQ(changes.errors[0].ns, "by_email");
  EXPECT_EQ(changes.errors[0].message,
            "namespace by_email: email is not in the replica identity of public.users, so an "
            "UPDATE or DELETE does not carry the old key; needs REPLICA IDENTITY FULL (or USING "
            "INDEX of a unique index on email)");
}

TEST_F(WalKeysTest, UpdateThatChangesTheKeyInvalidatesOldAndNew) {
  BeginUsers();
  const WalChanges changes = Apply(Bytes('U')
                                       .U32(1)
                                       .U8('K')
                                       .Tuple({Text("42"), Null(), Null()})
                                       .U8('N')
                                       .Tuple({Text("43"), Text("n"), Text("a@x")})
                                       .str());
  EXPECT_EQ(Keys(changes), (V{"user:42", "user:43", "by_email:a@x"}));
  // The 'K' row's email is NULL only because it is not in the identity.
  EXPECT_EQ(Errors(changes).size(), 1u);
}

TEST_F(WalKeysTest, ReplicaIdentityFullKnowsEveryOldKey) {
  BeginUsers('f', true);
  const WalChanges changes = Apply(Bytes('U')
                                       .U32(1)
                                       .U8('O')
                                       .Tuple({Text("42"), Text("n"), Text("old@x")})
                                       .U8('N')
                                       .Tuple({Text("42"), Text("n"), Text("new@x")})
                                       .str());
  EXPECT_EQ(Keys(changes), (V{"user:42", "by_email:old@x", "by_email:new@x"}));
  EXPECT_TRUE(changes.errors.empty());
}

TEST_F(WalKeysTest, DeleteInvalidatesTheOldKey) {
  BeginUsers('f', true);
  const WalChanges changes =
      Apply(Bytes('D').U32(1).U8('O').Tuple({Text("42"), Text("n"), Text("a@x")}).str());
  EXPECT_EQ(Keys(changes), (V{"user:42", "by_email:a@x"}));
  EXPECT_TRUE(changes.errors.empty());
}

TEST_F(WalKeysTest, DeleteOfAKeyOutsideTheIdentityNeedsReplicaIdentity) {
  BeginUsers();
  const WalChanges changes =
      Apply(Bytes('D').U32(1).U8('K').Tuple({Text("42"), Null(), Null()}).str());
  EXPECT_EQ(Keys(changes), (V{"user:42"}));
  ASSERT_EQ(changes.errors.size(), 1u);
  EXPECT_EQ(changes.errors[0].ns, "by_email");
  EXPECT_NE(changes.errors[0].message.find("needs REPLICA IDENTITY"), std::string::npos);
}

TEST_F(WalKeysTest, NullKeysInvalidateNothing) {
  BeginUsers('f', true);
  const WalChanges changes =
      Apply(Bytes('I').U32(1).U8('N').Tuple({Text("42"), Null(), Null()}).str());
  EXPECT_EQ(Keys(changes), (V{"user:42"}));
  EXPECT_TRUE(changes.errors.empty());
}

TEST_F(WalKeysTest, UnchangedToastKeyTakesTheOldRowsValue) {
  BeginUsers('f', true);
  const WalChanges changes = Apply(Bytes('U')
                                       .U32(1)
                                       .U8('O')
                                       .Tuple({Text("42"), Text("n"), Text("long@x")})
                                       .U8('N')
                                       .Tuple({Text("42"), Text("n2"), Toast()})
                                       .str());
  EXPECT_EQ(Keys(changes), (V{"user:42", "by_email:long@x"}));
  EXPECT_TRUE(changes.errors.empty());
}

TEST_F(WalKeysTest, UnchangedToastKeyWithoutAnOldRowIsUnknown) {
  BeginUsers('i', true);
  // email is in the identity, unchanged and TOASTed: no old row, and the new row lacks it.
  const WalChanges changes =
      Apply(Bytes('U').U32(1).U8('N').Tuple({Text("42"), Text("n"), Toast()}).str());
  EXPECT_EQ(Keys(changes), (V{"user:42"}));
  EXPECT_EQ(Errors(changes),
            (V{"namespace by_email: key column email of public.users is an unchanged TOASTed "
               "value that the change does not carry"}));
}

TEST_F(WalKeysTest, TruncateFlushesTheNamespacesOfItsTables) {
  BeginUsers();
  Apply(RelationBytes(2, "shop", "orders", 'd', {{true, "id"}}));
  Apply(RelationBytes(3, "public", "audit", 'd', {{true, "id"}}));
  const WalChanges changes = Apply(Bytes('T').U32(3).U8(0).U32(1).U32(2).U32(3).str());
  EXPECT_EQ(Keys(changes), (V{"flush user", "flush by_email", "flush order"}));
}

TEST_F(WalKeysTest, UnconfiguredTablesProduceNothing) {
  Apply(BeginBytes(kCommit));
  Apply(RelationBytes(3, "public", "audit", 'd', {{true, "id"}}));
  const WalChanges changes = Apply(Bytes('I').U32(3).U8('N').Tuple({Text("1")}).str());
  EXPECT_TRUE(changes.invalidations.empty());
  EXPECT_TRUE(changes.errors.empty());
}

TEST_F(WalKeysTest, MissingKeyColumnIsAnErrorPerChange) {
  Apply(BeginBytes(kCommit));
  Apply(RelationBytes(2, "shop", "orders", 'd', {{true, "order_id"}}));
  const WalChanges changes = Apply(Bytes('I').U32(2).U8('N').Tuple({Text("1")}).str());
  EXPECT_TRUE(changes.invalidations.empty());
  EXPECT_EQ(Errors(changes), (V{"namespace order: shop.orders has no column id (its key_column)"}));
}

TEST_F(WalKeysTest, CommitGivesThePositionToConfirm) {
  BeginUsers();
  EXPECT_TRUE(mapper_.in_transaction());
  const WalChanges changes = Apply(CommitBytes(kCommit, kCommit + 0x30));
  EXPECT_FALSE(mapper_.in_transaction());
  ASSERT_TRUE(changes.commit_end_lsn);
  EXPECT_EQ(*changes.commit_end_lsn, kCommit + 0x30);
}

TEST_F(WalKeysTest, ARelationMessageReplacesTheShape) {
  BeginUsers();
  // After ALTER TABLE: email moved to the front.
  Apply(RelationBytes(1, "public", "users", 'd', {{false, "email"}, {true, "id"}}));
  const WalChanges changes = Apply(Bytes('I').U32(1).U8('N').Tuple({Text("e"), Text("7")}).str());
  EXPECT_EQ(Keys(changes), (V{"user:7", "by_email:e"}));
}

TEST_F(WalKeysTest, StreamsPgoutputNeverSendsAreErrors) {
  EXPECT_EQ(ApplyError(Bytes('I').U32(1).U8('N').Tuple({Text("1")}).str()),
            "pgoutput: Insert outside a transaction");
  EXPECT_EQ(ApplyError(CommitBytes(1, 2)), "pgoutput: Commit outside a transaction");
  Apply(BeginBytes(kCommit));
  EXPECT_EQ(ApplyError(BeginBytes(kCommit)), "pgoutput: Begin inside a transaction");
  EXPECT_EQ(ApplyError(Bytes('I').U32(9).U8('N').Tuple({Text("1")}).str()),
            "pgoutput: a change to relation id 9 before any Relation message for it");
  EXPECT_EQ(ApplyError(Bytes('T').U32(1).U8(0).U32(9).str()),
            "pgoutput: a change to relation id 9 before any Relation message for it");
  Apply(RelationBytes(1, "public", "users", 'd', {{true, "id"}, {false, "name"}}));
  EXPECT_EQ(ApplyError(Bytes('I').U32(1).U8('N').Tuple({Text("1")}).str()),
            "pgoutput: a row of 1 columns for public.users, whose Relation message has 2");
  EXPECT_EQ(
      ApplyError(
          Bytes('U').U32(1).U8('K').Tuple({Text("1")}).U8('N').Tuple({Text("1"), Null()}).str()),
      "pgoutput: a row of 1 columns for public.users, whose Relation message has 2");
  EXPECT_EQ(ApplyError(CommitBytes(kCommit + 1, kCommit + 2)),
            "pgoutput: Commit at 1/ABD ends the transaction that Begin said commits at 1/ABC");
}

TEST_F(WalKeysTest, MessagesWithoutRowsProduceNothing) {
  EXPECT_TRUE(Keys(Apply(Bytes('M').U8(0).U64(1).Str("p").U32(0).str())).empty());
  Apply(BeginBytes(kCommit));
  EXPECT_TRUE(Keys(Apply(Bytes('O').U64(1).Str("o").str())).empty());
  EXPECT_TRUE(Keys(Apply(Bytes('Y').U32(1).Str("s").Str("t").str())).empty());
}

}  // namespace
}  // namespace corral::pg

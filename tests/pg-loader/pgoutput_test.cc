// Tests for pg-loader/pgoutput.h: every pgoutput v1 message type and the replication protocol's
// CopyData wrappers, built byte by byte; each malformed shape; every truncation of every message.
#include "pg-loader/pgoutput.h"

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

template <class T>
T Expect(std::string_view bytes) {
  Decoded<PgoutputMessage> decoded = DecodePgoutput(bytes);
  if (const auto* error = std::get_if<DecodeError>(&decoded)) {
    ADD_FAILURE() << "decode failed: " << error->message;
    return T{};
  }
  const auto& message = std::get<PgoutputMessage>(decoded);
  if (!std::holds_alternative<T>(message)) {
    ADD_FAILURE() << "decoded to another message type (index " << message.index() << ")";
    return T{};
  }
  return std::get<T>(message);
}

std::string ErrorOf(std::string_view bytes) {
  Decoded<PgoutputMessage> decoded = DecodePgoutput(bytes);
  const auto* error = std::get_if<DecodeError>(&decoded);
  return error ? error->message : std::string("(decoded)");
}

TEST(PgoutputTest, Begin) {
  const auto m = Expect<BeginMessage>(BeginBytes(0x0000001600001234, 4242));
  EXPECT_EQ(m.final_lsn, 0x0000001600001234u);
  EXPECT_EQ(m.commit_time, 1234567);
  EXPECT_EQ(m.xid, 4242u);
}

TEST(PgoutputTest, Commit) {
  const auto m = Expect<CommitMessage>(CommitBytes(0x100, 0x180));
  EXPECT_EQ(m.flags, 0);
  EXPECT_EQ(m.commit_lsn, 0x100u);
  EXPECT_EQ(m.end_lsn, 0x180u);
}

TEST(PgoutputTest, Origin) {
  const auto m = Expect<OriginMessage>(Bytes('O').U64(77).Str("node_a").str());
  EXPECT_EQ(m.origin_lsn, 77u);
  EXPECT_EQ(m.name, "node_a");
}

TEST(PgoutputTest, Relation) {
  const auto m = Expect<RelationMessage>(RelationBytes(
      16384, "public", "users", 'd', {{true, "id"}, {false, "name"}, {false, "email"}}));
  EXPECT_EQ(m.relid, 16384u);
  EXPECT_EQ(m.schema, "public");
  EXPECT_EQ(m.table, "users");
  EXPECT_EQ(m.replica_identity, 'd');
  ASSERT_EQ(m.columns.size(), 3u);
  EXPECT_TRUE(m.columns[0].in_identity);
  EXPECT_EQ(m.columns[0].name, "id");
  EXPECT_EQ(m.columns[0].type_oid, 20u);
  EXPECT_EQ(m.columns[0].type_modifier, -1);
  EXPECT_FALSE(m.columns[2].in_identity);
  EXPECT_EQ(m.columns[2].name, "email");
}

TEST(PgoutputTest, RelationInPgCatalogHasEmptySchema) {
  const auto m = Expect<RelationMessage>(RelationBytes(1, "", "t", 'f', {}));
  EXPECT_EQ(m.schema, "");
  EXPECT_TRUE(m.columns.empty());
}

TEST(PgoutputTest, Type) {
  const auto m = Expect<TypeMessage>(Bytes('Y').U32(90000).Str("public").Str("mood").str());
  EXPECT_EQ(m.oid, 90000u);
  EXPECT_EQ(m.schema, "public");
  EXPECT_EQ(m.name, "mood");
}

TEST(PgoutputTest, InsertWithTextNullAndToast) {
  const auto m = Expect<InsertMessage>(
      Bytes('I').U32(5).U8('N').Tuple({Text("42"), Null(), Toast(), Text("")}).str());
  EXPECT_EQ(m.relid, 5u);
  ASSERT_EQ(m.new_tuple.size(), 4u);
  EXPECT_EQ(m.new_tuple[0].kind, TupleValue::Kind::kText);
  EXPECT_EQ(m.new_tuple[0].text, "42");
  EXPECT_EQ(m.new_tuple[1].kind, TupleValue::Kind::kNull);
  EXPECT_EQ(m.new_tuple[2].kind, TupleValue::Kind::kUnchangedToast);
  EXPECT_EQ(m.new_tuple[3].kind, TupleValue::Kind::kText);
  EXPECT_EQ(m.new_tuple[3].text, "");
}

TEST(PgoutputTest, TextMayHoldAnyByte) {
  const std::string text("a\0b\xff", 4);
  const auto m = Expect<InsertMessage>(Bytes('I').U32(5).U8('N').Tuple({Text(text)}).str());
  ASSERT_EQ(m.new_tuple.size(), 1u);
  EXPECT_EQ(m.new_tuple[0].text, text);
}

TEST(PgoutputTest, UpdateWithoutOldRow) {
  const auto m = Expect<UpdateMessage>(Bytes('U').U32(5).U8('N').Tuple({Text("1")}).str());
  EXPECT_EQ(m.old_kind, OldTuple::kNone);
  EXPECT_TRUE(m.old_tuple.empty());
  ASSERT_EQ(m.new_tuple.size(), 1u);
}

TEST(PgoutputTest, UpdateWithKeyAndFullOldRow) {
  for (const char marker : {'K', 'O'}) {
    const auto m = Expect<UpdateMessage>(Bytes('U')
                                             .U32(5)
                                             .U8(marker)
                                             .Tuple({Text("1"), Null()})
                                             .U8('N')
                                             .Tuple({Text("2"), Text("x")})
                                             .str());
    EXPECT_EQ(m.old_kind, marker == 'K' ? OldTuple::kKey : OldTuple::kFull);
    ASSERT_EQ(m.old_tuple.size(), 2u);
    EXPECT_EQ(m.old_tuple[0].text, "1");
    ASSERT_EQ(m.new_tuple.size(), 2u);
    EXPECT_EQ(m.new_tuple[1].text, "x");
  }
}

TEST(PgoutputTest, Delete) {
  for (const char marker : {'K', 'O'}) {
    const auto m = Expect<DeleteMessage>(Bytes('D').U32(9).U8(marker).Tuple({Text("7")}).str());
    EXPECT_EQ(m.relid, 9u);
    EXPECT_EQ(m.old_kind, marker == 'K' ? OldTuple::kKey : OldTuple::kFull);
    ASSERT_EQ(m.old_tuple.size(), 1u);
    EXPECT_EQ(m.old_tuple[0].text, "7");
  }
}

TEST(PgoutputTest, Truncate) {
  const auto m = Expect<TruncateMessage>(Bytes('T').U32(2).U8(3).U32(10).U32(11).str());
  EXPECT_EQ(m.options, 3);
  EXPECT_EQ(m.relids, (std::vector<uint32_t>{10, 11}));
}

TEST(PgoutputTest, LogicalMessage) {
  const auto m = Expect<LogicalMessage>(Bytes('M').U8(1).U64(99).Str("corral").U32(3).Raw("abc"));
  EXPECT_TRUE(m.transactional);
  EXPECT_EQ(m.lsn, 99u);
  EXPECT_EQ(m.prefix, "corral");
  EXPECT_EQ(m.content, "abc");
}

TEST(PgoutputTest, UnknownTypesAreErrors) {
  EXPECT_EQ(ErrorOf(""), "pgoutput: empty message");
  // 'S' (stream start) exists only from protocol version 2 on.
  EXPECT_EQ(ErrorOf(Bytes('S').U32(1).U8(1).str()),
            "pgoutput: unknown message type 0x53 (protocol version 1 has B C O R Y I U D T M)");
}

TEST(PgoutputTest, MalformedMessagesSayWhatAndWhere) {
  EXPECT_EQ(ErrorOf(Bytes('B').U64(1).U64(2).U32(3).U8(0).str()),
            "pgoutput Begin: 1 trailing bytes at byte 21");
  EXPECT_EQ(ErrorOf(Bytes('I').U32(5).U8('X').Tuple({}).str()),
            "pgoutput Insert: tuple marker at byte 5 is not N");
  EXPECT_EQ(ErrorOf(Bytes('I').U32(5).U8('N').U16(1).U8('b').U32(0).str()),
            "pgoutput Insert: column kind at byte 8 is unknown (0x62)");
  EXPECT_EQ(ErrorOf(Bytes('I').U32(5).U8('N').U16(0xffff).str()),
            "pgoutput Insert: column count at byte 6 is negative (-1)");
  EXPECT_EQ(ErrorOf(Bytes('I').U32(5).U8('N').U16(3).U8('n').str()),
            "pgoutput Insert: column count at byte 6 is 3, more than the 1 bytes left can hold");
  EXPECT_EQ(ErrorOf(Bytes('I').U32(5).U8('N').U16(1).U8('t').U32(0x80000000).str()),
            "pgoutput Insert: column length at byte 9 is negative (-2147483648)");
  EXPECT_EQ(ErrorOf(Bytes('I').U32(5).U8('N').U16(1).U8('t').U32(10).Raw("abc").str()),
            "pgoutput Insert: column length at byte 9 is 10, more than the 3 bytes left can hold");
  EXPECT_EQ(ErrorOf(Bytes('U').U32(5).U8('K').Tuple({Null()}).U8('K').Tuple({}).str()),
            "pgoutput Update: tuple marker at byte 9 is not K, O or N");
  EXPECT_EQ(ErrorOf(Bytes('D').U32(5).U8('N').Tuple({}).str()),
            "pgoutput Delete: tuple marker at byte 5 is not K or O");
  EXPECT_EQ(ErrorOf(Bytes('R').U32(1).Str("s").Str("t").U8('x').U16(0).str()),
            "pgoutput Relation: replica identity at byte 9 is not one of d, i, f, n");
  EXPECT_EQ(ErrorOf(Bytes('R').U32(1).Str("s").Raw("t").str()),
            "pgoutput Relation: table name at byte 7 has no terminating NUL");
  // A count that the bytes left cannot hold is refused before anything is allocated.
  EXPECT_EQ(ErrorOf(Bytes('T').U32(0x7fffffff).U8(0).U32(1).str()),
            "pgoutput Truncate: relation count at byte 1 is 2147483647, more than the 4 bytes "
            "left can hold");
  EXPECT_EQ(ErrorOf(Bytes('R').U32(1).Str("s").Str("t").U8('d').U16(0x7fff).str()),
            "pgoutput Relation: column count at byte 10 is 32767, more than the 0 bytes left can "
            "hold");
  EXPECT_EQ(ErrorOf(Bytes('M').U8(0).U64(1).Str("p").U32(0xffffffff).str()),
            "pgoutput Message: content length at byte 12 is negative (-1)");
}

// Every proper prefix of a valid message is an error, never a crash or a partial message.
TEST(PgoutputTest, EveryTruncationIsAnError) {
  const std::vector<std::string> messages = {
      BeginBytes(1),
      CommitBytes(1, 2),
      Bytes('O').U64(1).Str("o").str(),
      RelationBytes(1, "public", "users", 'i', {{true, "id"}, {false, "name"}}),
      Bytes('Y').U32(1).Str("s").Str("t").str(),
      Bytes('I').U32(1).U8('N').Tuple({Text("1"), Null(), Toast()}).str(),
      Bytes('U').U32(1).U8('O').Tuple({Text("1")}).U8('N').Tuple({Text("2")}).str(),
      Bytes('D').U32(1).U8('K').Tuple({Text("1")}).str(),
      Bytes('T').U32(2).U8(0).U32(1).U32(2).str(),
      Bytes('M').U8(0).U64(1).Str("p").U32(2).Raw("xy").str(),
  };
  for (const std::string& message : messages) {
    ASSERT_TRUE(std::holds_alternative<PgoutputMessage>(DecodePgoutput(message)))
        << "message type " << message[0];
    for (size_t n = 0; n < message.size(); ++n) {
      const Decoded<PgoutputMessage> decoded = DecodePgoutput(message.substr(0, n));
      const auto* error = std::get_if<DecodeError>(&decoded);
      ASSERT_NE(error, nullptr) << "type " << message[0] << " cut to " << n << " bytes";
      EXPECT_FALSE(error->message.empty());
    }
  }
}

TEST(PgoutputTest, XLogData) {
  const std::string payload = BeginBytes(5);
  const std::string bytes = Bytes('w').U64(0x10).U64(0x20).U64(30).Raw(payload).str();
  const Decoded<CopyMessage> decoded = DecodeCopyData(bytes);
  ASSERT_TRUE(std::holds_alternative<CopyMessage>(decoded));
  const auto& w = std::get<XLogData>(std::get<CopyMessage>(decoded));
  EXPECT_EQ(w.wal_start, 0x10u);
  EXPECT_EQ(w.wal_end, 0x20u);
  EXPECT_EQ(w.send_time, 30);
  EXPECT_EQ(w.payload, payload);
  EXPECT_EQ(Expect<BeginMessage>(w.payload).final_lsn, 5u);
}

TEST(PgoutputTest, Keepalive) {
  const Decoded<CopyMessage> decoded = DecodeCopyData(Bytes('k').U64(0x99).U64(7).U8(1).str());
  ASSERT_TRUE(std::holds_alternative<CopyMessage>(decoded));
  const auto& k = std::get<Keepalive>(std::get<CopyMessage>(decoded));
  EXPECT_EQ(k.wal_end, 0x99u);
  EXPECT_EQ(k.send_time, 7);
  EXPECT_TRUE(k.reply_requested);
}

TEST(PgoutputTest, MalformedCopyData) {
  const auto error = [](std::string_view bytes) {
    const Decoded<CopyMessage> decoded = DecodeCopyData(bytes);
    const auto* e = std::get_if<DecodeError>(&decoded);
    return e ? e->message : std::string("(decoded)");
  };
  EXPECT_EQ(error(""), "CopyData: empty message");
  EXPECT_EQ(error("r"), "CopyData: unknown message type 0x72 (expected w or k)");
  EXPECT_EQ(error(Bytes('w').U64(1).U64(2).str()),
            "XLogData: send time at byte 17 is truncated (8 bytes needed, 0 left)");
  EXPECT_EQ(error(Bytes('w').U64(1).U64(2).U64(3).str()), "XLogData: no payload");
  EXPECT_EQ(error(Bytes('k').U64(1).U64(2).str()),
            "keepalive: reply flag at byte 17 is truncated (1 bytes needed, 0 left)");
  EXPECT_EQ(error(Bytes('k').U64(1).U64(2).U8(2).str()),
            "keepalive: reply flag at byte 17 is neither 0 nor 1");
  EXPECT_EQ(error(Bytes('k').U64(1).U64(2).U8(0).U8(0).str()),
            "keepalive: 1 trailing bytes at byte 18");
}

TEST(PgoutputTest, StandbyStatusUpdate) {
  StandbyStatus status;
  status.written = 0x0102030405060708;
  status.flushed = 0x10;
  status.applied = 0x20;
  status.send_time = -1;
  status.reply_requested = true;
  const std::string bytes = EncodeStandbyStatus(status);
  EXPECT_EQ(
      bytes,
      Bytes('r').U64(0x0102030405060708).U64(0x10).U64(0x20).U64(0xffffffffffffffff).U8(1).str());
  EXPECT_EQ(bytes.size(), kStandbyStatusSize);
}

TEST(PgoutputTest, PostgresEpoch) {
  EXPECT_EQ(ToPostgresTime(std::chrono::system_clock::time_point(std::chrono::seconds(946684800))),
            0);
  EXPECT_EQ(ToPostgresTime(std::chrono::system_clock::time_point(std::chrono::seconds(946684801))),
            1'000'000);
}

TEST(PgoutputTest, FormatLsn) {
  EXPECT_EQ(FormatLsn(0), "0/0");
  EXPECT_EQ(FormatLsn(0x00000016B374D848), "16/B374D848");
}

}  // namespace
}  // namespace corral::pg

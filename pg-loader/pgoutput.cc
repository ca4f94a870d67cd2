// The pgoutput and replication-protocol decoders: a bounds-checked big-endian reader, and one
// function per message type. Formats: PostgreSQL 15 docs, "Logical Replication Message Formats"
// and "Streaming Replication Protocol".
#include "pg-loader/pgoutput.h"

#include <cinttypes>
#include <cstdio>
#include <optional>
#include <utility>

namespace corral::pg {
namespace {

// Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
constexpr int64_t kPostgresEpochUnixSeconds = 946684800;

// "0x4a": a byte for an error message (it may be unprintable).
std::string HexByte(char c) {
  char hex[5];
  std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned char>(c));
  return hex;
}

// Reads big-endian integers and strings from a view, never past its end. The first failure is
// remembered (with its offset) and every later read fails too, so a decoder may read a whole
// message and check once; `what` names the field for the error. `base` is where `bytes` starts in
// the message (after its type byte), so errors give offsets into the whole message.
class Reader {
 public:
  Reader(std::string_view bytes, const char* message, size_t base = 1)
      : bytes_(bytes), message_(message), base_(base) {}

  bool ok() const { return error_.empty(); }
  size_t left() const { return bytes_.size() - pos_; }

  size_t offset() const { return pos_; }

  uint64_t Int(size_t width, const char* what) {
    field_ = pos_;
    if (!Need(width, what)) return 0;
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) {
      value = (value << 8) | static_cast<unsigned char>(bytes_[pos_ + i]);
    }
    pos_ += width;
    return value;
  }
  uint8_t U8(const char* what) { return static_cast<uint8_t>(Int(1, what)); }
  int16_t I16(const char* what) { return static_cast<int16_t>(Int(2, what)); }
  uint32_t U32(const char* what) { return static_cast<uint32_t>(Int(4, what)); }
  int32_t I32(const char* what) { return static_cast<int32_t>(Int(4, what)); }
  uint64_t U64(const char* what) { return Int(8, what); }
  int64_t I64(const char* what) { return static_cast<int64_t>(Int(8, what)); }

  // A NUL-terminated string (the NUL is consumed, not returned).
  std::string CString(const char* what) {
    if (!ok()) return {};
    field_ = pos_;
    const size_t end = bytes_.find('\0', pos_);
    if (end == std::string_view::npos) {
      Fail(what, "has no terminating NUL");
      return {};
    }
    std::string s(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }

  std::string_view Bytes(size_t n, const char* what) {
    field_ = pos_;
    if (!Need(n, what)) return {};
    std::string_view s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }

  std::string_view Rest() {
    std::string_view s = bytes_.substr(pos_);
    pos_ = bytes_.size();
    return s;
  }

  // A count read from the message, checked against what is left: each element takes at least
  // `min_size` bytes, so a count the rest cannot hold is an error before anything is allocated.
  // The error names the field read last, or the one that began at offset `at`.
  bool CheckCount(int64_t count, size_t min_size, const char* what,
                  std::optional<size_t> at = std::nullopt) {
    if (!ok()) return false;
    if (at) field_ = *at;
    if (count < 0) {
      Fail(what, ("is negative (" + std::to_string(count) + ")").c_str());
      return false;
    }
    if (static_cast<uint64_t>(count) > left() / min_size) {
      Fail(what, ("is " + std::to_string(count) + ", more than the " + std::to_string(left()) +
                  " bytes left can hold")
                     .c_str());
      return false;
    }
    return true;
  }

  void Fail(const char* what, const char* why) {
    if (!ok()) return;
    error_ = std::string(message_) + ": " + what + " at byte " + std::to_string(field_ + base_) +
             " " + why;
  }

  // The error, or one for bytes left over once the message is complete.
  DecodeError Error() const { return DecodeError{error_}; }
  bool Finish() {
    if (ok() && left() != 0) {
      error_ = std::string(message_) + ": " + std::to_string(left()) + " trailing bytes at byte " +
               std::to_string(pos_ + base_);
    }
    return ok();
  }

 private:
  bool Need(size_t n, const char* what) {
    if (!ok()) return false;
    if (left() < n) {
      Fail(what, ("is truncated (" + std::to_string(n) + " bytes needed, " +
                  std::to_string(left()) + " left)")
                     .c_str());
      return false;
    }
    return true;
  }

  std::string_view bytes_;
  const char* message_;
  size_t base_;
  size_t pos_ = 0;
  size_t field_ = 0;  // where the field read last begins
  std::string error_;
};

template <class T>
Decoded<PgoutputMessage> Finish(Reader& in, T message) {
  if (!in.Finish()) return in.Error();
  return PgoutputMessage(std::move(message));
}

Tuple ReadTuple(Reader& in) {
  Tuple tuple;
  const int16_t count = in.I16("column count");
  // Every column takes at least its kind byte.
  if (!in.CheckCount(count, 1, "column count")) return tuple;
  tuple.reserve(count);
  for (int16_t i = 0; i < count && in.ok(); ++i) {
    TupleValue value;
    const char kind = static_cast<char>(in.U8("column kind"));
    if (!in.ok()) break;
    switch (kind) {
      case 'n':
        value.kind = TupleValue::Kind::kNull;
        break;
      case 'u':
        value.kind = TupleValue::Kind::kUnchangedToast;
        break;
      case 't': {
        value.kind = TupleValue::Kind::kText;
        const int32_t length = in.I32("column length");
        if (!in.CheckCount(length, 1, "column length")) break;
        value.text = std::string(in.Bytes(static_cast<size_t>(length), "column text"));
        break;
      }
      default:
        // 'b' (binary) exists only from protocol version 2 on, when binary is asked for.
        in.Fail("column kind", ("is unknown (" + HexByte(kind) + ")").c_str());
        break;
    }
    tuple.push_back(std::move(value));
  }
  return tuple;
}

// 'K' or 'O' then a tuple, for Update's optional old row and Delete's.
bool ReadOldTuple(Reader& in, char marker, OldTuple& kind, Tuple& tuple) {
  kind = static_cast<OldTuple>(marker);
  tuple = ReadTuple(in);
  return in.ok();
}

Decoded<PgoutputMessage> DecodeBegin(Reader& in) {
  BeginMessage m;
  m.final_lsn = in.U64("final LSN");
  m.commit_time = in.I64("commit time");
  m.xid = in.U32("xid");
  return Finish(in, m);
}

Decoded<PgoutputMessage> DecodeCommit(Reader& in) {
  CommitMessage m;
  m.flags = in.U8("flags");
  m.commit_lsn = in.U64("commit LSN");
  m.end_lsn = in.U64("end LSN");
  m.commit_time = in.I64("commit time");
  return Finish(in, m);
}

Decoded<PgoutputMessage> DecodeOrigin(Reader& in) {
  OriginMessage m;
  m.origin_lsn = in.U64("origin LSN");
  m.name = in.CString("origin name");
  return Finish(in, std::move(m));
}

Decoded<PgoutputMessage> DecodeRelation(Reader& in) {
  RelationMessage m;
  m.relid = in.U32("relation id");
  m.schema = in.CString("schema name");
  m.table = in.CString("table name");
  m.replica_identity = static_cast<char>(in.U8("replica identity"));
  if (in.ok() && m.replica_identity != 'd' && m.replica_identity != 'i' &&
      m.replica_identity != 'f' && m.replica_identity != 'n') {
    in.Fail("replica identity", "is not one of d, i, f, n");
  }
  const int16_t count = in.I16("column count");
  // flags (1) + name's NUL (1) + type OID (4) + type modifier (4).
  if (in.CheckCount(count, 10, "column count")) {
    m.columns.reserve(count);
    for (int16_t i = 0; i < count && in.ok(); ++i) {
      RelationColumn column;
      column.in_identity = (in.U8("column flags") & 1) != 0;
      column.name = in.CString("column name");
      column.type_oid = in.U32("column type");
      column.type_modifier = in.I32("column type modifier");
      m.columns.push_back(std::move(column));
    }
  }
  return Finish(in, std::move(m));
}

Decoded<PgoutputMessage> DecodeType(Reader& in) {
  TypeMessage m;
  m.oid = in.U32("type OID");
  m.schema = in.CString("type schema");
  m.name = in.CString("type name");
  return Finish(in, std::move(m));
}

Decoded<PgoutputMessage> DecodeInsert(Reader& in) {
  InsertMessage m;
  m.relid = in.U32("relation id");
  const char marker = static_cast<char>(in.U8("tuple marker"));
  if (in.ok() && marker != 'N') in.Fail("tuple marker", "is not N");
  m.new_tuple = ReadTuple(in);
  return Finish(in, std::move(m));
}

Decoded<PgoutputMessage> DecodeUpdate(Reader& in) {
  UpdateMessage m;
  m.relid = in.U32("relation id");
  char marker = static_cast<char>(in.U8("tuple marker"));
  if (in.ok() && (marker == 'K' || marker == 'O')) {
    ReadOldTuple(in, marker, m.old_kind, m.old_tuple);
    marker = static_cast<char>(in.U8("new tuple marker"));
  }
  if (in.ok() && marker != 'N') in.Fail("tuple marker", "is not K, O or N");
  m.new_tuple = ReadTuple(in);
  return Finish(in, std::move(m));
}

Decoded<PgoutputMessage> DecodeDelete(Reader& in) {
  DeleteMessage m;
  m.relid = in.U32("relation id");
  const char marker = static_cast<char>(in.U8("tuple marker"));
  if (in.ok() && marker != 'K' && marker != 'O') in.Fail("tuple marker", "is not K or O");
  if (in.ok()) ReadOldTuple(in, marker, m.old_kind, m.old_tuple);
  return Finish(in, std::move(m));
}

Decoded<PgoutputMessage> DecodeTruncate(Reader& in) {
  TruncateMessage m;
  const size_t count_at = in.offset();
  const int32_t count = in.I32("relation count");
  m.options = in.U8("options");
  if (in.CheckCount(count, 4, "relation count", count_at)) {
    m.relids.reserve(count);
    for (int32_t i = 0; i < count && in.ok(); ++i) m.relids.push_back(in.U32("relation id"));
  }
  return Finish(in, std::move(m));
}

Decoded<PgoutputMessage> DecodeMessage(Reader& in) {
  LogicalMessage m;
  m.transactional = (in.U8("flags") & 1) != 0;
  m.lsn = in.U64("LSN");
  m.prefix = in.CString("prefix");
  const int32_t length = in.I32("content length");
  if (in.CheckCount(length, 1, "content length")) {
    m.content = std::string(in.Bytes(static_cast<size_t>(length), "content"));
  }
  return Finish(in, std::move(m));
}

}  // namespace

std::string FormatLsn(Lsn lsn) {
  char text[20];
  std::snprintf(text, sizeof(text), "%" PRIX32 "/%" PRIX32, static_cast<uint32_t>(lsn >> 32),
                static_cast<uint32_t>(lsn));
  return text;
}

Decoded<CopyMessage> DecodeCopyData(std::string_view bytes) {
  if (bytes.empty()) return DecodeError{"CopyData: empty message"};
  const char type = bytes[0];
  if (type == 'w') {
    Reader in(bytes.substr(1), "XLogData");
    XLogData m;
    m.wal_start = in.U64("WAL start");
    m.wal_end = in.U64("WAL end");
    m.send_time = in.I64("send time");
    m.payload = in.Rest();
    if (!in.ok()) return in.Error();
    if (m.payload.empty()) return DecodeError{"XLogData: no payload"};
    return CopyMessage(m);
  }
  if (type == 'k') {
    Reader in(bytes.substr(1), "keepalive");
    Keepalive m;
    m.wal_end = in.U64("WAL end");
    m.send_time = in.I64("send time");
    const uint8_t reply = in.U8("reply flag");
    if (in.ok() && reply > 1) in.Fail("reply flag", "is neither 0 nor 1");
    m.reply_requested = reply == 1;
    if (!in.Finish()) return in.Error();
    return CopyMessage(m);
  }
  return DecodeError{"CopyData: unknown message type " + HexByte(type) + " (expected w or k)"};
}

std::string EncodeStandbyStatus(const StandbyStatus& status) {
  std::string out;
  out.reserve(kStandbyStatusSize);
  out.push_back('r');
  const auto put64 = [&](uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  };
  put64(status.written);
  put64(status.flushed);
  put64(status.applied);
  put64(static_cast<uint64_t>(status.send_time));
  out.push_back(status.reply_requested ? 1 : 0);
  return out;
}

int64_t ToPostgresTime(std::chrono::system_clock::time_point time) {
  const int64_t unix_us =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  return unix_us - kPostgresEpochUnixSeconds * 1'000'000;
}

Decoded<PgoutputMessage> DecodePgoutput(std::string_view bytes) {
  if (bytes.empty()) return DecodeError{"pgoutput: empty message"};
  const std::string_view body = bytes.substr(1);
  switch (bytes[0]) {
    case 'B': {
      Reader in(body, "pgoutput Begin");
      return DecodeBegin(in);
    }
    case 'C': {
      Reader in(body, "pgoutput Commit");
      return DecodeCommit(in);
    }
    case 'O': {
      Reader in(body, "pgoutput Origin");
      return DecodeOrigin(in);
    }
    case 'R': {
      Reader in(body, "pgoutput Relation");
      return DecodeRelation(in);
    }
    case 'Y': {
      Reader in(body, "pgoutput Type");
      return DecodeType(in);
    }
    case 'I': {
      Reader in(body, "pgoutput Insert");
      return DecodeInsert(in);
    }
    case 'U': {
      Reader in(body, "pgoutput Update");
      return DecodeUpdate(in);
    }
    case 'D': {
      Reader in(body, "pgoutput Delete");
      return DecodeDelete(in);
    }
    case 'T': {
      Reader in(body, "pgoutput Truncate");
      return DecodeTruncate(in);
    }
    case 'M': {
      Reader in(body, "pgoutput Message");
      return DecodeMessage(in);
    }
  }
  return DecodeError{"pgoutput: unknown message type " + HexByte(bytes[0]) +
                     " (protocol version 1 has B C O R Y I U D T M)"};
}

}  // namespace corral::pg

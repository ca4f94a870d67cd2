// Decoding of the logical replication stream (issue 17, invalidation from the WAL): the CopyData
// wrappers of the streaming replication protocol (XLogData 'w', primary keepalive 'k'), the
// messages of PostgreSQL's pgoutput plugin, protocol version 1, and the Standby Status Update ('r')
// a client sends to confirm positions. Pure: no libpq, no sockets, so it is unit-tested and fuzzed
// on bytes alone.
//
// Every input is bytes from the network. A decoder reads only within the view it is given, checks
// every count and length against what is left before it allocates, and answers a malformed,
// truncated or overlong message with a DecodeError that says what and at which byte; it never
// throws (beyond std::bad_alloc) and never asserts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace corral::pg {

// A WAL position (XLogRecPtr). PostgreSQL prints it as "%X/%X" of its high and low 32 bits.
using Lsn = uint64_t;

// "16/B374D848", as pg_current_wal_lsn() prints it.
std::string FormatLsn(Lsn lsn);

// Why a message could not be decoded, with the byte offset into the message where it went wrong.
struct DecodeError {
  std::string message;
};

// A decoded T, or the reason the bytes are not one.
template <class T>
using Decoded = std::variant<T, DecodeError>;

// ---- The streaming replication protocol's CopyData payloads ------------------------------------

// 'w': WAL data. `payload` is one pgoutput message; it views the decoded bytes, so it lives as long
// as they do.
struct XLogData {
  Lsn wal_start = 0;      // where the payload's WAL begins
  Lsn wal_end = 0;        // the server's current end of WAL
  int64_t send_time = 0;  // microseconds since 2000-01-01 UTC (PostgreSQL's epoch)
  std::string_view payload;
};

// 'k': primary keepalive. With reply_requested the client should answer at once with a status
// update, or the server ends the connection after wal_sender_timeout.
struct Keepalive {
  Lsn wal_end = 0;
  int64_t send_time = 0;
  bool reply_requested = false;
};

using CopyMessage = std::variant<XLogData, Keepalive>;

// Decodes one CopyData payload of a START_REPLICATION ... LOGICAL stream (what PQgetCopyData
// returns). Anything but a well-formed 'w' or 'k' is an error.
Decoded<CopyMessage> DecodeCopyData(std::string_view bytes);

// 'r': the client's Standby Status Update. Each position is the last WAL byte + 1 that the client
// has received (written), made durable (flushed; the slot's confirmed_flush_lsn follows it, and
// WAL before it may be recycled) and applied. corral confirms a commit's end LSN only once the
// commit's invalidations are applied.
struct StandbyStatus {
  Lsn written = 0;
  Lsn flushed = 0;
  Lsn applied = 0;
  int64_t send_time = 0;  // microseconds since 2000-01-01 UTC
  bool reply_requested = false;
};

inline constexpr size_t kStandbyStatusSize = 34;

// The CopyData payload for `status`: kStandbyStatusSize bytes, big-endian as the protocol says.
std::string EncodeStandbyStatus(const StandbyStatus& status);

// `time` as microseconds since 2000-01-01 UTC, the clock the protocol's send_time fields use.
int64_t ToPostgresTime(std::chrono::system_clock::time_point time);

// ---- pgoutput, protocol version 1
// ----------------------------------------------------------------

// One column of a row as pgoutput sends it (proto_version 1 is text only).
struct TupleValue {
  enum class Kind : char {
    kNull = 'n',
    kUnchangedToast = 'u',  // an out-of-line (TOASTed) value that did not change: not sent
    kText = 't',
  };
  Kind kind = Kind::kNull;
  std::string text;  // kText only: the type's text output
};

using Tuple = std::vector<TupleValue>;

// 'B'. final_lsn is the transaction's commit LSN (the same as the Commit's commit_lsn).
struct BeginMessage {
  Lsn final_lsn = 0;
  int64_t commit_time = 0;
  uint32_t xid = 0;
};

// 'C'. end_lsn is the end of the commit record: the position to confirm once it is applied.
struct CommitMessage {
  uint8_t flags = 0;
  Lsn commit_lsn = 0;
  Lsn end_lsn = 0;
  int64_t commit_time = 0;
};

// 'O': the transaction came from another node through replication origin `name`.
struct OriginMessage {
  Lsn origin_lsn = 0;
  std::string name;
};

struct RelationColumn {
  bool in_identity = false;  // part of the replica identity (flags bit 1)
  std::string name;
  uint32_t type_oid = 0;
  int32_t type_modifier = -1;
};

// 'R': a table's shape, sent before the first change to it in a session and again after it changes.
// replica_identity is the table's REPLICA IDENTITY: 'd' default (the primary key), 'i' an index,
// 'f' full (every column), 'n' nothing.
struct RelationMessage {
  uint32_t relid = 0;
  std::string schema;  // empty for pg_catalog
  std::string table;
  char replica_identity = 'd';
  std::vector<RelationColumn> columns;
};

// 'Y': a non-built-in type's name (only informative for a text decoder).
struct TypeMessage {
  uint32_t oid = 0;
  std::string schema;
  std::string name;
};

// Which old row an Update or Delete carries: none, 'K' the replica identity's columns only (the
// others are sent as NULL), or 'O' the whole old row (REPLICA IDENTITY FULL).
enum class OldTuple : char { kNone = 0, kKey = 'K', kFull = 'O' };

// 'I'.
struct InsertMessage {
  uint32_t relid = 0;
  Tuple new_tuple;
};

// 'U'. Without REPLICA IDENTITY FULL the old row is sent only when the identity's columns changed.
struct UpdateMessage {
  uint32_t relid = 0;
  OldTuple old_kind = OldTuple::kNone;
  Tuple old_tuple;  // empty when old_kind is kNone
  Tuple new_tuple;
};

// 'D'. old_kind is kKey or kFull.
struct DeleteMessage {
  uint32_t relid = 0;
  OldTuple old_kind = OldTuple::kKey;
  Tuple old_tuple;
};

// 'T'. options: bit 1 CASCADE, bit 2 RESTART IDENTITY.
struct TruncateMessage {
  uint8_t options = 0;
  std::vector<uint32_t> relids;
};

// 'M': pg_logical_emit_message(). Carries no row change.
struct LogicalMessage {
  bool transactional = false;
  Lsn lsn = 0;
  std::string prefix;
  std::string content;
};

using PgoutputMessage =
    std::variant<BeginMessage, CommitMessage, OriginMessage, RelationMessage, TypeMessage,
                 InsertMessage, UpdateMessage, DeleteMessage, TruncateMessage, LogicalMessage>;

// Decodes one pgoutput message (an XLogData payload, or one row of
// pg_logical_slot_get_binary_changes(..., 'proto_version', '1', ...)). The message must fill
// `bytes` exactly: trailing bytes are an error. Message types of later protocol versions (stream
// and two-phase messages) are errors here, since corral asks for version 1.
Decoded<PgoutputMessage> DecodePgoutput(std::string_view bytes);

}  // namespace corral::pg

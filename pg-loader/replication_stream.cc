// libpq side of the replication stream: the replication commands are sent with PQexec (a
// walsender speaks only the simple query protocol), the stream is read with PQgetCopyData in
// non-blocking mode and poll(), and status updates go out with PQputCopyData.
#include "pg-loader/replication_stream.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "lease/wal_position.h"
#include "pg-loader/conninfo.h"

namespace corral::pg {
namespace {

bool IsPlainName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string OneLine(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

struct ReplicationStream::Connection {
  PGconn* pg = nullptr;
  ~Connection() {
    if (pg) PQfinish(pg);
  }
};

ReplicationStream::ReplicationStream(Options options) : options_(std::move(options)) {}

ReplicationStream::~ReplicationStream() { Close(); }

void ReplicationStream::Close() { conn_.reset(); }

std::string ReplicationStream::Start(Lsn start) {
  Close();
  warnings_.clear();
  slot_state_ = SlotState::kExisting;
  if (!IsPlainName(options_.slot) || !IsPlainName(options_.publication)) {
    return "replication: slot and publication names must be [a-z0-9_]+ (at most 63)";
  }
  conn_ = std::make_unique<Connection>();
  conn_->pg = PQconnectdb(WithDefaultParams(options_.conninfo, {{"replication", "database"},
                                                                {"connect_timeout", "2"},
                                                                {"keepalives", "1"},
                                                                {"keepalives_idle", "5"},
                                                                {"keepalives_interval", "2"},
                                                                {"keepalives_count", "3"},
                                                                {"application_name", "corral-wal"}})
                              .c_str());
  if (PQstatus(conn_->pg) != CONNECTION_OK) {
    std::string why = "replication: connect: " + OneLine(PQerrorMessage(conn_->pg));
    Close();
    return why;
  }
  std::string why = IdentifySystem();
  if (why.empty()) why = PreparePublication();
  if (why.empty()) why = PrepareSlot();
  if (why.empty()) {
    const std::string sql = "START_REPLICATION SLOT " + options_.slot + " LOGICAL " +
                            FormatLsn(start) + " (proto_version '1', publication_names '" +
                            options_.publication + "')";
    PGresult* started = PQexec(conn_->pg, sql.c_str());
    if (PQresultStatus(started) != PGRES_COPY_BOTH) {
      why = "replication: START_REPLICATION: " + OneLine(PQresultErrorMessage(started));
    }
    PQclear(started);
  }
  if (why.empty() && PQsetnonblocking(conn_->pg, 1) != 0) {
    why = "replication: cannot make the connection non-blocking";
  }
  if (!why.empty()) Close();
  return why;
}

std::string ReplicationStream::Run(const std::string& sql, Rows* rows) {
  PGresult* result = PQexec(conn_->pg, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    std::string why = "replication: " + sql.substr(0, sql.find(' ')) + ": " +
                      OneLine(PQresultErrorMessage(result));
    PQclear(result);
    return why;
  }
  if (rows != nullptr) {
    rows->clear();
    for (int r = 0; r < PQntuples(result); ++r) {
      std::vector<std::string>& row = rows->emplace_back();
      for (int c = 0; c < PQnfields(result); ++c) row.emplace_back(PQgetvalue(result, r, c));
    }
  }
  PQclear(result);
  return "";
}

std::string ReplicationStream::Literal(const std::string& text) const {
  char* quoted = PQescapeLiteral(conn_->pg, text.data(), text.size());
  std::string out = quoted ? quoted : "''";
  PQfreemem(quoted);
  return out;
}

std::string ReplicationStream::Identifier(const std::string& text) const {
  char* quoted = PQescapeIdentifier(conn_->pg, text.data(), text.size());
  std::string out = quoted ? quoted : "\"\"";
  PQfreemem(quoted);
  return out;
}

std::string ReplicationStream::IdentifySystem() {
  Rows rows;
  std::string why = Run("IDENTIFY_SYSTEM", &rows);
  if (!why.empty()) return why;
  if (rows.size() != 1 || rows[0].size() < 4) {
    return "replication: IDENTIFY_SYSTEM: unexpected result shape";
  }
  system_id_ = rows[0][0];
  return "";
}

std::string ReplicationStream::PreparePublication() {
  // Each source's table: whether it exists, has the key column, and carries the key in the old
  // row of an UPDATE or DELETE (the replica identity: the primary key by default, an index, or
  // FULL).
  std::vector<std::string> existing;  // quoted schema.table, once each
  for (const KeySource& source : options_.sources) {
    const std::string table = source.schema + "." + source.table;
    Rows rows;
    std::string why = Run(
        "SELECT c.relreplident::text, "
        "EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.attname = " +
            Literal(source.key_column) +
            "), "
            "EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = c.oid AND a.attname = " +
            Literal(source.key_column) +
            " AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident "
            "ELSE false END) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = " +
            Literal(source.schema) + " AND c.relname = " + Literal(source.table),
        &rows);
    if (!why.empty()) return why;
    if (rows.empty()) {
      warnings_.push_back("table " + table + " (namespace " + source.ns +
                          ") does not exist: nothing invalidates the namespace from the WAL");
      continue;
    }
    const std::string quoted = Identifier(source.schema) + "." + Identifier(source.table);
    if (std::find(existing.begin(), existing.end(), quoted) == existing.end()) {
      existing.push_back(quoted);
    }
    const std::string& identity = rows[0][0];
    if (rows[0][1] != "t") {
      warnings_.push_back("table " + table + " has no column " + source.key_column +
                          " (key_column of namespace " + source.ns + ")");
    } else if (identity != "f" && rows[0][2] != "t") {
      warnings_.push_back("key_column " + source.key_column + " of namespace " + source.ns +
                          " is not in the replica identity of " + table +
                          ": an UPDATE or DELETE flushes the whole namespace (ALTER TABLE " +
                          table + " REPLICA IDENTITY FULL, or USING INDEX of a unique index on " +
                          source.key_column + ")");
    }
  }
  Rows rows;
  std::string why = Run(
      "SELECT puballtables FROM pg_publication WHERE pubname = " + Literal(options_.publication),
      &rows);
  if (!why.empty()) return why;
  if (rows.empty()) {
    if (existing.empty()) {
      return "replication: publication " + options_.publication +
             " does not exist and none of the namespaces' tables does to create it for";
    }
    std::string list;
    for (const std::string& table : existing) list += (list.empty() ? "" : ", ") + table;
    return Run("CREATE PUBLICATION " + options_.publication + " FOR TABLE " + list, nullptr);
  }
  if (rows[0][0] == "t") return "";  // FOR ALL TABLES
  for (const KeySource& source : options_.sources) {
    Rows published;
    why =
        Run("SELECT 1 FROM pg_publication_tables WHERE pubname = " + Literal(options_.publication) +
                " AND schemaname = " + Literal(source.schema) +
                " AND tablename = " + Literal(source.table),
            &published);
    if (!why.empty()) return why;
    if (published.empty()) {
      // The namespaces ask for this table: add it (a table recreated since the publication was
      // made has left it). Needs ownership of the table; otherwise the operator is told how.
      const std::string add = "ALTER PUBLICATION " + options_.publication + " ADD TABLE " +
                              Identifier(source.schema) + "." + Identifier(source.table);
      if (std::string failed = Run(add, nullptr); !failed.empty()) {
        warnings_.push_back("publication " + options_.publication + " does not publish " +
                            source.schema + "." + source.table + " (namespace " + source.ns +
                            ") and adding it failed (" + failed + "): run " + add);
      }
    }
  }
  return "";
}

std::string ReplicationStream::PrepareSlot() {
  Rows rows;
  std::string why =
      Run("SELECT coalesce(plugin, ''), coalesce(wal_status, ''), slot_type FROM "
          "pg_replication_slots WHERE slot_name = " +
              Literal(options_.slot),
          &rows);
  if (!why.empty()) return why;
  if (!rows.empty()) {
    if (rows[0][2] != "logical" || rows[0][0] != "pgoutput") {
      return "replication: slot " + options_.slot + " exists but is not a logical pgoutput slot (" +
             rows[0][2] + ", plugin " + rows[0][0] + "): drop it or choose postgres.slot";
    }
    if (rows[0][1] != "lost") return "";
    // PostgreSQL removed WAL the slot still needed (max_slot_wal_keep_size): it can never be read
    // again. A new slot starts from now; what changed in between is unknown to the caller.
    why = Run("DROP_REPLICATION_SLOT " + options_.slot, nullptr);
    if (!why.empty()) return why;
  }
  Rows created;
  why = Run("CREATE_REPLICATION_SLOT " + options_.slot + " LOGICAL pgoutput NOEXPORT_SNAPSHOT",
            &created);
  // Set once the slot is new, even if streaming from it fails next: the caller must learn that
  // the changes before it are gone. The reply's second column is the consistent point.
  if (why.empty()) {
    slot_state_ = rows.empty() ? SlotState::kCreated : SlotState::kRecreated;
    if (!created.empty() && created[0].size() > 1) {
      created_at_ = lease::ParseWalPosition(created[0][1]).value_or(0);
    }
  }
  return why;
}

ReplicationStream::ReadResult ReplicationStream::Read(std::chrono::milliseconds timeout) {
  ReadResult out;
  if (!conn_) {
    out.status = ReadResult::Status::kClosed;
    out.error = "replication: not started";
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    char* buffer = nullptr;
    const int n = PQgetCopyData(conn_->pg, &buffer, /*async=*/1);
    if (n > 0) {
      out.status = ReadResult::Status::kData;
      out.payload.assign(buffer, static_cast<size_t>(n));
      PQfreemem(buffer);
      const Decoded<CopyMessage> decoded = DecodeCopyData(out.payload);
      if (const auto* message = std::get_if<CopyMessage>(&decoded)) {
        const auto* keepalive = std::get_if<Keepalive>(message);
        if (keepalive && keepalive->reply_requested) {
          if (std::string why = SendStatus(false); !why.empty()) {
            out.status = ReadResult::Status::kClosed;
            out.error = why;
          }
        }
      }
      return out;
    }
    if (n < 0) {
      // -1: the server ended the COPY; -2: an error.
      out.status = ReadResult::Status::kClosed;
      const std::string why = OneLine(PQerrorMessage(conn_->pg));
      out.error = "replication: the server ended the stream" + (why.empty() ? "" : ": " + why);
      Close();
      return out;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;  // kTimeout
    pollfd fd{PQsocket(conn_->pg), POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left.count())) > 0 && PQconsumeInput(conn_->pg) == 0) {
      out.status = ReadResult::Status::kClosed;
      out.error = "replication: " + OneLine(PQerrorMessage(conn_->pg));
      Close();
      return out;
    }
  }
}

std::string ReplicationStream::Confirm(Lsn lsn) {
  if (lsn > confirmed_) confirmed_ = lsn;
  return SendStatus(false);
}

std::string ReplicationStream::SendStatus(bool reply_requested) {
  if (!conn_) return "replication: not started";
  StandbyStatus status;
  status.written = status.flushed = status.applied = confirmed_;
  status.send_time = ToPostgresTime(std::chrono::system_clock::now());
  status.reply_requested = reply_requested;
  const std::string bytes = EncodeStandbyStatus(status);
  if (PQputCopyData(conn_->pg, bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return "replication: status update: " + OneLine(PQerrorMessage(conn_->pg));
  }
  // Non-blocking: PQflush returns 1 while data is still queued; wait for the socket a little.
  for (int i = 0; i < 100; ++i) {
    const int flushed = PQflush(conn_->pg);
    if (flushed == 0) return "";
    if (flushed < 0) return "replication: status update: " + OneLine(PQerrorMessage(conn_->pg));
    pollfd fd{PQsocket(conn_->pg), POLLOUT, 0};
    ::poll(&fd, 1, 10);
  }
  return "replication: status update: the socket did not drain";
}

}  // namespace corral::pg

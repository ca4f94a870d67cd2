// libpq side of the replication stream: the replication commands are sent with PQexec (a
// walsender speaks only the simple query protocol), the stream is read with PQgetCopyData in
// non-blocking mode and poll(), and status updates go out with PQputCopyData.
#include "pg-loader/replication_stream.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cstdlib>
#include <utility>

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
  if (!IsPlainName(options_.slot) || !IsPlainName(options_.publication)) {
    return "replication: slot and publication names must be [a-z0-9_]+ (at most 63)";
  }
  conn_ = std::make_unique<Connection>();
  conn_->pg = PQconnectdb((options_.conninfo + " replication=database").c_str());
  if (PQstatus(conn_->pg) != CONNECTION_OK) {
    std::string why = "replication: connect: " + OneLine(PQerrorMessage(conn_->pg));
    Close();
    return why;
  }
  // Runs a command that returns tuples (or none); "" or why it failed.
  const auto run = [&](const std::string& sql, PGresult** keep) -> std::string {
    PGresult* result = PQexec(conn_->pg, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      std::string why = "replication: " + sql.substr(0, sql.find(' ')) + ": " +
                        OneLine(PQresultErrorMessage(result));
      PQclear(result);
      return why;
    }
    if (keep) {
      *keep = result;
    } else {
      PQclear(result);
    }
    return "";
  };
  PGresult* result = nullptr;
  std::string why = run("IDENTIFY_SYSTEM", &result);
  if (why.empty()) {
    if (PQntuples(result) == 1 && PQnfields(result) >= 4) {
      system_id_ = PQgetvalue(result, 0, 0);
    } else {
      why = "replication: IDENTIFY_SYSTEM: unexpected result shape";
    }
    PQclear(result);
  }
  if (why.empty()) {
    why = run("SELECT 1 FROM pg_replication_slots WHERE slot_name = '" + options_.slot + "'",
              &result);
    if (why.empty()) {
      const bool exists = PQntuples(result) == 1;
      PQclear(result);
      if (!exists) {
        why =
            run("CREATE_REPLICATION_SLOT " + options_.slot + " LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                nullptr);
      }
    }
  }
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
      out.error = "replication: stream ended: " + OneLine(PQerrorMessage(conn_->pg));
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

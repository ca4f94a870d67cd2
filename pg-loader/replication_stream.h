// The logical replication connection of invalidation from the WAL (issue 17): a libpq
// `replication=database` connection that creates its slot when missing, runs START_REPLICATION
// with pgoutput, hands out the CopyData payloads (decode them with pgoutput.h) and sends Standby
// Status Updates. The libpq connection stays inside replication_stream.cc. Not wired into the
// server yet. One thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "pg-loader/pgoutput.h"

namespace corral::pg {

class ReplicationStream {
 public:
  struct Options {
    std::string conninfo;     // of the primary; "replication=database" is added
    std::string slot;         // [a-z0-9_]+, created (pgoutput) when missing
    std::string publication;  // [a-z0-9_]+, must exist
  };

  explicit ReplicationStream(Options options);
  ~ReplicationStream();
  ReplicationStream(const ReplicationStream&) = delete;
  ReplicationStream& operator=(const ReplicationStream&) = delete;

  // Connects, runs IDENTIFY_SYSTEM, creates the slot if it does not exist, and starts streaming
  // from `start` (0: from the slot's confirmed position). Returns "" or a one-line reason; on
  // failure the connection is closed and Start may be called again.
  std::string Start(Lsn start = 0);

  struct ReadResult {
    enum class Status { kData, kTimeout, kClosed };
    Status status = Status::kTimeout;
    std::string payload;  // kData: one CopyData payload ('w' or 'k')
    std::string error;    // kClosed: why
  };

  // Waits up to `timeout` for one CopyData payload. A keepalive that asks for a reply is answered
  // here at once with the last confirmed position, and returned as well.
  ReadResult Read(std::chrono::milliseconds timeout);

  // Confirms `lsn` (the end LSN of a Commit whose invalidations are applied) as written, flushed
  // and applied, and sends the status update. Returns "" or why it could not be sent.
  std::string Confirm(Lsn lsn);

  void Close();

  const std::string& system_id() const { return system_id_; }
  Lsn confirmed() const { return confirmed_; }

 private:
  std::string SendStatus(bool reply_requested);

  Options options_;
  struct Connection;
  std::unique_ptr<Connection> conn_;
  std::string system_id_;
  Lsn confirmed_ = 0;
};

}  // namespace corral::pg

// The logical replication connection of invalidation from the WAL (issue 17): a libpq
// `replication=database` connection that creates its slot when missing, runs START_REPLICATION
// with pgoutput, hands out the CopyData payloads (decode them with pgoutput.h) and sends Standby
// Status Updates. Before it streams it creates the publication when missing and checks what the
// namespaces need of their tables (see Start). The libpq connection stays inside
// replication_stream.cc. One thread at a time (WalInvalidator's).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "pg-loader/pgoutput.h"
#include "pg-loader/wal_keys.h"

namespace corral::pg {

class ReplicationStream {
 public:
  struct Options {
    std::string conninfo;     // of the primary; "replication=database" is added
    std::string slot;         // [a-z0-9_]+, created (pgoutput) when missing
    std::string publication;  // [a-z0-9_]+, created FOR TABLE the sources' tables when missing
    std::vector<KeySource> sources;
  };

  // What Start found of the slot.
  enum class SlotState {
    kExisting,   // it was there: the stream resumes where its last reader confirmed
    kCreated,    // it was missing and is new: changes before now were not kept for corral
    kRecreated,  // PostgreSQL had invalidated it (max_slot_wal_keep_size): dropped and made anew
  };

  explicit ReplicationStream(Options options);
  ~ReplicationStream();
  ReplicationStream(const ReplicationStream&) = delete;
  ReplicationStream& operator=(const ReplicationStream&) = delete;

  // Connects, runs IDENTIFY_SYSTEM, creates the publication if it does not exist (FOR TABLE each
  // source's table that exists; needs ownership of them) or adds a source's table it lacks, checks
  // each source's table, key column and replica identity (what is wrong goes to warnings()),
  // creates the slot if it does not exist (or drops and creates it when PostgreSQL invalidated it;
  // slot_state() says which), and starts streaming from `start` (0: from the slot's confirmed
  // position). Returns "" or a one-line reason; on failure the connection is closed and Start may
  // be called again.
  std::string Start(Lsn start = 0);

  SlotState slot_state() const { return slot_state_; }
  // When the last Start created the slot: its consistent point, the first position it decodes.
  // Every change before it is unknown to the caller. 0 otherwise.
  Lsn created_at() const { return created_at_; }
  // What the last Start found wrong but streams anyway (one line each, saying what to change): a
  // missing table, a key column outside the replica identity, a table the publication leaves out.
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Asks the server to answer at once (a status update with reply_requested): a keepalive comes
  // back unless the primary or the path to it has gone silent. "" or why it could not be sent.
  std::string Ping() { return SendStatus(true); }

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
  using Rows = std::vector<std::vector<std::string>>;
  std::string SendStatus(bool reply_requested);
  // Runs `sql` on the connection (the simple query protocol); "" or why it failed. `rows`, when
  // given, receives the result's rows as text.
  std::string Run(const std::string& sql, Rows* rows);
  std::string Literal(const std::string& text) const;     // 'text', quoted for SQL
  std::string Identifier(const std::string& text) const;  // "text", quoted for SQL
  std::string IdentifySystem();
  std::string PreparePublication();
  std::string PrepareSlot();

  Options options_;
  struct Connection;
  std::unique_ptr<Connection> conn_;
  std::string system_id_;
  Lsn confirmed_ = 0;
  SlotState slot_state_ = SlotState::kExisting;
  Lsn created_at_ = 0;
  std::vector<std::string> warnings_;
};

}  // namespace corral::pg

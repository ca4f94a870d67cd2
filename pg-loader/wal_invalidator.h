// Invalidation from the WAL (postgres.invalidation "logical"): a thread that reads the primary's
// logical replication stream (ReplicationStream, pgoutput), maps each committed transaction's row
// changes to cache keys (WalKeyMapper), hands them to the caller, and confirms a commit's position
// to the slot only once the caller says they are applied. The slot keeps every change not yet
// confirmed, so a connection lost (or a process restarted) resumes where it stopped and loses
// nothing; only a slot created anew, or recreated after PostgreSQL invalidated it, means changes
// were missed, and the caller hears of that once (`lost`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pg-loader/pgoutput.h"
#include "pg-loader/wal_keys.h"

namespace corral::pg {

// A connection that has heard nothing from the primary this long asks it for a keepalive, and one
// whose request gets no answer within kWalPingTimeoutMs is treated as lost (a blackholed link
// delivers no error), so a silent primary is noticed within about their sum.
inline constexpr int64_t kWalPingIdleMs = 2000;
inline constexpr int64_t kWalPingTimeoutMs = 2000;

struct WalInvalidatorOptions {
  std::string primary;      // libpq connection string of the primary
  std::string slot;         // the slot's full name ([a-z0-9_]+)
  std::string publication;  // created FOR TABLE the sources' tables when missing
  std::vector<KeySource> sources;
  // When set, the stream runs only while it answers true (this node holds the fleet's WAL reader
  // lease); it is asked before each connection and between reads, and a false ends the
  // connection. Thread-safe, cheap.
  std::function<bool()> may_read;
};

// What the stream has done, for metrics. Thread-safe snapshot.
struct WalStatus {
  bool connected = false;
  Lsn confirmed = 0;   // the last position confirmed to the slot
  Lsn server_end = 0;  // the primary's end of WAL, as its last message said
  // How long the stream has not been caught up (the last time everything received was confirmed
  // and nothing was outstanding); 0 while it is.
  double lag_seconds = 0;
  uint64_t lag_bytes = 0;     // server_end - confirmed, when the former is ahead
  uint64_t slot_resets = 0;   // slots created or recreated (each a `lost`)
  uint64_t transactions = 0;  // committed transactions applied
};

class WalInvalidator {
 public:
  struct Callbacks {
    // The invalidations of one committed transaction, in stream order (keys, and namespace
    // flushes for a TRUNCATE or a change whose key the WAL does not carry), with the position of
    // its commit's end. Call `applied` once every one of them is in effect (any thread, once).
    std::function<void(std::vector<WalInvalidation>, Lsn commit_end, std::function<void()> applied)>
        apply;
    // Changes may have been missed: the slot was created (it did not exist) or recreated after
    // PostgreSQL invalidated it. Called before any transaction read from the new slot. `from`:
    // the new slot's first position (0 if unknown); a replica that has not replayed up to it may
    // still hold rows changed before it, which no invalidation will ever name.
    std::function<void(std::string_view why, Lsn from)> lost;
    // One line about the stream for the log: connected, disconnected (with why), a warning from
    // the publication and table checks, a change whose key the WAL did not carry.
    std::function<void(bool warning, std::string_view event, std::string_view detail)> report;
  };

  WalInvalidator(WalInvalidatorOptions options, Callbacks callbacks);
  ~WalInvalidator();  // Stop()
  WalInvalidator(const WalInvalidator&) = delete;
  WalInvalidator& operator=(const WalInvalidator&) = delete;

  // Spawns the thread, which connects at once and reconnects (100 ms doubling to 2 s) whenever the
  // stream fails. Call once.
  void Start();
  // Wakes and joins the thread and closes the connection. Idempotent. A transaction handed to
  // `apply` but not yet applied is not confirmed: the slot sends it again next time.
  void Stop();
  WalStatus status() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace corral::pg

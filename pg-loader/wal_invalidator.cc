// The WAL thread: one ReplicationStream at a time, read with a short timeout so Stop() and the
// silence check run between messages. A transaction's invalidations are handed over at its
// Commit (pgoutput sends a transaction only once committed, so nothing waits on that), and its end
// position joins a queue of commits in stream order; the front of the queue is confirmed once it
// is applied, so the slot never moves past a change that is not in effect.
#include "pg-loader/wal_invalidator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <variant>

#include "pg-loader/replication_stream.h"
#include "pg-loader/routing.h"

namespace corral::pg {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kReconnectFirstMs = 100;
constexpr int64_t kReconnectMaxMs = 2000;
constexpr auto kReadSlice = std::chrono::milliseconds(100);
// Confirmed positions are sent at most this often (and at once when the stream is idle): each
// status update is a packet, and the slot only needs to move eventually.
constexpr auto kConfirmInterval = std::chrono::milliseconds(200);

int64_t MsSince(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t).count();
}

}  // namespace

struct WalInvalidator::Impl {
  WalInvalidatorOptions options;
  Callbacks callbacks;
  std::atomic<bool> stopping{false};
  std::thread thread;

  mutable std::mutex mu;  // guards the status fields below
  bool connected = false;
  Lsn confirmed = 0;
  Lsn server_end = 0;
  // Since when the stream has been behind: the oldest commit read and not yet confirmed, or the
  // moment the connection was lost (or the invalidator began). Unset while it is caught up.
  std::optional<SteadyClock::time_point> behind_since = SteadyClock::now();
  uint64_t slot_resets = 0;
  uint64_t transactions = 0;

  // One commit handed to `apply`, in stream order: `done` is set by the applied callback (any
  // thread).
  struct PendingCommit {
    Lsn end = 0;
    std::shared_ptr<std::atomic<bool>> done;
  };

  void Report(bool warning, std::string_view event, std::string_view detail) {
    if (callbacks.report) callbacks.report(warning, event, detail);
  }

  // Waits up to `ms`, in slices, unless stopping. False when stopping.
  bool Sleep(int64_t ms) {
    const auto until = SteadyClock::now() + std::chrono::milliseconds(ms);
    while (!stopping.load()) {
      if (SteadyClock::now() >= until) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void Run() {
    Backoff backoff(kReconnectFirstMs, kReconnectMaxMs);
    ReplicationStream stream({options.primary, options.slot, options.publication, options.sources});
    bool standby_reported = false;
    while (!stopping.load()) {
      if (options.may_read && !options.may_read()) {
        if (!standby_reported) {
          Report(false, "wal_reader_standby", "another node reads slot " + options.slot);
          standby_reported = true;
        }
        if (!Sleep(50)) return;
        continue;
      }
      standby_reported = false;
      const std::string why = stream.Start();
      if (stream.slot_state() != ReplicationStream::SlotState::kExisting) {
        const bool recreated = stream.slot_state() == ReplicationStream::SlotState::kRecreated;
        {
          std::lock_guard lock(mu);
          ++slot_resets;
        }
        const std::string text =
            recreated ? "slot " + options.slot +
                            " was invalidated by PostgreSQL (max_slot_wal_keep_size) and is "
                            "recreated: changes in between are lost"
                      : "slot " + options.slot + " was created: changes before it are not known";
        if (callbacks.lost) callbacks.lost(text, stream.created_at());
        Report(recreated, recreated ? "wal_slot_recreated" : "wal_slot_created", text);
      }
      if (!why.empty()) {
        Report(true, "wal_stream_failed", why);
        if (!Sleep(backoff.NextMs())) return;
        continue;
      }
      for (const std::string& warning : stream.warnings()) {
        Report(true, "wal_check", warning);
      }
      {
        std::lock_guard lock(mu);
        connected = true;
        confirmed = stream.confirmed();
        behind_since.reset();
      }
      Report(false, "wal_stream_connected", "slot=" + options.slot);
      backoff.Reset();
      const std::string lost = Serve(stream);
      {
        std::lock_guard lock(mu);
        connected = false;
        behind_since = SteadyClock::now();
      }
      stream.Close();
      if (lost.empty()) return;  // Stop()
      Report(true, "wal_stream_disconnected", lost);
      if (!Sleep(backoff.NextMs())) return;
    }
  }

  // Streams until the connection fails (returns why) or Stop() (returns "").
  std::string Serve(ReplicationStream& stream) {
    WalKeyMapper mapper(options.sources);  // relations are sent again on a new connection
    std::vector<WalInvalidation> txn;
    std::deque<PendingCommit> commits;
    Lsn idle_end = 0;  // a keepalive's end of WAL while nothing was outstanding
    Lsn applied = 0;   // everything before it is applied: what may be confirmed
    auto last_heard = SteadyClock::now();
    auto last_confirm = SteadyClock::now();
    bool ping_sent = false;
    // After a commit, the first quiet moment asks for a keepalive: its end of WAL, confirmed, lets
    // the slot move past the WAL of other tables too (pgoutput sends nothing for them).
    bool want_end = false;
    while (!stopping.load()) {
      if (options.may_read && !options.may_read()) {
        return "this node no longer holds the WAL reader lease";
      }
      ReplicationStream::ReadResult read = stream.Read(kReadSlice);
      if (read.status == ReplicationStream::ReadResult::Status::kClosed) return read.error;
      if (read.status == ReplicationStream::ReadResult::Status::kData) {
        last_heard = SteadyClock::now();
        ping_sent = false;
        const Decoded<CopyMessage> copy = DecodeCopyData(read.payload);
        if (const auto* error = std::get_if<DecodeError>(&copy)) {
          return "replication: " + error->message;
        }
        const CopyMessage& message = std::get<CopyMessage>(copy);
        if (const auto* keepalive = std::get_if<Keepalive>(&message)) {
          NoteServerEnd(keepalive->wal_end);
          if (!mapper.in_transaction() && commits.empty()) idle_end = keepalive->wal_end;
        } else {
          const auto& data = std::get<XLogData>(message);
          NoteServerEnd(data.wal_end);
          const Decoded<PgoutputMessage> decoded = DecodePgoutput(data.payload);
          if (const auto* error = std::get_if<DecodeError>(&decoded)) {
            return "pgoutput: " + error->message;
          }
          Decoded<WalChanges> changes = mapper.Apply(std::get<PgoutputMessage>(decoded));
          if (const auto* error = std::get_if<DecodeError>(&changes)) {
            return "pgoutput: " + error->message;
          }
          WalChanges& change = std::get<WalChanges>(changes);
          for (WalInvalidation& invalidation : change.invalidations) {
            txn.push_back(std::move(invalidation));
          }
          for (const WalKeyError& error : change.errors) {
            Report(true, "wal_key_unknown",
                   error.message + " (namespace " + error.ns + " flushed)");
            WalInvalidation flush;
            flush.kind = WalInvalidation::Kind::kFlushNamespace;
            flush.ns = error.ns;
            flush.commit_lsn = error.commit_lsn;
            txn.push_back(std::move(flush));
          }
          if (change.commit_end_lsn) {
            Commit(*change.commit_end_lsn, txn, commits);
            want_end = true;
          }
        }
      }
      // Confirm what is applied, in order (at most every kConfirmInterval while data flows).
      while (!commits.empty() && commits.front().done->load()) {
        applied = std::max(applied, commits.front().end);
        commits.pop_front();
      }
      if (commits.empty() && !mapper.in_transaction()) applied = std::max(applied, idle_end);
      const bool quiet = read.status == ReplicationStream::ReadResult::Status::kTimeout;
      if (applied > stream.confirmed() &&
          (quiet || SteadyClock::now() - last_confirm >= kConfirmInterval)) {
        if (std::string why = stream.Confirm(applied); !why.empty()) return why;
        last_confirm = SteadyClock::now();
        std::lock_guard lock(mu);
        confirmed = applied;
      }
      NoteProgress(commits.empty() && !mapper.in_transaction());
      // A primary that has gone quiet is asked for a keepalive; one that does not answer is gone.
      if (!ping_sent && want_end && quiet && commits.empty()) {
        if (std::string why = stream.Ping(); !why.empty()) return why;
        want_end = false;
      } else if (!ping_sent && MsSince(last_heard) >= kWalPingIdleMs) {
        if (std::string why = stream.Ping(); !why.empty()) return why;
        ping_sent = true;
      } else if (ping_sent && MsSince(last_heard) >= kWalPingIdleMs + kWalPingTimeoutMs) {
        return "replication: no answer from the primary within " +
               std::to_string(kWalPingIdleMs + kWalPingTimeoutMs) + " ms";
      }
    }
    return "";
  }

  void Commit(Lsn end, std::vector<WalInvalidation>& txn, std::deque<PendingCommit>& commits) {
    auto done = std::make_shared<std::atomic<bool>>(txn.empty());
    commits.push_back({end, done});
    {
      std::lock_guard lock(mu);
      ++transactions;
      if (!behind_since) behind_since = SteadyClock::now();
    }
    if (txn.empty()) return;
    std::vector<WalInvalidation> batch;
    batch.swap(txn);
    callbacks.apply(std::move(batch), end, [done] { done->store(true); });
  }

  void NoteServerEnd(Lsn end) {
    std::lock_guard lock(mu);
    if (end > server_end) server_end = end;
  }

  // After each read: the stream is caught up once every commit read is applied (its position
  // is confirmed within kConfirmInterval, which the lag in seconds does not count).
  void NoteProgress(bool applied_all) {
    std::lock_guard lock(mu);
    if (applied_all) behind_since.reset();
  }
};

WalInvalidator::WalInvalidator(WalInvalidatorOptions options, Callbacks callbacks)
    : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->callbacks = std::move(callbacks);
}

WalInvalidator::~WalInvalidator() { Stop(); }

void WalInvalidator::Start() {
  impl_->thread = std::thread([impl = impl_] { impl->Run(); });
}

void WalInvalidator::Stop() {
  impl_->stopping.store(true);
  if (impl_->thread.joinable()) impl_->thread.join();
}

WalStatus WalInvalidator::status() const {
  std::lock_guard lock(impl_->mu);
  WalStatus s;
  s.connected = impl_->connected;
  s.confirmed = impl_->confirmed;
  s.server_end = impl_->server_end;
  s.lag_bytes = s.server_end > s.confirmed ? s.server_end - s.confirmed : 0;
  s.lag_seconds =
      impl_->behind_since ? static_cast<double>(MsSince(*impl_->behind_since)) / 1000.0 : 0.0;
  s.slot_resets = impl_->slot_resets;
  s.transactions = impl_->transactions;
  return s;
}

}  // namespace corral::pg

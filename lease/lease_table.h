// The per-key lease table: at most one live load (lease) per key, every other requester of that key
// waits on it and is pushed the one shared result, bounded by a deadline. Tokens, voiding by
// invalidation and lease expiry follow SPEC.md rules 1, 2 and 6; lease/README.md states the rules.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lease/admission.h"
#include "lease/clock.h"
#include "lease/wal_position.h"

namespace corral::lease {

// Names one grant of a lease. Never 0; never reused by the same table.
using LeaseToken = uint64_t;

// What a load produced. kError's data is the error text. kShed: the holder was refused admission
// (`shed` says why) and gives every waiter that answer at once; `data` is the namespace's name.
struct LoadResult {
  enum class Kind { kValue, kNotFound, kError, kShed };
  Kind kind = Kind::kNotFound;
  std::string data;
  Admission shed = Admission::kAdmitted;
  // A value read before the key's last invalidation (lease/position_fence.h): its waiters are
  // answered with it as stale.
  bool stale = false;
  // The WAL position the value was read at (0: unknown); a read-your-writes waiter that wants a
  // newer one does not take it.
  WalPosition position = 0;
};

// How a wait ended.
struct WaitOutcome {
  enum class Kind {
    kResult,        // the holder completed; `result` is shared by every waiter of that load
    kTimedOut,      // the waiter's deadline passed first; the caller picks stale or -BUSY
    kLeaseGranted,  // the holder gave up or vanished: this waiter now holds the lease `token`
  };
  Kind kind = Kind::kTimedOut;
  std::shared_ptr<const LoadResult> result;  // set for kResult only
  LeaseToken token = 0;                      // set for kLeaseGranted only
};

// Called exactly once per waiter, never under a table lock, on whichever thread completes,
// releases or expires (ExpireDue). It must not block and must not throw. It may call back into the
// table. A waiter handed kLeaseGranted owns that lease: it must Complete or Release it (or let it
// expire after lease_ttl_ms).
using WaiterFn = std::function<void(WaitOutcome)>;

struct LeaseTableOptions {
  Millis wait_timeout_ms = 2000;  // longest a waiter waits (SPEC "lease.wait_timeout_ms")
  Millis lease_ttl_ms = 10000;    // a lease older than this is taken from its holder
  size_t shards = 64;             // independent locks; 0 is treated as 1
};

// Thread-safe: every method may be called from any thread at any time. Keys are hashed to shards,
// each with its own mutex; no call holds more than one shard lock, and no callback runs under one.
// Time moves only through the injected Clock, and waiters time out and leases expire only inside
// ExpireDue: the owner calls it from a timer armed at the deadline it returns.
// Destroying the table drops pending waiters without calling them.
class LeaseTable {
 public:
  // `clock` must outlive the table.
  LeaseTable(LeaseTableOptions options, const Clock& clock);
  ~LeaseTable();
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  struct Acquired {
    bool leader = false;   // true: the caller holds the lease and must load, then Complete/Release
    LeaseToken token = 0;  // the caller's token when leader, else 0
  };

  // No live lease on `key`: grant one to the caller (leader = true; `fn` is dropped uncalled).
  // Otherwise register `fn` as a waiter on the live lease with deadline now + wait_timeout_ms, or
  // `deadline` (absolute, same clock) if nonzero and earlier, and return leader = false; `fn` will
  // be called exactly once. A waiter whose deadline is already past times out at the next
  // ExpireDue. `fn` must be callable. `holding` is a token the caller already holds on `key` (a
  // holder waiting on its own load): a wait on that lease is not counted in coalesced_total().
  Acquired AcquireOrWait(std::string_view key, WaiterFn fn, Millis deadline = 0,
                         LeaseToken holding = 0);

  // Grants a lease only if `key` has no live lease; never creates a waiter. For refresh-ahead and
  // stale-while-revalidate, where the caller already has something to answer with.
  std::optional<LeaseToken> TryAcquire(std::string_view key);

  // The holder of `token` finished. Removes the lease and wakes each of its waiters with one shared
  // copy of `result` (kResult). Returns true iff `token` was the live, un-voided lease of `key`:
  // only then may the caller cache `result`. A voided lease still wakes its waiters (they asked
  // before the invalidation) but returns false. An unknown, stale or other key's token returns
  // false and touches nothing.
  bool Complete(std::string_view key, LeaseToken token, LoadResult result);
  // As Complete, and if the lease is live and un-voided, first calls commit(result) under the
  // key's shard lock, before the lease is removed. This is where the caller caches the result:
  // an invalidation (Void) cannot fall between "the lease is valid" and "the value is cached", and
  // a reader arriving once the lease is gone finds the value already cached. `commit` must be
  // quick and must not call into the table.
  bool Complete(std::string_view key, LeaseToken token, LoadResult result,
                const std::function<void(const LoadResult&)>& commit);

  // The holder of `token` gives up without a result (load failed, client went away). If the lease
  // has waiters, the oldest is handed a fresh lease (kLeaseGranted) and the rest keep waiting on
  // it; otherwise the lease is removed. Returns false, touching nothing, for an unknown token.
  bool Release(std::string_view key, LeaseToken token);

  // An invalidation of `key`: its live lease, if any, is voided. The holder's result will still
  // answer the waiters registered so far, but Complete will return false and IsValid is false from
  // now on. The key has no live lease afterwards, so the next AcquireOrWait starts a fresh load
  // rather than waiting on one that may predate the invalidation. True if a lease was voided.
  bool Void(std::string_view key);

  // Voids every live lease (FLUSHALL, or the invalidation listener reconnected).
  void VoidAll();

  // True iff `token` is the live, un-voided lease of `key` (what LEASE.SET checks).
  bool IsValid(std::string_view key, LeaseToken token) const;
  // True iff `key` has a live lease: a reader would wait on it rather than load.
  bool HasLive(std::string_view key) const;

  // Times out every waiter whose deadline is <= now (kTimedOut), then takes every lease granted
  // lease_ttl_ms or longer ago from its holder: like Release, its oldest remaining waiter is handed
  // a fresh lease, so a vanished loader strands nobody. Returns the earliest remaining waiter
  // deadline or lease expiry, kNever if none: call again then.
  Millis ExpireDue();

  size_t waiters() const;  // waiters currently registered
  size_t leases() const;   // leases held, live or voided
  // Requests that waited on someone else's lease instead of loading (counts every waiter but a
  // holder waiting on its own lease, however its wait ended): corral_coalesced_requests_total,
  // the one count of that event.
  uint64_t coalesced_total() const;

 private:
  struct Lease;
  struct Shard;

  Shard& ShardFor(std::string_view key) const;

  const LeaseTableOptions options_;
  const Clock& clock_;
  const size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<LeaseToken> next_token_{1};
  std::atomic<size_t> waiters_{0};
  std::atomic<size_t> leases_{0};
  std::atomic<uint64_t> coalesced_total_{0};
};

}  // namespace corral::lease

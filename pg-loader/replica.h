// The loader's bookkeeping for one database server (a replica, or the primary with fallback): its
// bounded queue of loads, its health (unknown/up/down, lag) and counters. No SQL and no threads of
// its own, so it is unit-tested directly; the loader's workers and health checker drive it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pg-loader/loader.h"

namespace corral::pg {

// One queued load.
struct Job {
  size_t statement = 0;
  std::string id;
  LoadCallback done;
  bool retried = false;       // already moved once after a broken connection
  uint64_t min_position = 0;  // see Loader::Load
};

// How loads of one statement are batched on a server (see Statement::batch_query).
struct BatchRule {
  size_t max = 1;  // 1: never batched
  std::chrono::microseconds window{0};
};

enum class Health {
  kUnknown,  // not checked yet: loads may go here (optimistic), Ready() does not count it
  kUp,       // the last check succeeded
  kDown,     // a check failed or a load lost its connection; skipped until a check succeeds
};

class ReplicaState {
 public:
  enum class PushResult { kOk, kFull, kClosed };
  enum class Wake { kTimeout, kRecheck, kClosed };

  // Thread-safe throughout. `max_lag_ms` is the lag above which a replica is skipped.
  ReplicaState(std::string name, size_t max_queued, int64_t max_lag_ms);

  const std::string& name() const { return name_; }

  // Queue. Push never blocks: it moves from `job` only on kOk, so the caller can still answer it.
  PushResult Push(Job& job);
  // Pushes `jobs` (one statement's) under one lock, so that a worker pops them as one batch (up to
  // its rule's max). Moves from the jobs it queued, a prefix of `jobs`, and returns how many; the
  // rest found the queue full, or closed (*closed).
  size_t PushAll(std::span<Job> jobs, bool* closed);
  // Blocks until a job is available (and counts one database call in flight) or the queue is
  // closed (nullopt).
  std::optional<Job> Pop();
  // Like Pop(), then, when rules[job.statement].max > 1, also takes the other queued jobs of the
  // same statement (oldest first) up to that max; while it has fewer it keeps taking every job of
  // that statement pushed meanwhile (Push hands them over directly), until the batch is full, the
  // rule's window has passed since the pop, or Close(). A statement outside `rules` is never
  // batched. Returns the batch, first job first, counted as ONE call in flight; empty once closed.
  std::vector<Job> PopBatch(std::span<const BatchRule> rules);
  // Called by the worker when a popped batch's database call ends; `answered` is the number of
  // loads it answered (the batch's size).
  void FinishCall(size_t answered = 1) {
    inflight_.fetch_sub(1, std::memory_order_relaxed);
    loads_.fetch_add(1, std::memory_order_relaxed);
    if (answered > 1) {
      batches_.fetch_add(1, std::memory_order_relaxed);
      batched_loads_.fetch_add(answered, std::memory_order_relaxed);
    }
  }
  // Removes and returns every queued job (for re-routing or answering at shutdown).
  std::vector<Job> TakeAll();
  // Makes Pop() return nullopt, Push() kClosed and WaitForCheck() kClosed, for good.
  void Close();
  bool closed() const;

  // Routing may send loads here: not down, not lagging and not catching up (see MarkUp).
  bool Usable() const;
  // Ready() may count it: up (checked), not lagging and not catching up.
  bool ConfirmedUsable() const;
  // Invalidation markers must wait for this server (Loader::ReplayedEverywhere): usable, or
  // catching up. A down or lagging server does not hold them back; it catches up on its return.
  bool HoldsMarkers() const;
  // in-flight calls + queued loads (including loads held by a gathering batch), for least-loaded
  // routing.
  int64_t Load() const;

  // Marks the server down. Returns true if it was not down before (the caller then re-routes the
  // queue). Each such transition bumps epoch(), so connections opened before it get replaced.
  bool MarkDown();
  // Records a successful health check. A replica that returns from down or lagging may have
  // missed invalidations whose markers were forgotten meanwhile (every usable replica had
  // replayed them): it catches up first, unusable but holding markers, until its position()
  // reaches `catch_up_to` (the newest position markers were forgotten at; 0 for the primary).
  void MarkUp(double lag_seconds, uint64_t catch_up_to = 0);
  bool LagTooHigh(double lag_seconds) const;
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // The newest WAL position this server is known to have replayed (a health check's replay
  // position, a load's read position); 0 until one is known.
  void NotePosition(uint64_t position) {
    uint64_t seen = position_.load(std::memory_order_relaxed);
    while (seen < position &&
           !position_.compare_exchange_weak(seen, position, std::memory_order_relaxed)) {
    }
  }
  uint64_t position() const { return position_.load(std::memory_order_relaxed); }
  Health health() const;

  // For the health checker: waits `delay`, returning early with kRecheck after RequestCheck() or
  // kClosed after Close(). A recheck is not returned before `min_gap` has passed since the call
  // (the end of the last check), however often it is asked for: readers of a key that waits on a
  // replica's replay ask on every read.
  Wake WaitForCheck(std::chrono::milliseconds delay,
                    std::chrono::milliseconds min_gap = std::chrono::milliseconds(0));
  void RequestCheck();

  ReplicaStatus Snapshot() const;

 private:
  const std::string name_;
  const size_t max_queued_;
  const int64_t max_lag_ms_;

  // A worker gathering a batch: Push appends jobs of its statement to *batch while there is room.
  struct Gatherer {
    size_t statement;
    size_t max;
    std::vector<Job>* batch;
  };

  // Moves queued jobs of batch->front().statement into *batch until it holds `max`. Needs mu_.
  void TakeQueuedLocked(std::vector<Job>* batch, size_t max);
  // Push's body, under mu_: *queued says the job went to the queue (a worker must be woken).
  PushResult PushLocked(Job& job, bool* queued);
  size_t HeldLocked() const;

  mutable std::mutex mu_;
  std::condition_variable queue_cv_;   // Pop waits here
  std::condition_variable gather_cv_;  // gathering workers wait here (batch full or closed)
  std::condition_variable health_cv_;  // WaitForCheck waits here
  std::deque<Job> queue_;
  std::vector<Gatherer*> gatherers_;
  bool closed_ = false;
  bool recheck_ = false;
  Health health_ = Health::kUnknown;
  double lag_seconds_ = 0;
  bool lagging_ = false;
  bool catching_up_ = false;
  uint64_t catch_up_to_ = 0;

  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> position_{0};
  std::atomic<int> inflight_{0};
  std::atomic<uint64_t> loads_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> batched_loads_{0};
};

}  // namespace corral::pg

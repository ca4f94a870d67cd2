// The cache-aside clients' own database access (redis-naive, redis-lock loads, and the answer
// oracle): a fixed pool of PostgreSQL connections, one worker thread each, fed from one FIFO queue
// that is never pruned — like an application's connection pool, a load queued for a client that
// has since timed out still runs. libpqxx stays inside db_pool.cc.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/herd/clock.h"

namespace corral::herd {

struct LoadJob {
  uint64_t cookie = 0;   // the submitter's, returned unchanged
  size_t statement = 0;  // index into the pool's queries
  std::string id;        // bound to $1 as text
};

struct LoadDone {
  enum class Kind { kValue, kNotFound, kError };
  uint64_t cookie = 0;
  Kind kind = Kind::kError;
  std::string value;  // kValue: one column as text, several as a JSON object; kError: why
};

class DbPool {
 public:
  // Worker i connects to conninfos[i % conninfos.size()] and prepares every one of `queries`.
  // Each load runs in autocommit with statement_timeout = statement_timeout_ms.
  DbPool(std::vector<std::string> conninfos, std::vector<std::string> queries, int connections,
         int64_t statement_timeout_ms);
  ~DbPool();  // drops queued jobs, waits for running ones, joins the workers
  DbPool(const DbPool&) = delete;
  DbPool& operator=(const DbPool&) = delete;

  // Connects every worker (blocking). Returns "" on success, else the first error.
  std::string Start();

  // Called (from a worker thread) after results were added; set it before submitting. Thread-safe;
  // once SetNotify returns, the previous function is no longer running and never runs again.
  void SetNotify(std::function<void()> notify);
  // Starts a new epoch: results of jobs submitted before it are never returned by TakeDone.
  void NewEpoch();
  // Thread-safe. Never blocks on the database.
  void Submit(LoadJob job);
  // Thread-safe: the results finished since the last call.
  std::vector<LoadDone> TakeDone();
  // Thread-safe: jobs queued or running.
  size_t outstanding() const;
  // Removes the queued jobs (not the running ones); returns how many.
  size_t DropQueued();
  // Waits until nothing is queued or running, or `deadline`. True if idle.
  bool WaitIdle(TimePoint deadline);

  // Runs every job synchronously through the pool and returns the results in job order.
  std::vector<LoadDone> RunAll(std::vector<LoadJob> jobs, TimePoint deadline);

  int connections() const { return static_cast<int>(workers_.size()); }

 private:
  void Work(size_t index);

  std::vector<std::string> conninfos_;
  std::vector<std::string> queries_;
  int connection_count_;
  int64_t statement_timeout_ms_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  struct Queued {
    uint64_t epoch;
    LoadJob job;
  };
  std::deque<Queued> queue_;
  size_t running_ = 0;
  bool stopping_ = false;
  uint64_t epoch_ = 0;
  std::vector<LoadDone> done_;

  std::mutex notify_mu_;  // held while notify_ runs
  std::function<void()> notify_;

  std::mutex start_mu_;
  std::condition_variable start_cv_;
  size_t started_ = 0;
  std::string start_error_;

  std::vector<std::thread> workers_;
};

}  // namespace corral::herd

// Cuts the socket of a database call that outlives its deadline, so a server that stopped answering
// (paused, or the network went away) turns into a broken connection instead of a hung thread. The
// server-side statement_timeout covers slow queries; this covers a server that cannot even say so.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace corral::pg {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  Watchdog() = default;
  ~Watchdog() { Stop(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts the watching thread. Before Start() (or after Stop()) nothing ever fires.
  void Start();
  void Stop();

  // Watches socket `fd` until Disarm(id). If `deadline` passes first, the socket is shut down
  // (shutdown(2), not closed: the descriptor stays the caller's). Thread-safe.
  uint64_t Arm(int fd, Clock::time_point deadline);
  // Stops watching. Returns true if the deadline had fired. After it returns the watchdog never
  // touches `fd` again, so the caller may close it.
  bool Disarm(uint64_t id);
  // Shuts down every watched socket now, as if each deadline had passed (their Disarm returns
  // true): at shutdown, a call stuck in the database must not hold the process past its bound.
  void CutAll();

 private:
  struct Entry {
    int fd;
    Clock::time_point deadline;
  };
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 1;
  bool running_ = false;
  std::thread thread_;
};

}  // namespace corral::pg

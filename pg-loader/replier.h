// Answers rejected loads on a thread of its own, so that a caller's callback never runs inside
// Loader::Load() (which may hold the caller's locks).
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "pg-loader/loader.h"

namespace corral::pg {

class Replier {
 public:
  void Start();
  // Runs everything still posted, then joins. Later Post()s run inline.
  void Stop();
  // Runs `done(outcome)` on the replier's thread, or inline when it is not running. Thread-safe.
  void Post(LoadCallback done, LoadOutcome outcome);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<LoadCallback, LoadOutcome>> queue_;
  bool running_ = false;
  std::thread thread_;
};

}  // namespace corral::pg

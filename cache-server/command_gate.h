// What makes EXEC atomic (docs/protocol.md "Transactions"): every session holds the gate shared
// while it runs a batch of commands, and EXEC holds it alone, so no other client's command runs
// between a transaction's commands. A reader-biased lock with one counter per thread slot: a
// batch costs two atomic operations on a cache line its thread alone writes, and an EXEC waits for
// the batches in hand on other threads to end (they never block, so they do).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <thread>

namespace corral::server {

class CommandGate {
 public:
  // Holds the gate shared for its lifetime (a session's batch of commands).
  class Shared {
   public:
    explicit Shared(CommandGate& gate) : gate_(gate) { gate_.EnterShared(); }
    ~Shared() { gate_.LeaveShared(); }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;

   private:
    CommandGate& gate_;
  };

  void EnterShared() {
    Slot& slot = MySlot();
    for (;;) {
      slot.held.fetch_add(1, std::memory_order_seq_cst);
      if (!exclusive_.load(std::memory_order_seq_cst)) {
        if (held_gate_ != this) held_depth_ = 0;
        held_gate_ = this;
        ++held_depth_;
        return;
      }
      // An EXEC is under way or waiting: step aside until it is done.
      slot.held.fetch_sub(1, std::memory_order_release);
      while (exclusive_.load(std::memory_order_acquire)) std::this_thread::yield();
    }
  }
  void LeaveShared() {
    --held_depth_;
    MySlot().held.fetch_sub(1, std::memory_order_release);
  }

  // Runs `fn` with no other thread inside the gate. The caller may hold it shared (its own batch):
  // that hold is set aside meanwhile, and taken back before returning.
  template <typename Fn>
  void Exclusive(Fn&& fn) {
    Slot& mine = MySlot();
    const int held = held_gate_ == this ? held_depth_ : 0;
    mine.held.fetch_sub(held, std::memory_order_release);
    if (held_gate_ == this) held_depth_ = 0;
    {
      std::lock_guard lock(writer_);
      exclusive_.store(true, std::memory_order_seq_cst);
      for (Slot& slot : slots_) {
        while (slot.held.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
      }
      fn();
      exclusive_.store(false, std::memory_order_release);
    }
    for (int i = 0; i < held; ++i) EnterShared();
  }

 private:
  // Threads share slots when there are more than kSlots of them: a slot counts its holders.
  static constexpr size_t kSlots = 64;
  struct alignas(64) Slot {
    std::atomic<int> held{0};
  };
  Slot& MySlot() {
    static std::atomic<size_t> next{0};
    thread_local size_t index = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return slots_[index];
  }
  // The gate this thread holds shared, and how many times (a thread serves one server).
  static inline thread_local const CommandGate* held_gate_ = nullptr;
  static inline thread_local int held_depth_ = 0;

  std::array<Slot, kSlots> slots_;
  std::atomic<bool> exclusive_{false};
  std::mutex writer_;
};

}  // namespace corral::server

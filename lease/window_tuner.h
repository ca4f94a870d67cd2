// W-TinyLFU's admission window sized by miniature simulation (Waldspurger et al., "Cache
// Modeling and Optimization using Miniature Simulations", USENIX ATC 2017): a spatial sample of
// the key hashes is replayed through a few small simulated W-TinyLFU caches (hashes only, one
// entry each) that differ only in their window's share; every epoch the store's window takes
// the share of the one that hit most. A phase change reaches every simulated cache alike, so it
// is not mistaken for a bad choice as a hill climber on the real hit rate mistakes it. Pure, not
// thread-safe: the Store keeps one behind its own mutex.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lease/frequency_sketch.h"

namespace corral::lease {

// One simulated W-TinyLFU cache of `capacity` entries (window LRU, probation, protected = 80%
// of the main region), keyed by hash alone. Frequencies come from a sketch shared by all the
// simulated caches (they see the same stream, so they would count the same). Storage is
// allocated by the constructor and set_capacity only.
class MiniTinyLfu {
 public:
  MiniTinyLfu(size_t capacity, uint32_t window_permille);
  // Resizes (evicting LRU-first from the main region, then the window, when it shrinks).
  void set_capacity(size_t capacity);
  size_t capacity() const { return capacity_; }
  uint32_t window_permille() const { return window_permille_; }
  size_t size() const { return size_; }
  // One access: true on a hit; a miss inserts the key (read-through) and evicts by W-TinyLFU,
  // asking `sketch` for frequencies (the caller has counted this access in it already).
  bool Access(uint64_t hash, const FrequencySketch& sketch);
  void Clear();
  size_t bytes() const {
    return nodes_.capacity() * sizeof(Node) + (free_.capacity() + index_.capacity()) * sizeof(Id);
  }

 private:
  using Id = uint32_t;
  static constexpr Id kNil = UINT32_MAX;
  enum Region : uint8_t { kWindow, kProbation, kProtected, kRegions };
  struct Node {
    uint64_t hash = 0;
    Id prev = kNil;
    Id next = kNil;
    Region region = kWindow;
  };
  struct List {
    Id head = kNil;
    Id tail = kNil;
    size_t size = 0;
  };

  void PushFront(Region region, Id id);
  void Unlink(Id id);
  void Evict(Id id);
  Id Find(uint64_t hash) const;
  void IndexInsert(uint64_t hash, Id id);
  void IndexErase(uint64_t hash);
  size_t Home(uint64_t hash) const { return static_cast<size_t>(hash >> 20) & index_mask_; }
  void Reserve(size_t capacity);
  void Budgets();

  size_t capacity_ = 0;
  uint32_t window_permille_;
  size_t window_cap_ = 0;
  size_t protected_cap_ = 0;
  size_t size_ = 0;
  List lists_[kRegions];
  std::vector<Node> nodes_;
  std::vector<Id> free_;
  std::vector<Id> index_;  // open addressing over node ids, kNil = empty; at most 3/4 full
  size_t index_mask_ = 0;
};

class WindowTuner {
 public:
  // The window shares tried, in permille of the byte budget; the first is the default.
  static constexpr std::array<uint32_t, 6> kCandidates = {10, 100, 250, 450, 700, 900};
  // The simulated caches hold about this many entries: the sampling rate is chosen for it, but
  // is at most kMaxSampleRate, so that their memory stays a small share of the store's (about
  // 230 bytes per simulated entry for the six, against 168+ per entry in the store; counted in
  // Store::PolicyBytes and taken off the entries' budget). Below
  // kMinSimulatedEntries there is no tuning: the window stays at kCandidates[0].
  static constexpr size_t kSimulatedEntries = 1024;
  static constexpr double kMaxSampleRate = 1.0 / 32;
  static constexpr size_t kMinSimulatedEntries = 64;

  // For a store expected to hold `entries` entries. All the memory it will use is allocated
  // here (bytes()).
  explicit WindowTuner(size_t entries = 0);

  // Whether accesses to the key hashing to `hash` are replayed: a fixed share of the hashes
  // (bits independent of the ones that pick the shard). One multiply and one compare.
  bool Sampled(uint64_t hash) const {
    return Select(hash) < threshold_.load(std::memory_order_relaxed);
  }
  // No more sampling, and the simulated caches' memory is given back (the store's bound became
  // too small to spare it, or the store left TinyLFU): the window goes back to the default. The
  // caller serializes it with Record and Start, while Sampled may run on any thread.
  void Stop();
  // Starts again, from nothing, as if made for `entries` (a store switched to TinyLFU at run
  // time). Serialized as Stop is.
  void Start(size_t entries);
  // One access to a sampled key. Every epoch_length() accesses, a decision.
  void Record(uint64_t hash);
  // The store's current entry count estimate changed (the average entry size is learned as the
  // store fills): the simulated caches are resized to the sampling rate times `entries`, at most
  // to the capacity they were built with (they never allocate after construction).
  void set_entries(size_t entries);
  // The memory it holds: the simulated caches and their sketch.
  size_t bytes() const;

  // The window share chosen, in permille.
  uint32_t window_permille() const { return window_permille_; }
  double sample_rate() const {
    return static_cast<double>(threshold_.load(std::memory_order_relaxed)) / 4294967296.0;
  }
  size_t simulated_capacity() const { return caches_.empty() ? 0 : caches_.front().capacity(); }
  size_t epoch_length() const { return epoch_length_; }
  // Epochs ended so far (each ends in a decision once the simulated caches are warm).
  uint64_t epochs() const { return epochs_; }

 private:
  static uint64_t Select(uint64_t hash) { return (hash * 0xD6E8'FEB8'6659'FD93ull) >> 32; }
  void Decide();

  std::atomic<uint64_t> threshold_{0};  // sampled when Select(hash) < threshold_ (of 2^32)
  size_t epoch_length_ = 0;
  FrequencySketch sketch_;
  std::vector<MiniTinyLfu> caches_;  // one per candidate
  std::array<uint64_t, kCandidates.size()> hits_{};
  std::array<double, kCandidates.size()> score_{};  // smoothed hits per epoch
  size_t accesses_ = 0;
  uint64_t epochs_ = 0;
  size_t warm_epochs_ = 0;  // epochs that ended with the simulated caches full, in a row
  uint32_t window_permille_ = kCandidates[0];
  size_t current_ = 0;
  size_t max_capacity_ = 0;  // what the simulated caches were built for
};

}  // namespace corral::lease

// See window_tuner.h.
#include "lease/window_tuner.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace corral::lease {
namespace {

// TinyLFU's protected share of the main region, as the store's shards have it.
constexpr size_t kProtectedPercent = 80;
// How much a candidate's smoothed hits per epoch must exceed the current one's, as a share of
// the epoch's accesses, before the window moves. On static Zipf the candidates' scores differ by
// noise of 1-2% (simulated caches of ~300 entries); on the shifting trace the large windows lead
// by 5-12%.
constexpr double kSwitchMargin = 0.02;
// Weight of the newest epoch in the smoothed hit counts.
constexpr double kNewWeight = 0.5;
// Epochs the simulated caches must have been full before their scores decide anything.
constexpr size_t kWarmEpochs = 2;

}  // namespace

MiniTinyLfu::MiniTinyLfu(size_t capacity, uint32_t window_permille)
    : window_permille_(window_permille) {
  set_capacity(capacity);
}

void MiniTinyLfu::Reserve(size_t capacity) {
  if (nodes_.size() >= capacity + 1) return;
  const size_t old = nodes_.size();
  nodes_.resize(capacity + 1);  // + 1: the newcomer before an eviction
  nodes_.shrink_to_fit();
  free_.reserve(nodes_.size());
  for (size_t i = nodes_.size(); i-- > old;) free_.push_back(static_cast<Id>(i));
  // At most 3/4 full, as StoreShard's index.
  const size_t cells = std::bit_ceil(std::max<size_t>(16, (capacity + 1) * 4 / 3 + 1));
  if (cells > index_.size()) {
    index_.assign(cells, kNil);
    index_mask_ = cells - 1;
    for (List& list : lists_) {
      for (Id id = list.head; id != kNil; id = nodes_[id].next) IndexInsert(nodes_[id].hash, id);
    }
  }
}

void MiniTinyLfu::Budgets() {
  window_cap_ = std::max<size_t>(1, (capacity_ * window_permille_ + 500) / 1000);
  protected_cap_ = (capacity_ - std::min(capacity_, window_cap_)) * kProtectedPercent / 100;
}

void MiniTinyLfu::set_capacity(size_t capacity) {
  capacity_ = capacity;
  Reserve(capacity);
  Budgets();
  while (size_ > capacity_) {
    const Region from = lists_[kProbation].tail != kNil   ? kProbation
                        : lists_[kProtected].tail != kNil ? kProtected
                                                          : kWindow;
    Evict(lists_[from].tail);
  }
}

void MiniTinyLfu::Clear() {
  for (List& list : lists_) {
    while (list.tail != kNil) Evict(list.tail);
  }
}

bool MiniTinyLfu::Access(uint64_t hash, const FrequencySketch& sketch) {
  if (capacity_ == 0) return false;
  const Id found = Find(hash);
  if (found != kNil) {
    const Region region = nodes_[found].region;
    Unlink(found);
    if (region == kProbation) {
      PushFront(kProtected, found);
      while (lists_[kProtected].size > protected_cap_) {
        const Id demoted = lists_[kProtected].tail;
        Unlink(demoted);
        PushFront(kProbation, demoted);
      }
    } else {
      PushFront(region, found);
    }
    return true;
  }
  const Id id = free_.back();
  free_.pop_back();
  nodes_[id].hash = hash;
  IndexInsert(hash, id);
  ++size_;
  PushFront(kWindow, id);
  if (lists_[kWindow].size <= window_cap_) {
    if (size_ > capacity_) {  // a window of the whole cache: plain LRU
      Evict(lists_[kProbation].tail != kNil   ? lists_[kProbation].tail
            : lists_[kProtected].tail != kNil ? lists_[kProtected].tail
                                              : lists_[kWindow].tail);
    }
    return false;
  }
  // The window's LRU entry leaves it: into probation while there is room, else it competes
  // with main's victim.
  const Id candidate = lists_[kWindow].tail;
  Unlink(candidate);
  if (size_ <= capacity_) {
    PushFront(kProbation, candidate);
    return false;
  }
  const Id victim =
      lists_[kProbation].tail != kNil ? lists_[kProbation].tail : lists_[kProtected].tail;
  if (victim == kNil) {
    Evict(candidate);
  } else if (sketch.Frequency(nodes_[candidate].hash) > sketch.Frequency(nodes_[victim].hash)) {
    Evict(victim);
    PushFront(kProbation, candidate);
  } else {
    Evict(candidate);
  }
  return false;
}

void MiniTinyLfu::PushFront(Region region, Id id) {
  List& list = lists_[region];
  Node& node = nodes_[id];
  node.region = region;
  node.prev = kNil;
  node.next = list.head;
  if (list.head != kNil) nodes_[list.head].prev = id;
  list.head = id;
  if (list.tail == kNil) list.tail = id;
  ++list.size;
}

void MiniTinyLfu::Unlink(Id id) {
  Node& node = nodes_[id];
  List& list = lists_[node.region];
  if (node.prev != kNil) {
    nodes_[node.prev].next = node.next;
  } else {
    list.head = node.next;
  }
  if (node.next != kNil) {
    nodes_[node.next].prev = node.prev;
  } else {
    list.tail = node.prev;
  }
  --list.size;
  node.prev = node.next = kNil;
}

void MiniTinyLfu::Evict(Id id) {
  // A node that was unlinked already (a window candidate) has prev = next = kNil and is not
  // any list's head: unlink only what is linked.
  const Node& node = nodes_[id];
  const List& list = lists_[node.region];
  if (node.prev != kNil || node.next != kNil || list.head == id) Unlink(id);
  IndexErase(node.hash);
  --size_;
  free_.push_back(id);
}

MiniTinyLfu::Id MiniTinyLfu::Find(uint64_t hash) const {
  for (size_t pos = Home(hash);; pos = (pos + 1) & index_mask_) {
    const Id id = index_[pos];
    if (id == kNil) return kNil;
    if (nodes_[id].hash == hash) return id;
  }
}

void MiniTinyLfu::IndexInsert(uint64_t hash, Id id) {
  size_t pos = Home(hash);
  while (index_[pos] != kNil) pos = (pos + 1) & index_mask_;
  index_[pos] = id;
}

void MiniTinyLfu::IndexErase(uint64_t hash) {
  size_t hole = Home(hash);
  while (nodes_[index_[hole]].hash != hash) hole = (hole + 1) & index_mask_;
  // Backward-shift deletion, as StoreShard's index does it.
  for (size_t pos = (hole + 1) & index_mask_; index_[pos] != kNil; pos = (pos + 1) & index_mask_) {
    const size_t home = Home(nodes_[index_[pos]].hash);
    if (((pos - home) & index_mask_) >= ((pos - hole) & index_mask_)) {
      index_[hole] = index_[pos];
      hole = pos;
    }
  }
  index_[hole] = kNil;
}

WindowTuner::WindowTuner(size_t entries) { Start(entries); }

void WindowTuner::Start(size_t entries) {
  Stop();
  hits_ = {};
  score_ = {};
  accesses_ = 0;
  warm_epochs_ = 0;
  if (entries == 0) return;
  const double rate = std::min(
      kMaxSampleRate, static_cast<double>(kSimulatedEntries) / static_cast<double>(entries));
  const size_t capacity = static_cast<size_t>(std::llround(rate * static_cast<double>(entries)));
  if (capacity < kMinSimulatedEntries) return;
  max_capacity_ = capacity;
  sketch_ = FrequencySketch(capacity);
  caches_.reserve(kCandidates.size());
  for (uint32_t permille : kCandidates) caches_.emplace_back(capacity, permille);
  epoch_length_ = std::max<size_t>(256, capacity);
  // Last: the stores' threads read it without the caller's lock (Sampled).
  threshold_.store(static_cast<uint64_t>(std::ldexp(rate, 32)), std::memory_order_relaxed);
}

void WindowTuner::Stop() {
  threshold_.store(0, std::memory_order_relaxed);
  caches_.clear();
  caches_.shrink_to_fit();
  sketch_ = FrequencySketch();
  window_permille_ = kCandidates[0];
  current_ = 0;
  max_capacity_ = 0;
}

void WindowTuner::set_entries(size_t entries) {
  if (caches_.empty()) return;
  const size_t capacity = std::clamp<size_t>(
      static_cast<size_t>(std::llround(sample_rate() * static_cast<double>(entries))), 1,
      max_capacity_);
  if (capacity == caches_.front().capacity()) return;
  for (MiniTinyLfu& cache : caches_) cache.set_capacity(capacity);
  epoch_length_ = std::max<size_t>(256, capacity);
}

size_t WindowTuner::bytes() const {
  size_t total = sketch_.bytes() + caches_.capacity() * sizeof(MiniTinyLfu);
  for (const MiniTinyLfu& cache : caches_) total += cache.bytes();
  return total;
}

void WindowTuner::Record(uint64_t hash) {
  if (caches_.empty()) return;
  sketch_.Increment(hash);
  for (size_t i = 0; i < caches_.size(); ++i) hits_[i] += caches_[i].Access(hash, sketch_) ? 1 : 0;
  if (++accesses_ >= epoch_length_) Decide();
}

void WindowTuner::Decide() {
  // Until the simulated caches have been full for kWarmEpochs epochs (a cold start, or after
  // growing), their hits say how fast each fills, not how well it keeps: no decision yet.
  const size_t warm = warm_epochs_;
  warm_epochs_ = caches_.front().size() >= caches_.front().capacity() ? warm_epochs_ + 1 : 0;
  for (size_t i = 0; i < caches_.size(); ++i) {
    const double hits = static_cast<double>(hits_[i]);
    score_[i] = warm == 0 ? hits : (1 - kNewWeight) * score_[i] + kNewWeight * hits;
    hits_[i] = 0;
  }
  if (warm < kWarmEpochs) {
    accesses_ = 0;
    ++epochs_;
    return;
  }
  size_t best = 0;
  for (size_t i = 1; i < caches_.size(); ++i) {
    if (score_[i] > score_[best]) best = i;
  }
  if (score_[best] > score_[current_] + kSwitchMargin * static_cast<double>(accesses_)) {
    current_ = best;
    window_permille_ = kCandidates[best];
  }
  accesses_ = 0;
  ++epochs_;
}

}  // namespace corral::lease

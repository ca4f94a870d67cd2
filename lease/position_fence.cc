// See position_fence.h.
#include "lease/position_fence.h"

#include <algorithm>

namespace corral::lease {

void PositionFence::Invalidated(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = markers_.find(key);
  if (it == markers_.end()) {
    if (markers_.size() >= max_markers_) FoldLocked();
    it = markers_.emplace(std::string(key), Marker{}).first;
    key_bytes_ += key.size();
  }
  ++it->second.unresolved;
}

bool PositionFence::Resolve(std::string_view key, WalPosition position) {
  std::lock_guard lock(mu_);
  auto it = markers_.find(key);
  if (it == markers_.end()) return false;  // cannot happen: unresolved markers are never removed
  Marker& m = it->second;
  m.position = std::max(m.position, position);
  const bool stale = m.unresolved_fill != kNoFill && m.unresolved_fill < position;
  if (m.unresolved > 0) --m.unresolved;
  if (m.unresolved == 0) m.unresolved_fill = kNoFill;
  return stale;
}

FenceTicket PositionFence::Begin() const {
  std::lock_guard lock(mu_);
  return generation_;
}

FenceVerdict PositionFence::Check(std::string_view key, WalPosition read_at, FenceTicket ticket) {
  std::lock_guard lock(mu_);
  WalPosition need = floor_;
  if (ticket < generation_) {
    // Markers were forgotten since the load started: the fill may have read before one of them.
    if (kept_from_ > ticket + 1) {
      need = std::max(need, retired_max_);  // not all of them are remembered
    } else {
      if (auto r = retired_.find(key); r != retired_.end() && r->second.generation > ticket) {
        need = std::max(need, r->second.position);
      }
      if (retired_floor_.generation > ticket) need = std::max(need, retired_floor_.position);
    }
  }
  auto it = markers_.find(key);
  if (it != markers_.end()) {
    Marker& m = it->second;
    need = std::max(need, m.position);
    if (read_at >= need && m.unresolved > 0) {
      m.unresolved_fill = std::min(m.unresolved_fill, read_at);
      return FenceVerdict{.pending = true};
    }
  }
  if (read_at < need) return FenceVerdict{true, need};
  return FenceVerdict{};
}

WalPosition PositionFence::Need(std::string_view key) const {
  std::lock_guard lock(mu_);
  WalPosition need = floor_;
  if (auto it = markers_.find(key); it != markers_.end())
    need = std::max(need, it->second.position);
  // A retired marker too: a fill fenced by it is retried where every replica has replayed it.
  if (auto r = retired_.find(key); r != retired_.end()) need = std::max(need, r->second.position);
  return need;
}

size_t PositionFence::Expire(WalPosition replayed) {
  std::lock_guard lock(mu_);
  const uint64_t generation = generation_ + 1;
  bool forgot = false;
  if (floor_ > 0 && floor_ <= replayed) {
    retired_floor_ = {std::max(retired_floor_.position, floor_), generation};
    retired_max_ = std::max(retired_max_, floor_);
    floor_ = 0;
    forgot = true;
  }
  Generation retiring{generation, {}};
  for (auto it = markers_.begin(); it != markers_.end();) {
    if (it->second.unresolved == 0 && it->second.position <= replayed) {
      auto node = markers_.extract(it++);
      const WalPosition position = node.mapped().position;
      retired_max_ = std::max(retired_max_, position);
      auto [r, inserted] = retired_.try_emplace(node.key(), Retired{position, generation});
      // The key is held twice: in retired_, and in its generation for pruning.
      retired_key_bytes_ += node.key().size() * (inserted ? 2 : 1);
      if (!inserted) {
        r->second = Retired{std::max(r->second.position, position), generation};
      }
      key_bytes_ -= node.key().size();
      retiring.keys.push_back(std::move(node.key()));
    } else {
      ++it;
    }
  }
  const size_t removed = retiring.keys.size();
  if (removed > 0 || forgot) {
    generation_ = generation;
    generations_.push_back(std::move(retiring));
    PruneRetiredLocked();
  }
  return removed;
}

void PositionFence::PruneRetiredLocked() {
  while (!generations_.empty() &&
         (generations_.size() > kKeepGenerations || retired_.size() > max_markers_)) {
    const Generation& oldest = generations_.front();
    for (const std::string& key : oldest.keys) {
      retired_key_bytes_ -= key.size();
      auto r = retired_.find(key);
      if (r != retired_.end() && r->second.generation == oldest.id) {
        retired_key_bytes_ -= key.size();
        retired_.erase(r);
      }
    }
    generations_.pop_front();
  }
  kept_from_ = generations_.empty() ? generation_ + 1 : generations_.front().id;
}

void PositionFence::FoldLocked() {
  // Amortised: one pass empties the table of everything resolved, so the next fold is
  // max_markers_ insertions away (unless nearly all are unresolved, which lasts one primary
  // round trip).
  for (auto it = markers_.begin(); it != markers_.end();) {
    if (it->second.unresolved == 0) {
      floor_ = std::max(floor_, it->second.position);
      key_bytes_ -= it->first.size();
      it = markers_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t PositionFence::size() const {
  std::lock_guard lock(mu_);
  return markers_.size();
}

size_t PositionFence::retired() const {
  std::lock_guard lock(mu_);
  return retired_.size();
}

size_t PositionFence::bytes() const {
  std::lock_guard lock(mu_);
  return key_bytes_ + retired_key_bytes_ + (markers_.size() + retired_.size()) * kMarkerOverhead;
}

void PositionFence::RaiseFloor(WalPosition position) {
  std::lock_guard lock(mu_);
  floor_ = std::max(floor_, position);
}

WalPosition PositionFence::floor() const {
  std::lock_guard lock(mu_);
  return floor_;
}

}  // namespace corral::lease

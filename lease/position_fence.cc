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

FenceVerdict PositionFence::Check(std::string_view key, WalPosition read_at) {
  std::lock_guard lock(mu_);
  WalPosition need = floor_;
  auto it = markers_.find(key);
  if (it != markers_.end()) {
    Marker& m = it->second;
    need = std::max(need, m.position);
    if (read_at >= need && m.unresolved > 0) {
      m.unresolved_fill = std::min(m.unresolved_fill, read_at);
    }
  }
  if (read_at < need) return FenceVerdict{true, need};
  return FenceVerdict{};
}

WalPosition PositionFence::Need(std::string_view key) const {
  std::lock_guard lock(mu_);
  auto it = markers_.find(key);
  return it == markers_.end() ? floor_ : std::max(floor_, it->second.position);
}

size_t PositionFence::Expire(WalPosition replayed) {
  std::lock_guard lock(mu_);
  if (floor_ <= replayed) floor_ = 0;
  size_t removed = 0;
  for (auto it = markers_.begin(); it != markers_.end();) {
    if (it->second.unresolved == 0 && it->second.position <= replayed) {
      key_bytes_ -= it->first.size();
      it = markers_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
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

size_t PositionFence::bytes() const {
  std::lock_guard lock(mu_);
  return key_bytes_ + markers_.size() * kMarkerOverhead;
}

WalPosition PositionFence::floor() const {
  std::lock_guard lock(mu_);
  return floor_;
}

}  // namespace corral::lease

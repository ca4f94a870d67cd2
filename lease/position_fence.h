// Per-key WAL positions of recent invalidations (SPEC "Semantics", rule 6): a fill read on a
// replica that had not yet replayed an invalidation's write is not cached as fresh. The position
// is PostgreSQL's WAL byte position (an LSN as a number). Facebook's "remote markers" (NSDI '13,
// §5) play the same part between regions; here the marker holds the position the fill must have
// been read at, so a replica that has caught up serves the key again at once.
//
// A marker's position may arrive after the invalidation was applied (the primary is asked for it,
// batched): a fill that completes meanwhile is cached, and its read position remembered, so the
// resolution can tell the caller to mark that entry stale. Pure and thread-safe; no SQL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "lease/wal_position.h"

namespace corral::lease {

struct FenceVerdict {
  bool fenced = false;   // read before the key's last invalidation: not to be cached as fresh
  WalPosition need = 0;  // fenced: the position a fill must have been read at
};

class PositionFence {
 public:
  // At most `max_markers` markers are kept. Past that, every marker whose position is known is
  // folded into one floor position that fences every key's fills below it (coarser, still safe).
  explicit PositionFence(size_t max_markers) : max_markers_(max_markers) {}

  // An invalidation of `key` was applied; its position follows with Resolve().
  void Invalidated(std::string_view key);
  // The position of one earlier Invalidated(key). True when a fill cached while that position was
  // unknown had been read before it: the caller marks the key's entry stale.
  bool Resolve(std::string_view key, WalPosition position);
  // A fill of `key` read at `read_at` completes: fenced when read before a known invalidation of
  // `key` (or before the floor). While a position is unknown the fill passes and is remembered.
  FenceVerdict Check(std::string_view key, WalPosition read_at);
  // The position a new load of `key` must read at to pass (0: any).
  WalPosition Need(std::string_view key) const;
  // Forgets the markers that every usable replica has replayed (positions <= `replayed`), and the
  // floor once it is replayed too. Returns how many markers were removed.
  size_t Expire(WalPosition replayed);

  size_t size() const;
  // An estimate of the markers' memory: keys plus a fixed overhead per marker.
  size_t bytes() const;
  WalPosition floor() const;

  // Per marker: the hash node, its bucket slot and the Marker (the key's bytes come on top).
  static constexpr size_t kMarkerOverhead = 96;

 private:
  struct Marker {
    WalPosition position = 0;               // the newest known invalidation's position
    uint32_t unresolved = 0;                // invalidations whose position has not arrived
    WalPosition unresolved_fill = kNoFill;  // the oldest read position of a fill cached meanwhile
  };
  static constexpr WalPosition kNoFill = UINT64_MAX;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  // Folds every resolved marker into the floor. Needs mu_.
  void FoldLocked();

  const size_t max_markers_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Marker, Hash, std::equal_to<>> markers_;
  size_t key_bytes_ = 0;
  WalPosition floor_ = 0;
};

}  // namespace corral::lease

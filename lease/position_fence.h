// Per-key WAL positions of recent invalidations (SPEC "Semantics", rule 6): a fill read on a
// replica that had not yet replayed an invalidation's write is not cached as fresh. The position
// is PostgreSQL's WAL byte position (an LSN as a number). Facebook's "remote markers" (NSDI '13,
// §5) play the same part between regions; here the marker holds the position the fill must have
// been read at, so a replica that has caught up serves the key again at once.
//
// A marker's position may arrive after the invalidation was applied (the primary is asked for it,
// batched): a fill that completes meanwhile is cached, and its read position remembered, so the
// resolution can tell the caller to mark that entry stale.
//
// A marker is forgotten once every usable replica has replayed it, but a fill read before that
// may still be in flight: it read on a replica just before the replica replayed the write, and
// completes after the marker went (the 30-minute soak served one such row). So each fill takes a
// ticket when its load starts, and forgotten markers are kept, retired, for the fills that
// started before they went: the last kKeepGenerations expiries' worth, at most max_markers keys.
// A fill older than that is fenced if it read before anything retired since (coarser, still
// safe). Pure and thread-safe; no SQL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lease/wal_position.h"

namespace corral::lease {

// Taken when a fill's load starts (PositionFence::Begin): which markers it may have missed.
using FenceTicket = uint64_t;

struct FenceVerdict {
  bool fenced = false;   // read before the key's last invalidation: not to be cached as fresh
  WalPosition need = 0;  // fenced: the position a fill must have been read at
  // Passed while an invalidation's position was unknown. Its Resolve() may come before the fill
  // is stored, and then cannot mark it stale: the caller checks Need() once it has stored it.
  bool pending = false;
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
  // A load of a fill starts: its ticket for Check().
  FenceTicket Begin() const;
  // A fill of `key` read at `read_at`, whose load started with `ticket`, completes: fenced when
  // read before a known invalidation of `key` (or before the floor), including one forgotten
  // since the ticket was taken. While a position is unknown the fill passes and is remembered.
  FenceVerdict Check(std::string_view key, WalPosition read_at, FenceTicket ticket);
  // The position a new load of `key` must read at to pass (0: any), retired markers included.
  WalPosition Need(std::string_view key) const;
  // Forgets the markers that every usable replica has replayed (positions <= `replayed`), and the
  // floor once it is replayed too, keeping them retired for the fills in flight. Returns how many
  // markers were removed.
  size_t Expire(WalPosition replayed);

  size_t size() const;
  size_t retired() const;
  // An estimate of the markers' memory, retired ones included: keys plus a fixed overhead each.
  size_t bytes() const;

  // Expiries (that removed something) whose markers stay retired.
  static constexpr size_t kKeepGenerations = 100;
  WalPosition floor() const;
  // Raises the floor to `position`: every key's fills read below it are fenced, as if each key
  // had been invalidated there (changes before it may never be named).
  void RaiseFloor(WalPosition position);

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
  // Drops the oldest retired generations past kKeepGenerations or max_markers_ keys. Needs mu_.
  void PruneRetiredLocked();

  // A forgotten marker: its position and the expiry (generation) that removed it.
  struct Retired {
    WalPosition position = 0;
    uint64_t generation = 0;
  };
  struct Generation {
    uint64_t id;
    std::vector<std::string> keys;
  };

  const size_t max_markers_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Marker, Hash, std::equal_to<>> markers_;
  size_t key_bytes_ = 0;
  WalPosition floor_ = 0;

  uint64_t generation_ = 0;  // expiries that removed something; a ticket is its value
  std::unordered_map<std::string, Retired, Hash, std::equal_to<>> retired_;
  std::deque<Generation> generations_;  // oldest first, for pruning retired_
  size_t retired_key_bytes_ = 0;
  uint64_t kept_from_ = 1;       // every removal of this generation or later is in retired_
  Retired retired_floor_;        // the highest floor forgotten, and when
  WalPosition retired_max_ = 0;  // the highest position ever forgotten (the coarse fence)
};

}  // namespace corral::lease

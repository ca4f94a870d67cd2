// Freshness rules for a cached entry (SPEC.md rules 4 and 5): fresh, fresh but due for an early
// background refresh (XFetch, Vattani et al., VLDB 2015), stale (serve it and reload), or gone.
// Pure: the caller passes the time and the random draw.
#pragma once

#include <cmath>

#include "lease/clock.h"
#include "lease/store.h"

namespace corral::lease {

enum class Freshness {
  kFresh,         // serve it
  kRefreshAhead,  // serve it, and reload it in the background now (through the lease)
  kStale,         // past fresh_until, within stale_until: serve it and reload in the background
};

// XFetch's beta: > 1 refreshes earlier, < 1 later. 1 is the paper's recommended default.
inline constexpr double kXFetchBeta = 1.0;

// Classifies an entry the store returned (so now < stale_until). `draw` supplies a uniform [0,1)
// number and is called only when the entry is close enough to its expiry for XFetch to possibly
// fire: most hits on a hot key cost no random draw at all.
//
// XFetch: refresh early when now - delta * beta * ln(u) >= fresh_until, where delta is how long the
// last load took. The expected head start is delta * beta, so a key whose load takes 200 ms starts
// being refreshed a few hundred ms before it would expire — by exactly one reader, through the
// lease.
template <class Draw>
Freshness Classify(const EntryMeta& meta, Millis now, Draw&& draw, double beta = kXFetchBeta) {
  if (meta.fresh_until == kNever) return Freshness::kFresh;
  if (now >= meta.fresh_until) return Freshness::kStale;
  // Loads that took 0 ms (SET, or sub-millisecond loads) still get a 1 ms delta so a hot key is
  // refreshed just before it expires rather than exactly at it.
  double delta = std::max<double>(1.0, meta.load_ms) * beta;
  double remaining = static_cast<double>(meta.fresh_until - now);
  // -ln(u) exceeds 40 with probability e^-40: past that head start, skip the draw.
  if (remaining > delta * 40.0) return Freshness::kFresh;
  double u = draw();
  if (u <= 0.0) return Freshness::kRefreshAhead;
  return -delta * std::log(u) >= remaining ? Freshness::kRefreshAhead : Freshness::kFresh;
}

}  // namespace corral::lease

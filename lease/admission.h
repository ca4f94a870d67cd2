// Admission control for loads (SPEC.md rule 8): a bound on loads in flight, a token bucket on
// loads per second, and a "blocked" switch — all changeable at run time. A load that is not
// admitted is shed at once by the caller (RESP -BUSY, HTTP 503); nothing queues here.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string_view>

#include "lease/clock.h"

namespace corral::lease {

enum class Admission {
  kAdmitted,
  kBlocked,
  kInflight,      // the namespace's max_inflight_loads
  kRate,          // the namespace's max_loads_per_s
  kPending,       // shedding.max_pending_loads, across every namespace
  kPoolInflight,  // the pool's max_inflight_loads, across its namespaces
};

// Why a load was shed, as the corral_shed_total{reason} label.
std::string_view AdmissionReason(Admission a);

// Thread-safe. One per namespace (and one per pool, and one global for pending loads).
class LoadGate {
 public:
  // max_inflight <= 0: unbounded. max_per_s <= 0: no rate limit. Burst: max(1, max_per_s) loads.
  LoadGate(int64_t max_inflight, double max_per_s, bool blocked, const Clock& clock);

  // Admits one load (then the caller must call Done() when it ends) or says why not.
  Admission TryAdmit();
  // What TryAdmit would answer now, admitting nothing: lets a caller shed a load before it takes
  // a lease for it. Racy by nature (another thread may admit or finish meanwhile).
  Admission Peek() const;
  void Done();

  void SetMaxInflight(int64_t n) { max_inflight_.store(n); }
  void SetBlocked(bool b) { blocked_.store(b); }
  void SetMaxPerSecond(double r);
  int64_t inflight() const { return inflight_.load(); }
  int64_t max_inflight() const { return max_inflight_.load(); }
  bool blocked() const { return blocked_.load(); }
  double max_per_s() const;

 private:
  std::atomic<int64_t> inflight_{0};
  std::atomic<int64_t> max_inflight_;
  std::atomic<bool> blocked_;
  std::atomic<bool> rated_;  // max_per_s_ > 0: lets Peek skip the lock without a rate limit
  const Clock& clock_;
  // The rate limit is a GCRA (the token bucket in virtual-time form): each admitted load moves the
  // "theoretical arrival time" on by 1000 / max_per_s ms; a load is refused while that time is
  // more than the burst tolerance ahead of now. Exact, with no drift from adding fractions.
  mutable std::mutex mu_;  // guards the rate state
  double max_per_s_;
  double tat_ms_;

  // Under mu_: the theoretical arrival time a load admitted now would start from, or nullopt when
  // the rate refuses it (or 0 with no rate limit).
  std::optional<double> RateSlot(double now) const;
};

}  // namespace corral::lease

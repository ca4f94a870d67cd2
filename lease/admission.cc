// See admission.h.
#include "lease/admission.h"

#include <algorithm>

namespace corral::lease {

std::string_view AdmissionReason(Admission a) {
  switch (a) {
    case Admission::kAdmitted:
      return "admitted";
    case Admission::kBlocked:
      return "blocked";
    case Admission::kInflight:
      return "max_inflight_loads";
    case Admission::kRate:
      return "max_loads_per_s";
    case Admission::kPending:
      return "max_pending_loads";
  }
  return "unknown";
}

LoadGate::LoadGate(int64_t max_inflight, double max_per_s, bool blocked, const Clock& clock)
    : max_inflight_(max_inflight),
      blocked_(blocked),
      clock_(clock),
      max_per_s_(max_per_s),
      tokens_(std::max(1.0, max_per_s)),
      refilled_at_(clock.NowMs()) {}

void LoadGate::SetMaxPerSecond(double r) {
  std::lock_guard lock(mu_);
  max_per_s_ = r;
  tokens_ = std::min(tokens_, std::max(1.0, r));
}

double LoadGate::max_per_s() const {
  std::lock_guard lock(mu_);
  return max_per_s_;
}

Admission LoadGate::TryAdmit() {
  if (blocked_.load(std::memory_order_relaxed)) return Admission::kBlocked;
  int64_t max = max_inflight_.load(std::memory_order_relaxed);
  int64_t now_inflight = inflight_.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (max > 0 && now_inflight > max) {
    inflight_.fetch_sub(1, std::memory_order_acq_rel);
    return Admission::kInflight;
  }
  {
    std::lock_guard lock(mu_);
    if (max_per_s_ > 0) {
      Millis now = clock_.NowMs();
      double burst = std::max(1.0, max_per_s_);
      tokens_ = std::min(burst, tokens_ + (now - refilled_at_) * max_per_s_ / 1000.0);
      refilled_at_ = now;
      if (tokens_ < 1.0) {
        inflight_.fetch_sub(1, std::memory_order_acq_rel);
        return Admission::kRate;
      }
      tokens_ -= 1.0;
    }
  }
  return Admission::kAdmitted;
}

void LoadGate::Done() { inflight_.fetch_sub(1, std::memory_order_acq_rel); }

}  // namespace corral::lease

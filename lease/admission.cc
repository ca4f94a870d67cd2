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
    case Admission::kPoolInflight:
      return "pool_max_inflight_loads";
  }
  return "unknown";
}

LoadGate::LoadGate(int64_t max_inflight, double max_per_s, bool blocked, const Clock& clock)
    : max_inflight_(max_inflight),
      blocked_(blocked),
      rated_(max_per_s > 0),
      clock_(clock),
      max_per_s_(max_per_s),
      tat_ms_(static_cast<double>(clock.NowMs())) {}

void LoadGate::SetMaxPerSecond(double r) {
  std::lock_guard lock(mu_);
  max_per_s_ = r;
  rated_.store(r > 0);
  // Start the new rate afresh rather than carrying debt from the old one.
  tat_ms_ = std::min(tat_ms_, static_cast<double>(clock_.NowMs()));
}

double LoadGate::max_per_s() const {
  std::lock_guard lock(mu_);
  return max_per_s_;
}

std::optional<double> LoadGate::RateSlot(double now) const {
  if (max_per_s_ <= 0) return 0.0;
  double interval = 1000.0 / max_per_s_;
  double tolerance = (std::max(1.0, max_per_s_) - 1.0) * interval;
  double tat = std::max(tat_ms_, now);
  if (tat - now > tolerance + 1e-6) return std::nullopt;
  return tat;
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
      std::optional<double> tat = RateSlot(static_cast<double>(clock_.NowMs()));
      if (!tat) {
        inflight_.fetch_sub(1, std::memory_order_acq_rel);
        return Admission::kRate;
      }
      tat_ms_ = *tat + 1000.0 / max_per_s_;
    }
  }
  return Admission::kAdmitted;
}

Admission LoadGate::Peek() const {
  if (blocked_.load(std::memory_order_relaxed)) return Admission::kBlocked;
  int64_t max = max_inflight_.load(std::memory_order_relaxed);
  if (max > 0 && inflight_.load(std::memory_order_acquire) >= max) return Admission::kInflight;
  if (!rated_.load(std::memory_order_relaxed)) return Admission::kAdmitted;
  std::lock_guard lock(mu_);
  if (!RateSlot(static_cast<double>(clock_.NowMs()))) return Admission::kRate;
  return Admission::kAdmitted;
}

void LoadGate::Done() { inflight_.fetch_sub(1, std::memory_order_acq_rel); }

}  // namespace corral::lease

// Read-through, leases, staleness and shedding; see cache_service.h and lease/README.md.
#include "cache-server/cache_service.h"

#include <array>
#include <atomic>
#include <cmath>

#include "cache-server/log.h"

namespace corral::server {

namespace {
// Failed loads are logged, at most one line a second (an outage fails many at once), with how
// many were not logged since.
void LogLoadFailure(const std::string& ns, const std::string& key, const std::string& error) {
  static std::atomic<int64_t> last_ms{0};
  static std::atomic<uint64_t> suppressed{0};
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now - last < 1000 || !last_ms.compare_exchange_strong(last, now)) {
    suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Log(LogLevel::kWarn, "db_load_failed",
      "namespace=" + LogQuote(ns) + " key=" + LogQuote(key) + " error=" + LogQuote(error) +
          " not_logged_since=" + std::to_string(suppressed.exchange(0)));
}
}  // namespace

using lease::Admission;
using lease::LoadResult;
using lease::WaitOutcome;

CacheService::CacheService(const Config& config, lease::Store& store, lease::LeaseTable& leases,
                           const lease::Clock& clock, lease::Random& random, Metrics& metrics,
                           LoadBackend* backend)
    : config_(config),
      store_(store),
      leases_(leases),
      clock_(clock),
      random_(random),
      metrics_(metrics),
      backend_(backend),
      holdoff_(config.lease.error_holdoff_ms, clock),
      pending_gate_(config.shedding.max_pending_loads, 0, false, clock) {
  size_t index = 0;
  std::vector<DbLoadCounter::NamespaceLabel> labels;
  for (const auto& [name, ns] : config.namespaces) {
    std::unique_ptr<lease::LoadLimiter>& limiter = limiters_[ns.pool];
    if (!limiter) limiter = std::make_unique<lease::LoadLimiter>(LimiterOptions(ns.pool), clock);
    namespaces_.emplace(name, std::make_unique<Namespace>(ns, index++, clock, *limiter));
    labels.push_back({name, ns.pool});
  }
  // corral_db_loads_total is indexed by the same namespace numbers.
  metrics_.db_loads.Declare(std::move(labels));
}

const CacheService::Namespace* CacheService::FindNamespace(std::string_view key) const {
  if (namespaces_.empty()) return nullptr;
  std::optional<proto::KeyParts> parts = proto::SplitKey(key);
  if (!parts) return nullptr;
  auto it = namespaces_.find(parts->ns);
  return it == namespaces_.end() ? nullptr : it->second.get();
}

lease::FillOptions CacheService::FillFor(const Namespace& ns, LoadResult::Kind kind,
                                         uint32_t load_ms) const {
  bool found = kind == LoadResult::Kind::kValue;
  return lease::FillOptions{
      .ttl_ms = found ? ns.config.ttl_ms : ns.config.negative_ttl_ms,
      .jitter = ns.config.ttl_jitter,
      .stale_ms = ns.config.stale_ms,
      .kind = found ? lease::EntryKind::kValue : lease::EntryKind::kNotFound,
      .load_ms = load_ms,
  };
}

lease::LoadLimiterOptions CacheService::LimiterOptions(const std::string& pool_name) const {
  lease::LoadLimiterOptions o;
  o.max_limit = 0;  // a pool the config does not describe (unit tests): only namespace caps
  if (!config_.postgres) return o;
  auto it = config_.postgres->pools.find(pool_name);
  if (it == config_.postgres->pools.end()) return o;
  const pg::PoolOptions& pool = it->second;
  o.min_limit = pool.min_inflight_loads;
  // The ceiling: what the pool's connections can run at once, unless the config says less (or
  // more: loads past the connections wait in the loader's queue, measured as load time).
  const int64_t connections =
      pool.replicas.empty()
          ? config_.postgres->primary_connections
          : static_cast<int64_t>(pool.connections) * static_cast<int64_t>(pool.replicas.size());
  o.max_limit = pool.max_inflight_loads > 0 ? pool.max_inflight_loads : connections;
  o.min_limit = std::min(o.min_limit, o.max_limit);
  return o;
}

struct CacheService::Call {
  std::vector<AdmittedFn> joined;    // its loads' admission callbacks, until sent (under call_mu)
  std::atomic<size_t> running{0};    // its loads not yet finished, once sent
  std::atomic<int64_t> load_ms{-1};  // the longest of its loads' times (-1: none queried)
};

// The Gathers alive on this thread, and the calls they hold open.
struct CacheService::GatherState {
  const CacheService* service = nullptr;  // the outermost Gather's
  int depth = 0;
  std::vector<std::pair<const Namespace*, std::shared_ptr<Call>>> held;
};
thread_local CacheService::GatherState CacheService::gather_;

CacheService::Gather::Gather(CacheService& service) : service_(service) {
  if (gather_.depth++ == 0) gather_.service = &service;
}

CacheService::Gather::~Gather() {
  if (--gather_.depth > 0) return;
  auto held = std::move(gather_.held);
  gather_.held.clear();
  gather_.service = nullptr;
  for (auto& [ns, call] : held) service_.SendCall(*ns, call, Admission::kAdmitted);
}

void CacheService::Admit(const Namespace& ns, lease::Millis deadline_ms, AdmittedFn then) {
  // The bounds that shed at once: `blocked` and the rate (the namespace's), then the pending
  // loads across namespaces, which also bounds the queues below.
  if (Admission a = ns.gate.TryAdmit(); a != Admission::kAdmitted) return then(a, nullptr);
  if (pending_gate_.TryAdmit() != Admission::kAdmitted) {
    ns.gate.Done();
    return then(Admission::kPending, nullptr);
  }
  AdmittedFn answer = [this, &ns, then = std::move(then)](Admission a,
                                                          const std::shared_ptr<Call>& call) {
    if (a != Admission::kAdmitted) {
      ns.gate.Done();
      pending_gate_.Done();
    }
    then(a, call);
  };
  // The pool's limit and the namespace's cap queue it: one slot per database call.
  if (ns.batch_max <= 1) {
    ns.limiter.Acquire(ns.group, deadline_ms,
                       [answer = std::move(answer)](Admission a) { answer(a, nullptr); });
    return;
  }
  // A batched namespace's loads join the call that waits for its slot, up to batch_max.
  std::shared_ptr<Call> call;
  {
    std::lock_guard lock(ns.call_mu);
    if (ns.open_call && ns.open_call->joined.size() < ns.batch_max) {
      ns.open_call->joined.push_back(std::move(answer));
      return;
    }
    call = ns.open_call = std::make_shared<Call>();
    call->joined.push_back(std::move(answer));
  }
  ns.limiter.Acquire(ns.group, deadline_ms,
                     [this, &ns, call](Admission a) { CallAnswered(ns, call, a); });
}

void CacheService::CallAnswered(const Namespace& ns, const std::shared_ptr<Call>& call,
                                Admission a) {
  if (a == Admission::kAdmitted && gather_.depth > 0 && gather_.service == this) {
    gather_.held.emplace_back(&ns, call);  // more of the Gather's loads may join it
    return;
  }
  SendCall(ns, call, a);
}

void CacheService::SendCall(const Namespace& ns, const std::shared_ptr<Call>& call, Admission a) {
  std::vector<AdmittedFn> joined;
  {
    std::lock_guard lock(ns.call_mu);
    if (ns.open_call == call) ns.open_call.reset();
    joined.swap(call->joined);
    call->running.store(joined.size());
  }
  if (a != Admission::kAdmitted) {
    for (AdmittedFn& f : joined) f(a, nullptr);
    return;
  }
  backend_->Together([&] {
    for (AdmittedFn& f : joined) f(a, call);
  });
}

void CacheService::FinishAdmitted(const Namespace& ns, std::optional<lease::Millis> load_ms,
                                  const std::shared_ptr<Call>& call) {
  if (call == nullptr) {
    ns.limiter.Release(ns.group, load_ms);
  } else {
    if (load_ms) {
      int64_t longest = call->load_ms.load();
      while (*load_ms > longest && !call->load_ms.compare_exchange_weak(longest, *load_ms)) {
      }
    }
    if (call->running.fetch_sub(1) == 1) {
      const int64_t ms = call->load_ms.load();
      ns.limiter.Release(ns.group, ms >= 0 ? std::optional<lease::Millis>(ms) : std::nullopt);
    }
  }
  ns.gate.Done();
  pending_gate_.Done();
}

void CacheService::Tick() {
  leases_.ExpireDue();
  for (auto& [name, limiter] : limiters_) limiter->Expire();
  if (positions_ != nullptr) {
    // Markers every usable replica has replayed are no longer needed; checked every 100 ms.
    const lease::Millis now = clock_.NowMs();
    lease::Millis due = next_fence_expiry_.load(std::memory_order_relaxed);
    if (now >= due && next_fence_expiry_.compare_exchange_strong(due, now + 100)) {
      const lease::WalPosition replayed = positions_->ReplayedEverywhere();
      const size_t removed = fence_.Expire(replayed);
      if (removed > 0 && LogEnabled(LogLevel::kDebug)) {
        Log(LogLevel::kDebug, "fence_expire",
            "replayed=" + std::to_string(replayed) + " removed=" + std::to_string(removed));
      }
    }
  }
}

std::vector<PoolGauges> CacheService::PoolStatus() const {
  std::vector<PoolGauges> out;
  for (const auto& [name, limiter] : limiters_) {
    out.push_back(PoolGauges{name, limiter->limit(), limiter->inflight(), limiter->queued()});
  }
  return out;
}

BackendResult ShedResult(Admission answer) {
  BackendResult r;
  r.kind = LoadResult::Kind::kShed;
  r.shed = answer;
  r.from_db = false;
  return r;
}

void CacheService::StartLoad(const std::string& key, const Namespace& ns, lease::LeaseToken token,
                             bool refresh, lease::Millis deadline_ms, bool fenced_before,
                             lease::WalPosition wanted) {
  std::optional<proto::KeyParts> parts = proto::SplitKey(key);
  std::string id(parts->id);
  // Asked by the backend (on its thread) before the load's done, at most once in effect. The
  // answer may come later, from the pool's queue; `held` and `admitted_at` are set before the
  // backend hears it, and the backend completes the load only after that.
  struct Admitted {
    std::atomic<bool> asked{false};
    std::atomic<bool> held{false};
    lease::Millis admitted_at = 0;
    std::shared_ptr<Call> call;  // the database call it shares (batched namespaces)
  };
  auto admitted = std::make_shared<Admitted>();
  AdmitFn admit = [this, &ns, admitted, refresh, deadline_ms](std::function<void(Admission)> then) {
    if (admitted->asked.exchange(true)) {
      return then(admitted->held ? Admission::kAdmitted : Admission::kPending);
    }
    Admit(ns, deadline_ms,
          [this, admitted, refresh, then = std::move(then)](Admission a,
                                                            const std::shared_ptr<Call>& call) {
            if (a == Admission::kAdmitted) {
              admitted->admitted_at = clock_.NowMs();
              admitted->call = call;
              admitted->held = true;
            }
            if (refresh) {
              metrics_.refreshes.Add(a == Admission::kAdmitted ? RefreshResult::kStarted
                                                               : RefreshResult::kShed);
              if (a != Admission::kAdmitted) CountShed(ShedReasonOf(a));
            }
            then(a);
          });
  };
  const lease::WalPosition min_position =
      positions_ != nullptr ? std::max(fence_.Need(key), wanted) : 0;
  const lease::FenceTicket ticket = positions_ != nullptr ? fence_.Begin() : 0;
  backend_->Load(
      ns.index, std::move(id), min_position, std::move(admit),
      [this, key, &ns, token, admitted, refresh, deadline_ms, fenced_before, wanted,
       ticket](BackendResult r) {
        if (admitted->held) {
          std::optional<lease::Millis> load_ms;
          if (r.from_db) load_ms = clock_.NowMs() - admitted->admitted_at;
          FinishAdmitted(ns, load_ms, admitted->call);
        }
        // A refresh answered without a query (the tier's L2) was never counted at admission.
        if (refresh && !admitted->asked) metrics_.refreshes.Add(RefreshResult::kStarted);
        if (r.kind == LoadResult::Kind::kShed) {
          // Refused admission: whoever waits on this lease is shed with it, at once (handing the
          // lease from waiter to waiter would shed them one by one, each inside the previous one's
          // callback). A kShed result is never cached and never held off.
          leases_.Complete(key, token, LoadResult{LoadResult::Kind::kShed, ns.config.name, r.shed});
          return;
        }
        if (r.from_db) {
          LoadOutcome outcome = r.kind == LoadResult::Kind::kValue      ? LoadOutcome::kValue
                                : r.kind == LoadResult::Kind::kNotFound ? LoadOutcome::kNotFound
                                                                        : LoadOutcome::kError;
          metrics_.db_loads.Add(ns.index, outcome);
          if (r.micros > 0) metrics_.db_load_seconds.Observe(static_cast<double>(r.micros) / 1e6);
        }
        if (r.kind == LoadResult::Kind::kError) {
          if (r.from_db) LogLoadFailure(ns.config.name, key, r.data);
          holdoff_.Record(key, r.data);
        } else {
          holdoff_.Clear(key);
        }
        bool stale = false;
        bool recheck = false;
        if (FenceFill(key, ns, token, refresh, deadline_ms, fenced_before, wanted, ticket, r,
                      &stale, &recheck)) {
          return;
        }
        // Panic mode read it from a replica known to lag: better than nothing, but not fresh.
        if (r.behind) stale = true;
        lease::FillOptions fill;
        if (r.fresh_ms) {
          fill = lease::FillOptions{.ttl_ms = std::max<lease::Millis>(*r.fresh_ms, 1),
                                    .jitter = 0,
                                    .stale_ms = r.stale_ms,
                                    .kind = r.kind == LoadResult::Kind::kValue
                                                ? lease::EntryKind::kValue
                                                : lease::EntryKind::kNotFound,
                                    .load_ms = r.load_ms,
                                    .position = r.position};
        } else {
          uint32_t load_ms = static_cast<uint32_t>(std::min<int64_t>(r.micros / 1000, UINT32_MAX));
          fill = FillFor(ns, r.kind, load_ms);
          fill.position = r.position;
        }
        if (stale) {
          // Read before the key's last invalidation, or from a lagging replica: kept to be served
          // as stale (the next read reloads it), never as fresh.
          fill.ttl_ms = 0;
          fill.jitter = 0;
        }
        bool cacheable = r.cacheable;
        LoadResult result{r.kind, std::move(r.data)};
        result.stale = stale;
        result.position = r.position;
        // The fill happens under the lease's lock, and only if no invalidation voided the lease
        // first: an invalidation either precedes it (nothing is cached) or follows it (and deletes
        // what was cached). Either way no read after the invalidation sees the older row.
        leases_.Complete(key, token, std::move(result), [&](const LoadResult& res) {
          if (res.kind == LoadResult::Kind::kError)
            return;                // keep any stale value (stale-if-error)
          if (!cacheable) return;  // the tier refused the fill: an invalidation came first
          store_.Fill(key, res.data, fill);
          if (LogEnabled(LogLevel::kDebug)) {
            Log(LogLevel::kDebug, "fill",
                "key=" + LogQuote(key) + " read_at=" + std::to_string(res.position) +
                    " ttl_ms=" + std::to_string(fill.ttl_ms) + " refresh=" + (refresh ? "1" : "0") +
                    " value=" + LogQuote(res.data.substr(0, 80)));
          }
          // Passed while the invalidation's position was unknown: if the position came between
          // the check and this fill, ResolvePosition found nothing to mark stale, so look again
          // now that the fill is stored (if it comes later, ResolvePosition marks it).
          if (recheck && fence_.Need(key) > res.position && store_.MarkStale(key)) {
            metrics_.fenced_fills.Add(FencedFill::kMarkedStale);
            if (invalidated_hook_) invalidated_hook_(key);
          }
        });
      });
}

bool CacheService::FenceFill(const std::string& key, const Namespace& ns, lease::LeaseToken token,
                             bool refresh, lease::Millis deadline_ms, bool fenced_before,
                             lease::WalPosition wanted, lease::FenceTicket ticket,
                             const BackendResult& r, bool* stale, bool* recheck) {
  if (positions_ == nullptr || !r.from_db) return false;
  if (r.kind != LoadResult::Kind::kValue && r.kind != LoadResult::Kind::kNotFound) return false;
  lease::FenceVerdict verdict = fence_.Check(key, r.position, ticket);
  *recheck = verdict.pending;
  if (LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, "fence_check",
        "key=" + LogQuote(key) + " read_at=" + std::to_string(r.position) +
            " ticket=" + std::to_string(ticket) + " fenced=" + (verdict.fenced ? "1" : "0") +
            " need=" + std::to_string(verdict.need) + " pending=" + (verdict.pending ? "1" : "0") +
            " fenced_at=" + std::to_string(r.fenced_at) +
            " retried_before=" + (fenced_before ? "1" : "0"));
  }
  if (!verdict.fenced && r.fenced_at > r.position) verdict = {.fenced = true, .need = r.fenced_at};
  if (!verdict.fenced) return false;
  // One retry, routed to a server that has replayed the invalidation, while the waiters can
  // still wait for it; else the old row is served, as stale.
  if (!fenced_before && clock_.NowMs() < deadline_ms &&
      positions_->CanRead(ns.index, verdict.need)) {
    metrics_.fenced_fills.Add(FencedFill::kRetried);
    StartLoad(key, ns, token, refresh, deadline_ms, /*fenced_before=*/true, wanted);
    return true;
  }
  metrics_.fenced_fills.Add(FencedFill::kStale);
  // The replicas' positions are only as new as their last health check: ask for one now, so the
  // key reloads as soon as a replica has the write, not up to a check interval later.
  positions_->RefreshPositions(ns.index);
  *stale = true;
  return false;
}

void CacheService::ResolvePosition(const std::string& key, lease::WalPosition position) {
  // A fill that completed before the position was known, read before it: stale from now on.
  const bool stale = fence_.Resolve(key, position);
  if (LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, "fence_resolve",
        "key=" + LogQuote(key) + " position=" + std::to_string(position) +
            " marked_stale=" + (stale ? "1" : "0"));
  }
  if (stale) {
    store_.MarkStale(key);
    metrics_.fenced_fills.Add(FencedFill::kMarkedStale);
    // What was answered as fresh is known to be older than the invalidation now.
    if (invalidated_hook_) invalidated_hook_(key);
  }
}

proto::ShedReason ShedReasonOf(Admission a) {
  switch (a) {
    case Admission::kBlocked:
      return proto::ShedReason::kBlocked;
    case Admission::kRate:
      return proto::ShedReason::kRate;
    case Admission::kPending:
      return proto::ShedReason::kPendingLoads;
    case Admission::kPoolInflight:
      return proto::ShedReason::kPoolInflight;
    case Admission::kInflight:
    case Admission::kAdmitted:  // not a shed; never asked
      break;
  }
  return proto::ShedReason::kNamespaceInflight;
}

ReadAnswer BusyAnswerWithText(proto::ShedReason reason, std::string_view text) {
  ReadAnswer answer;
  answer.kind = ReadAnswer::Kind::kBusy;
  answer.outcome = Outcome::kShed;
  answer.shed = reason;
  answer.error = text;
  return answer;
}

ReadAnswer BusyAnswer(proto::ShedReason reason, std::string_view ns, std::string& scratch) {
  scratch = proto::ShedText(reason, ns);
  return BusyAnswerWithText(reason, scratch);
}

void CacheService::CountShed(proto::ShedReason reason) { metrics_.shed.Add(reason); }

ReadAnswer CacheService::AnswerFromResult(const LoadResult& r, Outcome outcome,
                                          std::string& scratch) {
  ReadAnswer answer;
  answer.outcome = outcome;
  switch (r.kind) {
    case LoadResult::Kind::kValue:
      answer.kind = ReadAnswer::Kind::kValue;
      answer.value = r.data;
      if (r.stale) answer.outcome = Outcome::kStale;
      break;
    case LoadResult::Kind::kNotFound:
      answer.kind = ReadAnswer::Kind::kNotFound;
      answer.outcome = Outcome::kNotFound;
      break;
    case LoadResult::Kind::kError:
      answer.kind = ReadAnswer::Kind::kError;
      scratch = std::string(proto::kUpstreamPrefix) + r.data;
      answer.error = scratch;
      break;
    case LoadResult::Kind::kShed:
      answer = BusyAnswer(ShedReasonOf(r.shed), r.data, scratch);
      break;
  }
  return answer;
}

std::optional<proto::ShedReason> CacheService::ShedFirst(std::string_view key,
                                                         const Namespace& ns) const {
  if (backend_ == nullptr || backend_->AnswersWithoutAdmission()) return std::nullopt;
  Admission a = ns.gate.Peek();
  if (a == Admission::kAdmitted && pending_gate_.Peek() != Admission::kAdmitted) {
    a = Admission::kPending;
  }
  // A key being loaded is waited on, which needs no admission.
  if (a == Admission::kAdmitted || leases_.HasLive(key)) return std::nullopt;
  return ShedReasonOf(a);
}

void CacheService::Miss(std::string_view key, const Namespace& ns,
                        std::shared_ptr<Request> request) {
  std::string k(key);
  lease::LeaseTable::Acquired acq =
      leases_.AcquireOrWait(k, Waiter(k, ns, request), request->deadline);
  if (!acq.leader) return;  // counted in leases_.coalesced_total()
  // Between this request's store miss and its lease grant, another load may have completed and
  // filled the key: then the lease is completed with what is cached instead of a second query.
  std::optional<LoadResult> cached;
  lease::Millis now_ms = clock_.NowMs();
  store_.Get(k, [&](std::string_view value, const lease::EntryMeta& meta) {
    if (now_ms >= meta.fresh_until || meta.position < request->min_position) return;
    cached = LoadResult{meta.kind == lease::EntryKind::kValue ? LoadResult::Kind::kValue
                                                              : LoadResult::Kind::kNotFound,
                        std::string(value)};
    cached->position = meta.position;
  });
  if (cached) {
    std::string scratch;
    request->Answer(*this, AnswerFromResult(*cached, Outcome::kHit, scratch));
    leases_.Complete(k, acq.token, std::move(*cached));
    return;
  }
  LeadAndWait(k, ns, request, acq.token);
}

void CacheService::LeadAndWait(const std::string& key, const Namespace& ns,
                               const std::shared_ptr<Request>& request, lease::LeaseToken token) {
  // The holder waits on its own lease too, so its wait is bounded like everybody else's (and it
  // is answered like them if the load is shed). It registers before the load starts: a load that
  // completes at once must find it waiting. If an invalidation voided the lease in between,
  // nobody waits on the old one: drop it and hold the new one (each round still starts at most
  // one load).
  for (int round = 0;; ++round) {
    lease::LeaseTable::Acquired acq =
        leases_.AcquireOrWait(key, Waiter(key, ns, request), request->deadline, token);
    if (!acq.leader) {
      if (leases_.IsValid(key, token)) break;  // waiting on our own lease: go load
      // Our lease was voided and the request now waits on another, newer load: no query here.
      leases_.Release(key, token);
      return;
    }
    leases_.Release(key, token);
    token = acq.token;
    if (round == 3) {
      std::string scratch;
      request->Answer(
          *this, BusyAnswer(proto::ShedReason::kInvalidatedRepeatedly, ns.config.name, scratch));
      leases_.Release(key, token);
      return;
    }
  }
  request->loaded = true;
  StartLoad(key, ns, token, /*refresh=*/false, request->deadline, /*fenced_before=*/false,
            request->min_position);
}

lease::WaiterFn CacheService::Waiter(const std::string& key, const Namespace& ns,
                                     std::shared_ptr<Request> request) {
  return [this, key, &ns, request](WaitOutcome w) {
    switch (w.kind) {
      case WaitOutcome::Kind::kResult: {
        const LoadResult& r = *w.result;
        if (r.position < request->min_position &&
            (r.kind == LoadResult::Kind::kValue || r.kind == LoadResult::Kind::kNotFound)) {
          return BehindClientWrite(key, ns, request);
        }
        std::string scratch;
        Outcome outcome = request->loaded ? Outcome::kMiss : Outcome::kWaited;
        request->Answer(*this, AnswerFromResult(*w.result, outcome, scratch));
        return;
      }
      case WaitOutcome::Kind::kTimedOut:
        return AnswerTimedOut(key, *request);
      case WaitOutcome::Kind::kLeaseGranted:
        // The holder gave up or vanished and this request is next in line: it loads.
        return LeadAndWait(key, ns, request, w.token);
    }
  };
}

void CacheService::BehindClientWrite(const std::string& key, const Namespace& ns,
                                     const std::shared_ptr<Request>& request) {
  // The load this request waited on may have started before the client's write reached corral,
  // or gone to a replica not yet known to lag: one more, routed past the client's position.
  if (!request->reloaded && clock_.NowMs() < request->deadline) {
    request->reloaded = true;
    request->loaded = false;
    return Miss(key, ns, request);
  }
  positions_->RefreshPositions(ns.index);
  std::string scratch;
  request->Answer(*this, BusyAnswer(proto::ShedReason::kNotReplayed, ns.config.name, scratch));
}

void CacheService::AnswerTimedOut(const std::string& key, Request& request) {
  // Bounded waiting (rule 2): the stale value if one exists by now, else BUSY.
  bool served = false;
  lease::Millis now_ms = clock_.NowMs();
  std::string value;
  lease::Millis age = 0;
  store_.Get(key, [&](std::string_view v, const lease::EntryMeta& meta) {
    if (meta.kind != lease::EntryKind::kValue || meta.position < request.min_position) return;
    value.assign(v);
    age = now_ms - meta.filled_at;
    served = true;
  });
  std::string scratch;
  ReadAnswer answer;
  if (served) {
    answer.kind = ReadAnswer::Kind::kValue;
    answer.outcome = Outcome::kStale;
    answer.value = value;
    answer.age_ms = age;
  } else if (request.min_position > 0) {
    // Nothing at or past the client's write: that, not the wait, is what failed.
    answer = BusyAnswer(proto::ShedReason::kNotReplayed, {}, scratch);
  } else {
    answer = BusyAnswer(proto::ShedReason::kWaitTimeout, {}, scratch);
  }
  request.Answer(*this, answer);
}

void CacheService::Refresh(std::string_view key, const Namespace& ns) {
  if (holdoff_.Check(key)) {
    // stale-if-error: keep serving, do not hammer the database
    metrics_.refreshes.Add(RefreshResult::kHeldOff);
    return;
  }
  if (positions_ != nullptr) {
    // Served stale because no server had replayed the key's invalidation: reloaded once one has.
    const lease::WalPosition need = fence_.Need(key);
    if (need > 0 && !positions_->CanRead(ns.index, need)) {
      metrics_.refreshes.Add(RefreshResult::kAwaitingReplay);
      // The check the fenced fill asked for may have come just before the replica replayed the
      // write: each such read asks again (the checkers space checks kMinRecheckMs apart), so the
      // new row is served within milliseconds of the replay, not a check interval later.
      positions_->RefreshPositions(ns.index);
      return;
    }
  }
  std::optional<lease::LeaseToken> token = leases_.TryAcquire(key);
  if (!token) return;  // a load is already under way (not counted: that is every other reader)
  StartLoad(std::string(key), ns, *token, /*refresh=*/true,
            clock_.NowMs() + config_.lease.wait_timeout_ms);
}

lease::SetResult CacheService::Set(std::string_view key, std::string_view value,
                                   std::optional<lease::Millis> ttl_ms, lease::SetCondition cond,
                                   bool keep_ttl) {
  const Namespace* ns = FindNamespace(key);
  if (ns != nullptr) {
    leases_.Void(key);
    holdoff_.Clear(key);
    // The other nodes drop their copies (L2 and L1); this node keeps what was just written.
    if (sink_ != nullptr) {
      sink_->Begin(key);
      sink_->Propagate(key, InvalidationSource::kSet, 0, nullptr);
    }
    if (!ttl_ms && !keep_ttl && cond == lease::SetCondition::kAlways) {
      auto meta = store_.Fill(key, value, FillFor(*ns, LoadResult::Kind::kValue, 0));
      return meta ? lease::SetResult::kStored : lease::SetResult::kTooLarge;
    }
  }
  return store_.Set(key, value, ttl_ms, cond, keep_ttl);
}

namespace {
// An invalidation's parts that end later (the tier's acknowledgement, the WAL position): the last
// one to end calls `done`.
struct InvalidationJoin {
  std::atomic<int> left;
  std::atomic<bool> held{false};
  bool existed = false;
  std::function<void(bool existed)> done;
  void Finish(bool tier_held = false) {
    if (tier_held) held = true;
    if (--left == 0 && done) done(existed || held);
  }
};
}  // namespace

bool CacheService::Invalidate(std::string_view key, InvalidationSource source,
                              std::function<void(bool existed)> propagated,
                              lease::WalPosition position) {
  const bool in_namespace = FindNamespace(key) != nullptr;
  const bool fence = positions_ != nullptr && in_namespace;
  // The marker comes first: a load that starts once the lease is voided is checked against it,
  // even before its position is known (PositionFence::Check).
  if (fence) fence_.Invalidated(key);
  if (LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, "invalidate",
        "key=" + LogQuote(key) + " source=" + std::to_string(static_cast<int>(source)));
  }
  const bool tier = sink_ != nullptr && source != InvalidationSource::kTier && in_namespace;
  // The tier hears of it before the lease is voided: a read that takes a new lease once it is
  // voided asks the tier after Begin, and so does not take what L2 holds now (older than this
  // invalidation) into L1 as fresh. (Begun after the void, a thread paused in between let such a
  // read fill L1 with the old value from L2 for l1_ttl_ms.)
  if (tier) sink_->Begin(key);
  // Void first, then delete: a load completing in between finds its lease voided and caches
  // nothing; one that completed before has its fill deleted here.
  leases_.Void(key);
  holdoff_.Clear(key);
  bool existed = store_.Del(key);
  if (invalidated_hook_) invalidated_hook_(key);
  if (!tier && !fence) {
    metrics_.invalidations.Add(source);  // counted once applied (tests wait on the count)
    if (propagated) propagated(existed);
    return existed;
  }
  // The tier gets it with its position once that is known.
  auto join = std::make_shared<InvalidationJoin>();
  join->left = 1 + (tier ? 1 : 0);
  join->existed = existed;
  join->done = std::move(propagated);
  // Once the position is known (at once without a fence): the tier gets the invalidation with its
  // position, so that its fills and every other node are fenced by it too. Handed to the tier
  // before it is counted (tests wait on the count): a read that follows the count reaches the
  // tier after it, and does not take what L2 held before it (TierBackend's `invalidating`).
  auto apply = [this, join, source, tier, fence, k = std::string(key)](lease::WalPosition p) {
    if (fence) ResolvePosition(k, p);
    if (tier) sink_->Propagate(k, source, p, [join](bool held) { join->Finish(held); });
    metrics_.invalidations.Add(source);
    join->Finish();
  };
  if (!fence) {
    apply(0);
  } else if (position > 0) {
    apply(position);
  } else {
    positions_->CurrentPosition(std::move(apply));
  }
  return existed;
}

void CacheService::MarkAllStale(bool void_leases) {
  if (void_leases) leases_.VoidAll();
  store_.MarkAllStaleBefore(clock_.NowMs());
  if (all_stale_hook_) all_stale_hook_();
}

void CacheService::InvalidateNamespace(std::string_view ns, InvalidationSource source,
                                       lease::WalPosition position, std::function<void()> done) {
  leases_.VoidAll();
  const std::string prefix = std::string(ns) + ":";
  std::vector<std::string> keys;
  uint64_t cursor = 0;
  do {
    cursor = store_.Scan(cursor, 1024, [&](std::string_view key) {
      if (key.starts_with(prefix)) keys.emplace_back(key);
    });
  } while (cursor != 0);
  // One more than the keys: the last Finish is this function's own, so `done` cannot run before
  // every Invalidate has been issued.
  auto left = std::make_shared<std::atomic<size_t>>(keys.size() + 1);
  auto finish = [left, done = std::make_shared<std::function<void()>>(std::move(done))] {
    if (left->fetch_sub(1) == 1 && *done) (*done)();
  };
  for (const std::string& key : keys) {
    Invalidate(
        key, source, [finish](bool) { finish(); }, position);
  }
  if (sink_ != nullptr && source != InvalidationSource::kTier) {
    left->fetch_add(1);
    sink_->FlushNamespace(ns, finish);
  }
  finish();
}

void CacheService::MarkAllStaleEverywhere() {
  MarkAllStale();
  if (sink_ != nullptr) sink_->FlushNamespace("", nullptr);
}

void CacheService::FlushAll() {
  leases_.VoidAll();
  store_.Clear();
}

bool CacheService::LeaseSet(std::string_view key, lease::LeaseToken token, std::string_view value,
                            std::optional<lease::Millis> ttl_ms) {
  const Namespace* ns = FindNamespace(key);
  LoadResult result{LoadResult::Kind::kValue, std::string(value)};
  return leases_.Complete(key, token, std::move(result), [&](const LoadResult& res) {
    if (ttl_ms) {
      store_.Set(key, res.data, ttl_ms);
    } else if (ns != nullptr) {
      store_.Fill(key, res.data, FillFor(*ns, LoadResult::Kind::kValue, 0));
    } else {
      store_.Set(key, res.data, std::nullopt);
    }
  });
}

bool CacheService::LeaseRelease(std::string_view key, lease::LeaseToken token) {
  return leases_.Release(key, token);
}

bool CacheService::SetNamespaceLimit(std::string_view name, std::optional<int64_t> max_inflight,
                                     std::optional<double> max_per_s, std::optional<bool> blocked) {
  auto it = namespaces_.find(name);
  if (it == namespaces_.end()) return false;
  lease::LoadGate& gate = it->second->gate;
  if (max_inflight) it->second->limiter.SetGroupCap(it->second->group, *max_inflight);
  if (max_per_s) gate.SetMaxPerSecond(*max_per_s);
  if (blocked) gate.SetBlocked(*blocked);
  return true;
}

}  // namespace corral::server

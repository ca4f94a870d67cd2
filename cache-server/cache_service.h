// The cache as both front ends see it: plain keys straight from the store; namespace keys read
// through PostgreSQL under one lease per key, with refresh-ahead, stale-while-revalidate,
// stale-if-error, error hold-off and load shedding (SPEC.md rules 1-8). Owns no sockets and no SQL:
// loads go through a LoadBackend.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache-server/config.h"
#include "cache-server/metrics.h"
#include "lease/admission.h"
#include "lease/clock.h"
#include "lease/error_holdoff.h"
#include "lease/freshness.h"
#include "lease/lease_table.h"
#include "lease/load_limiter.h"
#include "lease/position_fence.h"
#include "lease/random.h"
#include "lease/store.h"
#include "proto/errors.h"
#include "proto/key.h"

namespace corral::server {

// The answer to a read. `value` and `error` are valid only during the callback that receives it.
struct ReadAnswer {
  enum class Kind { kValue, kNotFound, kBusy, kError } kind = Kind::kNotFound;
  Outcome outcome = Outcome::kMiss;  // for metrics and HTTP X-Cache
  std::string_view value;
  // kBusy: proto::ShedText(shed, namespace), the text after "-BUSY " / "busy: ";
  // kError: the text after "-ERR ".
  std::string_view error;
  proto::ShedReason shed = proto::ShedReason::kWaitTimeout;  // kBusy: why
  lease::Millis age_ms = 0;
};

// A busy answer for `reason`; `scratch` keeps its text, so it must outlive the answer.
ReadAnswer BusyAnswer(proto::ShedReason reason, std::string_view ns, std::string& scratch);
// The same with its text made already (it must outlive the answer).
ReadAnswer BusyAnswerWithText(proto::ShedReason reason, std::string_view text);
// Why a load refused by admission control is shed.
proto::ShedReason ShedReasonOf(lease::Admission a);

// Called once when a read could not be answered at once; may run on any thread, must not block.
using ReadLater = std::function<void(const ReadAnswer&)>;

// What a database load produced.
struct BackendResult {
  lease::LoadResult::Kind kind = lease::LoadResult::Kind::kError;
  std::string data;  // the value, or the error text
  int64_t micros = 0;
  // The Redis tier's answers carry their own lifetime (drawn once per fill and shared by every
  // node): L1 is filled fresh for exactly `fresh_ms`, then stale for `stale_ms`, with no jitter
  // of its own. Without them the namespace's TTL is drawn here.
  std::optional<lease::Millis> fresh_ms;
  lease::Millis stale_ms = 0;
  uint32_t load_ms = 0;  // with fresh_ms: how long the original database load took (XFetch)
  // False: answer the waiters but cache nothing (an invalidation voided the fill in the tier).
  bool cacheable = true;
  // False: no database query ran (an L2 hit): not counted in corral_db_loads_total, and an
  // error does not start this node's own hold-off count (it is the fleet's, already shared).
  bool from_db = true;
  lease::Admission shed = lease::Admission::kAdmitted;  // kShed: what the admission answered
  // from_db: the WAL position the query read at (0: unknown, older than any invalidation).
  lease::WalPosition position = 0;
  // The Redis tier refused to keep the fill: it was read before this invalidation's position,
  // which another node's invalidation left there (0: not refused).
  lease::WalPosition fenced_at = 0;
  // Read from a replica that was lagging past max_replica_lag_ms (or marked down) when it
  // answered, because none of the pool was usable: answered and kept as stale, never fresh.
  bool behind = false;
};

// A load's admission to the database: the node's bounds on queries in flight (the namespace's
// `blocked` and max_loads_per_s, shedding.max_pending_loads, then its pool's adaptive limit and the
// namespace's max_inflight_loads, which queue it). A backend calls it once, right before it
// queries the database, and gives it `then`; `then` gets the answer once — at once, or later and
// on another thread when the load waited in its pool's queue. On kAdmitted the backend queries;
// otherwise it does not query but completes the load with ShedResult(answer). A load answered
// without a query (an L2 hit, another node's load) never asks, and so never holds a slot.
using AdmitFn = std::function<void(std::function<void(lease::Admission)> then)>;
BackendResult ShedResult(lease::Admission answer);

// Where namespace loads go (pg-loader in production, a fake in tests).
class LoadBackend {
 public:
  virtual ~LoadBackend() = default;
  // Loads `id` with namespace `ns_index`'s query, asking `admit` first (see AdmitFn); calls
  // `done` exactly once, on any thread (even before Load returns). Must not block on the database.
  // `min_position` (0: none): the key's last invalidation's WAL position; the load should read
  // at or past it (PositionSource).
  virtual void Load(size_t ns_index, std::string id, lease::WalPosition min_position, AdmitFn admit,
                    std::function<void(BackendResult)> done) = 0;
  // Whether some loads are answered without asking `admit` (the tier's L2): then a load the
  // gates would refuse must still be tried, not shed before its lease (CacheService::ShedFirst).
  virtual bool AnswersWithoutAdmission() const { return false; }
  // Runs `body`, in which the admission callbacks of one database call's loads run: the loads
  // they start go to the database together (one batch query with batch_query). Default: as is.
  virtual void Together(const std::function<void()>& body) { body(); }
};

// PostgreSQL's WAL positions (SPEC rule 6): every invalidation gets one, and a fill read before
// it is not cached as fresh (lease/position_fence.h). Without a source, nothing is fenced.
class PositionSource {
 public:
  virtual ~PositionSource() = default;
  // Calls `done` once, on any thread, with the primary's current WAL position (asked after this
  // call, so it covers every write committed before it).
  virtual void CurrentPosition(std::function<void(lease::WalPosition)> done) = 0;
  // A server that namespace `ns_index`'s loads may use has replayed `position`.
  virtual bool CanRead(size_t ns_index, lease::WalPosition position) const = 0;
  // Learn the replicas' positions now rather than at their next health check.
  virtual void RefreshPositions(size_t ns_index) = 0;
  // The lowest position every usable replica has replayed (markers up to it are no longer
  // needed); 0 when none is known.
  virtual lease::WalPosition ReplayedEverywhere() const = 0;
};

// Where this node's invalidations also go: the Redis tier, which deletes its L2 copy, voids the
// cluster lease and tells every other node.
class InvalidationSink {
 public:
  virtual ~InvalidationSink() = default;
  // An invalidation of `key` was applied here, at once: until its Propagate has reached the
  // tier, this node takes nothing of `key` from the tier (what it holds may be older). Exactly one
  // Propagate follows each call.
  virtual void Begin(std::string_view key) = 0;
  // Calls `done` (if set) once the tier has applied the invalidation, or could not within its
  // timeout; on any thread, possibly before returning. `held`: the tier held an entry for `key`.
  // `position`: the invalidation's WAL position (0: none), which fences the tier's fills and
  // travels to the other nodes with it.
  virtual void Propagate(std::string_view key, InvalidationSource source,
                         lease::WalPosition position, std::function<void(bool held)> done) = 0;
  // Every entry of namespace `ns` the tier or any node holds is void (a TRUNCATE). `done` once it
  // is in effect; on any thread.
  virtual void FlushNamespace(std::string_view ns, std::function<void()> done) = 0;
};

class CacheService {
 public:
  // Invalidation markers kept before they are folded into one floor position (coarser, still
  // safe): about 10 MB with 50-byte keys.
  static constexpr size_t kMaxPositionMarkers = 100'000;
  // Everything passed in must outlive the service. `backend` may be null when no namespace is
  // configured. Thread-safe.
  CacheService(const Config& config, lease::Store& store, lease::LeaseTable& leases,
               const lease::Clock& clock, lease::Random& random, Metrics& metrics,
               LoadBackend* backend);

  // Reads `key`. When the answer is known at once (a hit, a stale hit, a plain miss, a held-off
  // error) calls now(answer) before returning and returns true; on a hit `answer.value` points
  // into the store and is valid only inside `now`, which runs under a store lock and must be
  // quick. Otherwise returns false, and calls make_later() once to get the callback that receives
  // the answer exactly once, later, from another thread. Counts corral_requests_total.
  // `min_position` (read-your-writes; 0: none): the WAL position of the client's own last write.
  // A namespace key is answered only with a value read at or past it: one cached from an older
  // read is reloaded for this request (from a server that has replayed it), and if no load reads
  // past it before the request's deadline the answer is BUSY (ShedReason::kNotReplayed), never
  // the older value. Ignored without a PositionSource.
  template <class Now, class MakeLater>
  bool Read(Proto proto, std::string_view key, Now&& now, MakeLater&& make_later,
            lease::WalPosition min_position = 0);

  // SET. For a namespace key without an explicit TTL the namespace's TTL (jittered) applies.
  // Voids the key's lease: a load in flight must not overwrite what was just written.
  lease::SetResult Set(std::string_view key, std::string_view value,
                       std::optional<lease::Millis> ttl_ms,
                       lease::SetCondition cond = lease::SetCondition::kAlways,
                       bool keep_ttl = false);
  // DEL / HTTP DELETE / NOTIFY: voids the key's lease, ends its error hold-off and deletes it;
  // true if an entry existed. `source` labels corral_invalidations_total.
  // With an InvalidationSink, also propagates it (not for kTier: it came from there); with a
  // PositionSource, asks for the invalidation's WAL position and fences fills read before it
  // (lease/position_fence.h). Calls `propagated` once both are done (at once without either).
  // `existed`: an entry existed here or in the tier (what DEL counts).
  // `position` (0: ask the primary): the invalidation's WAL position when it is already known —
  // the client's own write's (read-your-writes) or the one another node's broadcast carries.
  bool Invalidate(std::string_view key, InvalidationSource source,
                  std::function<void(bool existed)> propagated = nullptr,
                  lease::WalPosition position = 0);
  // Set once, before serving; `sink` must outlive the service.
  void SetInvalidationSink(InvalidationSink* sink) { sink_ = sink; }
  // Set once, before serving: called with every key Invalidate applies (whatever its source), and
  // every key whose entry the position fence marks stale after it was answered as fresh, on the
  // thread that did it (WATCH and CLIENT TRACKING: the key changed); `all` after MarkAllStale.
  void SetInvalidatedHook(std::function<void(std::string_view key)> hook,
                          std::function<void()> all = nullptr) {
    invalidated_hook_ = std::move(hook);
    all_stale_hook_ = std::move(all);
  }
  // Set once, before serving; `positions` must outlive the service. Turns on the position fence.
  void SetPositionSource(PositionSource* positions) { positions_ = positions; }
  // WAL positions are tracked (a PositionSource is set): read-your-writes is available.
  bool tracks_positions() const { return positions_ != nullptr; }
  // Invalidation markers held, and their estimated bytes (corral_position_markers...).
  size_t position_markers() const { return fence_.size(); }
  size_t position_marker_bytes() const { return fence_.bytes(); }
  // Invalidate's `propagated` may come later (the tier, or the primary's WAL position): DEL
  // answers once it has.
  bool invalidations_complete_later() const { return sink_ != nullptr || positions_ != nullptr; }
  // The invalidation listener lost its connection: notifications may have been lost, so every
  // read-through entry is treated as stale from now on and every lease is voided.
  // `void_leases` false: loads in flight still fill (the Redis tier's subscription loss, where
  // what those loads read is covered otherwise; see tier_backend.cc).
  void MarkAllStale(bool void_leases = true);
  // Invalidations may have been missed fleet-wide (the WAL slot is new): MarkAllStale here and,
  // with the tier, a new tier epoch (every L2 entry void, every node's L1 stale).
  void MarkAllStaleEverywhere();
  // No fill read at a WAL position below `position` is cached as fresh from now on (every key's
  // fence floor; retired once every replica has replayed it).
  void FenceAllBefore(lease::WalPosition position) { fence_.RaiseFloor(position); }
  // Every entry of namespace `ns` is invalidated (a TRUNCATE of its table, read from the WAL at
  // `position`): each cached key as Invalidate does, and every lease voided (a load in flight may
  // be of a key not cached yet). `done` once each key's invalidation has propagated.
  void InvalidateNamespace(std::string_view ns, InvalidationSource source,
                           lease::WalPosition position, std::function<void()> done);
  bool Exists(std::string_view key) { return store_.Exists(key); }
  lease::Millis Pttl(std::string_view key) { return store_.Pttl(key); }
  bool Expire(std::string_view key, lease::Millis ttl_ms) { return store_.Expire(key, ttl_ms); }
  void FlushAll();

  // Client-side lease protocol (LEASE.GET / LEASE.SET / LEASE.RELEASE, lease/README.md).
  struct LeaseGetAnswer {
    enum class Kind { kValue, kLease, kPending } kind;
    lease::LeaseToken token = 0;
  };
  // kValue: now(answer) was called with a fresh value. kLease: the caller holds the lease `token`
  // and must LEASE.SET or LEASE.RELEASE. kPending: another client holds it; `later` will get the
  // value (waited), a stale value or BUSY on timeout, or — if the holder gives up — a lease:
  // `granted(token)` is called instead.
  template <class Now>
  LeaseGetAnswer LeaseGet(std::string_view key, Now&& now, std::function<ReadLater()> make_later,
                          std::function<void(lease::LeaseToken)> granted);
  // True if `token` was the key's live, un-voided lease: the value is stored and the waiters get
  // it. False: the token was voided (invalidation) or is unknown; nothing is stored.
  bool LeaseSet(std::string_view key, lease::LeaseToken token, std::string_view value,
                std::optional<lease::Millis> ttl_ms);
  bool LeaseRelease(std::string_view key, lease::LeaseToken token);

  // Times out lease waiters, expires abandoned leases and drops queued loads that can no longer
  // finish in time; the server calls it from a timer.
  void Tick();

  lease::Store& store() { return store_; }
  lease::LeaseTable& leases() { return leases_; }
  const lease::Clock& clock() const { return clock_; }
  int64_t pending_loads() const { return pending_gate_.inflight(); }
  // Each pool's adaptive limit, loads in flight and queued (corral_concurrency_limit{pool}, ...).
  std::vector<PoolGauges> PoolStatus() const;
  // While one is alive on a thread, a database call of a batched namespace granted its slot on
  // that thread stays open to more loads until the last Gather ends: MGET's cold keys of one
  // namespace are one call (up to batch_max), not one each. Nests; thread-local.
  class Gather {
   public:
    explicit Gather(CacheService& service);
    ~Gather();
    Gather(const Gather&) = delete;
    Gather& operator=(const Gather&) = delete;

   private:
    CacheService& service_;
  };

  // Run-time admission changes (CONFIG SET / admin route). False if the namespace is unknown.
  bool SetNamespaceLimit(std::string_view ns, std::optional<int64_t> max_inflight,
                         std::optional<double> max_per_s, std::optional<bool> blocked);

 private:
  // A database call of a batched namespace: the loads that share one slot of its pool's limiter
  // (admission counts calls, not keys) and go to the database together.
  struct Call;
  // The Gathers alive on this thread and the calls they hold open (cache_service.cc).
  struct GatherState;
  static thread_local GatherState gather_;
  struct Namespace {
    Namespace(const NamespaceConfig& c, size_t i, const lease::Clock& clock,
              lease::LoadLimiter& pool_limiter)
        : config(c),
          index(i),
          limiter(pool_limiter),
          group(pool_limiter.AddGroup(c.max_inflight_loads, c.priority)),
          gate(0, c.max_loads_per_s, c.blocked, clock),
          batch_max(!c.batch_query.empty() && c.batch_max > 1 ? static_cast<size_t>(c.batch_max)
                                                              : 1),
          blocked_text(proto::ShedText(proto::ShedReason::kBlocked, c.name)),
          rate_text(proto::ShedText(proto::ShedReason::kRate, c.name)),
          pending_text(proto::ShedText(proto::ShedReason::kPendingLoads, c.name)) {}
    // The text of a shed ShedFirst decides, made once rather than per answer.
    std::string_view ShedFirstText(proto::ShedReason r) const {
      return r == proto::ShedReason::kBlocked ? blocked_text
             : r == proto::ShedReason::kRate  ? rate_text
                                              : pending_text;
    }
    NamespaceConfig config;
    size_t index;
    lease::LoadLimiter& limiter;   // its pool's, shared with the pool's other namespaces
    size_t group;                  // its share of the limiter (its max_inflight_loads)
    mutable lease::LoadGate gate;  // `blocked` and max_loads_per_s; no bound on loads in flight
    // Loads per database call: batch_max with a batch_query, else 1 (each load is a call).
    size_t batch_max = 1;
    // The call that loads of this namespace join (waiting for its slot, or held by a Gather).
    mutable std::mutex call_mu;
    mutable std::shared_ptr<Call> open_call;
    std::string blocked_text, rate_text, pending_text;
  };
  // One read request that went past the store: how it ends up being answered.
  struct Request;

  const Namespace* FindNamespace(std::string_view key) const;
  // A miss on a key nobody is loading, that the gates which shed at once (`blocked`, the rate,
  // max_pending_loads) would refuse: its reason, decided before a lease, a request or a load is
  // made for it, so that a shed answer costs no more than a hit. nullopt: go the usual way.
  std::optional<proto::ShedReason> ShedFirst(std::string_view key, const Namespace& ns) const;
  // The slow path of Read: no servable entry. Answers through request->later.
  void Miss(std::string_view key, const Namespace& ns, std::shared_ptr<Request> request);
  // `request` holds `token`: admit, register as a waiter on the lease, start the load — or, if
  // not admitted, answer BUSY to it and to every waiter of the lease.
  void LeadAndWait(const std::string& key, const Namespace& ns,
                   const std::shared_ptr<Request>& request, lease::LeaseToken token);
  // A load's result as the answer to one request; `scratch` holds the error text it points to.
  static ReadAnswer AnswerFromResult(const lease::LoadResult& r, Outcome outcome,
                                     std::string& scratch);
  lease::WaiterFn Waiter(const std::string& key, const Namespace& ns,
                         std::shared_ptr<Request> request);
  // Background reload of a servable entry (refresh-ahead, stale-while-revalidate).
  void Refresh(std::string_view key, const Namespace& ns);
  // The pool's limiter: its floor and ceiling from postgres.pools.NAME.
  lease::LoadLimiterOptions LimiterOptions(const std::string& pool_name) const;
  // Admission for one more load of `ns` (see AdmitFn): `then` gets the answer, now or once the
  // load leaves its pool's queue, and the database call it shares (batched namespaces; else
  // null). On kAdmitted the caller owes FinishAdmitted.
  using AdmittedFn = std::function<void(lease::Admission, const std::shared_ptr<Call>&)>;
  void Admit(const Namespace& ns, lease::Millis deadline_ms, AdmittedFn then);
  // `load_ms`: the admitted load's time from admission to its end, when it queried the database
  // (a sample for its pool's limit). A call's slot is released with its last load.
  void FinishAdmitted(const Namespace& ns, std::optional<lease::Millis> load_ms,
                      const std::shared_ptr<Call>& call);
  // The limiter answered `call`'s slot: sent now, or held open by a Gather on this thread.
  void CallAnswered(const Namespace& ns, const std::shared_ptr<Call>& call, lease::Admission a);
  // Closes `call` to new loads and answers every load in it with `a`; admitted ones go to the
  // database together (LoadBackend::Together).
  void SendCall(const Namespace& ns, const std::shared_ptr<Call>& call, lease::Admission a);
  // `refresh`: a background reload, counted in corral_refreshes_total once admitted or shed.
  // `deadline_ms`: when its first waiter gives up (for a refresh, now + wait_timeout_ms): a load
  // still queued then is dropped. `fenced_before`: a load of the same lease read before the
  // key's last invalidation already (this is its one retry, routed past that position).
  // `wanted`: the position a read-your-writes request needs the load to read at (0: none).
  void StartLoad(const std::string& key, const Namespace& ns, lease::LeaseToken token, bool refresh,
                 lease::Millis deadline_ms, bool fenced_before = false,
                 lease::WalPosition wanted = 0);
  // The fence's verdict on a database fill of `key` (SPEC rule 6): true when the load was retried
  // (the fill is dropped), else sets *stale when it is to be kept and answered as stale, and
  // *recheck when it passed only because the key's invalidation position was not known yet.
  bool FenceFill(const std::string& key, const Namespace& ns, lease::LeaseToken token, bool refresh,
                 lease::Millis deadline_ms, bool fenced_before, lease::WalPosition wanted,
                 lease::FenceTicket ticket, const BackendResult& r, bool* stale, bool* recheck);
  // A read-your-writes request's load came back read before the client's write: it loads once
  // more while it can still wait, else it is answered BUSY (not_replayed).
  void BehindClientWrite(const std::string& key, const Namespace& ns,
                         const std::shared_ptr<Request>& request);
  // `key` has an invalidation marker that a server of `ns` has replayed: its stale entry (the
  // row from before the invalidation) is reloaded rather than served. Called under a store lock.
  bool CanReadPastInvalidation(std::string_view key, const Namespace& ns) const {
    const lease::WalPosition need = fence_.Need(key);
    return need > 0 && positions_->CanRead(ns.index, need);
  }
  // An invalidation's position arrived: resolve the marker, mark a fill that slipped in stale.
  void ResolvePosition(const std::string& key, lease::WalPosition position);
  lease::FillOptions FillFor(const Namespace& ns, lease::LoadResult::Kind kind,
                             uint32_t load_ms) const;
  // Answers a timed-out waiter: the stale value if the store has one, else BUSY.
  void AnswerTimedOut(const std::string& key, Request& request);
  void Count(Proto proto, Outcome outcome, std::chrono::steady_clock::time_point start);
  // corral_shed_total{reason}: once per shed request, and once per shed background refresh.
  void CountShed(proto::ShedReason reason);

  const Config& config_;
  lease::Store& store_;
  lease::LeaseTable& leases_;
  const lease::Clock& clock_;
  lease::Random& random_;
  Metrics& metrics_;
  LoadBackend* backend_;
  InvalidationSink* sink_ = nullptr;
  std::function<void(std::string_view)> invalidated_hook_;
  std::function<void()> all_stale_hook_;
  PositionSource* positions_ = nullptr;
  lease::PositionFence fence_{kMaxPositionMarkers};
  std::atomic<lease::Millis> next_fence_expiry_{0};
  lease::ErrorHoldoff holdoff_;
  lease::LoadGate pending_gate_;  // shedding.max_pending_loads across all namespaces
  // By pool name: each pool's adaptive concurrency limit and queue (SPEC rule 8).
  std::map<std::string, std::unique_ptr<lease::LoadLimiter>> limiters_;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<Namespace>, Hash, std::equal_to<>> namespaces_;
};

// A request answered in the batch that read it ends at the batch's clock snapshot, like it
// started: its time is below the first histogram bucket either way (lease::ClockSnapshot).
inline void CacheService::Count(Proto proto, Outcome outcome,
                                std::chrono::steady_clock::time_point start) {
  metrics_.CountRequest(proto, outcome,
                        std::chrono::duration<double>(lease::SteadyNow() - start).count());
}

struct CacheService::Request {
  Proto proto;
  std::chrono::steady_clock::time_point start;
  lease::Millis deadline;
  ReadLater later;
  lease::WalPosition min_position = 0;  // read-your-writes: see Read
  bool reloaded = false;                // read-your-writes: its one more load was started
  bool loaded = false;  // this request started a load itself (its answer is a miss, not waited)
  bool answered = false;
  std::function<void(lease::LeaseToken)> granted;  // LEASE.GET: hand a lease to the client

  void Answer(CacheService& svc, const ReadAnswer& answer) {
    answered = true;
    Outcome outcome = answer.outcome;
    if (answer.kind == ReadAnswer::Kind::kBusy) {
      outcome = Outcome::kShed;
      svc.CountShed(answer.shed);
    }
    if (answer.kind == ReadAnswer::Kind::kError) outcome = Outcome::kError;
    svc.Count(proto, outcome, start);
    later(answer);
  }
};

template <class Now, class MakeLater>
bool CacheService::Read(Proto proto, std::string_view key, Now&& now, MakeLater&& make_later,
                        lease::WalPosition min_position) {
  auto start = lease::SteadyNow();
  const Namespace* ns = FindNamespace(key);
  lease::Millis now_ms = clock_.NowMs();
  lease::Freshness freshness = lease::Freshness::kFresh;
  Outcome outcome = Outcome::kMiss;
  // Stale, and a server can now read past its key's last invalidation; or read before the
  // client's own write.
  bool reload = false;
  if (positions_ == nullptr) min_position = 0;
  bool found = store_.Get(key, [&](std::string_view value, const lease::EntryMeta& meta) {
    if (ns != nullptr) {
      if (meta.position < min_position) {
        reload = true;  // never the row from before the client's own write
        return;
      }
      freshness = lease::Classify(meta, now_ms, [this] { return random_.Uniform01(); });
      if (freshness == lease::Freshness::kStale && positions_ != nullptr &&
          CanReadPastInvalidation(key, *ns)) {
        reload = true;  // the old row is not served once the new one can be read
        return;
      }
    }
    ReadAnswer answer;
    bool value_kind = meta.kind == lease::EntryKind::kValue;
    answer.kind = value_kind ? ReadAnswer::Kind::kValue : ReadAnswer::Kind::kNotFound;
    answer.outcome = freshness == lease::Freshness::kStale ? Outcome::kStale
                     : value_kind                          ? Outcome::kHit
                                                           : Outcome::kNotFound;
    outcome = answer.outcome;
    answer.value = value;
    answer.age_ms = now_ms - meta.filled_at;
    now(answer);
  });
  if (found && !reload) {
    Count(proto, outcome, start);
    if (freshness != lease::Freshness::kFresh) Refresh(key, *ns);
    return true;
  }
  if (ns == nullptr) {
    ReadAnswer answer;  // a plain miss: nil
    Count(proto, Outcome::kMiss, start);
    now(answer);
    return true;
  }
  if (std::optional<std::string> error = holdoff_.Check(key)) {
    std::string text =
        std::string(proto::kUpstreamPrefix) + *error + std::string(proto::kHeldOffSuffix);
    ReadAnswer answer;
    answer.kind = ReadAnswer::Kind::kError;
    answer.outcome = Outcome::kError;
    answer.error = text;
    Count(proto, Outcome::kError, start);
    now(answer);
    return true;
  }
  if (!found) {
    if (std::optional<proto::ShedReason> shed = ShedFirst(key, *ns)) {
      CountShed(*shed);
      Count(proto, Outcome::kShed, start);
      now(BusyAnswerWithText(*shed, ns->ShedFirstText(*shed)));
      return true;
    }
  }
  auto request = std::make_shared<Request>();
  request->proto = proto;
  request->start = start;
  request->deadline = now_ms + config_.lease.wait_timeout_ms;
  request->later = make_later();
  request->min_position = min_position;
  Miss(key, *ns, std::move(request));
  return false;
}

template <class Now>
CacheService::LeaseGetAnswer CacheService::LeaseGet(
    std::string_view key, Now&& now, std::function<ReadLater()> make_later,
    std::function<void(lease::LeaseToken)> granted) {
  auto start = lease::SteadyNow();
  lease::Millis now_ms = clock_.NowMs();
  bool served = false;
  store_.Get(key, [&](std::string_view value, const lease::EntryMeta& meta) {
    // Only a fresh value is an answer; a stale or negative entry makes the client load.
    if (now_ms >= meta.fresh_until || meta.kind != lease::EntryKind::kValue) return;
    ReadAnswer answer;
    answer.kind = ReadAnswer::Kind::kValue;
    answer.outcome = Outcome::kHit;
    answer.value = value;
    answer.age_ms = now_ms - meta.filled_at;
    served = true;
    now(answer);
  });
  if (served) {
    Count(Proto::kResp, Outcome::kHit, start);
    return {LeaseGetAnswer::Kind::kValue, 0};
  }
  auto request = std::make_shared<Request>();
  request->proto = Proto::kResp;
  request->start = start;
  request->deadline = now_ms + config_.lease.wait_timeout_ms;
  request->granted = std::move(granted);
  std::string k(key);
  request->later = make_later();
  lease::LeaseTable::Acquired acq = leases_.AcquireOrWait(
      k,
      [this, k, request](lease::WaitOutcome w) {
        if (w.kind == lease::WaitOutcome::Kind::kLeaseGranted) {
          request->answered = true;
          request->granted(w.token);
          return;
        }
        if (w.kind == lease::WaitOutcome::Kind::kTimedOut) return AnswerTimedOut(k, *request);
        std::string scratch;
        ReadAnswer answer = AnswerFromResult(*w.result, Outcome::kWaited, scratch);
        request->Answer(*this, answer);
      },
      request->deadline);
  if (acq.leader) {
    Count(Proto::kResp, Outcome::kMiss, start);
    return {LeaseGetAnswer::Kind::kLease, acq.token};
  }
  return {LeaseGetAnswer::Kind::kPending, 0};
}

}  // namespace corral::server

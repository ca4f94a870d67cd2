// The Redis tier's protocol, in Lua scripts that each touch one key's hash slot ("P{K}" for the
// value hash, "P{K}:lease", "P{K}:error"), so they run on a Redis Cluster unchanged. Every step
// runs on the tier's one thread; see tier_backend.h for the contract.
#include "cache-server/tier_backend.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache-server/log.h"
#include "cache-server/tier_replies.h"
#include "cache-server/tier_scripts.h"
#include "tier/redis_client.h"

namespace corral::server {

namespace asio = boost::asio;
using lease::LoadResult;
using tier::Result;

namespace tier_keys {
std::string Value(std::string_view prefix, std::string_view key) {
  return std::string(prefix) + "{" + std::string(key) + "}";
}
std::string Lease(std::string_view prefix, std::string_view key) {
  return Value(prefix, key) + ":lease";
}
std::string Error(std::string_view prefix, std::string_view key) {
  return Value(prefix, key) + ":error";
}
std::string Fence(std::string_view prefix, std::string_view key) {
  return Value(prefix, key) + ":fence";
}
std::string Epoch(std::string_view prefix) { return std::string(prefix) + "epoch"; }
std::string Nodes(std::string_view prefix) { return std::string(prefix) + "{nodes}"; }
std::string WalReader(std::string_view prefix) { return std::string(prefix) + "wal:reader"; }
}  // namespace tier_keys

namespace {

using tier_scripts::kAlive;
using tier_scripts::kBumpEpoch;
using tier_scripts::kFill;
using tier_scripts::kHeartbeatScript;
using tier_scripts::kInvalidate;
using tier_scripts::kLookup;
using tier_scripts::kMembers;
using tier_scripts::kRelease;
using tier_scripts::kTakeover;
using tier_scripts::kWalReader;
using tier_scripts::kWalReaderRelease;

constexpr auto kHeartbeat = std::chrono::milliseconds(1000);
constexpr int64_t kLivenessTtlMs = 3000;  // a node unheard of this long is gone
constexpr auto kHolderCheck = std::chrono::milliseconds(1000);  // while waiting on another node
constexpr int kMaxLookups = 16;                                 // per load; then node-local

TierResult ResultOf(const Result& r) {
  switch (r.status) {
    case Result::Status::kOk:
      return r.reply.IsError() ? TierResult::kError : TierResult::kOk;
    case Result::Status::kTimeout:
      return TierResult::kTimeout;
    case Result::Status::kDisconnected:
    case Result::Status::kDown:
      break;
  }
  return TierResult::kDown;
}

std::string RandomNodeId() {
  std::random_device rd;
  uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

tier::ClientOptions ClientOptionsOf(const RedisConfig& r) {
  tier::ClientOptions o;
  o.nodes = r.nodes;
  o.cluster = r.cluster == "true"    ? tier::ClientOptions::Cluster::kOn
              : r.cluster == "false" ? tier::ClientOptions::Cluster::kOff
                                     : tier::ClientOptions::Cluster::kAuto;
  o.timeout = std::chrono::milliseconds(r.timeout_ms);
  o.user = r.user;
  o.password = r.password;
  return o;
}

// Rate-limited warnings: one line a second per event name at most.
void LogTier(const std::string& event, const std::string& fields) {
  static std::atomic<int64_t> last_ms{0};
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now - last < 1000 || !last_ms.compare_exchange_strong(last, now)) return;
  Log(LogLevel::kWarn, event, fields);
}

}  // namespace

struct TierBackend::Impl : std::enable_shared_from_this<Impl> {
  // One load of one key through the tier.
  struct Pending {
    size_t ns = 0;
    std::string id;
    std::string key;
    std::function<void(BackendResult)> done;
    AdmitFn admit;  // asked by `db` before it queries (a lease won, or the fallback)
    lease::WalPosition min_position = 0;  // passed to `db` (CacheService's position fence)
    std::string owner;                    // this load's lease name, "node:n"
    std::string holder;                   // the other node's lease it waits on
    std::chrono::steady_clock::time_point give_up;
    std::optional<asio::steady_timer> check;
    int lookups = 0;
    bool waited = false;
    bool finished = false;
  };
  using PendingPtr = std::shared_ptr<Pending>;

  Impl(const Config& c, LoadBackend& d, Metrics& m)
      : config(c),
        redis(*c.redis),
        db(d),
        metrics(m),
        node_id(RandomNodeId()),
        filled_channel(redis.prefix + "filled"),
        invalidated_channel(redis.prefix + "invalidated"),
        ack_channel(redis.prefix + "ack:" + node_id),
        epoch_channel(redis.prefix + "epoch"),
        messages_channel(redis.prefix + "messages"),
        fence_ms(FenceMs(c)),
        heartbeat(io),
        epoch_retry(io),
        bump_retry(io),
        leave_timer(io),
        rng(std::random_device{}()) {
    for (const auto& [name, ns] : config.namespaces) namespaces.push_back(&ns);
  }

  // How long L2 keeps an invalidation's position (kInvalidate): a replica still behind it that
  // long after is past max_replica_lag_ms, and loads skip it from its next health check on;
  // twice that, and at least 10 s.
  static int64_t FenceMs(const Config& c) {
    if (!c.postgres) return 10000;
    const int64_t behind = c.postgres->max_replica_lag_ms + c.postgres->health_check_interval_ms +
                           c.postgres->statement_timeout_ms;
    return std::max<int64_t>(10000, 2 * behind);
  }

  const Config& config;
  const RedisConfig& redis;
  LoadBackend& db;
  Metrics& metrics;
  CacheService* cache = nullptr;
  const std::string node_id;
  // Namespace flushes waiting for an epoch bump: the miss count each needs covered, and `done`.
  std::vector<std::pair<uint64_t, std::function<void()>>> after_bump;
  bool wal_reader_wanted = false;            // set before Start()
  std::atomic<int64_t> wal_reader_until{0};  // steady ms: the WAL reader lease is ours until
  const std::string filled_channel, invalidated_channel, ack_channel, epoch_channel;
  // Clients' PUBLISH, relayed between nodes: "<origin> <channel length> <channel><message>".
  const std::string messages_channel;
  std::function<void(std::string_view, std::string_view)> deliver;  // set before Start
  const int64_t fence_ms;
  std::vector<const NamespaceConfig*> namespaces;  // by CacheService's namespace index

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::unique_ptr<tier::Client> client;
  std::unique_ptr<tier::Subscriber> subscriber;
  asio::steady_timer heartbeat;
  asio::steady_timer epoch_retry;  // joining and reading the epoch (one after the other)
  asio::steady_timer bump_retry;   // its own: a shared timer's re-arm would cancel the other
  asio::steady_timer leave_timer;  // Leave's bound
  std::mt19937_64 rng;             // tier thread only
  uint64_t next_owner = 1;

  std::atomic<bool> subscribed{false};
  std::atomic<int64_t> epoch{-1};       // the newest epoch this node knows; -1: not read yet
  std::atomic<int64_t> epoch_seen{-1};  // the newest announced before it was read (SetEpoch)
  // An invalidation missed L2, or Redis may have lost writes it acknowledged: L2 is not read
  // until a new epoch voids what it held.
  std::atomic<bool> missed{false};
  bool bumping = false;
  uint64_t misses = 0;  // invalidations that missed L2, ever (tier thread)
  std::unordered_map<std::string, std::vector<PendingPtr>> waiting;  // by key
  // Keys whose invalidation by this node has not reached L2 yet (how many in flight). This node
  // applied it to L1 already, and answers nothing L2 held before it: a NOTIFY reaches every node
  // but each deletes L2 in its own time, and another node's fill read before the update may be
  // in L2 until then.
  std::unordered_map<std::string, int> invalidating;
  // Broadcast invalidations of this node not yet acknowledged by every live node.
  // Answered once the invalidation is in L2, the membership is read, and every other member
  // has acknowledged (acks may come before the membership does).
  struct Broadcast {
    bool invalidated = false;
    bool held = false;                                // L2 held an entry for the key
    std::optional<std::vector<std::string>> members;  // the other live nodes
    // Subscriber connections the broadcast reached (-1: unknown, a cluster), and whether ours
    // was one of them (it delivered the broadcast back to us).
    int64_t reached = -1;
    bool reached_us = false;
    std::vector<std::string> acked;
    std::function<void(bool held)> done;
    std::optional<asio::steady_timer> timer;
  };
  std::unordered_map<uint64_t, std::shared_ptr<Broadcast>> broadcasts;  // by sequence number
  uint64_t next_broadcast = 1;
  bool stopped = false;

  // L2 is trusted only with the subscription up (else broadcasts may be missed), the epoch
  // known, and no invalidation of ours missing from it.
  bool Usable() const {
    return client->up() && subscribed.load() && epoch.load() >= 0 && !missed.load();
  }

  void Eval(TierOp op, const std::string& script, std::vector<std::string> keys,
            std::vector<std::string> args, std::function<void(const Result&)> then) {
    client->Eval(script, std::move(keys), std::move(args),
                 [self = shared_from_this(), op, then = std::move(then)](Result r) {
                   self->metrics.CountTier(op, ResultOf(r));
                   if (!r.ok() && r.status == Result::Status::kOk) {
                     LogTier("tier_script_error", "error=" + LogQuote(r.reply.str));
                   }
                   then(r);
                 });
  }

  // ---- Loads ----

  void Lookup(const PendingPtr& p) {
    if (p->finished) return;
    if (stopped || !Usable() || ++p->lookups > kMaxLookups ||
        std::chrono::steady_clock::now() >= p->give_up) {
      return Fallback(p);
    }
    const std::string& prefix = redis.prefix;
    Eval(TierOp::kLookup, kLookup,
         {tier_keys::Value(prefix, p->key), tier_keys::Lease(prefix, p->key),
          tier_keys::Error(prefix, p->key)},
         {p->owner, std::to_string(config.lease.lease_ttl_ms), std::to_string(epoch.load()),
          std::to_string(p->min_position)},
         [self = shared_from_this(), p](const Result& r) { self->OnLookup(p, r); });
  }

  void OnLookup(const PendingPtr& p, const Result& r) {
    if (p->finished) return;
    std::optional<LookupReply> lookup;
    if (r.ok()) lookup = DecodeLookup(r.reply);
    if (!lookup) return Fallback(p);
    using Kind = LookupReply::Kind;
    // What L2 holds is void until the next epoch (the lease, taken or waited on, is still good),
    // and what it holds for a key this node is invalidating is older than that invalidation.
    if ((lookup->kind == Kind::kHit || lookup->kind == Kind::kError) &&
        (missed.load() || invalidating.count(p->key) != 0)) {
      return Fallback(p);
    }
    switch (lookup->kind) {
      case Kind::kHit: {
        metrics.tier_lookups.Add(TierLookup::kHit);
        BackendResult result;
        result.kind = lookup->not_found ? LoadResult::Kind::kNotFound : LoadResult::Kind::kValue;
        result.data = std::move(lookup->data);
        SetLifetime(result, lookup->fresh_left_ms, lookup->stale_window_ms);
        result.load_ms = lookup->load_ms;
        result.position = lookup->position;
        result.from_db = false;
        return Finish(p, std::move(result));
      }
      case Kind::kError: {
        BackendResult result;
        result.kind = LoadResult::Kind::kError;
        result.data = std::move(lookup->data);
        result.from_db = false;
        return Finish(p, std::move(result));
      }
      case Kind::kWon:
        metrics.tier_lookups.Add(TierLookup::kWon);
        return LoadFromDb(p);
      case Kind::kWait:
        if (!p->waited) metrics.tier_lookups.Add(TierLookup::kWaited);
        p->waited = true;
        p->holder = std::move(lookup->data);
        return Wait(p);
    }
    Fallback(p);
  }

  // L1 keeps a tier value fresh for what is left of it, at most l1_ttl_ms; the rest of its life
  // it is stale (served while this node rechecks L2).
  void SetLifetime(BackendResult& result, int64_t fresh_left, int64_t stale_window) {
    int64_t fresh = std::clamp<int64_t>(fresh_left, 1, redis.l1_ttl_ms);
    result.fresh_ms = fresh;
    result.stale_ms = std::max<int64_t>(0, fresh_left - fresh + stale_window);
  }

  // Waits for the holder's PUBLISH (Wake), checking every kHolderCheck that the holder lives.
  void Wait(const PendingPtr& p) {
    auto now = std::chrono::steady_clock::now();
    if (now >= p->give_up) return Fallback(p);
    waiting[p->key].push_back(p);
    p->check.emplace(io);
    p->check->expires_after(
        std::min<std::chrono::steady_clock::duration>(kHolderCheck, p->give_up - now));
    p->check->async_wait([self = shared_from_this(), p](boost::system::error_code ec) {
      if (ec || p->finished || !self->Unwait(p)) return;
      self->CheckHolder(p);
    });
  }

  // Takes `p` off the waiting list; false if it was not on it (a wake got there first).
  bool Unwait(const PendingPtr& p) {
    auto it = waiting.find(p->key);
    if (it == waiting.end()) return false;
    auto& list = it->second;
    auto pos = std::find(list.begin(), list.end(), p);
    if (pos == list.end()) return false;
    list.erase(pos);
    if (list.empty()) waiting.erase(it);
    return true;
  }

  // The holder's node is gone (its liveness key expired): take its lease over at once rather
  // than wait out lease_ttl_ms.
  void CheckHolder(const PendingPtr& p) {
    std::string holder_node = p->holder.substr(0, p->holder.find(':'));
    Eval(TierOp::kLiveness, kAlive, {tier_keys::Nodes(redis.prefix)},
         {holder_node, std::to_string(kLivenessTtlMs)},
         [self = shared_from_this(), p](const Result& r) {
           if (p->finished) return;
           if (!r.ok()) return self->Fallback(p);
           // Not a flag: as before the decoders, taken as "not alive" (the takeover is a
           // compare-and-set on the holder's lease, so it cannot take a lease from anyone else).
           if (DecodeFlag(r.reply).value_or(false)) return self->Lookup(p);
           self->Eval(TierOp::kTakeover, kTakeover, {tier_keys::Lease(self->redis.prefix, p->key)},
                      {p->holder, p->owner, std::to_string(self->config.lease.lease_ttl_ms)},
                      [self, p](const Result& t) {
                        if (p->finished) return;
                        if (!t.ok()) return self->Fallback(p);
                        if (DecodeFlag(t.reply).value_or(false)) {
                          self->metrics.tier_leases.Add(TierLease::kTakenOver);
                          Log(LogLevel::kInfo, "tier_lease_taken_over",
                              "key=" + LogQuote(p->key) + " holder=" + LogQuote(p->holder));
                          return self->LoadFromDb(p);
                        }
                        self->Lookup(p);
                      });
         });
  }

  void Wake(const std::string& key) {
    auto it = waiting.find(key);
    if (it == waiting.end()) return;
    std::vector<PendingPtr> list = std::move(it->second);
    waiting.erase(it);
    for (const PendingPtr& p : list) {
      if (p->check) p->check->cancel();
      Lookup(p);
    }
  }

  void WakeAll() {
    std::vector<std::string> keys;
    for (const auto& [key, list] : waiting) keys.push_back(key);
    for (const std::string& key : keys) Wake(key);
  }

  void LoadFromDb(const PendingPtr& p) {
    db.Load(p->ns, p->id, p->min_position, p->admit,
            [self = shared_from_this(), p](BackendResult r) {
              asio::post(self->io,
                         [self, p, r = std::move(r)]() mutable { self->Store(p, std::move(r)); });
            });
  }

  // The lease holder's load finished: fill L2 (compare-and-set) or hold the error off, then wake
  // the other nodes (the scripts PUBLISH). A load this node's admission refused releases the
  // lease with no hold-off: another node may have room for it.
  void Store(const PendingPtr& p, BackendResult r) {
    if (p->finished) return;
    const std::string& prefix = redis.prefix;
    // An error, a shed, or a read from a lagging replica (panic mode: this node keeps it as
    // stale only) fills nothing: the lease is released, held off only after an error.
    if ((r.kind != LoadResult::Kind::kValue && r.kind != LoadResult::Kind::kNotFound) || r.behind) {
      Eval(TierOp::kRelease, kRelease,
           {tier_keys::Lease(prefix, p->key), tier_keys::Error(prefix, p->key)},
           {p->owner, r.data,
            std::to_string(r.kind == LoadResult::Kind::kError ? config.lease.error_holdoff_ms : 0),
            filled_channel, p->key},
           [self = shared_from_this(), p, r](const Result& res) mutable {
             if (res.ok() && DecodeFlag(res.reply).value_or(false)) {
               self->metrics.tier_leases.Add(TierLease::kReleased);
             }
             self->Finish(p, std::move(r));
           });
      return;
    }
    const NamespaceConfig& ns = *namespaces[p->ns];
    bool found = r.kind == LoadResult::Kind::kValue;
    // The jittered TTL is drawn once, here, and travels with the value: every node expires it
    // at the same moment (SPEC.md rule 3, fleet-wide).
    double base = static_cast<double>(found ? ns.ttl_ms : ns.negative_ttl_ms);
    double j = std::clamp(ns.ttl_jitter, 0.0, 1.0);
    std::uniform_real_distribution<double> draw(1.0 - j, 1.0 + j);
    int64_t fresh = std::max<int64_t>(1, static_cast<int64_t>(base * draw(rng)));
    int64_t stale = ns.stale_ms;
    uint32_t load_ms = static_cast<uint32_t>(std::min<int64_t>(r.micros / 1000, UINT32_MAX));
    Eval(TierOp::kFill, kFill,
         {tier_keys::Value(prefix, p->key), tier_keys::Lease(prefix, p->key),
          tier_keys::Fence(prefix, p->key)},
         {p->owner, r.data, found ? "v" : "n", std::to_string(fresh), std::to_string(stale),
          std::to_string(epoch.load()), std::to_string(load_ms), filled_channel, p->key,
          std::to_string(r.position)},
         [self = shared_from_this(), p, r, fresh, stale, load_ms](const Result& res) mutable {
           std::optional<FillReply> fill;
           if (res.ok()) fill = DecodeFill(res.reply);
           if (fill && fill->kind == FillReply::Kind::kFenced) {
             // Read before an invalidation this node may not have heard of yet: the node keeps
             // it only as stale (CacheService::FenceFill), like a fill its own fence caught.
             self->metrics.tier_leases.Add(TierLease::kVoided);
             r.fenced_at = fill->fenced_at;
           } else if (fill && fill->kind == FillReply::Kind::kFilled) {
             self->metrics.tier_leases.Add(TierLease::kFilled);
             self->SetLifetime(r, fresh, stale);
             r.load_ms = load_ms;
           } else if (res.ok()) {
             // An invalidation voided the lease while the query ran (or the answer made no
             // sense): the waiters that asked before it get the row, nobody caches it (SPEC.md
             // rule 6, fleet-wide).
             self->metrics.tier_leases.Add(TierLease::kVoided);
             r.cacheable = false;
           }
           // A fill that did not reach Redis: this node caches as it would alone.
           self->Finish(p, std::move(r));
         });
  }

  void Finish(const PendingPtr& p, BackendResult r) {
    if (p->finished) return;
    p->finished = true;
    if (p->check) p->check->cancel();
    p->done(std::move(r));
  }

  // Node-local single flight: the node's own lease table still allows one load per key.
  void Fallback(const PendingPtr& p) {
    if (p->finished) return;
    p->finished = true;
    if (p->check) p->check->cancel();
    metrics.tier_fallbacks.Add();
    // Without the tier this node may miss other nodes' invalidations: its own fill is trusted as
    // fresh for at most l1_ttl_ms (then rechecked), like an L1 copy of a tier value. Jittered
    // down by the namespace's ttl_jitter (drawn here: rng is the tier thread's), so the keys one
    // outage loaded together do not all expire together.
    const NamespaceConfig& ns = *namespaces[p->ns];
    double j = std::clamp(ns.ttl_jitter, 0.0, 1.0);
    double factor = std::uniform_real_distribution<double>(1.0 - j, 1.0)(rng);
    db.Load(
        p->ns, p->id, p->min_position, std::move(p->admit),
        [self = shared_from_this(), done = std::move(p->done), &ns, factor](BackendResult r) {
          if (r.kind == LoadResult::Kind::kValue || r.kind == LoadResult::Kind::kNotFound) {
            int64_t ttl = r.kind == LoadResult::Kind::kValue ? ns.ttl_ms : ns.negative_ttl_ms;
            int64_t fresh = std::max<int64_t>(
                1, std::llround(static_cast<double>(std::min<int64_t>(ttl, self->redis.l1_ttl_ms)) *
                                factor));
            r.fresh_ms = fresh;
            r.stale_ms = std::max<int64_t>(0, ttl - fresh) + ns.stale_ms;
            r.load_ms = static_cast<uint32_t>(std::min<int64_t>(r.micros / 1000, UINT32_MAX));
          }
          done(std::move(r));
        });
  }

  // ---- Invalidations ----

  void Propagate(std::string key, InvalidationSource source, lease::WalPosition position,
                 std::function<void(bool)> done) {
    std::function<void(bool)> finish = [done = std::move(done)](bool held) {
      if (done) done(held);
    };
    if (stopped || !client->up()) {
      Uninvalidating(key);
      MissedInvalidation(key, "tier down");
      return finish(false);
    }
    // Every node hears a NOTIFY itself; DEL, SET, HTTP DELETE and what the WAL reader (one node
    // of the fleet) reads are broadcast to the others, and answered once every live node has
    // applied it to its L1 (or redis.timeout_ms passed): a read sent to any node after the
    // answer cannot get the old value.
    bool broadcast = source != InvalidationSource::kNotify;
    uint64_t seq = broadcast ? next_broadcast++ : 0;
    std::string channel = broadcast ? invalidated_channel : "";
    const std::string& prefix = redis.prefix;
    if (broadcast) {
      auto b = std::make_shared<Broadcast>();
      b->done = std::move(finish);
      b->timer.emplace(io);
      b->timer->expires_after(std::chrono::milliseconds(redis.timeout_ms));
      b->timer->async_wait([self = shared_from_this(), seq](boost::system::error_code ec) {
        if (!ec) self->EndBroadcast(seq, /*timed_out=*/true);
      });
      broadcasts.emplace(seq, std::move(b));
      // Read now, not from the last heartbeat: a node that joined a moment ago is waited for.
      Eval(TierOp::kLiveness, kMembers, {tier_keys::Nodes(prefix)},
           {std::to_string(kLivenessTtlMs)}, [self = shared_from_this(), seq](const Result& r) {
             auto it = self->broadcasts.find(seq);
             if (it == self->broadcasts.end()) return;
             std::vector<std::string> members;
             if (r.ok()) members = DecodeMembers(r.reply).value_or(std::vector<std::string>{});
             std::erase(members, self->node_id);
             it->second->members = std::move(members);
             self->MaybeEndBroadcast(seq);
           });
    }
    // "origin seq:position key": nodes that predate positions read "seq:position" as the
    // sequence number and acknowledge it so; OnAck reads the number before the colon.
    Eval(TierOp::kInvalidate, kInvalidate,
         {tier_keys::Value(prefix, key), tier_keys::Lease(prefix, key),
          tier_keys::Error(prefix, key), tier_keys::Fence(prefix, key)},
         {channel, node_id + " " + std::to_string(seq) + ":" + std::to_string(position) + " " + key,
          std::to_string(position), std::to_string(fence_ms)},
         [self = shared_from_this(), key, seq, finish](const Result& r) {
           self->Uninvalidating(key);
           self->Wake(key);
           if (!r.ok()) self->MissedInvalidation(key, r.error.empty() ? r.reply.str : r.error);
           std::optional<InvalidateReply> answered;
           if (r.ok()) answered = DecodeInvalidate(r.reply);
           const bool held = answered && answered->held;
           if (seq == 0) return finish(held);
           auto it = self->broadcasts.find(seq);
           if (it == self->broadcasts.end()) return;
           if (!r.ok()) return self->EndBroadcast(seq, /*timed_out=*/false);
           it->second->invalidated = true;
           it->second->held = held;
           // One Redis (not a cluster, whose PUBLISH counts only its own shard's subscribers):
           // every subscriber connection but ours is another node's.
           if (answered && !self->client->cluster()) {
             it->second->reached = answered->reached;
           }
           self->MaybeEndBroadcast(seq);
         });
  }

  // One Begin's Propagate has reached the tier, or could not.
  void Uninvalidating(const std::string& key) {
    if (auto it = invalidating.find(key); it != invalidating.end()) {
      if (--it->second == 0) invalidating.erase(it);
    }
  }

  void MaybeEndBroadcast(uint64_t seq) {
    auto it = broadcasts.find(seq);
    if (it == broadcasts.end()) return;
    Broadcast& b = *it->second;
    if (!b.invalidated) return;
    // Every node the broadcast reached has applied it: it reached our own subscription and as
    // many others as acknowledged. A node it did not reach had no subscription, and one without
    // a subscription treats its L1 as stale (MarkAllStale) until it has one again; so a member
    // that crashed (listed until its liveness expires) is not waited for. A stray subscriber (an
    // operator's SUBSCRIBE) or a second connection of ours only makes this wait for the members.
    if (b.reached_us && b.reached > 0 && static_cast<int64_t>(b.acked.size()) >= b.reached - 1) {
      return EndBroadcast(seq, false);
    }
    if (!b.members) return;
    for (const std::string& m : *b.members) {
      if (std::find(b.acked.begin(), b.acked.end(), m) == b.acked.end()) return;
    }
    EndBroadcast(seq, false);
  }

  void EndBroadcast(uint64_t seq, bool timed_out) {
    auto it = broadcasts.find(seq);
    if (it == broadcasts.end()) return;
    std::shared_ptr<Broadcast> b = std::move(it->second);
    broadcasts.erase(it);
    b->timer->cancel();
    if (timed_out) {
      std::string missing;
      for (const std::string& m : b->members.value_or(std::vector<std::string>{})) {
        if (std::find(b->acked.begin(), b->acked.end(), m) == b->acked.end()) {
          missing += (missing.empty() ? "" : ",") + m;
        }
      }
      LogTier("tier_broadcast_unacknowledged",
              "nodes=" + LogQuote(missing) + " membership_read=" + (b->members ? "yes" : "no"));
    }
    b->done(b->held);
  }

  void OnAck(std::string_view message) {
    std::optional<AckMessage> ack = DecodeAck(message);
    if (!ack) return;
    auto it = broadcasts.find(ack->seq);
    if (it == broadcasts.end()) return;
    it->second->acked.push_back(std::move(ack->node));
    MaybeEndBroadcast(ack->seq);
  }

  // L2 may still hold what this invalidation deleted here, and another node may read it: L2
  // is not read until a new epoch voids every L2 entry written before it.
  void MissedInvalidation(const std::string& key, const std::string& why) {
    ++misses;
    if (!missed.exchange(true)) {
      LogTier("tier_invalidation_missed", "key=" + LogQuote(key) + " error=" + LogQuote(why) +
                                              " action=new_epoch_when_the_tier_answers");
    }
    BumpEpoch();
  }

  // The Redis serving some keys may have lost writes it acknowledged (tier::ClientOptions::
  // on_instance_change, or the epoch went back): a delete among them would let L2 serve the
  // value it deleted. A new epoch voids every L2 entry written before it.
  void PossibleLoss(const std::string& what) {
    ++misses;
    missed = true;
    Log(LogLevel::kWarn, "tier_writes_may_be_lost",
        "why=" + LogQuote(what) + " action=new_epoch_when_the_tier_answers");
    BumpEpoch();
  }

  // A TRUNCATE read from the WAL: the tier cannot list a namespace's keys, so a new epoch voids
  // every L2 entry and marks every node's L1 stale (coarse, and rare). `done` once it is in
  // effect.
  void FlushNamespace(std::function<void()> done) {
    ++misses;
    if (done) after_bump.emplace_back(misses, std::move(done));
    if (bumping) return;  // the bump under way does not cover it; the next one will
    BumpEpoch();
  }

  void BumpEpoch() {
    if (bumping || stopped) return;
    bumping = true;
    uint64_t covered = misses;  // a miss after this INCR is not covered by it
    Eval(TierOp::kEpoch, kBumpEpoch, {tier_keys::Epoch(redis.prefix)},
         {epoch_channel, std::to_string(std::max<int64_t>(0, epoch.load()))},
         [self = shared_from_this(), covered](const Result& r) {
           self->bumping = false;
           std::optional<int64_t> bumped;
           if (r.ok()) bumped = DecodeBumpedEpoch(r.reply);
           if (bumped) {
             self->SetEpoch(*bumped);
             Log(LogLevel::kInfo, "tier_epoch", "epoch=" + std::to_string(*bumped));
             // Namespace flushes this bump covers are in effect.
             std::vector<std::function<void()>> flushed;
             std::erase_if(self->after_bump, [&](auto& waiting) {
               if (waiting.first > covered) return false;
               flushed.push_back(std::move(waiting.second));
               return true;
             });
             for (auto& done : flushed) done();
             if (self->misses == covered) {
               self->missed = false;
             } else {
               self->BumpEpoch();
             }
             return;
           }
           if (self->stopped) return;
           self->bump_retry.expires_after(std::chrono::milliseconds(250));
           self->bump_retry.async_wait([self](boost::system::error_code ec) {
             if (!ec) self->BumpEpoch();
           });
         });
  }

  // A newer epoch voids L2 entries written before it; L1 copies of them are stale too. Before
  // the node has read the epoch (after joining, ReadEpoch), one announced is only kept for
  // ReadEpoch: taking it would make the node usable before it is a member, and ReadEpoch, finding
  // the epoch already set, would never say tier_ready.
  void SetEpoch(int64_t e) {
    int64_t old = epoch.load();
    if (old < 0) {
      epoch_seen = std::max(epoch_seen.load(), e);
      return;
    }
    if (e <= old) return;
    epoch = e;
    if (old >= 0) cache->MarkAllStale();
  }

  // Broadcasts sent while this node was not subscribed, or not yet a member (so nobody waited
  // for its acknowledgement), may be lost: once it is both, what L1 holds is stale.
  void JoinThenReadEpoch() {
    Eval(TierOp::kLiveness, kHeartbeatScript, {tier_keys::Nodes(redis.prefix)},
         {node_id, std::to_string(kLivenessTtlMs)}, [self = shared_from_this()](const Result& r) {
           if (!r.ok()) {
             if (self->stopped) return;
             self->epoch_retry.expires_after(std::chrono::milliseconds(250));
             self->epoch_retry.async_wait([self](boost::system::error_code ec) {
               if (!ec) self->JoinThenReadEpoch();
             });
             return;
           }
           self->cache->MarkAllStale(/*void_leases=*/false);
           self->ReadEpoch();
         });
  }

  void ReadEpoch() {
    std::string key = tier_keys::Epoch(redis.prefix);
    client->Command({"GET", key}, key, [self = shared_from_this()](Result r) {
      self->metrics.CountTier(TierOp::kEpoch, ResultOf(r));
      if (!r.ok()) {
        if (self->stopped) return;
        self->epoch_retry.expires_after(std::chrono::milliseconds(250));
        self->epoch_retry.async_wait([self](boost::system::error_code ec) {
          if (!ec) self->ReadEpoch();
        });
        return;
      }
      // Unreadable, it is taken as 0 as before: a known epoch above it then calls for a new one.
      // One announced meanwhile may be newer than what the GET read (the PUBLISH can come in on
      // the subscriber's connection before this reply on the command connection).
      int64_t e = std::max(DecodeStoredEpoch(r.reply).value_or(0), self->epoch_seen.load());
      if (e < self->epoch.load()) {
        self->PossibleLoss("the epoch went back from " + std::to_string(self->epoch.load()) +
                           " to " + std::to_string(e));
      } else if (self->epoch.load() < 0) {
        self->epoch = e;
        Log(LogLevel::kInfo, "tier_ready",
            "node=" + self->node_id + " epoch=" + std::to_string(e) +
                " cluster=" + (self->client->cluster() ? "true" : "false"));
      } else {
        self->SetEpoch(e);
      }
      self->WakeAll();
    });
  }

  void OnMessage(std::string_view channel, std::string_view message) {
    if (channel == filled_channel) return Wake(std::string(message));
    if (channel == invalidated_channel) {
      // "origin seq:position key" ("origin seq key" from a node that predates positions): apply
      // it at its position, then tell the origin (seq 0: nobody waits for it).
      std::optional<InvalidationMessage> m = DecodeInvalidation(message);
      if (!m) return;
      if (m->origin != node_id) {
        cache->Invalidate(m->key, InvalidationSource::kTier, nullptr, m->position);
        if (m->seq != "0") {
          std::string ack_to = redis.prefix + "ack:" + m->origin;
          client->Command({"PUBLISH", ack_to, m->seq + " " + node_id}, ack_to, [](Result) {});
        }
      } else if (m->seq_number > 0) {
        if (auto it = broadcasts.find(m->seq_number); it != broadcasts.end()) {
          it->second->reached_us = true;
          MaybeEndBroadcast(m->seq_number);
        }
      }
      return Wake(m->key);
    }
    if (channel == ack_channel) return OnAck(message);
    if (channel == messages_channel) return OnFleetMessage(message);
    if (channel == epoch_channel) {
      if (auto e = DecodeEpochMessage(message)) SetEpoch(*e);
    }
  }

  void OnFleetMessage(std::string_view message) {
    const size_t space = message.find(' ');
    if (space == std::string_view::npos || deliver == nullptr) return;
    if (message.substr(0, space) == node_id) return;  // this node's subscribers have it
    std::string_view rest = message.substr(space + 1);
    const size_t length_end = rest.find(' ');
    uint64_t length = 0;
    if (length_end == std::string_view::npos ||
        std::from_chars(rest.data(), rest.data() + length_end, length).ptr !=
            rest.data() + length_end ||
        length > rest.size() - length_end - 1) {
      return;
    }
    rest.remove_prefix(length_end + 1);
    deliver(rest.substr(0, length), rest.substr(length));
  }

  void Heartbeat() {
    if (stopped) return;
    Eval(TierOp::kLiveness, kHeartbeatScript, {tier_keys::Nodes(redis.prefix)},
         {node_id, std::to_string(kLivenessTtlMs)}, [](const Result&) {});
    if (wal_reader_wanted) RenewWalReader();
    heartbeat.expires_after(kHeartbeat);
    heartbeat.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Heartbeat();
    });
  }

  void Start(CacheService& c) {
    cache = &c;
    tier::ClientOptions options = ClientOptionsOf(redis);
    std::weak_ptr<Impl> weak = shared_from_this();
    options.on_instance_change = [weak](const std::string& what) {
      if (auto self = weak.lock()) self->PossibleLoss(what);
    };
    client = std::make_unique<tier::Client>(io, options);
    options.on_instance_change = nullptr;
    tier::Subscriber::Handlers handlers;
    handlers.message = [weak](std::string_view channel, std::string_view message) {
      if (auto self = weak.lock()) self->OnMessage(channel, message);
    };
    handlers.subscribed = [weak] {
      auto self = weak.lock();
      if (!self) return;
      Log(LogLevel::kInfo, "tier_subscribed", "node=" + self->node_id);
      self->subscribed = true;
      self->JoinThenReadEpoch();
    };
    handlers.lost = [weak] {
      auto self = weak.lock();
      if (!self) return;
      LogTier("tier_subscription_lost", "action=mark_all_stale");
      self->subscribed = false;
      // Loads in flight are not voided (that would turn one herd into two): what they fill is
      // node-local and fresh for at most l1_ttl_ms (Fallback), and marked stale again once the
      // node is subscribed and a member.
      self->cache->MarkAllStale(/*void_leases=*/false);
    };
    subscriber = std::make_unique<tier::Subscriber>(
        io, options,
        std::vector<std::string>{filled_channel, invalidated_channel, ack_channel, epoch_channel,
                                 messages_channel},
        std::move(handlers));
    work.emplace(io.get_executor());
    client->Start();
    subscriber->Start();
    asio::post(io, [self = shared_from_this()] { self->Heartbeat(); });
    thread = std::thread([self = shared_from_this()] { self->io.run(); });
    Log(LogLevel::kInfo, "tier_started", "node=" + node_id);
  }

  void Stop() {
    if (!thread.joinable()) return;
    asio::post(io, [self = shared_from_this()] { self->Leave(); });
    thread.join();
  }

  // The node has stopped serving: it leaves the membership at once, so that the other nodes' DELs
  // stop waiting for its acknowledgement now rather than once its heartbeat is kLivenessTtlMs old
  // (at most redis.timeout_ms for the answer; a node that crashes still counts until then).
  // Takes or extends the WAL reader lease. Held until half its TTL after the renewal was sent: a
  // renewal that fails (Redis away) ends this node's reading before the lease can lapse in Redis
  // and another node take it. (PostgreSQL lets one connection read a slot at a time anyway.)
  void RenewWalReader() {
    const int64_t sent = SteadyMs();
    const std::string key = tier_keys::WalReader(redis.prefix);
    Eval(TierOp::kLiveness, kWalReader, {key},
         {node_id, std::to_string(TierBackend::kWalReaderTtlMs)},
         [self = shared_from_this(), sent](const Result& r) {
           const bool held =
               r.ok() && r.reply.type == tier::Reply::Type::kInteger && r.reply.integer == 1;
           const bool was = self->IsWalReader();
           if (held) {
             self->wal_reader_until = sent + TierBackend::kWalReaderTtlMs / 2;
           } else if (r.ok()) {
             self->wal_reader_until = 0;  // another node holds it
           }
           if (held != was && (held || r.ok())) {
             Log(LogLevel::kInfo, held ? "wal_reader_lease_taken" : "wal_reader_lease_lost",
                 "node=" + self->node_id);
           }
         });
  }

  static int64_t SteadyMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  bool IsWalReader() const { return SteadyMs() < wal_reader_until.load(); }

  void Leave() {
    if (stopped) return;
    heartbeat.cancel();  // a heartbeat after the ZREM would bring the node back
    if (wal_reader_wanted && IsWalReader() && client->up()) {
      // Another node may read the slot at once (its reader stopped with the backend before this).
      wal_reader_until = 0;
      const std::string key = tier_keys::WalReader(redis.prefix);
      Eval(TierOp::kLiveness, kWalReaderRelease, {key}, {node_id}, [](const Result&) {});
    }
    if (!client->up()) return Shutdown();
    auto once = std::make_shared<bool>(false);
    auto finish = [self = shared_from_this(), once] {
      if (std::exchange(*once, true)) return;
      self->leave_timer.cancel();
      self->Shutdown();
    };
    leave_timer.expires_after(std::chrono::milliseconds(redis.timeout_ms));
    leave_timer.async_wait([finish](boost::system::error_code ec) {
      if (!ec) finish();
    });
    const std::string nodes = tier_keys::Nodes(redis.prefix);
    client->Command({"ZREM", nodes, node_id}, nodes, [finish](Result) { finish(); });
  }

  void Shutdown() {
    stopped = true;
    heartbeat.cancel();
    epoch_retry.cancel();
    bump_retry.cancel();
    std::vector<PendingPtr> all;
    for (auto& [key, list] : waiting) all.insert(all.end(), list.begin(), list.end());
    waiting.clear();
    for (const PendingPtr& p : all) Fallback(p);
    for (auto& [seq, b] : broadcasts) {
      b->timer->cancel();
      b->done(false);
    }
    broadcasts.clear();
    subscriber->Stop();
    client->Stop();
    work.reset();
  }
};

void TierBackend::Together(const std::function<void()>& body) { impl_->db.Together(body); }

TierBackend::TierBackend(const Config& config, LoadBackend& db, Metrics& metrics)
    : impl_(std::make_shared<Impl>(config, db, metrics)) {}

TierBackend::~TierBackend() { Stop(); }

void TierBackend::Start(CacheService& cache) {
  cache.SetInvalidationSink(this);
  impl_->Start(cache);
}

void TierBackend::Stop() { impl_->Stop(); }

void TierBackend::Load(size_t ns_index, std::string id, lease::WalPosition min_position,
                       AdmitFn admit, std::function<void(BackendResult)> done) {
  auto p = std::make_shared<Impl::Pending>();
  p->ns = ns_index;
  p->min_position = min_position;
  p->key = impl_->namespaces.at(ns_index)->name + ":" + id;
  p->id = std::move(id);
  p->done = std::move(done);
  p->admit = std::move(admit);
  p->give_up = std::chrono::steady_clock::now() +
               std::chrono::milliseconds(impl_->config.lease.lease_ttl_ms);
  asio::post(impl_->io, [impl = impl_, p] {
    p->owner = impl->node_id + ":" + std::to_string(impl->next_owner++);
    impl->Lookup(p);
  });
}

void TierBackend::Begin(std::string_view key) {
  asio::post(impl_->io, [impl = impl_, key = std::string(key)] { ++impl->invalidating[key]; });
}

void TierBackend::Propagate(std::string_view key, InvalidationSource source,
                            lease::WalPosition position, std::function<void(bool held)> done) {
  asio::post(impl_->io, [impl = impl_, key = std::string(key), source, position,
                         done = std::move(done)]() mutable {
    impl->Propagate(std::move(key), source, position, std::move(done));
  });
}

void TierBackend::OnFleetMessage(
    std::function<void(std::string_view channel, std::string_view message)> deliver) {
  impl_->deliver = std::move(deliver);
}

void TierBackend::PublishToFleet(std::string_view channel, std::string_view message) {
  std::string payload = impl_->node_id + " " + std::to_string(channel.size()) + " ";
  payload.append(channel).append(message);
  asio::post(impl_->io, [impl = impl_, payload = std::move(payload)]() mutable {
    if (impl->client == nullptr) return;
    impl->client->Command({"PUBLISH", impl->messages_channel, std::move(payload)},
                          impl->messages_channel, [](Result) {});
  });
}

bool TierBackend::joined() const { return impl_->epoch.load() >= 0; }

std::chrono::milliseconds TierBackend::JoinBound(const RedisConfig& redis) {
  return std::chrono::milliseconds(std::max<int64_t>(3000, 10 * redis.timeout_ms));
}

bool TierBackend::up() const { return impl_->client && impl_->client->up() && impl_->subscribed; }

const std::string& TierBackend::node_id() const { return impl_->node_id; }

void TierBackend::FlushNamespace(std::string_view /*ns*/, std::function<void()> done) {
  asio::post(impl_->io, [impl = impl_, done = std::move(done)]() mutable {
    impl->FlushNamespace(std::move(done));
  });
}

void TierBackend::CompeteForWalReader() { impl_->wal_reader_wanted = true; }

bool TierBackend::IsWalReader() const { return impl_->IsWalReader(); }

}  // namespace corral::server

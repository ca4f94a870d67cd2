// Routing a load to a server of its statement's pool: the routing policy's pick among usable
// replicas, the primary as a fallback, and panic mode when every replica looks unusable.
#include <span>

#include "pg-loader/loader_impl.h"
#include "pg-loader/routing.h"

namespace corral::pg {

size_t Loader::Impl::PickTarget(size_t statement, size_t exclude, uint64_t min_position,
                                std::string* why) {
  if (phase.load(std::memory_order_acquire) == Phase::kStopping) {
    *why = "shutting down";
    return kNone;
  }
  Pool& pool = *pools[statement_pool[statement]];
  // Pools are small (a handful of replicas); a fixed buffer keeps Load() allocation-free here.
  constexpr size_t kInline = 16;
  Candidate inline_candidates[kInline];
  std::vector<Candidate> heap_candidates;
  std::span<Candidate> candidates;
  if (pool.members.size() <= kInline) {
    candidates = std::span<Candidate>(inline_candidates, pool.members.size());
  } else {
    heap_candidates.resize(pool.members.size());
    candidates = heap_candidates;
  }
  // `caught_up`: only servers known to have replayed min_position.
  auto mark_usable = [&](bool caught_up) {
    for (size_t i = 0; i < pool.members.size(); ++i) {
      const ReplicaState& state = nodes[pool.members[i]]->state;
      candidates[i].usable = pool.members[i] != exclude && state.Usable() &&
                             (!caught_up || state.position() >= min_position);
      candidates[i].load = pool.routing == Routing::kLeastLoaded ? state.Load() : 0;
    }
  };
  const uint64_t ticket = pool.ticket.fetch_add(1, std::memory_order_relaxed);
  const bool primary_usable =
      primary != kNone && primary != exclude && nodes[primary]->state.Usable();
  size_t target = kNone;
  if (min_position > 0) {
    // A load that must read past an invalidation: a replica that has replayed it, else the
    // primary, else (below) any replica, whose answer the cache will then serve as stale.
    mark_usable(true);
    if (auto pick = PickReplica(candidates, pool.routing, ticket)) {
      target = pool.members[*pick];
    } else if (primary_usable) {
      target = primary;
    }
  }
  if (target != kNone) {
    // chosen above
  } else if (mark_usable(false); auto pick = PickReplica(candidates, pool.routing, ticket)) {
    target = pool.members[*pick];
  } else if (primary_usable) {
    target = primary;
  } else {
    // Panic mode (as load balancers do when no host looks healthy): every replica of the pool is
    // marked down or lagging. A health check can fail for reasons other than a dead server (a
    // starved checker, one slow answer), and failing every load on that account turns a blip
    // into an outage. So try the replicas anyway: a dead one refuses the connection at once and
    // the load is retried once elsewhere; a lagging one still answers, fresher than any stale
    // value. /readyz keeps reporting the pool as not ready.
    for (size_t i = 0; i < pool.members.size(); ++i) {
      candidates[i].usable = pool.members[i] != exclude;
    }
    if (auto pick = PickReplica(candidates, pool.routing, ticket)) target = pool.members[*pick];
  }
  if (target == kNone) *why = "no healthy replica for pool " + pool.name;
  return target;
}

bool Loader::Impl::TryDispatch(Job& job, size_t exclude, std::string* why) {
  const size_t target = PickTarget(job.statement, exclude, job.min_position, why);
  if (target == kNone) return false;
  ReplicaState& state = nodes[target]->state;
  switch (state.Push(job)) {
    case ReplicaState::PushResult::kOk:
      return true;
    case ReplicaState::PushResult::kFull:
      *why = "queue full for " + state.name();
      return false;
    case ReplicaState::PushResult::kClosed:
      *why = "shutting down";
      return false;
  }
  return false;
}

void Loader::Impl::Finish(Job& job, LoadOutcome outcome, bool on_loader_thread) {
  LoadCallback done = std::move(job.done);
  if (on_loader_thread) {
    done(std::move(outcome));
  } else {
    replier.Post(std::move(done), std::move(outcome));
  }
}

}  // namespace corral::pg

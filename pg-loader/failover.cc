// Failover after a lost connection: the server is marked down, its queue moves to other servers,
// and the loads that were running are retried once elsewhere, a batch together.
#include "pg-loader/loader_impl.h"

namespace corral::pg {

void Loader::Impl::RerouteQueue(size_t node) {
  for (Job& job : nodes[node]->state.TakeAll()) {
    std::string why;
    if (!TryDispatch(job, node, &why)) Finish(job, Error(std::move(why)), true);
  }
}

void Loader::Impl::HandleLost(size_t node, std::vector<Job> jobs, const std::string& reason) {
  ReplicaState& state = nodes[node]->state;
  if (state.MarkDown()) {
    state.RequestCheck();  // the health checker starts probing for its return now
    RerouteQueue(node);
  }
  const std::string lost = "connection to " + state.name() + " lost: " + reason;
  // One target for the whole batch, so it is batched again there rather than split up.
  std::string why;
  const size_t target = PickTarget(jobs.front().statement, node, jobs.front().min_position, &why);
  for (Job& job : jobs) {
    if (job.retried) {
      Finish(job, Error(lost, state.name()), true);
      continue;
    }
    job.retried = true;
    if (target == kNone) {
      Finish(job, Error(lost + "; " + why, state.name()), true);
      continue;
    }
    ReplicaState& retry = nodes[target]->state;
    switch (retry.Push(job)) {
      case ReplicaState::PushResult::kOk:
        break;
      case ReplicaState::PushResult::kFull:
        Finish(job, Error(lost + "; queue full for " + retry.name(), state.name()), true);
        break;
      case ReplicaState::PushResult::kClosed:
        Finish(job, Error(lost + "; shutting down", state.name()), true);
        break;
    }
  }
}

}  // namespace corral::pg

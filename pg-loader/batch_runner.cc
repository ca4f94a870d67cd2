// The loader's workers: each owns one connection to its server, pops batches (possibly of one
// load) from the server's queue, runs them under the statement timeout and the watchdog, and
// answers every load.
#include "pg-loader/batch.h"
#include "pg-loader/loader_impl.h"

namespace corral::pg {

void Loader::Impl::WorkerLoop(size_t index) {
  Node& node = *nodes[index];
  Session session(node.conninfo);
  uint64_t session_epoch = 0;
  while (true) {
    std::vector<Job> jobs = node.state.PopBatch(batch_rules);
    if (jobs.empty()) break;  // closed
    // A connection opened before the server was last marked down is likely dead too (a restart
    // kills them all); replacing it up front saves a doomed round trip and a needless retry.
    if (session.is_open() && session_epoch != node.state.epoch()) session.Close();
    if (!session.is_open()) {
      const uint64_t epoch = node.state.epoch();
      std::string error = session.Connect();
      if (!error.empty()) {
        node.state.FinishCall();  // a failed connection attempt; no query ran
        HandleLost(index, std::move(jobs), error);
        continue;
      }
      session_epoch = epoch;
    }
    RunBatch(index, session, std::move(jobs));
  }
}

void Loader::Impl::RunBatch(size_t index, Session& session, std::vector<Job> jobs) {
  Node& node = *nodes[index];
  const size_t statement_index = jobs.front().statement;
  const Statement& statement = statements[statement_index];
  const BatchPlan plan = PlanBatch(jobs);
  const int64_t timeout_ms = options.statement_timeout_ms;
  const uint64_t watch = Watch(session.socket(), timeout_ms);
  SessionBatchResult result;
  if (plan.ids.size() == 1) {
    // One distinct id (a lone load, or duplicates of one): the single query answers it.
    SessionResult single = session.Load(statement_index, statement.query, plan.ids.front(),
                                        timeout_ms, options.prepared_statements);
    result.micros = single.micros;
    result.position = single.position;
    if (single.connection_lost) {
      result.connection_lost = true;
      result.lost_reason = std::move(single.data);
    } else {
      result.answers.push_back(KeyAnswer{single.kind, std::move(single.data)});
    }
  } else {
    result = session.LoadBatch(statement_index, statement.batch_query, plan.ids, timeout_ms,
                               options.prepared_statements);
  }
  bool cut = Unwatch(watch);
  if (result.data_error && !cut) {
    // One bad id (say "abc" for a bigint column) fails the whole batch with a data exception.
    // Ask each id alone so that only the bad one fails: the others must not inherit its error
    // (and its hold-off). Statement-level errors and timeouts are not re-run: every single query
    // would fail the same way, and under overload that would multiply the load.
    for (size_t i = 0; i < plan.ids.size() && !result.connection_lost && !cut; ++i) {
      const uint64_t one = Watch(session.socket(), timeout_ms);
      SessionResult single = session.Load(statement_index, statement.query, plan.ids[i], timeout_ms,
                                          options.prepared_statements);
      cut = Unwatch(one);
      result.micros += single.micros;
      if (single.connection_lost) {
        result.connection_lost = true;
        result.lost_reason = std::move(single.data);
      } else {
        result.answers[i] = KeyAnswer{single.kind, std::move(single.data)};
      }
    }
  }
  node.state.FinishCall(jobs.size());
  if (result.connection_lost || cut) {
    session.Close();
    HandleLost(index, std::move(jobs), cut ? "no answer within the deadline" : result.lost_reason);
    return;
  }
  node.state.NotePosition(result.position);
  const bool behind = !node.state.Usable();
  std::vector<LoadOutcome> outcomes =
      FanOut(plan, result.answers, node.state.name(), result.micros);
  for (size_t i = 0; i < jobs.size(); ++i) {
    outcomes[i].position = result.position;
    outcomes[i].behind = behind;
    Finish(jobs[i], std::move(outcomes[i]), true);
  }
}

}  // namespace corral::pg

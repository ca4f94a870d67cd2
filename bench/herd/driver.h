// The three clients corral-herd compares, as state machines on one RespLoop: `corral` (GET; the
// server loads), `redis-naive` (GET; on a miss load from PostgreSQL and SET PX) and `redis-lock`
// (GET; on a miss SET lock NX PX, the winner loads, SETs and DELs the lock, the losers poll GET).
// A TargetRun owns the connections of one target × scenario run and drives herds or steady traffic.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/herd/clock.h"
#include "bench/herd/db_pool.h"
#include "bench/herd/readiness.h"
#include "bench/herd/resp_loop.h"
#include "bench/herd/stats.h"

namespace corral::herd {

enum class TargetKind { kCorral, kRedisNaive, kRedisLock };

const char* TargetName(TargetKind kind);
// "corral", "redis-naive", "redis-lock"; false if unknown.
bool ParseTarget(std::string_view name, TargetKind& out);

struct TargetConfig {
  TargetKind kind = TargetKind::kCorral;
  // Client i connects to endpoints[i % size] (several corral nodes); FLUSHALL goes to each, the
  // cache-aside writers to the first. Never empty.
  std::vector<Endpoint> endpoints;
  size_t statement = 0;       // DbPool statement for cache-aside loads
  int64_t ttl_ms = 5000;      // PX of cache-aside SETs
  int64_t lock_px_ms = 5000;  // redis-lock: PX of the lock
  int64_t poll_ms = 20;       // redis-lock: losers' GET interval
  // corral, several nodes (rolling): a client whose node refuses its connection sends the request
  // to the next node in the list, and one whose connection the node closes moves to the next node
  // for its next request; a client away from its own node tries it again at most once a second.
  bool failover = false;
  // failover with the nodes' /readyz (one probe per endpoint, same order; not owned): clients act
  // as behind a load balancer's health check. A client whose node is not ready moves to the next
  // ready node for its next request, goes back to its own node only once that one is ready, and
  // a refused or closed request goes on to the next ready node. Without it, or when no node is
  // ready, they act as above.
  const ReadinessProbe* readiness = nullptr;
};

// A logical request times out after timeout_ms per attempt and is retried `retries` times (a
// timeout only: an error reply, BUSY included, is final — a shed request must not come back).
// Only fills set busy_retry_ms: then a BUSY answer is asked again after that pause, for as long
// as the first attempt's timeout_ms lasts.
struct RequestPolicy {
  int64_t timeout_ms = 5000;
  int retries = 0;
  int64_t busy_retry_ms = 0;
  // With busy_retry_ms: any error answer is asked again, not only BUSY (a fill that must load
  // every key, whatever a loaded machine does to the server's database connections).
  bool retry_errors = false;
};

// Zipf(s) over n ranks (rank 0 the most popular), or uniform when s == 0.
class KeyChooser {
 public:
  KeyChooser(size_t n, double s);
  int Next(std::mt19937_64& rng) const;

 private:
  size_t n_;
  std::vector<double> cdf_;
};

struct SteadyPlan {
  double rate = 0;  // requests/s over all clients; 0 = closed loop, as fast as answers come
  double duration_s = 10;
  const KeyChooser* keys = nullptr;
  RequestPolicy policy;
  // Called on the loop thread at these offsets from the start (e.g. slow the database down).
  std::vector<std::pair<double, std::function<void()>>> events;
  // When set, the traffic ends this many ms after the start instead of duration_s, read as it
  // goes: another thread may move it (rolling: once the restart command has finished).
  const std::atomic<int64_t>* end_ms = nullptr;
};

class TargetRun : private LoopHandler {
 public:
  // `keys`: full keys ("ns:id"), `ids` the matching ids (bound to $1 for cache-aside loads).
  // `pool` is required for the redis targets, unused for corral. Not thread-safe.
  TargetRun(TargetConfig config, std::vector<std::string> keys, std::vector<std::string> ids,
            DbPool* pool, uint64_t seed);
  ~TargetRun() override;

  // Where the following requests are recorded (the fill and the measurement use different ones);
  // nullptr records nothing. Not owned.
  void SetRecorder(Recorder* recorder) { recorder_ = recorder; }
  // Draws a status line on stderr every 250 ms while running; `extra` adds the DB part.
  void SetProgress(std::string label, std::function<std::string()> extra);

  // Sends FLUSHALL and waits for its answer. "" or an error.
  std::string FlushAll(TimePoint deadline);
  // Adds `n` clients, each with its own connection, and waits until all are connected.
  // Returns the index of the first new client, or -1 with `error` set.
  int OpenClients(int n, TimePoint deadline, std::string* error);
  int client_count() const { return static_cast<int>(clients_.size()); }

  // Clients first..first+keys.size()-1 each ask for one key (client first+i for key keys[i]) at
  // the same moment; returns once every one has an answer or has failed. False on `deadline`.
  bool Herd(int first, const std::vector<int>& keys, const RequestPolicy& policy,
            TimePoint deadline);
  // Clients first..first+count-1 send `plan.rate` requests/s between them for plan.duration_s,
  // then the run waits for the outstanding requests. False on `deadline`.
  bool Steady(int first, int count, const SteadyPlan& plan, TimePoint deadline);
  // Waits until every cache-aside load this run queued has finished (and its SET was sent), or
  // `deadline`; then drops what is still queued. Returns the number of dropped loads.
  size_t Drain(TimePoint deadline);

  int64_t loads() const { return loads_; }
  // failover: clients that moved to the next node (their node closed or refused), that went back
  // to their own node, connects refused (the request went on to the next node), requests the node
  // closed cleanly without answering (sent after it stopped reading: they went on to the next
  // node), and requests lost with a connection that failed otherwise (reset: failed).
  struct FailoverStats {
    int64_t moves = 0;
    int64_t returns = 0;
    int64_t refused = 0;
    int64_t resent_after_close = 0;
    int64_t lost_on_close = 0;
    int64_t left_not_ready = 0;  // moves because the client's node answered /readyz not 200
  };
  const FailoverStats& failover_stats() const { return failover_; }
  const RespLoop::Stats& loop_stats() const { return loop_.stats(); }
  void ResetLoopStats() { loop_.ResetStats(); }

 private:
  enum class State { kIdle, kGet, kLock, kLoading, kPollWait, kPoll, kBusyWait };
  struct Client {
    int conn = -1;
    State state = State::kIdle;
    uint32_t seq = 0;  // attempt number, over the client's life; tags carry it
    int key = -1;
    int attempt = 0;
    TimePoint start;
    TimePoint next_slot;
    bool steady = false;
    std::string token;  // redis-lock: this attempt's lock value
    // failover: the node the connection points at, the client's own, whether the connection is
    // open (a loss before it opened is a refusal), nodes that refused this attempt, and when the
    // client may next try its own node.
    int node = 0;
    int home = 0;
    bool open = false;
    int refused = 0;  // and closed unanswered
    TimePoint home_retry_at;
  };
  struct Load {
    int client;
    uint32_t seq;
    int key;
    bool winner;
    std::string token;
  };

  void OnConnected(int conn) override;
  void OnReply(int conn, uint64_t tag, const Reply& reply) override;
  void OnConnectionLost(int conn, const std::vector<uint64_t>& tags,
                        const std::string& why) override;
  void OnTimer(uint64_t tag) override;
  void OnWake() override;

  void Begin(int c, int key);
  void StartAttempt(int c);
  void SendGet(int c, uint8_t kind);
  void StartLoad(int c, bool winner, std::string token);
  void Finish(int c, Outcome outcome, std::string_view value, std::string_view error);
  void ScheduleNext(int c);
  TimePoint SteadyEnd() const;
  // failover: closes c's connection and points it at `node`.
  void MoveTo(int c, int node);
  // failover: the node after `node` to send to: the next ready one, else simply the next.
  int NextNode(int node) const;
  bool Ready(int node) const;
  // failover: c's connection was lost with `pending` (this attempt's GET unanswered). True if
  // handled (the request was resent to the next node or failed).
  bool FailOver(int c, bool pending, const std::string& why);
  void OnLoadDone(LoadDone& done);
  int WriterFor(int key);  // the connection that carries key's SET and DEL
  void DrawProgress(bool final);

  TargetConfig config_;
  std::vector<std::string> keys_;
  std::vector<std::string> ids_;
  DbPool* pool_;
  std::mt19937_64 rng_;
  RespLoop loop_;
  Recorder* recorder_ = nullptr;
  std::vector<Client> clients_;
  std::vector<int> conn_client_;  // connection → client (-1: control and writer connections)
  std::vector<int> writers_;
  bool use_writers_ = false;  // set once steady traffic starts
  std::vector<Load> loads_in_run_;
  int64_t loads_ = 0;
  size_t loads_open_ = 0;
  int connected_ = 0;
  int64_t in_flight_ = 0;  // logical requests begun and not finished
  RequestPolicy policy_;
  int64_t connections_lost_ = 0;
  std::string connect_error_;
  std::string buf_;

  FailoverStats failover_;

  // Steady traffic.
  const SteadyPlan* plan_ = nullptr;
  TimePoint steady_t0_;
  TimePoint steady_end_;
  Clock::duration interval_{};

  // Progress line.
  std::string progress_label_;
  std::function<std::string()> progress_extra_;
  TimePoint progress_t0_;
  bool progress_drawn_ = false;
  bool progress_armed_ = false;

  // Control connection (FLUSHALL).
  int control_conn_ = -1;
  bool control_done_ = false;
  std::string control_error_;
};

}  // namespace corral::herd

// TargetRun (driver.h). Every command's reply tag and every timer carry (kind, client, attempt
// number), so a reply or timer that belongs to an abandoned attempt is recognised and ignored.
// A timed-out attempt with a reply still owed closes its connection (as redis-py or Jedis do) and
// the retry reconnects, so a late reply can never be taken for the retry's.
#include "bench/herd/driver.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace corral::herd {

namespace {

// Reply tags.
constexpr uint8_t kTagGet = 1;
constexpr uint8_t kTagLock = 2;
constexpr uint8_t kTagPoll = 3;
constexpr uint8_t kTagIgnore = 4;  // cache-aside SET / DEL: nobody waits for it
// Connections that carry the cache-aside SETs and DELs of steady traffic, by key, so that a
// client's timeout (which closes the client's connection) cannot lose them: in an application the
// loader finishes its SET whether or not the user it loaded for is still waiting. Herds keep their
// connections and send them on their own.
constexpr int kWriters = 8;
constexpr uint8_t kTagControl = 5;
// Timer tags.
constexpr uint8_t kTimerTimeout = 1;
constexpr uint8_t kTimerPoll = 2;
constexpr uint8_t kTimerNext = 3;
constexpr uint8_t kTimerProgress = 4;
constexpr uint8_t kTimerEvent = 5;
constexpr uint8_t kTimerBusyRetry = 6;

uint64_t MakeTag(uint8_t kind, int index, uint32_t seq) {
  return (uint64_t{kind} << 56) | (uint64_t(uint32_t(index) & 0xffffffu) << 32) | seq;
}
uint8_t TagKind(uint64_t tag) { return static_cast<uint8_t>(tag >> 56); }
int TagIndex(uint64_t tag) { return static_cast<int>((tag >> 32) & 0xffffffu); }
uint32_t TagSeq(uint64_t tag) { return static_cast<uint32_t>(tag); }

}  // namespace

const char* TargetName(TargetKind kind) {
  switch (kind) {
    case TargetKind::kCorral:
      return "corral";
    case TargetKind::kRedisNaive:
      return "redis-naive";
    case TargetKind::kRedisLock:
      return "redis-lock";
  }
  return "?";
}

bool ParseTarget(std::string_view name, TargetKind& out) {
  for (TargetKind k : {TargetKind::kCorral, TargetKind::kRedisNaive, TargetKind::kRedisLock}) {
    if (name == TargetName(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

KeyChooser::KeyChooser(size_t n, double s) : n_(n) {
  if (s <= 0 || n == 0) return;
  cdf_.resize(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
    cdf_[i] = sum;
  }
  for (double& v : cdf_) v /= sum;
}

int KeyChooser::Next(std::mt19937_64& rng) const {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  if (cdf_.empty()) return static_cast<int>(std::min<size_t>(n_ - 1, u(rng) * n_));
  auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u(rng));
  return static_cast<int>(std::min<size_t>(n_ - 1, it - cdf_.begin()));
}

TargetRun::TargetRun(TargetConfig config, std::vector<std::string> keys,
                     std::vector<std::string> ids, DbPool* pool, uint64_t seed)
    : config_(std::move(config)),
      keys_(std::move(keys)),
      ids_(std::move(ids)),
      pool_(pool),
      rng_(seed),
      loop_(this) {
  if (pool_ != nullptr && config_.kind != TargetKind::kCorral) {
    pool_->NewEpoch();
    pool_->SetNotify([this] { loop_.Wake(); });
  }
}

TargetRun::~TargetRun() {
  if (pool_ != nullptr && config_.kind != TargetKind::kCorral) {
    pool_->SetNotify(nullptr);
    pool_->NewEpoch();
  }
  if (progress_drawn_) std::fprintf(stderr, "\r\033[K");
  loop_.CloseAll();
}

void TargetRun::SetProgress(std::string label, std::function<std::string()> extra) {
  progress_label_ = std::move(label);
  progress_extra_ = std::move(extra);
  progress_t0_ = Clock::now();
  if (!progress_armed_ && isatty(STDERR_FILENO)) {
    progress_armed_ = true;
    loop_.AddTimer(Clock::now() + Millis(250), MakeTag(kTimerProgress, 0, 0));
  }
}

void TargetRun::DrawProgress(bool final) {
  if (recorder_ == nullptr) return;
  char line[512];
  std::string extra = progress_extra_ ? progress_extra_() : "";
  std::snprintf(
      line, sizeof line,
      "%s %-11s t=%5.1fs  done %lld (ok %lld, failed %lld)  in flight %lld  loads %lld  %s",
      progress_label_.c_str(), TargetName(config_.kind), SecondsBetween(progress_t0_, Clock::now()),
      (long long)recorder_->requests(), (long long)recorder_->answered(),
      (long long)recorder_->failed(), (long long)in_flight_, (long long)loads_, extra.c_str());
  std::fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
  std::fflush(stderr);
  progress_drawn_ = !final;
}

std::string TargetRun::FlushAll(TimePoint deadline) {
  for (const Endpoint& endpoint : config_.endpoints) {
    control_conn_ = loop_.AddConnection(endpoint);
    conn_client_.resize(control_conn_ + 1, -1);
    control_done_ = false;
    control_error_.clear();
    buf_.clear();
    EncodeCommand({"FLUSHALL"}, buf_);
    loop_.Send(control_conn_, buf_, MakeTag(kTagControl, 0, 0));
    if (!loop_.Run([&] { return control_done_; }, deadline)) control_error_ = "FLUSHALL timed out";
    loop_.Close(control_conn_);
    if (!control_error_.empty()) {
      return endpoint.host + ":" + std::to_string(endpoint.port) + ": " + control_error_;
    }
  }
  return "";
}

int TargetRun::OpenClients(int n, TimePoint deadline, std::string* error) {
  int first = static_cast<int>(clients_.size());
  int target = connected_ + n;
  for (int i = 0; i < n; ++i) {
    Client c;
    // Round-robin over the nodes by client index, so every node gets its share of each herd.
    c.home = c.node = static_cast<int>((first + i) % config_.endpoints.size());
    c.conn = loop_.AddConnection(config_.endpoints[static_cast<size_t>(c.node)]);
    conn_client_.resize(c.conn + 1, -1);
    conn_client_[c.conn] = first + i;
    clients_.push_back(c);
    loop_.Connect(c.conn);
  }
  connect_error_.clear();
  const int64_t lost_before = connections_lost_;
  auto failed = [&] { return static_cast<int>(connections_lost_ - lost_before); };
  bool settled = loop_.Run([&] { return connected_ + failed() >= target; }, deadline);
  if (!settled || failed() > 0) {
    *error = "only " + std::to_string(n - (target - connected_)) + " of " + std::to_string(n) +
             " connections to " + config_.endpoints.front().host + ":" +
             std::to_string(config_.endpoints.front().port) +
             (config_.endpoints.size() > 1
                  ? " (and " + std::to_string(config_.endpoints.size() - 1) + " more nodes)"
                  : "") +
             " opened" + (connect_error_.empty() ? "" : " (" + connect_error_ + ")");
    return -1;
  }
  return first;
}

void TargetRun::OnConnected(int conn) {
  ++connected_;
  const int c = conn < static_cast<int>(conn_client_.size()) ? conn_client_[conn] : -1;
  if (c >= 0) clients_[c].open = true;
}

bool TargetRun::Herd(int first, const std::vector<int>& keys, const RequestPolicy& policy,
                     TimePoint deadline) {
  policy_ = policy;
  for (size_t i = 0; i < keys.size(); ++i) Begin(first + static_cast<int>(i), keys[i]);
  return loop_.Run([&] { return in_flight_ == 0; }, deadline);
}

bool TargetRun::Steady(int first, int count, const SteadyPlan& plan, TimePoint deadline) {
  plan_ = &plan;
  use_writers_ = true;
  policy_ = plan.policy;
  TimePoint t0 = Clock::now();
  steady_t0_ = t0;
  steady_end_ = t0 + Millis(plan.duration_s * 1000.0);
  interval_ = plan.rate > 0 ? Millis(1000.0 * count / plan.rate) : Clock::duration{};
  for (size_t i = 0; i < plan.events.size(); ++i) {
    loop_.AddTimer(t0 + Millis(plan.events[i].first * 1000.0),
                   MakeTag(kTimerEvent, static_cast<int>(i), 0));
  }
  for (int j = 0; j < count; ++j) {
    Client& c = clients_[first + j];
    c.steady = true;
    if (plan.rate > 0) {
      c.next_slot = t0 + interval_ * j / count;
      loop_.AddTimer(c.next_slot, MakeTag(kTimerNext, first + j, 0));
    } else {
      Begin(first + j, plan.keys->Next(rng_));
    }
  }
  bool ok = loop_.Run([&] { return Clock::now() >= SteadyEnd() && in_flight_ == 0; }, deadline);
  for (int j = 0; j < count; ++j) clients_[first + j].steady = false;
  plan_ = nullptr;
  return ok;
}

size_t TargetRun::Drain(TimePoint deadline) {
  if (pool_ == nullptr || config_.kind == TargetKind::kCorral) return 0;
  loop_.Run([&] { return loads_open_ == 0; }, deadline);
  size_t dropped = pool_->DropQueued();
  // Loads already running finish within the pool's statement timeout.
  loop_.Run([&] { return pool_->outstanding() == 0; }, Clock::now() + Millis(60'000));
  OnWake();
  // Let the last SETs reach the server.
  loop_.Run(
      [&] {
        for (int w : writers_) {
          if (loop_.pending(w) > 0) return false;
        }
        for (const Client& c : clients_) {
          if (c.state == State::kIdle && loop_.pending(c.conn) > 0) return false;
        }
        return true;
      },
      Clock::now() + Millis(2000));
  return dropped;
}

TimePoint TargetRun::SteadyEnd() const {
  if (plan_ != nullptr && plan_->end_ms != nullptr) {
    return steady_t0_ + Millis(static_cast<double>(plan_->end_ms->load()));
  }
  return steady_end_;
}

void TargetRun::MoveTo(int c, int node) {
  Client& cl = clients_[c];
  loop_.Close(cl.conn);
  cl.open = false;
  cl.node = node;
  loop_.SetEndpoint(cl.conn, config_.endpoints[static_cast<size_t>(node)]);
}

bool TargetRun::Ready(int node) const {
  return config_.readiness == nullptr || config_.readiness->ready(static_cast<size_t>(node));
}

int TargetRun::NextNode(int node) const {
  const int n = static_cast<int>(config_.endpoints.size());
  for (int step = 1; step < n; ++step) {
    if (Ready((node + step) % n)) return (node + step) % n;
  }
  return (node + 1) % n;
}

void TargetRun::Begin(int c, int key) {
  Client& cl = clients_[c];
  cl.key = key;
  cl.attempt = 0;
  cl.start = Clock::now();
  cl.refused = 0;
  if (config_.failover) {
    if (cl.node != cl.home && cl.start >= cl.home_retry_at && Ready(cl.home)) {
      // Away from its own node (which closed, refused or was not ready): try it again, at most
      // once a second, and with a probe only once it answers ready.
      cl.home_retry_at = cl.start + Millis(1000);
      MoveTo(c, cl.home);
      ++failover_.returns;
    } else if (!Ready(cl.node) && NextNode(cl.node) != cl.node && Ready(NextNode(cl.node))) {
      // The health check took this node out (draining, or not yet joined): leave it.
      MoveTo(c, NextNode(cl.node));
      ++failover_.moves;
      ++failover_.left_not_ready;
    }
  }
  ++in_flight_;
  StartAttempt(c);
}

void TargetRun::StartAttempt(int c) {
  Client& cl = clients_[c];
  ++cl.seq;
  if (recorder_ != nullptr) recorder_->CountAttempt();
  cl.state = State::kGet;
  loop_.AddTimer(Clock::now() + Millis(static_cast<double>(policy_.timeout_ms)),
                 MakeTag(kTimerTimeout, c, cl.seq));
  SendGet(c, kTagGet);
}

void TargetRun::SendGet(int c, uint8_t kind) {
  Client& cl = clients_[c];
  buf_.clear();
  EncodeCommand({"GET", keys_[cl.key]}, buf_);
  loop_.Send(cl.conn, buf_, MakeTag(kind, c, cl.seq));
}

void TargetRun::StartLoad(int c, bool winner, std::string token) {
  Client& cl = clients_[c];
  cl.state = State::kLoading;
  LoadJob job;
  job.cookie = loads_in_run_.size();
  job.statement = config_.statement;
  job.id = ids_[cl.key];
  loads_in_run_.push_back({c, cl.seq, cl.key, winner, std::move(token)});
  ++loads_;
  ++loads_open_;
  pool_->Submit(std::move(job));
}

void TargetRun::Finish(int c, Outcome outcome, std::string_view value, std::string_view error) {
  Client& cl = clients_[c];
  if (recorder_ != nullptr)
    recorder_->Record(cl.start, Clock::now(), outcome, cl.key, value, error);
  cl.state = State::kIdle;
  --in_flight_;
  if (cl.steady) ScheduleNext(c);
}

void TargetRun::ScheduleNext(int c) {
  Client& cl = clients_[c];
  TimePoint now = Clock::now();
  const TimePoint steady_end = SteadyEnd();
  if (plan_ == nullptr || now >= steady_end) {
    cl.steady = false;
    return;
  }
  if (plan_->rate <= 0) {
    Begin(c, plan_->keys->Next(rng_));
    return;
  }
  // Open loop while the client keeps up; a client that falls behind skips the missed slots.
  cl.next_slot += interval_;
  if (cl.next_slot < now - interval_) cl.next_slot = now;
  if (cl.next_slot >= steady_end) {
    cl.steady = false;
    return;
  }
  loop_.AddTimer(cl.next_slot, MakeTag(kTimerNext, c, 0));
}

void TargetRun::OnReply(int conn, uint64_t tag, const Reply& reply) {
  uint8_t kind = TagKind(tag);
  if (kind == kTagControl) {
    control_done_ = true;
    if (reply.kind == Reply::Kind::kError) control_error_ = std::string(reply.text);
    return;
  }
  if (kind == kTagIgnore) return;
  int c = TagIndex(tag);
  Client& cl = clients_[c];
  if (cl.seq != TagSeq(tag) || cl.state == State::kIdle) return;  // an abandoned attempt's
  const bool redis = config_.kind != TargetKind::kCorral;

  if (kind == kTagLock) {
    if (cl.state != State::kLock) return;
    if (reply.kind == Reply::Kind::kStatus) {
      StartLoad(c, true, cl.token);
    } else if (reply.kind == Reply::Kind::kNil) {
      cl.state = State::kPollWait;
      loop_.AddTimer(Clock::now() + Millis(static_cast<double>(config_.poll_ms)),
                     MakeTag(kTimerPoll, c, cl.seq));
    } else {
      Finish(c, Outcome::kError, "",
             reply.kind == Reply::Kind::kError ? reply.text : "bad reply to SET NX");
    }
    return;
  }

  // kTagGet or kTagPoll.
  if (cl.state != State::kGet && cl.state != State::kPoll) return;
  switch (reply.kind) {
    case Reply::Kind::kString:
      if (redis && reply.text == kNotFoundValue) {
        Finish(c, Outcome::kNotFound, "", "");
      } else {
        Finish(c, Outcome::kValue, reply.text, "");
      }
      return;
    case Reply::Kind::kNil:
      if (!redis) {
        Finish(c, Outcome::kNotFound, "", "");
      } else if (config_.kind == TargetKind::kRedisNaive) {
        StartLoad(c, false, "");
      } else if (cl.state == State::kGet) {
        cl.token = std::to_string(rng_());
        cl.state = State::kLock;
        buf_.clear();
        std::string px = std::to_string(config_.lock_px_ms);
        std::string lock_key = "lock:" + keys_[cl.key];
        EncodeCommand({"SET", lock_key, cl.token, "NX", "PX", px}, buf_);
        loop_.Send(cl.conn, buf_, MakeTag(kTagLock, c, cl.seq));
      } else {
        cl.state = State::kPollWait;
        loop_.AddTimer(Clock::now() + Millis(static_cast<double>(config_.poll_ms)),
                       MakeTag(kTimerPoll, c, cl.seq));
      }
      return;
    case Reply::Kind::kError:
      if ((reply.text.starts_with("BUSY") || policy_.retry_errors) && policy_.busy_retry_ms > 0 &&
          Clock::now() + Millis(static_cast<double>(policy_.busy_retry_ms)) <
              cl.start + Millis(static_cast<double>(policy_.timeout_ms))) {
        cl.state = State::kBusyWait;
        loop_.AddTimer(Clock::now() + Millis(static_cast<double>(policy_.busy_retry_ms)),
                       MakeTag(kTimerBusyRetry, c, cl.seq));
        return;
      }
      Finish(c, reply.text.starts_with("BUSY") ? Outcome::kBusy : Outcome::kError, "", reply.text);
      return;
    default:
      Finish(c, Outcome::kError, "", "unexpected reply type to GET");
  }
}

void TargetRun::OnConnectionLost(int conn, const std::vector<uint64_t>& tags,
                                 const std::string& why) {
  ++connections_lost_;
  if (connect_error_.empty()) connect_error_ = why;
  if (conn == control_conn_) {
    control_done_ = true;
    control_error_ = why;
    return;
  }
  int c = conn_client_[conn];
  if (c < 0) return;
  Client& cl = clients_[c];
  bool pending = false;
  for (uint64_t tag : tags) {
    uint8_t kind = TagKind(tag);
    if ((kind == kTagGet || kind == kTagPoll || kind == kTagLock) && TagSeq(tag) == cl.seq &&
        cl.state != State::kIdle && cl.state != State::kLoading && cl.state != State::kPollWait) {
      pending = true;
      break;
    }
  }
  if (config_.failover && FailOver(c, pending, why)) return;
  if (pending) Finish(c, Outcome::kConnection, "", why);
}

// The client now points at the next node. A request that the node never read goes there too,
// as a load balancer's client would send it again (the same attempt, its timeout still running):
// one whose connect was refused, or one on a connection the node closed cleanly (end of stream)
// without answering it. corral's drain answers every command it has read before it closes, so
// such a request reached the node after it stopped reading. A request lost any other way (a
// reset, a read error) fails. A request that every node refused or closed on fails.
bool TargetRun::FailOver(int c, bool pending, const std::string& why) {
  Client& cl = clients_[c];
  const bool was_open = cl.open;
  const int n = static_cast<int>(config_.endpoints.size());
  MoveTo(c, NextNode(cl.node));
  ++failover_.moves;
  if (!pending) return true;
  if (was_open && why != kClosedByServer) {
    ++failover_.lost_on_close;
    Finish(c, Outcome::kConnection, "", "lost with its connection: " + why);
    return true;
  }
  ++(was_open ? failover_.resent_after_close : failover_.refused);
  if (++cl.refused >= n) {
    Finish(c, Outcome::kConnection, "", "every node refused or closed: " + why);
    return true;
  }
  SendGet(c, kTagGet);
  return true;
}

void TargetRun::OnTimer(uint64_t tag) {
  uint8_t kind = TagKind(tag);
  int c = TagIndex(tag);
  switch (kind) {
    case kTimerProgress:
      DrawProgress(false);
      loop_.AddTimer(Clock::now() + Millis(250), MakeTag(kTimerProgress, 0, 0));
      return;
    case kTimerEvent:
      if (plan_ != nullptr && static_cast<size_t>(c) < plan_->events.size())
        plan_->events[c].second();
      return;
    case kTimerNext: {
      Client& cl = clients_[c];
      if (cl.steady && cl.state == State::kIdle && Clock::now() < SteadyEnd()) {
        Begin(c, plan_->keys->Next(rng_));
      }
      return;
    }
    default:
      break;
  }
  Client& cl = clients_[c];
  if (cl.seq != TagSeq(tag) || cl.state == State::kIdle) return;
  if (kind == kTimerPoll) {
    if (cl.state != State::kPollWait) return;
    cl.state = State::kPoll;
    SendGet(c, kTagPoll);
    return;
  }
  if (kind == kTimerBusyRetry) {
    if (cl.state == State::kBusyWait) StartAttempt(c);
    return;
  }
  // kTimerTimeout: the attempt is over. If more requests follow on this connection (a retry,
  // or steady traffic), a reply still owed would arrive out of turn: reconnect. A herd client
  // is done, and keeps its connection (Redis allows 10 000 clients by default; a herd may use
  // them all).
  const bool retry = cl.attempt + 1 <= policy_.retries;
  if ((retry || cl.steady) && loop_.pending(cl.conn) > 0) {
    loop_.Close(cl.conn);
    cl.open = false;
  }
  if (++cl.attempt <= policy_.retries) {
    StartAttempt(c);
  } else {
    Finish(c, Outcome::kTimeout, "",
           "timed out after " + std::to_string(policy_.timeout_ms) + " ms");
  }
}

int TargetRun::WriterFor(int key) {
  if (writers_.empty()) {
    for (int i = 0; i < kWriters; ++i) {
      writers_.push_back(loop_.AddConnection(config_.endpoints.front()));
      conn_client_.resize(writers_.back() + 1, -1);
    }
  }
  return writers_[static_cast<size_t>(key) % writers_.size()];
}

void TargetRun::OnWake() {
  if (pool_ == nullptr) return;
  for (LoadDone& done : pool_->TakeDone()) OnLoadDone(done);
}

void TargetRun::OnLoadDone(LoadDone& done) {
  if (done.cookie >= loads_in_run_.size()) return;
  const Load load = loads_in_run_[done.cookie];  // a copy: Finish may start new loads
  if (loads_open_ > 0) --loads_open_;
  Client& cl = clients_[load.client];
  const std::string& key = keys_[load.key];
  // Steady traffic closes connections on timeouts: its SETs and DELs go on writer connections.
  const int writer = use_writers_ ? WriterFor(load.key) : cl.conn;
  if (done.kind != LoadDone::Kind::kError) {
    std::string_view value =
        done.kind == LoadDone::Kind::kValue ? std::string_view(done.value) : kNotFoundValue;
    buf_.clear();
    std::string px = std::to_string(config_.ttl_ms);
    EncodeCommand({"SET", key, value, "PX", px}, buf_);
    loop_.Send(writer, buf_, MakeTag(kTagIgnore, 0, 0));
  }
  if (load.winner) {
    buf_.clear();
    std::string lock_key = "lock:" + key;
    EncodeCommand({"DEL", lock_key}, buf_);
    loop_.Send(writer, buf_, MakeTag(kTagIgnore, 0, 0));
  }
  if (cl.seq == load.seq && cl.state == State::kLoading) {
    switch (done.kind) {
      case LoadDone::Kind::kValue:
        Finish(load.client, Outcome::kValue, done.value, "");
        break;
      case LoadDone::Kind::kNotFound:
        Finish(load.client, Outcome::kNotFound, "", "");
        break;
      case LoadDone::Kind::kError:
        Finish(load.client, Outcome::kError, "", "load: " + done.value);
        break;
    }
  }
}

}  // namespace corral::herd

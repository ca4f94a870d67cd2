// Bench (scenarios.h). Each run: fresh ids, its own connections, a fill phase when the scenario
// has one (counted apart), then the measured window: referee snapshot, sampling every 100 ms, the
// traffic, the cache-aside loads still queued (bounded by --drain), referee snapshot again.
#include "bench/herd/scenarios.h"

#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "bench/herd/driver.h"

namespace corral::herd {

namespace {

// Index of each scenario family's query in the referee and the pool (texts may repeat).
constexpr size_t kHerdStatement = 0;
constexpr size_t kHitStatement = 1;
constexpr size_t kStormStatement = 2;
constexpr size_t kCycleStatement = 3;
constexpr size_t kBurstStatement = 4;
// burst: the most loads running at once is the figure, so pg_stat_activity is read as often as
// the referee manages (three nodes, one after the other) and corral's limit every 20 ms.
constexpr auto kBurstSamplePeriod = std::chrono::milliseconds(10);
constexpr auto kBurstMetricsPeriod = std::chrono::milliseconds(20);
// vicious-cycle: corral's limit, queue and sheds over time.
constexpr auto kCycleMetricsPeriod = std::chrono::milliseconds(200);
// A fill is set-up, not measurement: a fill shed by corral's load bound asks again after this.
constexpr int64_t kFillBusyRetryMs = 10;
// A client thread that did not get back to epoll_wait for this long makes latencies suspect.
constexpr int64_t kLoopLateUs = 100'000;

// The referee's view of one measured window.
class Window {
 public:
  Window(Referee& referee, size_t statement) : referee_(referee), statement_(statement) {}

  // Takes the first snapshot and starts sampling every `period`; t0 is the window's time origin.
  bool Begin(TimePoint t0, Clock::duration period, std::string* error) {
    before_ = referee_.Calls(statement_, error);
    if (before_ < 0) return false;
    t0_ = t0;
    referee_.StartSampling(statement_, t0, period);
    open_ = true;
    return true;
  }
  // Stops sampling and fills the DB fields of `out`.
  void End(RunResult& out) {
    if (!open_) return;
    open_ = false;
    std::vector<DbSample> samples = referee_.StopSampling();
    std::string error;
    int64_t after = referee_.Calls(statement_, &error);
    if (after < 0) {
      out.note += "referee: " + error + "; ";
      after = samples.empty() ? before_ : samples.back().calls;
    }
    out.db_queries = after - before_;
    // The series runs from the first snapshot to the last, so no query escapes it.
    samples.insert(samples.begin(), DbSample{0, before_, 0});
    samples.push_back(DbSample{SecondsBetween(t0_, Clock::now()), after, 0});
    SummarizeDb(samples, out);
  }
  ~Window() {
    if (open_) referee_.StopSampling();
  }
  int64_t before() const { return before_; }
  std::string Progress() const {
    return "| db " + std::to_string(referee_.latest_calls() - before_) + " q, " +
           std::to_string(referee_.latest_active()) + " running";
  }

 private:
  Referee& referee_;
  size_t statement_;
  int64_t before_ = 0;
  TimePoint t0_;
  bool open_ = false;
};

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace

KeySpace::KeySpace(int64_t min, int64_t max, uint64_t seed) : min_(min), max_(max) {
  std::mt19937_64 rng(seed);
  next_ = min_ + static_cast<int64_t>(rng() % static_cast<uint64_t>(max_ - min_ + 1));
}

std::vector<std::string> KeySpace::Take(size_t n) {
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(std::string(static_cast<size_t>(zeros_), '0') + std::to_string(next_));
    if (++next_ > max_) {
      next_ = min_;
      ++zeros_;
    }
  }
  return out;
}

Bench::Bench(Options options)
    : o_(std::move(options)), ids_(o_.id_min, o_.id_max, o_.seed), seed_(o_.seed) {}

Bench::~Bench() {
  if (delay_set_ && referee_) referee_->SetSetting(o_.delay_setting, DelayValue(o_.steady, 1));
}

const SteadyTraffic& Bench::Traffic(size_t statement) const {
  if (statement == kStormStatement) return o_.storm;
  if (statement == kCycleStatement) return o_.cycle;
  return o_.steady;
}

bool Bench::ReadsDelay(const SteadyTraffic& t) const {
  return t.query.find(o_.delay_setting) != std::string::npos;
}

std::string Bench::DelayValue(const SteadyTraffic& t, double factor) const {
  return Fmt("%.6f", t.db_delay_ms * factor / 1000.0);
}

std::string Bench::SetDelay(const SteadyTraffic& t, double factor) {
  if (!ReadsDelay(t)) return "";
  delay_set_ = true;
  return referee_->SetSetting(o_.delay_setting, DelayValue(t, factor));
}

std::string Bench::Setup() {
  std::vector<std::string> nodes = {o_.pg_primary};
  nodes.insert(nodes.end(), o_.pg_replicas.begin(), o_.pg_replicas.end());
  std::vector<std::string> queries = {o_.query, o_.steady.query, o_.storm.query, o_.cycle.query,
                                      o_.burst_query};
  referee_ = std::make_unique<Referee>(nodes, queries);
  if (std::string e = referee_->Connect(); !e.empty()) return "referee: " + e;

  std::vector<std::string> load_nodes = o_.pg_replicas;
  if (load_nodes.empty()) load_nodes = {o_.pg_primary};
  int connections = o_.db_connections * static_cast<int>(load_nodes.size());
  pool_ = std::make_unique<DbPool>(load_nodes, queries, connections, o_.db_statement_timeout_ms);
  if (std::string e = pool_->Start(); !e.empty()) return "database pool: " + e;

  // Fail now, not half-way through the run, if the delay cannot be set.
  for (const auto& s : o_.scenarios) {
    const SteadyTraffic* t = s == "expiry-storm"    ? &o_.storm
                             : s == "vicious-cycle" ? &o_.cycle
                             : s == "hit"           ? &o_.steady
                             : s == "rolling"       ? &o_.steady
                                                    : nullptr;
    if (t == nullptr) continue;
    if (std::string e = SetDelay(*t, 1); !e.empty()) {
      return "setting " + o_.delay_setting + " (needs a superuser): " + e;
    }
  }
  return "";
}

std::vector<RunResult> Bench::RunAll() {
  std::vector<RunResult> results;
  for (const auto& scenario : o_.scenarios) {
    for (int round = 0; round < o_.repeat; ++round) {
      for (size_t i = 0; i < o_.targets.size(); ++i) {
        TargetKind target = o_.targets[(i + static_cast<size_t>(round)) % o_.targets.size()];
        results.push_back(RunOne(scenario, target, round + 1));
        const RunResult& r = results.back();
        std::fprintf(stderr,
                     "%-13s %-11s round %d: %lld requests, %lld errors, %lld wrong, %lld DB "
                     "queries, peak %.0f q/s, p99 %.1f ms%s%s\n",
                     scenario.c_str(), r.target.c_str(), round + 1, (long long)r.requests,
                     (long long)r.errors, (long long)r.wrong, (long long)r.db_queries,
                     r.peak_db_qps, r.p99_ms, r.note.empty() ? "" : " — ", r.note.c_str());
      }
    }
  }
  return results;
}

RunResult Bench::RunOne(const std::string& scenario, TargetKind target, int round) {
  ++seed_;
  label_ = "[" + scenario + (o_.repeat > 1 ? " r" + std::to_string(round) : "") + "]";
  RunResult r;
  if (scenario == "cold") r = Cold(target);
  if (scenario == "keys") r = Keys(target);
  if (scenario == "expiry-storm") r = ExpiryStorm(target);
  if (scenario == "vicious-cycle") r = ViciousCycle(target);
  if (scenario == "hit") r = Hit(target);
  if (scenario == "rolling") r = Rolling(target);
  if (scenario == "burst") r = Burst(target);
  r.scenario = scenario;
  r.target = TargetName(target);
  r.round = round;
  if (target == TargetKind::kCorral) {
    r.nodes = static_cast<int>(o_.corral.size());
    r.shared_tier = o_.shared_tier;
  }
  return r;
}

TargetConfig Bench::ConfigFor(TargetKind target, size_t statement) const {
  TargetConfig c;
  c.kind = target;
  c.endpoints = target == TargetKind::kCorral ? o_.corral : std::vector<Endpoint>{o_.redis};
  c.statement = statement;
  c.ttl_ms = statement == kHerdStatement    ? o_.ttl_ms
             : statement == kBurstStatement ? o_.burst_ttl_ms
                                            : Traffic(statement).ttl_ms;
  c.lock_px_ms = o_.lock_px_ms;
  c.poll_ms = o_.poll_ms;
  return c;
}

std::vector<std::string> Bench::KeysFor(const std::vector<std::string>& ids,
                                        size_t statement) const {
  const std::string& ns = statement == kHerdStatement    ? o_.ns
                          : statement == kBurstStatement ? o_.burst_ns
                                                         : Traffic(statement).ns;
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (const auto& id : ids) keys.push_back(ns + ":" + id);
  return keys;
}

// Asks the database for every key that got an answer, through the pool, and counts the answers
// that differ. Runs after the measured window, so its queries are not counted.
void Bench::Verify(const Recorder& rec, const std::vector<std::string>& ids, size_t statement,
                   RunResult& out) {
  std::vector<LoadJob> jobs;
  std::vector<size_t> which;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (rec.answers()[k].empty()) continue;
    jobs.push_back({0, statement, ids[k]});
    which.push_back(k);
  }
  if (jobs.empty()) return;
  std::vector<LoadDone> truth = pool_->RunAll(std::move(jobs), Clock::now() + Millis(120'000));
  int unverified = 0;
  for (size_t j = 0; j < which.size(); ++j) {
    if (truth[j].kind == LoadDone::Kind::kError) {
      ++unverified;
      continue;
    }
    std::string expected =
        truth[j].kind == LoadDone::Kind::kValue ? truth[j].value : std::string(kNotFoundValue);
    for (const auto& [value, count] : rec.answers()[which[j]]) {
      if (value != expected) out.wrong += count;
    }
  }
  if (unverified > 0) out.note += std::to_string(unverified) + " keys not verified; ";
}

bool Bench::Prepare(TargetKind target, size_t statement, int keys, int clients, int64_t ttl_ms,
                    Prepared& p, RunResult& r, bool failover, const ReadinessProbe* readiness) {
  p.ids = ids_.Take(static_cast<size_t>(keys));
  p.keys = KeysFor(p.ids, statement);
  p.statement = statement;
  r.key_range = p.keys.front() + (p.keys.size() > 1 ? ".." + p.keys.back() : "");
  TargetConfig config = ConfigFor(target, statement);
  config.ttl_ms = ttl_ms;
  config.failover = failover;
  config.readiness = readiness;
  p.run = std::make_unique<TargetRun>(config, p.keys, p.ids, pool_.get(), seed_);
  std::string error;
  if (o_.flush && !(error = p.run->FlushAll(Clock::now() + Millis(10'000))).empty()) {
    r.note = "FLUSHALL: " + error;
    return false;
  }
  p.first = p.run->OpenClients(clients, Clock::now() + Millis(60'000), &error);
  if (p.first < 0) {
    r.note = error;
    return false;
  }
  return true;
}

void Bench::Fill(Prepared& p, RunResult& r, TimePoint& start, TimePoint& end) {
  const int n = static_cast<int>(p.keys.size());
  std::vector<int> assign(n);
  for (int i = 0; i < n; ++i) assign[i] = i;
  std::string error;
  int64_t before = referee_->Calls(p.statement, &error);
  start = Clock::now();
  Recorder fill(start, p.keys.size());
  p.run->SetRecorder(&fill);
  p.run->SetProgress(label_ + " fill", nullptr);
  p.run->Herd(p.first, assign, {o_.timeout_ms, 0, kFillBusyRetryMs},
              start + Millis(o_.timeout_ms + 30'000.0));
  p.run->Drain(Clock::now() + Millis(o_.drain_s * 1000));
  end = Clock::now();
  int64_t after = referee_->Calls(p.statement, &error);
  r.fill_db_queries = before >= 0 && after >= 0 ? after - before : -1;
  if (fill.failed() > 0) {
    r.note += std::to_string(fill.failed()) + " of " + std::to_string(n) + " fills failed (" +
              fill.first_error() + "); ";
  }
  p.run->SetRecorder(nullptr);
}

bool Bench::Measure(Prepared& p, RunResult& r, const std::function<bool()>& traffic,
                    const std::function<void(const Recorder&)>& inspect) {
  Window window(*referee_, p.statement);
  TimePoint t0 = Clock::now();
  std::string error;
  if (!window.Begin(t0, p.sample_period, &error)) {
    r.note += "referee: " + error + "; ";
    return false;
  }
  std::unique_ptr<MetricsPoller> metrics;
  if (p.metrics_period > Clock::duration::zero() && !o_.corral_http.empty()) {
    metrics = std::make_unique<MetricsPoller>(o_.corral_http, t0, p.metrics_period);
  }
  Recorder rec(t0, p.keys.size());
  p.run->SetRecorder(&rec);
  p.run->SetProgress(label_, [&] { return window.Progress(); });
  p.run->ResetLoopStats();
  if (!traffic()) r.note += "traffic did not finish in time; ";
  const RespLoop::Stats loop = p.run->loop_stats();
  size_t dropped = p.run->Drain(Clock::now() + Millis(o_.drain_s * 1000));
  window.End(r);
  if (metrics) r.corral_series = metrics->Stop();
  SummarizeClients(rec, r);
  if (dropped > 0) r.note += std::to_string(dropped) + " queued loads dropped after --drain; ";
  r.extra.push_back({"client_loads", static_cast<double>(p.run->loads())});
  // The client thread's own timeliness: a stall delays every answer measured across it.
  const bool busy_worse = loop.max_busy_us >= loop.max_late_wake_us;
  r.client_stall_ms = std::max(loop.max_busy_us, loop.max_late_wake_us) / 1000.0;
  r.client_stall_at_s = SecondsBetween(t0, busy_worse ? loop.max_busy_at : loop.max_late_wake_at);
  r.client_stall_cpu_ms = busy_worse ? loop.max_busy_cpu_us / 1000.0 : 0;
  if (r.client_stall_ms * 1000 > kLoopLateUs) {
    char text[160];
    std::snprintf(text, sizeof text,
                  "the client thread stalled %.0f ms at t=%.1f s (%.0f ms of it on CPU): "
                  "latencies across it include the stall; ",
                  r.client_stall_ms, r.client_stall_at_s, r.client_stall_cpu_ms);
    r.note += text;
  }
  Verify(rec, p.ids, p.statement, r);
  if (inspect) inspect(rec);
  p.run->SetRecorder(nullptr);
  return true;
}

RunResult Bench::Cold(TargetKind target) {
  RunResult r;
  Prepared p;
  if (!Prepare(target, kHerdStatement, 1, o_.clients, o_.ttl_ms, p, r)) return r;
  Measure(p, r, [&] {
    return p.run->Herd(p.first, std::vector<int>(o_.clients, 0), {o_.timeout_ms, 0},
                       Clock::now() + Millis(o_.timeout_ms + 30'000.0));
  });
  return r;
}

RunResult Bench::Keys(TargetKind target) {
  RunResult r;
  Prepared p;
  const int n = o_.keys * o_.clients_per_key;
  if (!Prepare(target, kHerdStatement, o_.keys, n, o_.ttl_ms, p, r)) return r;
  std::vector<int> assign(n);
  for (int i = 0; i < n; ++i) assign[i] = i % o_.keys;  // every key's herd arrives together
  Measure(p, r, [&] {
    return p.run->Herd(p.first, assign, {o_.timeout_ms, 0},
                       Clock::now() + Millis(o_.timeout_ms + 30'000.0));
  });
  return r;
}

RunResult Bench::ExpiryStorm(TargetKind target) {
  RunResult r;
  Prepared p;
  const SteadyTraffic& t = o_.storm;
  const int h = t.hot_keys;
  if (std::string e = SetDelay(t, 1); !e.empty()) {
    r.note = "cannot set the delay: " + e;
    return r;
  }
  if (!Prepare(target, kStormStatement, h, h + t.clients, t.ttl_ms, p, r)) return r;
  // Every hot key asked for once, all at once, so that they all expire together.
  TimePoint fill_start, fill_end;
  Fill(p, r, fill_start, fill_end);
  KeyChooser chooser(static_cast<size_t>(h), t.zipf_s);
  SteadyPlan plan;
  plan.rate = t.rate;
  plan.duration_s = o_.duration_s;
  plan.keys = &chooser;
  plan.policy = {t.timeout_ms, t.retries};
  const double per_request_s = t.timeout_ms * (t.retries + 1) / 1000.0;
  TimePoint t0 = Clock::now();
  Measure(p, r, [&] {
    return p.run->Steady(p.first + h, t.clients, plan,
                         Clock::now() + Millis((o_.duration_s + per_request_s + 30) * 1000));
  });
  // When the fill's TTLs run out (before corral's jitter), relative to the window's start.
  const double expiry_from = SecondsBetween(t0, fill_start) + t.ttl_ms / 1000.0;
  const double expiry_to = SecondsBetween(t0, fill_end) + t.ttl_ms / 1000.0;
  r.shaded.push_back({expiry_from, expiry_to});
  r.extra.push_back({"fill_s", SecondsBetween(fill_start, fill_end)});
  r.extra.push_back({"expiry_at_s", expiry_from});
  return r;
}

RunResult Bench::ViciousCycle(TargetKind target) {
  RunResult r;
  const SteadyTraffic& t = o_.cycle;
  if (!ReadsDelay(t)) {
    r.note = "skipped: the query does not read current_setting('" + o_.delay_setting +
             "'), so the database cannot be slowed (see README)";
    return r;
  }
  Prepared p;
  const int h = t.hot_keys;
  if (!Prepare(target, kCycleStatement, h, t.clients, t.ttl_ms, p, r)) return r;
  if (std::string e = SetDelay(t, 1); !e.empty()) {
    r.note = "cannot set the delay: " + e;
    return r;
  }
  KeyChooser chooser(static_cast<size_t>(h), t.zipf_s);
  const double slow_at = o_.vc_warm_s, fast_at = o_.vc_warm_s + o_.vc_slow_s;
  const double end = fast_at + o_.vc_recover_s;
  std::string event_error;
  auto set_delay = [&](double factor) {
    std::string e = SetDelay(t, factor);
    if (!e.empty() && event_error.empty()) event_error = e;
  };
  SteadyPlan plan;
  plan.rate = t.rate;
  plan.duration_s = end;
  plan.keys = &chooser;
  plan.policy = {t.timeout_ms, t.retries};
  plan.events.push_back({slow_at, [&] { set_delay(o_.slow_factor); }});
  plan.events.push_back({fast_at, [&] { set_delay(1); }});
  const double per_request_s = t.timeout_ms * (t.retries + 1) / 1000.0;
  if (target == TargetKind::kCorral) p.metrics_period = kCycleMetricsPeriod;
  Measure(p, r, [&] {
    bool ok = p.run->Steady(p.first, t.clients, plan,
                            Clock::now() + Millis((end + per_request_s + 30) * 1000));
    set_delay(1);  // whatever became of the events
    return ok;
  });
  if (!event_error.empty()) r.note += "delay switch: " + event_error + "; ";
  r.shaded.push_back({slow_at, fast_at});
  const double before = MeanGoodput(r, std::min(1.0, slow_at / 2), slow_at);
  const double after = MeanGoodput(r, fast_at + o_.vc_recover_s / 2, end);
  r.extra.push_back({"goodput_before", before});
  r.extra.push_back({"goodput_slow", MeanGoodput(r, slow_at, fast_at)});
  r.extra.push_back({"goodput_recovered", after});
  r.extra.push_back({"recovery_ratio", before > 0 ? after / before : 0});
  r.extra.push_back({"goodput_slow_of_rate", MeanGoodput(r, slow_at, fast_at) / t.rate});
  AddCycleLimit(r, slow_at, fast_at);
  return r;
}

RunResult Bench::Hit(TargetKind target) {
  RunResult r;
  Prepared p;
  const int h = o_.hit_keys;
  // Redis keeps the fill for the whole run; corral keeps read keys fresh by refreshing ahead.
  const int64_t ttl_ms =
      std::max<int64_t>(o_.steady.ttl_ms, static_cast<int64_t>((o_.hit_duration_s + 120) * 1000));
  if (std::string e = SetDelay(o_.steady, 1); !e.empty()) {
    r.note = "cannot set the delay: " + e;
    return r;
  }
  if (!Prepare(target, kHitStatement, h, h + o_.hit_clients, ttl_ms, p, r)) return r;
  TimePoint fill_start, fill_end;
  Fill(p, r, fill_start, fill_end);
  KeyChooser chooser(static_cast<size_t>(h), 0);  // uniform
  SteadyPlan plan;
  plan.rate = 0;  // closed loop: each client asks again as soon as it has its answer
  plan.duration_s = o_.hit_duration_s;
  plan.keys = &chooser;
  plan.policy = {o_.timeout_ms, 0};
  Measure(p, r, [&] {
    return p.run->Steady(
        p.first + h, o_.hit_clients, plan,
        Clock::now() + Millis((o_.hit_duration_s + o_.timeout_ms / 1000.0 + 30) * 1000));
  });
  r.extra.push_back({"clients", static_cast<double>(o_.hit_clients)});
  return r;
}

}  // namespace corral::herd

namespace corral::herd {

namespace {

// Queries in [from_s, to_s) from the referee's series (each point's rate covers the interval
// since the previous point), pro-rated where an interval straddles an end.
double DbQueriesBetween(const RunResult& r, double from_s, double to_s) {
  double sum = 0, prev = 0;
  for (const auto& p : r.db_series) {
    const double lo = std::max(prev, from_s), hi = std::min(p.t_s, to_s);
    if (hi > lo) sum += p.qps * (hi - lo);
    prev = p.t_s;
  }
  return sum;
}

// Requests that ended in [from_s, to_s), and how many of them got an answer.
std::pair<int64_t, int64_t> EndedBetween(const Recorder& rec, double from_s, double to_s) {
  int64_t ended = 0, answered = 0;
  const auto& lat = rec.bucket_latencies();
  for (size_t b = 0; b < lat.size(); ++b) {
    const double t = (static_cast<double>(b) + 0.5) * rec.bucket_s();
    if (t < from_s || t >= to_s) continue;
    ended += static_cast<int64_t>(lat[b].size());
    answered += rec.bucket_answers()[b];
  }
  return {ended, answered};
}

// `name{pool="POOL"}`, as corral renders a per-pool gauge.
std::string PoolSeries(std::string_view name, const std::string& pool) {
  return std::string(name) + "{pool=\"" + pool + "\"}";
}

// The pool's adaptive limit at each poll that reported it, as (t_s, limit).
std::vector<std::pair<double, double>> LimitSeries(const RunResult& r, const std::string& pool) {
  std::vector<std::pair<double, double>> out;
  const std::string series = PoolSeries("corral_concurrency_limit", pool);
  for (const MetricsPoint& p : r.corral_series) {
    if (const double v = MetricValue(p, series); v >= 0) out.emplace_back(p.t_s, v);
  }
  return out;
}

// corral's load control over the window, from its /metrics polls: the pool's limit (lowest and
// highest), its queue and the loads in flight (highest), the sheds by reason (counted in the
// window), and how many referee samples saw more of the namespace's queries running than the
// limit allowed (the limit taken as the higher of the polls either side of the sample).
void AddLoadControl(RunResult& r, const std::string& pool) {
  const auto limits = LimitSeries(r, pool);
  if (r.corral_series.empty() || limits.empty()) {
    if (!r.corral_series.empty()) r.note += "no corral_concurrency_limit for pool " + pool + "; ";
    return;
  }
  double low = limits.front().second, high = low, queue = 0, inflight = 0;
  for (const auto& [t, v] : limits) {
    low = std::min(low, v);
    high = std::max(high, v);
  }
  for (const MetricsPoint& p : r.corral_series) {
    queue = std::max(queue, MetricValue(p, PoolSeries("corral_load_queue", pool), 0));
    inflight = std::max(inflight, MetricFamilySum(p, "corral_replica_inflight_loads", 0));
  }
  int over = 0;
  for (const DbPoint& d : r.db_series) {
    auto next = std::lower_bound(limits.begin(), limits.end(), d.t_s,
                                 [](const auto& l, double t) { return l.first < t; });
    double limit = next == limits.end() ? limits.back().second : next->second;
    if (next != limits.begin()) limit = std::max(limit, std::prev(next)->second);
    if (d.active > limit) ++over;
  }
  r.extra.push_back({"limit_min", low});
  r.extra.push_back({"limit_max", high});
  r.extra.push_back({"queue_max", queue});
  r.extra.push_back({"inflight_max", inflight});
  r.extra.push_back({"samples_over_limit", static_cast<double>(over)});
  const MetricsPoint& first = r.corral_series.front();
  const MetricsPoint& last = r.corral_series.back();
  for (const auto& [series, value] : last.values) {
    if (!series.starts_with("corral_shed_total{reason=\"")) continue;
    const double shed = value - std::max(0.0, MetricValue(first, series, 0));
    if (shed <= 0) continue;
    const size_t from = series.find('"') + 1;
    r.extra.push_back({"shed_" + series.substr(from, series.rfind('"') - from), shed});
  }
}

}  // namespace

RunResult Bench::Burst(TargetKind target) {
  RunResult r;
  Prepared p;
  const int keys = o_.burst_keys;
  const int n = keys * o_.burst_clients_per_key;
  if (!Prepare(target, kBurstStatement, keys, n, o_.burst_ttl_ms, p, r)) return r;
  p.sample_period = kBurstSamplePeriod;
  if (target == TargetKind::kCorral) p.metrics_period = kBurstMetricsPeriod;
  std::vector<int> assign(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) assign[static_cast<size_t>(i)] = i % keys;  // herds arrive together
  int64_t served = 0;
  Measure(
      p, r,
      [&] {
        return p.run->Herd(p.first, assign, {o_.timeout_ms, 0},
                           Clock::now() + Millis(o_.timeout_ms + 30'000.0));
      },
      [&](const Recorder& rec) {
        for (const auto& answers : rec.answers()) served += answers.empty() ? 0 : 1;
      });
  r.extra.push_back({"keys", static_cast<double>(keys)});
  r.extra.push_back({"clients_per_key", static_cast<double>(o_.burst_clients_per_key)});
  r.extra.push_back({"keys_served", static_cast<double>(served)});
  if (o_.burst_capacity > 0) {
    r.extra.push_back({"capacity", o_.burst_capacity});
    r.extra.push_back(
        {"served_of_capacity", static_cast<double>(std::min<int64_t>(served, keys)) /
                                   std::min(o_.burst_capacity, static_cast<double>(keys))});
  }
  AddLoadControl(r, o_.burst_pool);
  return r;
}

void Bench::FillEveryNode(Prepared& p, int fill_clients, RunResult& r) {
  const int nodes = static_cast<int>(o_.corral.size());
  const int keys = static_cast<int>(p.keys.size());
  const int per_chunk = fill_clients / nodes;  // keys per chunk
  std::string error;
  const int64_t before = referee_->Calls(p.statement, &error);
  Recorder fill(Clock::now(), p.keys.size());
  p.run->SetRecorder(&fill);
  p.run->SetProgress(label_ + " fill", nullptr);
  for (int base = 0; base < keys; base += per_chunk) {
    const int n = std::min(per_chunk, keys - base) * nodes;
    std::vector<int> assign(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) assign[static_cast<size_t>(i)] = base + i / nodes;
    // Set-up, not measurement: a shed or failed load is asked again, for up to 30 s.
    if (!p.run->Herd(p.first, assign, {30'000, 0, kFillBusyRetryMs, /*retry_errors=*/true},
                     Clock::now() + Millis(60'000))) {
      r.note += "the fill did not finish in time; ";
      break;
    }
  }
  const int64_t after = referee_->Calls(p.statement, &error);
  r.fill_db_queries = before >= 0 && after >= 0 ? after - before : -1;
  if (fill.failed() > 0) {
    r.note += std::to_string(fill.failed()) + " of " + std::to_string(fill.requests()) +
              " fills failed (" + fill.first_error() + "); ";
  }
  p.run->SetRecorder(nullptr);
}

RunResult Bench::Rolling(TargetKind target) {
  RunResult r;
  if (target != TargetKind::kCorral) {
    r.note = "skipped: rolling restarts corral nodes";
    return r;
  }
  const SteadyTraffic& t = o_.steady;
  if (std::string e = SetDelay(t, 1); !e.empty()) {
    r.note = "cannot set the delay: " + e;
    return r;
  }
  const int nodes = static_cast<int>(o_.corral.size());
  const int fill_clients = std::max(1, 600 / nodes) * nodes;
  std::unique_ptr<ReadinessProbe> readiness;
  if (!o_.corral_http.empty()) {
    readiness = std::make_unique<ReadinessProbe>(o_.corral_http, Millis(200), Millis(500));
  }
  Prepared p;
  if (!Prepare(target, kHitStatement, t.hot_keys, fill_clients + t.clients, t.ttl_ms, p, r,
               /*failover=*/true, readiness.get())) {
    return r;
  }
  FillEveryNode(p, fill_clients, r);

  // The restart command runs on a thread of its own; when it exits, the traffic is given
  // --rolling-after more seconds.
  std::atomic<int64_t> end_ms{static_cast<int64_t>(
      (o_.rolling_warm_s + o_.rolling_timeout_s + 10 + o_.rolling_after_s) * 1000)};
  std::atomic<double> restart_from{-1}, restart_to{-1};
  std::atomic<int> status{-1};
  std::thread command;
  TimePoint t0;
  const std::string shell = "timeout -k 5 " + Fmt("%.0f", o_.rolling_timeout_s) + " /bin/sh -c " +
                            [&] {  // single-quoted for /bin/sh
                              std::string q = "'";
                              for (char ch : o_.rolling_command) {
                                if (ch == '\'') {
                                  q += "'\\''";
                                } else {
                                  q += ch;
                                }
                              }
                              return q + "'";
                            }();
  KeyChooser chooser(static_cast<size_t>(t.hot_keys), t.zipf_s);
  SteadyPlan plan;
  plan.rate = t.rate;
  plan.keys = &chooser;
  plan.policy = {t.timeout_ms, t.retries};
  plan.end_ms = &end_ms;
  plan.events.push_back({o_.rolling_warm_s, [&] {
                           restart_from = SecondsBetween(t0, Clock::now());
                           command = std::thread([&] {
                             int rc = std::system(shell.c_str());
                             status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
                             const double to = SecondsBetween(t0, Clock::now());
                             restart_to = to;
                             end_ms = static_cast<int64_t>((to + o_.rolling_after_s) * 1000);
                           });
                         }});
  const double per_request_s = t.timeout_ms * (t.retries + 1) / 1000.0;
  const double limit_s = o_.rolling_warm_s + o_.rolling_timeout_s + 10 + o_.rolling_after_s;
  std::pair<int64_t, int64_t> before{}, during{}, after{};
  double shift = 0;  // the window's clock (the record's and the referee's) runs from just before t0
  Measure(
      p, r,
      [&] {
        t0 = Clock::now();
        bool ok = p.run->Steady(p.first + fill_clients, t.clients, plan,
                                t0 + Millis((limit_s + per_request_s + 30) * 1000));
        if (command.joinable()) command.join();
        return ok;
      },
      [&](const Recorder& rec) {
        shift = SecondsBetween(rec.t0(), t0);
        const double from = restart_from + shift, to = restart_to + shift;
        before = EndedBetween(rec, 0, from);
        during = EndedBetween(rec, from, to);
        after = EndedBetween(rec, to, 1e9);
      });
  if (command.joinable()) command.join();
  if (restart_from < 0 || restart_to < 0) {
    r.note += "the restart command did not run; ";
    return r;
  }
  const double from = restart_from + shift, to = restart_to + shift;
  if (status != 0) r.note += "the restart command exited " + std::to_string(status.load()) + "; ";
  r.shaded.push_back({from, to});
  auto ratio = [](std::pair<int64_t, int64_t> e) {
    return e.first > 0 ? static_cast<double>(e.second) / static_cast<double>(e.first) : 0.0;
  };
  const double restart_queries = DbQueriesBetween(r, from, to);
  const double after_queries = DbQueriesBetween(r, to, 1e9);
  const double end_s = r.db_series.empty() ? to : r.db_series.back().t_s;
  const auto& f = p.run->failover_stats();
  r.extra.push_back({"keys", static_cast<double>(t.hot_keys)});
  r.extra.push_back({"restart_from_s", from});
  r.extra.push_back({"restart_s", to - from});
  r.extra.push_back({"command_status", static_cast<double>(status.load())});
  r.extra.push_back({"goodput_ratio", r.requests > 0 ? static_cast<double>(r.answers - r.wrong) /
                                                           static_cast<double>(r.requests)
                                                     : 0.0});
  r.extra.push_back({"goodput_ratio_before", ratio(before)});
  r.extra.push_back({"goodput_ratio_restart", ratio(during)});
  r.extra.push_back({"goodput_ratio_after", ratio(after)});
  r.extra.push_back({"requests_restart", static_cast<double>(during.first)});
  // Requests that ended per second: the offered load (a client thread that stalls skips slots).
  r.extra.push_back({"requests_per_s_before", from > 0 ? before.first / from : 0});
  r.extra.push_back({"requests_per_s_restart", to > from ? during.first / (to - from) : 0});
  r.extra.push_back({"failed_restart", static_cast<double>(during.first - during.second)});
  r.extra.push_back({"db_qps_steady", from > 0 ? DbQueriesBetween(r, 0, from) / from : 0});
  r.extra.push_back({"db_queries_restart", restart_queries});
  r.extra.push_back({"db_qps_restart", to > from ? restart_queries / (to - from) : 0});
  r.extra.push_back({"db_queries_after", after_queries});
  r.extra.push_back({"db_qps_after", end_s > to ? after_queries / (end_s - to) : 0});
  r.extra.push_back({"moves", static_cast<double>(f.moves)});
  r.extra.push_back({"returns", static_cast<double>(f.returns)});
  r.extra.push_back({"refused", static_cast<double>(f.refused)});
  r.extra.push_back({"resent_after_close", static_cast<double>(f.resent_after_close)});
  r.extra.push_back({"lost_on_close", static_cast<double>(f.lost_on_close)});
  r.extra.push_back({"readiness_probe", readiness ? 1.0 : 0.0});
  r.extra.push_back({"left_not_ready", static_cast<double>(f.left_not_ready)});
  r.extra.push_back({"readiness_flips", readiness ? static_cast<double>(readiness->flips()) : 0});
  return r;
}

void Bench::AddCycleLimit(RunResult& r, double slow_at, double fast_at) const {
  AddLoadControl(r, o_.vc_pool);
  const auto limits = LimitSeries(r, o_.vc_pool);
  // The limit before the slowdown: its mean over the last 2 s of the warm phase.
  double sum = 0;
  int count = 0;
  for (const auto& [t, v] : limits) {
    if (t >= slow_at - 2 && t < slow_at) {
      sum += v;
      ++count;
    }
  }
  if (count == 0) return;
  const double before = sum / count;
  double low = before;
  for (const auto& [t, v] : limits) {
    if (t >= slow_at && t < fast_at) low = std::min(low, v);
  }
  // Recovery: from the end of the slowdown until the limit is first back within 10 % of `before`
  // (0 if it never left; -1 if it did not come back within the run).
  double recovery = -1;
  for (const auto& [t, v] : limits) {
    if (t >= fast_at && std::fabs(v - before) <= 0.1 * before) {
      recovery = t - fast_at;
      break;
    }
  }
  r.extra.push_back({"limit_before", before});
  r.extra.push_back({"limit_min_slow", low});
  r.extra.push_back({"limit_recovery_s", recovery});
}

}  // namespace corral::herd

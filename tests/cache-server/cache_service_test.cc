// Tests for cache-server/cache_service: the read-through rules of SPEC.md 1-8 end to end over a
// real Store and LeaseTable, with a FakeBackend the test completes by hand, a FakeClock and fixed
// random draws. Each case checks the answers, the backend's load count and the metrics.
#include "cache-server/cache_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lease/clock.h"
#include "lease/lease_table.h"
#include "lease/random.h"
#include "lease/store.h"

namespace corral::server {
namespace {

using lease::Millis;
using ::testing::ElementsAre;
using AnswerKind = ReadAnswer::Kind;
using LoadKind = lease::LoadResult::Kind;
using LeaseKind = CacheService::LeaseGetAnswer::Kind;

BackendResult Result(LoadKind kind, std::string data, int64_t micros) {
  BackendResult r;
  r.kind = kind;
  r.data = std::move(data);
  r.micros = micros;
  return r;
}
BackendResult Found(std::string value, int64_t micros = 1000) {
  return Result(LoadKind::kValue, std::move(value), micros);
}
BackendResult NotFound() { return Result(LoadKind::kNotFound, "", 1000); }
// A value read at WAL position `position`.
BackendResult FoundAt(std::string value, lease::WalPosition position) {
  BackendResult r = Result(LoadKind::kValue, std::move(value), 1000);
  r.position = position;
  return r;
}

// The primary's positions as the test hands them out, and what the replicas have replayed.
class FakePositions final : public PositionSource {
 public:
  void CurrentPosition(std::function<void(lease::WalPosition)> done) override {
    std::lock_guard lock(mu_);
    asked_.push_back(std::move(done));
  }
  bool CanRead(size_t, lease::WalPosition position) const override {
    return position <= readable_.load();
  }
  lease::WalPosition ReplayedEverywhere() const override { return replayed_.load(); }
  void RefreshPositions(size_t) override { ++refreshes_; }

  // Answers every CurrentPosition asked so far with `position`; returns how many.
  size_t Answer(lease::WalPosition position) {
    std::vector<std::function<void(lease::WalPosition)>> asked;
    {
      std::lock_guard lock(mu_);
      asked.swap(asked_);
    }
    for (auto& done : asked) done(position);
    return asked.size();
  }
  std::atomic<lease::WalPosition> readable_{0};  // some server has replayed this far
  std::atomic<lease::WalPosition> replayed_{0};  // every usable replica has
  std::atomic<int> refreshes_{0};                // RefreshPositions calls

 private:
  std::mutex mu_;
  std::vector<std::function<void(lease::WalPosition)>> asked_;
};
BackendResult Failed(std::string why) { return Result(LoadKind::kError, std::move(why), 1000); }

// lease::FakeRandom that also counts its draws, and whose values a test may replace between steps.
class CountingRandom final : public lease::Random {
 public:
  explicit CountingRandom(std::vector<double> values)
      : fake_(std::make_unique<lease::FakeRandom>(std::move(values))) {}
  double Uniform01() override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    return fake_->Uniform01();
  }
  // Not thread-safe: only between steps of a single-threaded test.
  void Set(std::vector<double> values) {
    fake_ = std::make_unique<lease::FakeRandom>(std::move(values));
  }
  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }

 private:
  std::unique_ptr<lease::FakeRandom> fake_;
  std::atomic<uint64_t> calls_{0};
};

// Records every Load and holds its callback until the test completes it: on the test thread
// (Complete), from a backend thread (Take), or inline inside Load (SetInline). Thread-safe.
class FakeBackend final : public LoadBackend {
 public:
  struct Call {
    size_t ns_index;
    std::string id;
    std::function<void(BackendResult)> done;
    lease::WalPosition min_position = 0;
  };

  // Asks for admission first, as a real backend does before its query (unless told it answers
  // without one); a shed load is not recorded (it never reached the database), and a queued one
  // is recorded once it is admitted.
  void Load(size_t ns_index, std::string id, lease::WalPosition min_position, AdmitFn admit,
            std::function<void(BackendResult)> done) override {
    if (!asks_admission_) {
      return Admitted(ns_index, std::move(id), std::move(done), min_position);
    }
    admit([this, ns_index, min_position, id = std::move(id),
           done = std::move(done)](lease::Admission a) {
      if (a != lease::Admission::kAdmitted) return done(ShedResult(a));
      Admitted(ns_index, id, done, min_position);
    });
  }

  void Admitted(size_t ns_index, std::string id, std::function<void(BackendResult)> done,
                lease::WalPosition min_position) {
    std::optional<BackendResult> now;
    {
      std::lock_guard lock(mu_);
      history_.push_back({ns_index, id});
      ++loads_by_id_[id];
      now = inline_;
      if (!now) pending_.push_back({ns_index, std::move(id), std::move(done), min_position});
    }
    cv_.notify_all();
    if (now) done(*now);
  }

  // Completes the oldest pending load of `id` on the calling thread; false if there is none.
  bool Complete(const std::string& id, BackendResult result) {
    std::function<void(BackendResult)> done;
    {
      std::lock_guard lock(mu_);
      auto it =
          std::find_if(pending_.begin(), pending_.end(), [&](const Call& c) { return c.id == id; });
      if (it == pending_.end()) return false;
      done = std::move(it->done);
      pending_.erase(it);
    }
    done(std::move(result));
    return true;
  }

  // The oldest pending load, waiting for one until `deadline` or Stop(); nullopt then.
  std::optional<Call> Take(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_until(lock, deadline, [&] { return stopped_ || !pending_.empty(); })) {
      return std::nullopt;
    }
    if (pending_.empty()) return std::nullopt;
    Call call = std::move(pending_.front());
    pending_.pop_front();
    return call;
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

  // false: later loads answer without a database query (as the Redis tier's L2 hits and waits on
  // another node's load do), so they never ask for admission.
  void SetAsksAdmission(bool asks) { asks_admission_ = asks; }
  // As the tier's L2: some loads are answered without admission, so none is shed before it.
  bool AnswersWithoutAdmission() const override { return !asks_admission_; }
  // Records how many loads each call sent together (as PgBackend would queue them at once).
  void Together(const std::function<void()>& body) override {
    const size_t before = loads();
    body();
    std::lock_guard lock(mu_);
    calls_.push_back(history_.size() - before);
  }
  std::vector<size_t> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

  // Every later Load calls `done` with `result` before returning (nullopt: hold them again).
  void SetInline(std::optional<BackendResult> result) {
    std::lock_guard lock(mu_);
    inline_ = std::move(result);
  }

  size_t loads() const {
    std::lock_guard lock(mu_);
    return history_.size();
  }
  size_t loads(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = loads_by_id_.find(id);
    return it == loads_by_id_.end() ? 0 : it->second;
  }
  std::map<std::string, size_t> loads_by_id() const {
    std::lock_guard lock(mu_);
    return loads_by_id_;
  }
  size_t pending() const {
    std::lock_guard lock(mu_);
    return pending_.size();
  }
  // The position the oldest pending load of `id` was asked to read at; nullopt if none pends.
  std::optional<lease::WalPosition> min_position(const std::string& id) const {
    std::lock_guard lock(mu_);
    for (const Call& c : pending_) {
      if (c.id == id) return c.min_position;
    }
    return std::nullopt;
  }
  std::pair<size_t, std::string> call(size_t i) const {
    std::lock_guard lock(mu_);
    return history_.at(i);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Call> pending_;
  std::vector<std::pair<size_t, std::string>> history_;
  std::map<std::string, size_t> loads_by_id_;
  std::optional<BackendResult> inline_;
  bool stopped_ = false;
  std::atomic<bool> asks_admission_{true};
  std::vector<size_t> calls_;  // loads per call sent through Together
};

// A copy of a ReadAnswer (its views die with the callback).
struct Answer {
  AnswerKind kind;
  Outcome outcome;
  std::string value;
  std::string error;
  Millis age_ms;
};

Answer Copy(const ReadAnswer& a) {
  return {a.kind, a.outcome, std::string(a.value), std::string(a.error), a.age_ms};
}

// Everything one Read (or LeaseGet) was told. Thread-safe.
struct Record {
  mutable std::mutex mu;
  std::vector<Answer> answers;
  std::vector<lease::LeaseToken> grants;  // LEASE.GET: leases handed over later
  bool returned_now = false;              // Read returned true
  bool via_now = false;                   // the answer came through the `now` callback
  int laters_made = 0;
  bool answered_during_call = false;  // an answer arrived before Read/LeaseGet returned
  bool in_call = true;

  void Add(const ReadAnswer& a, bool now) {
    std::lock_guard lock(mu);
    answers.push_back(Copy(a));
    via_now = via_now || now;
    if (in_call) answered_during_call = true;
  }
  size_t count() const {
    std::lock_guard lock(mu);
    return answers.size() + grants.size();
  }
  // The one answer; fails the test and returns a placeholder if there was not exactly one.
  Answer only() const {
    std::lock_guard lock(mu);
    EXPECT_EQ(answers.size() + grants.size(), 1u);
    if (answers.size() != 1) return {AnswerKind::kBusy, Outcome::kShed, "<none>", "<none>", -1};
    return answers.front();
  }
};
using RecordPtr = std::shared_ptr<Record>;

NamespaceConfig Ns(std::string name, std::string pool = "default") {
  NamespaceConfig ns;
  ns.name = std::move(name);
  ns.query = "SELECT v FROM t WHERE id = $1";
  ns.pool = std::move(pool);
  ns.ttl_ms = 60'000;
  ns.ttl_jitter = 0.1;
  ns.stale_ms = 300'000;
  ns.negative_ttl_ms = 5'000;
  ns.max_inflight_loads = 64;
  ns.max_loads_per_s = 0;
  ns.blocked = false;
  return ns;
}

// Namespaces "item" (index 0, pool "items") and "user" (index 1, pool "default").
Config TestConfig() {
  Config config;
  config.namespaces["user"] = Ns("user");
  config.namespaces["item"] = Ns("item", "items");
  config.lease.wait_timeout_ms = 2'000;
  config.lease.lease_ttl_ms = 10'000;
  config.lease.error_holdoff_ms = 1'000;
  config.shedding.max_pending_loads = 10'000;
  return config;
}

constexpr size_t kItemIndex = 0;
constexpr size_t kUserIndex = 1;

std::string UserLoads(std::string_view outcome) {
  return "namespace=\"user\",pool=\"default\",outcome=\"" + std::string(outcome) + "\"";
}
std::string ShedReason(std::string_view reason) { return "reason=\"" + std::string(reason) + "\""; }

class CacheServiceTest : public ::testing::Test {
 protected:
  CacheServiceTest() { Start(TestConfig()); }

  // (Re)builds the service with `config` over an empty store and lease table.
  void Start(Config config) {
    service_.reset();
    leases_.reset();
    store_.reset();
    config_ = std::move(config);
    store_ = std::make_unique<lease::Store>(lease::StoreOptions{.max_bytes = 64 << 20, .shards = 4},
                                            clock_, fill_random_);
    leases_ = std::make_unique<lease::LeaseTable>(
        lease::LeaseTableOptions{.wait_timeout_ms = config_.lease.wait_timeout_ms,
                                 .lease_ttl_ms = config_.lease.lease_ttl_ms,
                                 .shards = 4},
        clock_);
    service_ = std::make_unique<CacheService>(config_, *store_, *leases_, clock_, draw_random_,
                                              metrics_, &backend_);
  }

  // `written`: the client's own write's WAL position (read-your-writes).
  RecordPtr Read(std::string_view key, Proto proto = Proto::kResp, lease::WalPosition written = 0) {
    auto record = std::make_shared<Record>();
    bool now = service_->Read(
        proto, key, [&](const ReadAnswer& a) { record->Add(a, true); },
        [record]() -> ReadLater {
          {
            std::lock_guard lock(record->mu);
            ++record->laters_made;
          }
          return [record](const ReadAnswer& a) { record->Add(a, false); };
        },
        written);
    std::lock_guard lock(record->mu);
    record->returned_now = now;
    record->in_call = false;
    // Read's contract: true iff answered through `now`; false iff make_later was called once.
    EXPECT_EQ(now, record->via_now) << key;
    EXPECT_EQ(record->laters_made, now ? 0 : 1) << key;
    return record;
  }

  struct LeaseGetResult {
    CacheService::LeaseGetAnswer answer;
    RecordPtr record;
  };
  LeaseGetResult LeaseGet(std::string_view key) {
    auto record = std::make_shared<Record>();
    CacheService::LeaseGetAnswer answer = service_->LeaseGet(
        key, [&](const ReadAnswer& a) { record->Add(a, true); },
        [record]() -> ReadLater {
          return [record](const ReadAnswer& a) { record->Add(a, false); };
        },
        [record](lease::LeaseToken token) {
          std::lock_guard lock(record->mu);
          record->grants.push_back(token);
        });
    std::lock_guard lock(record->mu);
    record->in_call = false;
    return {answer, record};
  }

  // Reads a cold `key` and completes its load with `value` (loaded in `micros`).
  void Fill(const std::string& key, const std::string& value, int64_t micros = 1000) {
    RecordPtr r = Read(key);
    ASSERT_FALSE(r->returned_now) << key;
    ASSERT_TRUE(backend_.Complete(key.substr(key.find(':') + 1), Found(value, micros)));
    ASSERT_EQ(r->only().value, value);
  }

  uint64_t Requests(Outcome o, Proto p = Proto::kResp) const { return metrics_.Requests(p, o); }
  uint64_t AllRequests() const {
    uint64_t n = 0;
    for (size_t p = 0; p < kProtoCount; ++p) {
      for (size_t o = 0; o < kOutcomeCount; ++o) {
        n += metrics_.Requests(static_cast<Proto>(p), static_cast<Outcome>(o));
      }
    }
    return n;
  }

  lease::FakeClock clock_;
  CountingRandom fill_random_{{0.5}};  // the store's TTL jitter: 0.5 gives exactly ttl_ms
  CountingRandom draw_random_{{0.5}};  // the service's XFetch draws
  Metrics metrics_;
  FakeBackend backend_;
  Config config_;
  std::unique_ptr<lease::Store> store_;
  std::unique_ptr<lease::LeaseTable> leases_;
  std::unique_ptr<CacheService> service_;
};

// --- Rule 1: single flight -----------------------------------------------------------------

TEST_F(CacheServiceTest, SingleFlightOneLoadForManyReaders) {
  constexpr int kReaders = 1000;
  std::vector<RecordPtr> reads;
  for (int i = 0; i < kReaders; ++i) reads.push_back(Read("user:42"));
  for (const RecordPtr& r : reads) {
    EXPECT_FALSE(r->returned_now);
    EXPECT_EQ(r->count(), 0u);
  }
  ASSERT_EQ(backend_.loads(), 1u);
  EXPECT_EQ(backend_.call(0), std::make_pair(kUserIndex, std::string("42")));
  EXPECT_EQ(leases_->coalesced_total(), kReaders - 1u);

  const std::string json = R"({"id":42,"name":"Zoë \"Z\"","tags":["a","b"],"n":null})";
  ASSERT_TRUE(backend_.Complete("42", Found(json)));
  for (int i = 0; i < kReaders; ++i) {
    Answer a = reads[i]->only();
    EXPECT_EQ(a.kind, AnswerKind::kValue) << i;
    EXPECT_EQ(a.value, json) << i;
    EXPECT_EQ(a.outcome, i == 0 ? Outcome::kMiss : Outcome::kWaited) << i;
  }
  EXPECT_EQ(Requests(Outcome::kMiss), 1u);
  EXPECT_EQ(Requests(Outcome::kWaited), kReaders - 1u);
  EXPECT_EQ(AllRequests(), static_cast<uint64_t>(kReaders));
  EXPECT_EQ(leases_->coalesced_total(), kReaders - 1u);
  EXPECT_EQ(metrics_.db_loads.Value(UserLoads("value")), 1u);
  EXPECT_EQ(leases_->leases(), 0u);
  EXPECT_EQ(leases_->waiters(), 0u);

  // Cached: the next read is a hit and loads nothing; JSON comes back byte for byte.
  RecordPtr hit = Read("user:42");
  EXPECT_TRUE(hit->returned_now);
  EXPECT_EQ(hit->only().outcome, Outcome::kHit);
  EXPECT_EQ(hit->only().value, json);
  EXPECT_EQ(backend_.loads(), 1u);
  EXPECT_EQ(Requests(Outcome::kHit), 1u);
}

// Panic mode: every replica of the pool lagged, so the loader read one anyway. Its row answers
// the waiters, as stale, and is kept only as stale: the next read serves it stale and reloads.
TEST_F(CacheServiceTest, ALoadFromALaggingReplicaIsKeptAsStaleNotFresh) {
  RecordPtr first = Read("user:42");
  BackendResult behind = Found("old");
  behind.behind = true;
  ASSERT_TRUE(backend_.Complete("42", behind));
  EXPECT_EQ(first->only().value, "old");
  EXPECT_EQ(first->only().outcome, Outcome::kStale);
  RecordPtr second = Read("user:42");
  EXPECT_TRUE(second->returned_now);
  EXPECT_EQ(second->only().value, "old");
  EXPECT_EQ(second->only().outcome, Outcome::kStale);
  ASSERT_EQ(backend_.loads(), 2u) << "a stale entry is reloaded on its next read";
  ASSERT_TRUE(backend_.Complete("42", Found("new")));
  RecordPtr third = Read("user:42");
  EXPECT_EQ(third->only().value, "new");
  EXPECT_EQ(third->only().outcome, Outcome::kHit);
}

TEST_F(CacheServiceTest, KeysLoadIndependentlyWithTheirNamespaceAndId) {
  RecordPtr a = Read("user:1");
  RecordPtr b = Read("item:1");
  RecordPtr c = Read("user:a:b");  // the id is everything after the first ':'
  ASSERT_EQ(backend_.loads(), 3u);
  EXPECT_EQ(backend_.call(0), std::make_pair(kUserIndex, std::string("1")));
  EXPECT_EQ(backend_.call(1), std::make_pair(kItemIndex, std::string("1")));
  EXPECT_EQ(backend_.call(2), std::make_pair(kUserIndex, std::string("a:b")));
  EXPECT_EQ(leases_->coalesced_total(), 0u);
}

// LoadBackend allows `done` to run before Load returns. The reader must still get one answer
// from exactly one load, and the value must be cached.
TEST_F(CacheServiceTest, BackendCompletingInsideLoadIsOneLoad) {
  backend_.SetInline(Found("v"));
  RecordPtr r = Read("user:1");
  EXPECT_EQ(backend_.loads(), 1u);
  Answer a = r->only();
  EXPECT_EQ(a.kind, AnswerKind::kValue);
  EXPECT_EQ(a.value, "v");
  EXPECT_EQ(a.outcome, Outcome::kMiss);
  backend_.SetInline(std::nullopt);
  RecordPtr hit = Read("user:1");
  EXPECT_TRUE(hit->returned_now);
  EXPECT_EQ(backend_.loads(), 1u);
}

// --- Rule 2: waiting is bounded --------------------------------------------------------------

TEST_F(CacheServiceTest, WaitersGetBusyAtTheirDeadline) {
  std::vector<RecordPtr> reads;
  for (int i = 0; i < 5; ++i) reads.push_back(Read("user:1"));
  ASSERT_EQ(backend_.loads(), 1u);
  clock_.Advance(config_.lease.wait_timeout_ms - 1);
  service_->Tick();
  for (const RecordPtr& r : reads) EXPECT_EQ(r->count(), 0u);
  clock_.Advance(1);
  service_->Tick();
  for (const RecordPtr& r : reads) {
    Answer a = r->only();
    EXPECT_EQ(a.kind, AnswerKind::kBusy);
    EXPECT_FALSE(a.error.empty());
  }
  EXPECT_EQ(Requests(Outcome::kShed), 5u);
  EXPECT_EQ(AllRequests(), 5u);
  EXPECT_EQ(backend_.loads(), 1u) << "a timeout starts no load";
  EXPECT_EQ(leases_->waiters(), 0u);
}

TEST_F(CacheServiceTest, AbandonedLoadExpiresAndTheNextWaiterLoads) {
  RecordPtr first = Read("user:1");
  clock_.Advance(config_.lease.wait_timeout_ms);
  service_->Tick();
  EXPECT_EQ(first->only().kind, AnswerKind::kBusy);
  // The load still holds the lease: a later reader waits on it instead of loading again...
  clock_.Advance(config_.lease.lease_ttl_ms - config_.lease.wait_timeout_ms - 500);
  RecordPtr later = Read("user:1");
  EXPECT_EQ(backend_.loads(), 1u);
  // ...until the lease expires: the waiter is handed it and loads.
  clock_.Advance(500);
  service_->Tick();
  EXPECT_EQ(backend_.loads(), 2u);
  EXPECT_EQ(later->count(), 0u);
  ASSERT_TRUE(backend_.Complete("1", Found("fresh")));  // the oldest pending: the abandoned one
  EXPECT_EQ(later->count(), 0u) << "the expired lease's late result answers nobody";
  EXPECT_FALSE(service_->Exists("user:1")) << "and is not cached";
  ASSERT_TRUE(backend_.Complete("1", Found("second")));
  EXPECT_EQ(later->only().value, "second");
  EXPECT_EQ(later->only().outcome, Outcome::kMiss);
  EXPECT_TRUE(service_->Exists("user:1"));
}

TEST_F(CacheServiceTest, TimedOutReadGetsAValueStoredDuringTheWait) {
  RecordPtr r = Read("user:1");
  EXPECT_EQ(service_->Set("user:1", "written", std::nullopt), lease::SetResult::kStored);
  clock_.Advance(config_.lease.wait_timeout_ms);
  service_->Tick();
  Answer a = r->only();
  EXPECT_EQ(a.kind, AnswerKind::kValue);
  EXPECT_EQ(a.value, "written");
  EXPECT_EQ(Requests(Outcome::kStale), 1u);
}

TEST_F(CacheServiceTest, TimedOutLeaseWaiterGetsTheStaleValue) {
  Fill("user:1", "old");
  clock_.Advance(60'000);  // stale now
  LeaseGetResult holder = LeaseGet("user:1");
  ASSERT_EQ(holder.answer.kind, LeaseKind::kLease) << "a stale value makes the client reload";
  LeaseGetResult waiter = LeaseGet("user:1");
  ASSERT_EQ(waiter.answer.kind, LeaseKind::kPending);
  clock_.Advance(config_.lease.wait_timeout_ms);
  service_->Tick();
  Answer a = waiter.record->only();
  EXPECT_EQ(a.kind, AnswerKind::kValue);
  EXPECT_EQ(a.value, "old");
  EXPECT_EQ(a.outcome, Outcome::kStale);
  EXPECT_EQ(Requests(Outcome::kStale), 1u);
  EXPECT_EQ(backend_.loads(), 1u) << "only the original fill";
}

// --- Rule 3: jittered TTL --------------------------------------------------------------------

TEST_F(CacheServiceTest, FillTtlIsJitteredByTheDraw) {
  // ttl 60000, jitter 0.1: TTL = 60000 * (0.9 + 0.2 u), rounded.
  const std::vector<std::pair<double, Millis>> cases = {
      {0.0, 54'000}, {0.25, 57'000}, {0.5, 60'000}, {0.75, 63'000}, {0.999, 65'988}};
  int i = 0;
  for (const auto& [u, ttl] : cases) {
    fill_random_.Set({u});
    uint64_t draws = fill_random_.calls();
    std::string key = "user:" + std::to_string(i++);
    Fill(key, "v");
    EXPECT_EQ(fill_random_.calls(), draws + 1) << "one draw per fill";
    EXPECT_EQ(service_->Pttl(key), ttl) << "u = " << u;
    EXPECT_GE(service_->Pttl(key), 54'000);
    EXPECT_LE(service_->Pttl(key), 66'000);
  }
  // A SET of a namespace key without a TTL gets the namespace's jittered TTL too.
  fill_random_.Set({0.0});
  service_->Set("user:set", "v", std::nullopt);
  EXPECT_EQ(service_->Pttl("user:set"), 54'000);
  // An explicit TTL is taken as given.
  service_->Set("user:px", "v", 1234);
  EXPECT_EQ(service_->Pttl("user:px"), 1234);
}

// --- Not found, values -------------------------------------------------------------------------

TEST_F(CacheServiceTest, NotFoundIsCachedForNegativeTtl) {
  RecordPtr r = Read("user:404");
  ASSERT_TRUE(backend_.Complete("404", NotFound()));
  EXPECT_EQ(r->only().kind, AnswerKind::kNotFound);
  EXPECT_EQ(r->only().outcome, Outcome::kNotFound);
  EXPECT_EQ(metrics_.db_loads.Value(UserLoads("not_found")), 1u);
  EXPECT_FALSE(service_->Exists("user:404")) << "a negative entry is not a key to Redis";

  clock_.Advance(4'000);
  RecordPtr cached = Read("user:404");
  EXPECT_TRUE(cached->returned_now);
  EXPECT_EQ(cached->only().kind, AnswerKind::kNotFound);
  EXPECT_EQ(cached->only().outcome, Outcome::kNotFound);
  EXPECT_EQ(backend_.loads(), 1u);

  clock_.Advance(1'000);  // negative_ttl_ms (5000) is over
  RecordPtr stale = Read("user:404");
  EXPECT_TRUE(stale->returned_now);
  EXPECT_EQ(stale->only().kind, AnswerKind::kNotFound);
  EXPECT_EQ(stale->only().outcome, Outcome::kStale);
  EXPECT_EQ(backend_.loads(), 2u) << "reloaded in the background";
  ASSERT_TRUE(backend_.Complete("404", Found("now here")));
  RecordPtr hit = Read("user:404");
  EXPECT_EQ(hit->only().kind, AnswerKind::kValue);
  EXPECT_EQ(hit->only().value, "now here");
  EXPECT_EQ(hit->only().outcome, Outcome::kHit);
  EXPECT_EQ(Requests(Outcome::kNotFound), 2u);
}

TEST_F(CacheServiceTest, ValuesPassThroughByteForByte) {
  const std::string values[] = {
      R"({"a": 1, "b": [true, false, null], "c": {"d": "e\"f"}})",
      "  {\"spaced\" : 1 }\n",
      std::string("bin\0ary\r\n\xff", 11),
      "",
      std::string(100'000, 'x'),
  };
  for (size_t i = 0; i < std::size(values); ++i) {
    std::string key = "user:v" + std::to_string(i);
    RecordPtr leader = Read(key);
    RecordPtr waiter = Read(key);
    ASSERT_TRUE(backend_.Complete("v" + std::to_string(i), Found(values[i])));
    EXPECT_EQ(leader->only().value, values[i]) << i;
    EXPECT_EQ(waiter->only().value, values[i]) << i;
    EXPECT_EQ(Read(key)->only().value, values[i]) << i;
  }
}

// --- Rule 4: refresh ahead -----------------------------------------------------------------

TEST_F(CacheServiceTest, HotKeyIsRefreshedAheadByOneLoad) {
  Fill("user:1", "v1", /*micros=*/200'000);  // load_ms 200: XFetch looks 8000 ms ahead
  ASSERT_EQ(service_->Pttl("user:1"), 60'000);

  // Far from expiry: a plain hit, no load and not even a random draw.
  clock_.Advance(60'000 - 8'001);
  for (int i = 0; i < 10; ++i) {
    RecordPtr r = Read("user:1");
    EXPECT_EQ(r->only().outcome, Outcome::kHit);
  }
  EXPECT_EQ(draw_random_.calls(), 0u);
  EXPECT_EQ(backend_.loads(), 1u);

  // 100 ms before expiry with a large draw (head start 0.2 ms): no refresh yet.
  clock_.Advance(8'001 - 100);
  draw_random_.Set({0.999});
  EXPECT_EQ(Read("user:1")->only().outcome, Outcome::kHit);
  EXPECT_EQ(draw_random_.calls(), 1u);
  EXPECT_EQ(backend_.loads(), 1u);

  // With a small draw (head start -200 ln 0.1 = 460 ms) the reader triggers one background load
  // and is still answered at once with the current value.
  draw_random_.Set({0.1});
  std::vector<RecordPtr> reads;
  for (int i = 0; i < 20; ++i) reads.push_back(Read("user:1"));
  for (const RecordPtr& r : reads) {
    EXPECT_TRUE(r->returned_now);
    EXPECT_EQ(r->only().kind, AnswerKind::kValue);
    EXPECT_EQ(r->only().value, "v1");
    EXPECT_EQ(r->only().outcome, Outcome::kHit);
  }
  EXPECT_EQ(backend_.loads(), 2u) << "one refresh, however many readers";
  EXPECT_EQ(backend_.call(1), std::make_pair(kUserIndex, std::string("1")));
  EXPECT_EQ(Requests(Outcome::kHit), 31u);
  EXPECT_EQ(leases_->coalesced_total(), 0u) << "nobody waited";

  ASSERT_TRUE(backend_.Complete("1", Found("v2", 200'000)));
  RecordPtr after = Read("user:1");
  EXPECT_EQ(after->only().value, "v2");
  EXPECT_EQ(service_->Pttl("user:1"), 60'000) << "the refresh restarted the TTL";
  EXPECT_EQ(backend_.loads(), 2u);
}

// --- Rule 5: stale while revalidate, stale if error -----------------------------------------

TEST_F(CacheServiceTest, StaleValueIsServedWhileOneLoadRevalidates) {
  Fill("user:1", "v1");
  clock_.Advance(60'000);  // exactly at fresh_until: stale
  std::vector<RecordPtr> reads;
  for (int i = 0; i < 50; ++i) reads.push_back(Read("user:1"));
  for (const RecordPtr& r : reads) {
    EXPECT_TRUE(r->returned_now);
    Answer a = r->only();
    EXPECT_EQ(a.kind, AnswerKind::kValue);
    EXPECT_EQ(a.value, "v1");
    EXPECT_EQ(a.outcome, Outcome::kStale);
    EXPECT_EQ(a.age_ms, 60'000);
  }
  EXPECT_EQ(backend_.loads(), 2u);
  EXPECT_EQ(Requests(Outcome::kStale), 50u);
  EXPECT_EQ(draw_random_.calls(), 0u) << "a stale entry needs no draw";

  ASSERT_TRUE(backend_.Complete("1", Found("v2")));
  RecordPtr fresh = Read("user:1");
  EXPECT_EQ(fresh->only().value, "v2");
  EXPECT_EQ(fresh->only().outcome, Outcome::kHit);

  // Past stale_ms the entry is gone: a normal miss that waits for the load.
  clock_.Advance(60'000 + 300'000);
  RecordPtr miss = Read("user:1");
  EXPECT_FALSE(miss->returned_now);
  EXPECT_EQ(backend_.loads(), 3u);
  ASSERT_TRUE(backend_.Complete("1", Found("v3")));
  EXPECT_EQ(miss->only().value, "v3");
  EXPECT_EQ(miss->only().outcome, Outcome::kMiss);
}

TEST_F(CacheServiceTest, StaleValueSurvivesFailedReloadAndHoldoffSpacesRetries) {
  Fill("user:1", "v1");
  clock_.Advance(61'000);
  EXPECT_EQ(Read("user:1")->only().outcome, Outcome::kStale);
  ASSERT_EQ(backend_.loads(), 2u);
  ASSERT_TRUE(backend_.Complete("1", Failed("statement timeout")));
  EXPECT_EQ(metrics_.db_loads.Value(UserLoads("error")), 1u);

  // During error_holdoff_ms: the stale value, at once, and no load.
  for (Millis step : {0, 500, 499}) {
    clock_.Advance(step);
    RecordPtr r = Read("user:1");
    EXPECT_TRUE(r->returned_now);
    EXPECT_EQ(r->only().value, "v1");
    EXPECT_EQ(r->only().outcome, Outcome::kStale);
    EXPECT_EQ(backend_.loads(), 2u) << "step " << step;
  }
  // After it, the next stale read reloads.
  clock_.Advance(1);
  RecordPtr r = Read("user:1");
  EXPECT_EQ(r->only().value, "v1");
  EXPECT_EQ(backend_.loads(), 3u);
  ASSERT_TRUE(backend_.Complete("1", Found("v2")));
  EXPECT_EQ(Read("user:1")->only().value, "v2");
  EXPECT_EQ(Requests(Outcome::kError), 0u);
}

// --- Rule 7: error hold-off ------------------------------------------------------------------

TEST_F(CacheServiceTest, FailedColdLoadIsHeldOff) {
  std::vector<RecordPtr> reads;
  for (int i = 0; i < 3; ++i) reads.push_back(Read("user:1"));
  ASSERT_TRUE(backend_.Complete("1", Failed("connection refused")));
  for (const RecordPtr& r : reads) {
    Answer a = r->only();
    EXPECT_EQ(a.kind, AnswerKind::kError);
    EXPECT_EQ(a.error, "upstream: connection refused");
  }
  EXPECT_EQ(Requests(Outcome::kError), 3u);
  EXPECT_FALSE(service_->Exists("user:1"));

  clock_.Advance(config_.lease.error_holdoff_ms - 1);
  RecordPtr held = Read("user:1");
  EXPECT_TRUE(held->returned_now);
  EXPECT_EQ(held->only().kind, AnswerKind::kError);
  EXPECT_THAT(held->only().error, ::testing::StartsWith("upstream: connection refused"));
  EXPECT_EQ(backend_.loads(), 1u);
  EXPECT_EQ(Requests(Outcome::kError), 4u);

  clock_.Advance(1);
  RecordPtr retry = Read("user:1");
  EXPECT_FALSE(retry->returned_now);
  EXPECT_EQ(backend_.loads(), 2u);
  ASSERT_TRUE(backend_.Complete("1", Found("back")));
  EXPECT_EQ(retry->only().value, "back");
}

TEST_F(CacheServiceTest, InvalidateAndSetEndTheHoldoff) {
  Read("user:1");
  Read("user:2");
  ASSERT_TRUE(backend_.Complete("1", Failed("down")));
  ASSERT_TRUE(backend_.Complete("2", Failed("down")));
  EXPECT_TRUE(Read("user:1")->returned_now);
  service_->Invalidate("user:1", InvalidationSource::kDel);
  EXPECT_FALSE(Read("user:1")->returned_now);
  EXPECT_EQ(backend_.loads(), 3u);
  service_->Set("user:2", "v", std::nullopt);
  EXPECT_EQ(Read("user:2")->only().value, "v");
}

// A LEASE.GET waiter parked on a read-through load that fails is told the same upstream error.
TEST_F(CacheServiceTest, LeaseWaiterOnFailedLoadGetsUpstreamError) {
  RecordPtr reader = Read("user:1");
  LeaseGetResult waiter = LeaseGet("user:1");
  ASSERT_EQ(waiter.answer.kind, LeaseKind::kPending);
  ASSERT_TRUE(backend_.Complete("1", Failed("boom")));
  EXPECT_EQ(reader->only().error, "upstream: boom");
  EXPECT_EQ(waiter.record->only().kind, AnswerKind::kError);
  EXPECT_EQ(waiter.record->only().error, "upstream: boom");
  EXPECT_EQ(Requests(Outcome::kError), 2u);
}

// --- Rule 6: no stale sets -------------------------------------------------------------------

TEST_F(CacheServiceTest, InvalidationDuringLoadIsNotOverwrittenByIt) {
  RecordPtr leader = Read("user:1");
  RecordPtr waiter = Read("user:1");
  EXPECT_FALSE(service_->Invalidate("user:1", InvalidationSource::kNotify))
      << "nothing was cached yet";
  EXPECT_EQ(metrics_.invalidations.Value("source=\"notify\""), 1u);
  ASSERT_TRUE(backend_.Complete("1", Found("old")));
  // Those who asked before the invalidation get the old row...
  EXPECT_EQ(leader->only().value, "old");
  EXPECT_EQ(waiter->only().value, "old");
  // ...but it is not cached: the next read loads again.
  EXPECT_FALSE(service_->Exists("user:1"));
  RecordPtr next = Read("user:1");
  EXPECT_FALSE(next->returned_now);
  EXPECT_EQ(backend_.loads(), 2u);
  ASSERT_TRUE(backend_.Complete("1", Found("new")));
  EXPECT_EQ(next->only().value, "new");
  EXPECT_EQ(Read("user:1")->only().value, "new");
}

TEST_F(CacheServiceTest, ReadAfterInvalidationDoesNotJoinTheVoidedLoad) {
  RecordPtr before = Read("user:1");
  service_->Invalidate("user:1", InvalidationSource::kDel);
  RecordPtr after = Read("user:1");
  EXPECT_EQ(backend_.loads(), 2u) << "the read after the invalidation starts its own load";
  RecordPtr after2 = Read("user:1");
  EXPECT_EQ(backend_.loads(), 2u) << "and later readers join that one";
  ASSERT_TRUE(backend_.Complete("1", Found("old")));
  EXPECT_EQ(before->only().value, "old");
  EXPECT_EQ(after->count(), 0u);
  EXPECT_EQ(after2->count(), 0u);
  EXPECT_FALSE(service_->Exists("user:1"));
  ASSERT_TRUE(backend_.Complete("1", Found("new")));
  EXPECT_EQ(after->only().value, "new");
  EXPECT_EQ(after2->only().value, "new");
  EXPECT_EQ(Read("user:1")->only().value, "new");
  EXPECT_EQ(backend_.loads(), 2u);
}

// With the tier, this node must tell it "invalidating" before any load of the key can start
// after the invalidation: such a load asks the tier, and what L2 holds until the invalidation
// reaches Redis is the old row, which the node would otherwise keep in L1 as fresh. A read that
// arrives while the sink hears Begin (another thread, at the worst moment) still joins the load
// the invalidation voids, and starts none of its own.
TEST_F(CacheServiceTest, TheTierHearsOfAnInvalidationBeforeANewLoadCanStart) {
  class Sink final : public InvalidationSink {
   public:
    std::function<void()> on_begin;
    std::vector<std::string> begun, propagated;
    void Begin(std::string_view key) override {
      begun.emplace_back(key);
      if (on_begin) on_begin();
    }
    void Propagate(std::string_view key, InvalidationSource, lease::WalPosition,
                   std::function<void(bool)> done) override {
      propagated.emplace_back(key);
      if (done) done(false);
    }
    void FlushNamespace(std::string_view, std::function<void()> done) override {
      if (done) done();
    }
  } sink;
  service_->SetInvalidationSink(&sink);
  RecordPtr before = Read("user:1");
  ASSERT_EQ(backend_.loads(), 1u);
  RecordPtr during;
  size_t loads_at_begin = 0;
  sink.on_begin = [&] {
    loads_at_begin = backend_.loads();
    during = Read("user:1");
  };
  service_->Invalidate("user:1", InvalidationSource::kNotify);
  EXPECT_THAT(sink.begun, ElementsAre("user:1"));
  EXPECT_THAT(sink.propagated, ElementsAre("user:1"));
  EXPECT_EQ(loads_at_begin, 1u);
  EXPECT_EQ(backend_.loads(), 1u) << "a load started before the tier heard of the invalidation";
  ASSERT_NE(during, nullptr);
  ASSERT_TRUE(backend_.Complete("1", Found("old")));
  EXPECT_EQ(before->only().value, "old");
  EXPECT_EQ(during->only().value, "old");  // asked before the invalidation was applied
  EXPECT_FALSE(service_->Exists("user:1")) << "the voided load cached the old row";
  service_->SetInvalidationSink(nullptr);
}

TEST_F(CacheServiceTest, SetDuringLoadIsNotOverwrittenByIt) {
  RecordPtr leader = Read("user:1");
  EXPECT_EQ(service_->Set("user:1", "written", std::nullopt), lease::SetResult::kStored);
  ASSERT_TRUE(backend_.Complete("1", Found("old")));
  EXPECT_EQ(leader->only().value, "old");
  RecordPtr next = Read("user:1");
  EXPECT_TRUE(next->returned_now);
  EXPECT_EQ(next->only().value, "written");
  EXPECT_EQ(backend_.loads(), 1u);
}

TEST_F(CacheServiceTest, InvalidationDuringRefreshIsNotOverwrittenByIt) {
  Fill("user:1", "v1");
  clock_.Advance(60'000);
  EXPECT_EQ(Read("user:1")->only().outcome, Outcome::kStale);  // starts a reload
  ASSERT_EQ(backend_.loads(), 2u);
  EXPECT_TRUE(service_->Invalidate("user:1", InvalidationSource::kDel));
  ASSERT_TRUE(backend_.Complete("1", Found("old")));
  EXPECT_FALSE(service_->Exists("user:1"));
  EXPECT_FALSE(Read("user:1")->returned_now);
  EXPECT_EQ(backend_.loads(), 3u);
}

TEST_F(CacheServiceTest, MarkAllStaleVoidsLoadsAndStalesEntries) {
  Fill("user:2", "cached");
  clock_.Advance(10);
  RecordPtr leader = Read("user:1");
  clock_.Advance(10);
  service_->MarkAllStale();
  clock_.Advance(10);
  ASSERT_TRUE(backend_.Complete("1", Found("old")));
  EXPECT_EQ(leader->only().value, "old");
  RecordPtr next = Read("user:1");
  EXPECT_FALSE(next->returned_now) << "the voided load was not cached";
  EXPECT_EQ(backend_.loads(), 3u);

  // An entry filled before the listener lost its connection is stale: served, and reloaded.
  RecordPtr other = Read("user:2");
  EXPECT_EQ(other->only().value, "cached");
  EXPECT_EQ(other->only().outcome, Outcome::kStale);
  EXPECT_EQ(backend_.loads(), 4u);
  ASSERT_TRUE(backend_.Complete("2", Found("reloaded")));
  EXPECT_EQ(Read("user:2")->only().outcome, Outcome::kHit);
}

TEST_F(CacheServiceTest, FlushAllVoidsLoadsInFlight) {
  RecordPtr leader = Read("user:1");
  service_->FlushAll();
  ASSERT_TRUE(backend_.Complete("1", Found("old")));
  EXPECT_EQ(leader->only().value, "old");
  EXPECT_FALSE(service_->Exists("user:1"));
}

// --- Rule 8: load shedding -------------------------------------------------------------------

// max_inflight_loads bounds database queries: a load answered without one (the Redis tier's L2,
// another node's lease) holds no slot while it waits.
// --- Rule 6 across replica lag: the position fence ---------------------------------------------

class PositionFenceServiceTest : public CacheServiceTest {
 protected:
  PositionFenceServiceTest() { service_->SetPositionSource(&positions_); }
  // DEL of `key` whose write the primary has at `position`; true once DEL may answer.
  bool Del(const std::string& key, lease::WalPosition position) {
    auto answered = std::make_shared<std::atomic<bool>>(false);
    service_->Invalidate(key, InvalidationSource::kDel, [answered](bool) { *answered = true; });
    EXPECT_FALSE(*answered) << "DEL answers once the position is known";
    EXPECT_EQ(positions_.Answer(position), 1u);
    return *answered;
  }
  uint64_t Fenced(FencedFill f) const { return metrics_.fenced_fills.Value(f); }
  // Caches `value` for `key` as read at `position`.
  void FillAt(const std::string& key, const std::string& value, lease::WalPosition position) {
    RecordPtr r = Read(key);
    ASSERT_TRUE(backend_.Complete(key.substr(key.find(':') + 1), FoundAt(value, position)));
    ASSERT_EQ(r->only().value, value);
  }
  FakePositions positions_;
};

TEST_F(PositionFenceServiceTest, AFillFromALaggingReplicaIsRetriedWhereTheWriteIsReplayed) {
  Fill("user:1", "v1");
  positions_.readable_ = 300;  // one server has replayed past the write
  ASSERT_TRUE(Del("user:1", 200));
  EXPECT_EQ(metrics_.invalidations.Value("source=\"del\""), 1u);
  RecordPtr r = Read("user:1");
  EXPECT_EQ(backend_.min_position("1"), 200u) << "routed past the invalidation";
  // The load still went to a replica that had not replayed it (say its position was stale).
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 150)));
  EXPECT_EQ(r->count(), 0u) << "the old row answers nobody: the load is retried";
  EXPECT_EQ(Fenced(FencedFill::kRetried), 1u);
  EXPECT_EQ(backend_.min_position("1"), 200u);
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v2", 250)));
  EXPECT_EQ(r->only().value, "v2");
  EXPECT_EQ(r->only().outcome, Outcome::kMiss);
  RecordPtr hit = Read("user:1");
  EXPECT_TRUE(hit->returned_now);
  EXPECT_EQ(hit->only().value, "v2");
  EXPECT_EQ(hit->only().outcome, Outcome::kHit);
  EXPECT_EQ(backend_.loads(), 3u);
}

TEST_F(PositionFenceServiceTest, WithNoServerPastTheWriteTheOldRowIsServedStaleUntilOneIs) {
  Fill("user:1", "v1");
  positions_.readable_ = 100;
  ASSERT_TRUE(Del("user:1", 200));
  RecordPtr r = Read("user:1");
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 150)));
  EXPECT_EQ(r->only().value, "v1");
  EXPECT_EQ(r->only().outcome, Outcome::kStale) << "never as fresh";
  EXPECT_EQ(Fenced(FencedFill::kStale), 1u);
  EXPECT_EQ(positions_.refreshes_, 1) << "the replicas' positions are asked for at once";
  // Kept as stale: served at once, and no reload while no server can read past the write.
  for (int i = 0; i < 3; ++i) {
    RecordPtr again = Read("user:1");
    EXPECT_TRUE(again->returned_now);
    EXPECT_EQ(again->only().outcome, Outcome::kStale);
  }
  EXPECT_EQ(backend_.loads(), 2u);
  EXPECT_EQ(metrics_.refreshes.Value(RefreshResult::kAwaitingReplay), 3u);
  // A replica catches up: the old row is no longer served; the next read waits for the reload,
  // routed past the invalidation.
  positions_.readable_ = 260;
  RecordPtr reload = Read("user:1");
  EXPECT_FALSE(reload->returned_now);
  ASSERT_EQ(backend_.loads(), 3u);
  EXPECT_EQ(backend_.min_position("1"), 200u);
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v2", 260)));
  EXPECT_EQ(reload->only().value, "v2");
  EXPECT_EQ(reload->only().outcome, Outcome::kMiss);
  RecordPtr fresh = Read("user:1");
  EXPECT_EQ(fresh->only().value, "v2");
  EXPECT_EQ(fresh->only().outcome, Outcome::kHit);
}

TEST_F(PositionFenceServiceTest, AFillBeforeThePositionArrivesIsMarkedStaleWhenItDoes) {
  Fill("user:1", "v1");
  auto answered = std::make_shared<std::atomic<bool>>(false);
  service_->Invalidate("user:1", InvalidationSource::kNotify,
                       [answered](bool) { *answered = true; });
  EXPECT_EQ(metrics_.invalidations.Value("source=\"notify\""), 0u) << "counted once positioned";
  // A read between the invalidation and its position: cached, since nothing is known yet.
  RecordPtr r = Read("user:1");
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 150)));
  EXPECT_EQ(r->only().value, "v1");
  EXPECT_EQ(Read("user:1")->only().outcome, Outcome::kHit);
  EXPECT_EQ(positions_.Answer(200), 1u);
  EXPECT_TRUE(*answered);
  EXPECT_EQ(metrics_.invalidations.Value("source=\"notify\""), 1u);
  EXPECT_EQ(Fenced(FencedFill::kMarkedStale), 1u);
  RecordPtr after = Read("user:1");
  EXPECT_EQ(after->only().outcome, Outcome::kStale) << "the fill read at 150 predates 200";
}

TEST_F(PositionFenceServiceTest, AFillReadPastTheInvalidationIsFreshAtOnce) {
  Fill("user:1", "v1");
  ASSERT_TRUE(Del("user:1", 200));
  RecordPtr r = Read("user:1");
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v2", 200)));
  EXPECT_EQ(r->only().outcome, Outcome::kMiss);
  EXPECT_EQ(Read("user:1")->only().outcome, Outcome::kHit);
  EXPECT_EQ(Fenced(FencedFill::kRetried) + Fenced(FencedFill::kStale), 0u);
  EXPECT_EQ(backend_.min_position("2"), std::nullopt);
  EXPECT_EQ(Read("user:2")->count(), 0u);
  EXPECT_EQ(backend_.min_position("2"), 0u) << "a key never invalidated has no minimum";
}

TEST_F(PositionFenceServiceTest, MarkersLastUntilEveryUsableReplicaHasReplayedThem) {
  ASSERT_TRUE(Del("user:1", 200));
  ASSERT_TRUE(Del("user:2", 400));
  EXPECT_EQ(service_->position_markers(), 2u);
  EXPECT_GT(service_->position_marker_bytes(), 0u);
  positions_.replayed_ = 300;
  clock_.Advance(100);
  service_->Tick();
  EXPECT_EQ(service_->position_markers(), 1u);
  positions_.replayed_ = 400;
  service_->Tick();
  EXPECT_EQ(service_->position_markers(), 1u) << "expiry runs at most every 100 ms";
  clock_.Advance(100);
  service_->Tick();
  EXPECT_EQ(service_->position_markers(), 0u);
  // Both stay retired a while for fills still in flight (PositionFence): each key held twice.
  EXPECT_EQ(service_->position_marker_bytes(), 2 * (2 * 6 + lease::PositionFence::kMarkerOverhead));
}

// The soak's second hole (2026-12-03): the load starts before the invalidation's position is
// known and reads on a replica just short of it; by the time it completes, the position came and
// every replica had replayed it, so the marker was gone. The fill must still be fenced.
TEST_F(PositionFenceServiceTest, AFillReadBeforeAMarkerThatWentMeanwhileIsRetried) {
  Fill("user:1", "v1");
  service_->Invalidate("user:1", InvalidationSource::kNotify, [](bool) {});
  RecordPtr r = Read("user:1");
  EXPECT_EQ(backend_.min_position("1"), 0u) << "the position is not known yet";
  EXPECT_EQ(positions_.Answer(200), 1u);
  positions_.readable_ = 300;
  positions_.replayed_ = 300;
  clock_.Advance(100);
  service_->Tick();
  ASSERT_EQ(service_->position_markers(), 0u) << "every replica has replayed it: forgotten";
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 150)));
  EXPECT_EQ(r->count(), 0u) << "the old row answers nobody: the load is retried";
  EXPECT_EQ(Fenced(FencedFill::kRetried), 1u);
  EXPECT_EQ(backend_.min_position("1"), 200u) << "routed past the forgotten invalidation";
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v2", 300)));
  EXPECT_EQ(r->only().value, "v2");
  RecordPtr hit = Read("user:1");
  EXPECT_EQ(hit->only().value, "v2");
  EXPECT_EQ(hit->only().outcome, Outcome::kHit);
}

// Read-your-writes: a client that hands over its write's position never reads what preceded it.
TEST_F(PositionFenceServiceTest, AReadAfterTheClientsWriteReloadsAnOlderFill) {
  FillAt("user:1", "v1", 100);
  // Another client's read is served from the cache as before.
  EXPECT_EQ(Read("user:1")->only().outcome, Outcome::kHit);
  // The client wrote at 200: the entry read at 100 is not an answer for it.
  RecordPtr mine = Read("user:1", Proto::kResp, 200);
  EXPECT_FALSE(mine->returned_now);
  ASSERT_EQ(backend_.loads(), 2u);
  EXPECT_EQ(backend_.min_position("1"), 200u) << "routed past the client's write";
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v2", 210)));
  EXPECT_EQ(mine->only().value, "v2");
  // The newer fill replaced the old one, for everybody; and now answers the client at once.
  EXPECT_EQ(Read("user:1")->only().value, "v2");
  RecordPtr again = Read("user:1", Proto::kResp, 200);
  EXPECT_TRUE(again->returned_now);
  EXPECT_EQ(again->only().value, "v2");
  EXPECT_EQ(again->only().outcome, Outcome::kHit);
  EXPECT_EQ(backend_.loads(), 2u);
}

TEST_F(PositionFenceServiceTest, AReadAfterTheClientsWriteNeverGetsAnOlderRowItIsBusyInstead) {
  FillAt("user:1", "v1", 100);
  RecordPtr mine = Read("user:1", Proto::kResp, 200);
  // The load reads at 150 (a lagging replica): one more load, then BUSY — never v1.
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 150)));
  EXPECT_EQ(mine->count(), 0u);
  ASSERT_EQ(backend_.loads(), 3u);
  EXPECT_EQ(backend_.min_position("1"), 200u);
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 160)));
  ASSERT_EQ(mine->count(), 1u);
  EXPECT_EQ(mine->only().kind, AnswerKind::kBusy);
  EXPECT_EQ(mine->only().error, proto::ShedText(proto::ShedReason::kNotReplayed, "user"));
  EXPECT_EQ(metrics_.shed.Value(ShedReason("not_replayed")), 1u);
  EXPECT_GE(positions_.refreshes_, 1);
  // The fill was not fenced by any invalidation: other readers get it.
  EXPECT_EQ(Read("user:1")->only().outcome, Outcome::kHit);
}

TEST_F(PositionFenceServiceTest, AReadAfterTheClientsWriteThatJoinsAnOlderLoadLoadsAgain) {
  RecordPtr other = Read("user:1");  // a load already in flight, with no minimum
  RecordPtr mine = Read("user:1", Proto::kResp, 200);
  EXPECT_EQ(backend_.loads(), 1u) << "joins the load in flight";
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 100)));
  EXPECT_EQ(other->only().value, "v1");
  EXPECT_EQ(mine->count(), 0u) << "read before the client's write: not its answer";
  ASSERT_EQ(backend_.loads(), 2u);
  EXPECT_EQ(backend_.min_position("1"), 200u);
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v2", 200)));
  EXPECT_EQ(mine->only().value, "v2");
}

TEST_F(PositionFenceServiceTest, ATimedOutReadAfterTheClientsWriteIsNotAnsweredWithTheOlderRow) {
  FillAt("user:1", "v1", 100);
  RecordPtr mine = Read("user:1", Proto::kResp, 200);
  clock_.Advance(config_.lease.wait_timeout_ms + 1);
  service_->Tick();
  ASSERT_EQ(mine->count(), 1u);
  EXPECT_EQ(mine->only().kind, AnswerKind::kBusy) << "not v1, stale or not";
  EXPECT_EQ(mine->only().error, proto::ShedText(proto::ShedReason::kNotReplayed, "user"));
}

TEST_F(PositionFenceServiceTest, AnInvalidationWithTheClientsPositionDoesNotAskThePrimary) {
  Fill("user:1", "v1");
  auto answered = std::make_shared<std::atomic<bool>>(false);
  service_->Invalidate(
      "user:1", InvalidationSource::kDel, [answered](bool) { *answered = true; }, 200);
  EXPECT_TRUE(*answered) << "the position is known: DEL answers at once";
  EXPECT_EQ(positions_.Answer(999), 0u) << "the primary was not asked";
  positions_.readable_ = 100;
  RecordPtr r = Read("user:1");
  EXPECT_EQ(backend_.min_position("1"), 200u);
  ASSERT_TRUE(backend_.Complete("1", FoundAt("v1", 150)));
  EXPECT_EQ(r->only().outcome, Outcome::kStale) << "fenced at the client's position";
}

TEST_F(CacheServiceTest, OnlyLoadsThatQueryTheDatabaseCountAgainstMaxInflightLoads) {
  Config config = TestConfig();
  config.namespaces["user"].max_inflight_loads = 1;
  Start(config);
  backend_.SetAsksAdmission(false);
  RecordPtr a = Read("user:1");
  RecordPtr b = Read("user:2");
  RecordPtr c = Read("user:3");
  EXPECT_EQ(backend_.loads(), 3u) << "none of them needed a slot";

  backend_.SetAsksAdmission(true);
  RecordPtr d = Read("user:4");
  RecordPtr e = Read("user:5");
  EXPECT_EQ(backend_.loads(), 4u);
  EXPECT_EQ(e->count(), 0u) << "queued: the one slot is d's";
  EXPECT_EQ(leases_->leases(), 5u);
  for (const char* id : {"1", "2", "3"}) {
    ASSERT_TRUE(backend_.Complete(id, Found(std::string("v") + id)));
  }
  EXPECT_EQ(a->only().value, "v1");
  EXPECT_EQ(backend_.loads(), 4u) << "they held no slot, so their end frees none";
  ASSERT_TRUE(backend_.Complete("4", Found("v4")));
  EXPECT_EQ(d->only().value, "v4");
  EXPECT_EQ(backend_.loads(), 5u) << "d's slot went to e";
  ASSERT_TRUE(backend_.Complete("5", Found("v5")));
  EXPECT_EQ(e->only().value, "v5");
  EXPECT_EQ(Requests(Outcome::kShed), 0u);
}

// SPEC rule 8: a load past the namespace's max_inflight_loads waits for a slot rather than being
// shed at once, and is dropped (its waiters get BUSY) only once it can no longer finish before
// its waiters' deadline: the deadline less the measured load time.
TEST_F(CacheServiceTest, MaxInflightLoadsQueuesUntilALoadCanNoLongerFinishInTime) {
  Config config = TestConfig();
  config.namespaces["user"].max_inflight_loads = 2;
  Start(config);
  RecordPtr a = Read("user:1");
  RecordPtr b = Read("user:2");
  RecordPtr waiter = Read("user:1");  // waiting on a load needs no admission
  RecordPtr c = Read("user:3");
  EXPECT_EQ(backend_.loads(), 2u);
  EXPECT_EQ(c->count(), 0u) << "queued, not shed";
  EXPECT_EQ(service_->PoolStatus().at(0).queued, 1);
  // Other namespaces have their own bound.
  Read("item:1");
  EXPECT_EQ(backend_.loads(), 3u);

  clock_.Advance(500);  // the loads take 500 ms: the queue learns it
  ASSERT_TRUE(backend_.Complete("1", Found("v")));
  EXPECT_EQ(a->only().value, "v");
  EXPECT_EQ(waiter->only().value, "v");
  EXPECT_EQ(backend_.loads(), 4u) << "a's slot went to c";
  EXPECT_EQ(c->count(), 0u);

  // b and c hold both slots. d must start within 1 500 ms to finish by its deadline. (b's, c's
  // and item:1's readers reach theirs first: wait_timeout, their loads still running.)
  RecordPtr d = Read("user:4");
  EXPECT_EQ(d->count(), 0u);
  clock_.Advance(config.lease.wait_timeout_ms - 500);
  service_->Tick();
  EXPECT_EQ(d->count(), 0u) << "it could still finish in time";
  EXPECT_EQ(metrics_.shed.Value(ShedReason("wait_timeout")), 3u);
  clock_.Advance(lease::LoadLimiter::kSweepEveryMs);
  service_->Tick();
  Answer shed = d->only();
  EXPECT_EQ(shed.kind, AnswerKind::kBusy);
  EXPECT_EQ(shed.error, "load shed: max_inflight_loads for namespace user");
  EXPECT_EQ(Requests(Outcome::kShed), 4u);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_inflight_loads")), 1u);
  EXPECT_EQ(backend_.loads(), 4u) << "the dropped load never queried";
  EXPECT_EQ(leases_->leases(), 3u) << "d gave its lease back (b, c and item:1 hold theirs)";
  EXPECT_EQ(service_->pending_loads(), 3);
}

// SPEC rule 8: loads are bounded per pool too, across the namespaces that share it.
TEST_F(CacheServiceTest, PoolMaxInflightLoadsBoundsItsNamespacesTogether) {
  Config config = TestConfig();
  config.postgres.emplace();
  config.postgres->pools["default"].max_inflight_loads = 2;
  config.namespaces["other"] = Ns("other");  // shares pool "default" with "user"
  Start(config);
  RecordPtr a = Read("user:1");
  RecordPtr b = Read("other:1");
  RecordPtr c = Read("user:2");
  EXPECT_EQ(backend_.loads(), 2u);
  EXPECT_EQ(c->count(), 0u) << "queued, not shed";
  // A namespace in another pool is not held back by this one.
  Read("item:1");
  EXPECT_EQ(backend_.loads(), 3u);
  // A finished load frees its slot in the pool, for the oldest waiting load of either namespace.
  RecordPtr d = Read("other:2");
  ASSERT_TRUE(backend_.Complete("1", Found("v")));
  EXPECT_EQ(backend_.loads(), 4u);
  // Namespaces here: item 0, other 1, user 2.
  EXPECT_EQ(backend_.call(3), std::make_pair(size_t{2}, std::string("2"))) << "c came first";
  EXPECT_EQ(d->count(), 0u);
  ASSERT_TRUE(backend_.Complete("1", Found("v")));  // other:1
  EXPECT_EQ(backend_.loads(), 5u);
  EXPECT_EQ(backend_.call(4), std::make_pair(size_t{1}, std::string("2"))) << "then d";
  EXPECT_EQ(Requests(Outcome::kShed), 0u);
  EXPECT_EQ(service_->PoolStatus().size(), 2u);
  for (const PoolGauges& p : service_->PoolStatus()) {
    EXPECT_EQ(p.limit, p.name == "default" ? 2 : 0) << p.name;
    EXPECT_EQ(p.queued, 0) << p.name;
  }
}

TEST_F(CacheServiceTest, BlockedNamespaceShedsEveryLoad) {
  Config config = TestConfig();
  config.namespaces["user"].blocked = true;
  Start(config);
  RecordPtr r = Read("user:1");
  EXPECT_EQ(r->only().kind, AnswerKind::kBusy);
  EXPECT_EQ(r->only().error, "load shed: blocked for namespace user");
  EXPECT_EQ(metrics_.shed.Value(ShedReason("blocked")), 1u);
  EXPECT_EQ(backend_.loads(), 0u);
  EXPECT_EQ(leases_->leases(), 0u);

  EXPECT_TRUE(service_->SetNamespaceLimit("user", std::nullopt, std::nullopt, false));
  RecordPtr again = Read("user:1");
  EXPECT_EQ(again->count(), 0u);
  EXPECT_EQ(backend_.loads(), 1u);
  EXPECT_FALSE(service_->SetNamespaceLimit("nope", 1, 1.0, true));
}

TEST_F(CacheServiceTest, MaxLoadsPerSecondIsATokenBucket) {
  Config config = TestConfig();
  config.namespaces["user"].max_loads_per_s = 2;
  Start(config);
  Read("user:1");
  Read("user:2");
  RecordPtr third = Read("user:3");
  EXPECT_EQ(third->only().kind, AnswerKind::kBusy);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_loads_per_s")), 1u);
  EXPECT_EQ(backend_.loads(), 2u);
  clock_.Advance(499);
  EXPECT_EQ(Read("user:3")->only().kind, AnswerKind::kBusy);
  clock_.Advance(1);
  EXPECT_EQ(Read("user:3")->count(), 0u);
  EXPECT_EQ(backend_.loads(), 3u);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_loads_per_s")), 2u);
}

TEST_F(CacheServiceTest, MaxPendingLoadsBoundsAllNamespaces) {
  Config config = TestConfig();
  config.shedding.max_pending_loads = 3;
  Start(config);
  Read("user:1");
  Read("user:2");
  Read("item:1");
  EXPECT_EQ(service_->pending_loads(), 3);
  RecordPtr r = Read("item:2");
  EXPECT_EQ(r->only().kind, AnswerKind::kBusy);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_pending_loads")), 1u);
  EXPECT_EQ(backend_.loads(), 3u);
  ASSERT_TRUE(backend_.Complete("2", Found("v")));
  EXPECT_EQ(service_->pending_loads(), 2);
  EXPECT_EQ(Read("item:2")->count(), 0u);
  EXPECT_EQ(backend_.loads(), 4u);
}

// A miss the pending bound refuses is shed before any lease or load is made for it (as cheap as a
// hit: answered at once); a read of a key being loaded still waits for that load.
TEST_F(CacheServiceTest, AShedMissIsAnsweredAtOnceWithoutALease) {
  Config config = TestConfig();
  config.shedding.max_pending_loads = 1;
  Start(config);
  RecordPtr first = Read("user:1");
  RecordPtr waiter = Read("user:1");
  EXPECT_EQ(waiter->count(), 0u) << "waits on the load, needs no admission";
  RecordPtr shed = Read("user:2");
  EXPECT_TRUE(shed->returned_now);
  EXPECT_EQ(shed->only().kind, AnswerKind::kBusy);
  EXPECT_EQ(shed->only().outcome, Outcome::kShed);
  EXPECT_EQ(shed->only().error, "load shed: max_pending_loads for namespace user");
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_pending_loads")), 1u);
  EXPECT_EQ(leases_->leases(), 1u) << "no lease for the shed key";
  EXPECT_EQ(backend_.loads(), 1u);
  ASSERT_TRUE(backend_.Complete("1", Found("v1")));
  EXPECT_EQ(first->only().value, "v1");
  EXPECT_EQ(waiter->only().value, "v1");
  EXPECT_EQ(Read("user:2")->count(), 0u) << "room again: it loads";
  EXPECT_EQ(backend_.loads(), 2u);
}

// With a backend that answers some loads without admission (the tier's L2), a miss is not shed
// before its load is tried: the L2 may have it.
TEST_F(CacheServiceTest, AMissIsNotShedFirstWhenTheBackendMayAnswerWithoutAdmission) {
  Config config = TestConfig();
  config.shedding.max_pending_loads = 1;
  Start(config);
  RecordPtr first = Read("user:1");  // admitted: the pending bound is full
  EXPECT_EQ(service_->pending_loads(), 1);
  backend_.SetAsksAdmission(false);
  RecordPtr second = Read("user:2");
  EXPECT_FALSE(second->returned_now);
  EXPECT_EQ(backend_.loads(), 2u) << "both reached the backend";
  ASSERT_TRUE(backend_.Complete("2", Found("v2")));
  EXPECT_EQ(second->only().value, "v2");
  ASSERT_TRUE(backend_.Complete("1", Found("v1")));
}

// Admission counts database calls: a batched namespace's loads that wait for a slot join one
// call (up to batch_max), which takes one slot and is released when its last load ends.
TEST_F(CacheServiceTest, BatchedLoadsQueuedForASlotShareOneCall) {
  Config config = TestConfig();
  config.namespaces["user"].batch_query = "SELECT id, name FROM users WHERE id = ANY($1)";
  config.namespaces["user"].batch_max = 3;
  config.namespaces["user"].max_inflight_loads = 1;
  Start(config);
  RecordPtr r1 = Read("user:1");
  EXPECT_EQ(backend_.loads(), 1u) << "a slot was free: sent alone";
  std::vector<RecordPtr> queued;
  for (const char* key : {"user:2", "user:3", "user:4", "user:5"}) queued.push_back(Read(key));
  EXPECT_EQ(backend_.loads(), 1u) << "2, 3 and 4 make one call, 5 another; both wait";
  ASSERT_TRUE(backend_.Complete("1", Found("v1")));
  EXPECT_EQ(backend_.loads(), 4u) << "one slot freed: the call of three went";
  EXPECT_EQ(backend_.calls(), (std::vector<size_t>{1, 3}));
  ASSERT_TRUE(backend_.Complete("2", Found("v2")));
  ASSERT_TRUE(backend_.Complete("3", Found("v3")));
  EXPECT_EQ(backend_.loads(), 4u) << "the call holds its slot until its last load ends";
  ASSERT_TRUE(backend_.Complete("4", Found("v4")));
  EXPECT_EQ(backend_.loads(), 5u);
  ASSERT_TRUE(backend_.Complete("5", Found("v5")));
  EXPECT_EQ(r1->only().value, "v1");
  for (size_t i = 0; i < queued.size(); ++i) {
    EXPECT_EQ(queued[i]->only().value, "v" + std::to_string(i + 2));
  }
  EXPECT_EQ(service_->pending_loads(), 0);
  EXPECT_EQ(backend_.calls(), (std::vector<size_t>{1, 3, 1}));
}

// Inside a Gather (MGET), a call granted at once stays open until the Gather ends: the cold keys
// of one batched namespace are one call, not one each. An unbatched namespace is one per key.
TEST_F(CacheServiceTest, AGatherMakesItsBatchedColdKeysOneCall) {
  Config config = TestConfig();
  config.namespaces["user"].batch_query = "SELECT id, name FROM users WHERE id = ANY($1)";
  config.namespaces["user"].batch_max = 50;
  config.namespaces["user"].max_inflight_loads = 1;
  Start(config);
  std::vector<RecordPtr> users;
  std::vector<RecordPtr> items;
  {
    CacheService::Gather together(*service_);
    for (int i = 1; i <= 5; ++i) users.push_back(Read("user:" + std::to_string(i)));
    items.push_back(Read("item:101"));
    items.push_back(Read("item:102"));
    EXPECT_EQ(backend_.loads(), 2u) << "the items went; the users' call is held";
  }
  EXPECT_EQ(backend_.loads(), 7u);
  EXPECT_EQ(backend_.calls(), (std::vector<size_t>{5}));
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(backend_.Complete(std::to_string(i), Found("u" + std::to_string(i))));
  }
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(users[i - 1]->only().value, "u" + std::to_string(i));
  // Without a Gather the first key is sent alone (a slot was free) and the rest wait for it.
  Read("user:6");
  Read("user:7");
  Read("user:8");
  EXPECT_EQ(backend_.calls(), (std::vector<size_t>{5, 1}));
  ASSERT_TRUE(backend_.Complete("6", Found("u6")));
  EXPECT_EQ(backend_.calls(), (std::vector<size_t>{5, 1, 2}));
  ASSERT_TRUE(backend_.Complete("7", Found("u7")));
  ASSERT_TRUE(backend_.Complete("8", Found("u8")));
  ASSERT_TRUE(backend_.Complete("101", Found("i1")));
  ASSERT_TRUE(backend_.Complete("102", Found("i2")));
  EXPECT_EQ(items[1]->only().value, "i2");
  EXPECT_EQ(service_->pending_loads(), 0);
}

TEST_F(CacheServiceTest, NamespaceLimitsChangeAtRunTime) {
  RecordPtr a = Read("user:1");
  EXPECT_TRUE(service_->SetNamespaceLimit("user", 1, std::nullopt, std::nullopt));
  RecordPtr b = Read("user:2");
  EXPECT_EQ(b->count(), 0u);
  EXPECT_EQ(backend_.loads(), 1u) << "b waits behind a";
  EXPECT_TRUE(service_->SetNamespaceLimit("user", 0, std::nullopt, std::nullopt));
  EXPECT_EQ(backend_.loads(), 2u) << "the cap is lifted: b runs";
  EXPECT_TRUE(service_->SetNamespaceLimit("user", std::nullopt, 1.0, std::nullopt));
  EXPECT_EQ(Read("user:3")->count(), 0u) << "one token";
  EXPECT_EQ(Read("user:4")->only().kind, AnswerKind::kBusy);
  EXPECT_TRUE(service_->SetNamespaceLimit("user", std::nullopt, 0.0, true));
  EXPECT_EQ(Read("user:4")->only().error, "load shed: blocked for namespace user");
  EXPECT_EQ(backend_.loads(), 3u);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_inflight_loads")), 0u);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_loads_per_s")), 1u);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("blocked")), 1u);
}

// A reload of a stale entry waits for a slot while the stale value is served; one that cannot get
// a slot in time is dropped quietly (counted as a shed refresh) and tried again by a later read.
TEST_F(CacheServiceTest, RefreshWaitsForASlotAndIsDroppedQuietlyWhenItCannot) {
  Fill("user:2", "v2");    // one load
  clock_.Advance(60'000);  // user:2 is stale
  ASSERT_TRUE(service_->SetNamespaceLimit("user", 1, std::nullopt, std::nullopt));
  RecordPtr busy = Read("user:1");  // takes the only load slot
  RecordPtr stale = Read("user:2");
  EXPECT_EQ(stale->only().value, "v2");
  EXPECT_EQ(stale->only().outcome, Outcome::kStale);
  EXPECT_EQ(backend_.loads(), 2u) << "the reload waits for the slot";
  EXPECT_EQ(leases_->leases(), 2u) << "holding its lease: one reload per key";
  ASSERT_TRUE(backend_.Complete("1", Found("v1")));
  EXPECT_EQ(backend_.loads(), 3u) << "the reload got the slot";
  ASSERT_TRUE(backend_.Complete("2", Found("v2b")));
  EXPECT_EQ(Read("user:2")->only().value, "v2b");
  EXPECT_EQ(metrics_.refreshes.Value(RefreshResult::kStarted), 1u);

  clock_.Advance(60'000);  // user:2 is stale again
  RecordPtr busy2 = Read("user:3");
  EXPECT_EQ(Read("user:2")->only().outcome, Outcome::kStale);
  EXPECT_EQ(backend_.loads(), 4u);
  clock_.Advance(config_.lease.wait_timeout_ms + 1);
  service_->Tick();
  EXPECT_EQ(metrics_.refreshes.Value(RefreshResult::kShed), 1u);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_inflight_loads")), 1u);
  EXPECT_EQ(leases_->leases(), 1u) << "the dropped reload gave its lease back";
  ASSERT_TRUE(backend_.Complete("3", Found("v3")));
  EXPECT_EQ(Read("user:2")->only().outcome, Outcome::kStale);
  EXPECT_EQ(backend_.loads(), 5u) << "the next read starts the reload again";
}

// A lease taken from a stuck load passes to a waiter, whose load queues behind the stuck one (it
// still fills the namespace's bound); when the wait bound passes every waiter gets BUSY, and
// nothing is left: no lease, no waiter, no queued load.
TEST_F(CacheServiceTest, LeaseTakenFromAStuckLoadQueuesBehindItAndNobodyHangs) {
  Config config = TestConfig();
  config.namespaces["user"].max_inflight_loads = 1;
  Start(config);
  RecordPtr stuck = Read("user:1");
  clock_.Advance(config_.lease.wait_timeout_ms);
  service_->Tick();
  EXPECT_EQ(stuck->only().kind, AnswerKind::kBusy);
  clock_.Advance(config_.lease.lease_ttl_ms - config_.lease.wait_timeout_ms - 100);
  std::vector<RecordPtr> waiters;
  for (int i = 0; i < 100; ++i) waiters.push_back(Read("user:1"));
  clock_.Advance(100);
  service_->Tick();  // the stuck lease expires
  EXPECT_EQ(service_->PoolStatus().at(0).queued + service_->PoolStatus().at(1).queued, 1);
  for (const RecordPtr& w : waiters) EXPECT_EQ(w->count(), 0u);
  clock_.Advance(config_.lease.wait_timeout_ms);
  service_->Tick();
  for (const RecordPtr& w : waiters) EXPECT_EQ(w->only().kind, AnswerKind::kBusy);
  EXPECT_EQ(backend_.loads(), 1u);
  EXPECT_EQ(leases_->leases(), 0u);
  EXPECT_EQ(leases_->waiters(), 0u);
  EXPECT_EQ(service_->PoolStatus().at(0).queued + service_->PoolStatus().at(1).queued, 0);
}

// A shed is a typed outcome from the decision to the counter: every request answered BUSY is
// counted once under its reason, including the waiters of a dropped load and timed-out waiters.
TEST_F(CacheServiceTest, EveryShedRequestIsCountedUnderItsReason) {
  Config config = TestConfig();
  config.namespaces["user"].max_inflight_loads = 1;
  Start(config);
  RecordPtr first = Read("user:9");
  clock_.Advance(500);
  ASSERT_TRUE(backend_.Complete("9", Found("v9")));  // loads take 500 ms
  RecordPtr stuck = Read("user:1");                  // holds the only slot
  std::vector<RecordPtr> waiters;
  for (int i = 0; i < 10; ++i) waiters.push_back(Read("user:2"));  // one queued load, 10 readers
  clock_.Advance(config_.lease.wait_timeout_ms - 500 + 1);
  service_->Tick();  // user:2's load can no longer finish in time: dropped, its readers shed
  for (const RecordPtr& w : waiters) {
    EXPECT_EQ(w->only().error, "load shed: max_inflight_loads for namespace user");
  }
  EXPECT_EQ(stuck->count(), 0u);
  clock_.Advance(500);
  service_->Tick();
  EXPECT_EQ(stuck->only().error, "lease wait timed out");
  EXPECT_EQ(metrics_.shed.Value(ShedReason("max_inflight_loads")), 10u);
  EXPECT_EQ(metrics_.shed.Value(ShedReason("wait_timeout")), 1u);
  EXPECT_EQ(Requests(Outcome::kShed), 11u);
}

// --- The lease protocol (LEASE.GET / LEASE.SET / LEASE.RELEASE) ------------------------------

TEST_F(CacheServiceTest, LeaseGetSetHandsTheValueToWaiters) {
  LeaseGetResult holder = LeaseGet("user:1");
  ASSERT_EQ(holder.answer.kind, LeaseKind::kLease);
  EXPECT_NE(holder.answer.token, 0u);
  EXPECT_EQ(holder.record->count(), 0u);
  LeaseGetResult waiter = LeaseGet("user:1");
  ASSERT_EQ(waiter.answer.kind, LeaseKind::kPending);
  RecordPtr reader = Read("user:1");  // a read-through reader joins the client's lease
  EXPECT_EQ(backend_.loads(), 0u) << "the client loads, not corral";
  EXPECT_EQ(leases_->coalesced_total(), 2u);

  EXPECT_TRUE(service_->LeaseSet("user:1", holder.answer.token, "client value", std::nullopt));
  EXPECT_EQ(waiter.record->only().value, "client value");
  EXPECT_EQ(waiter.record->only().outcome, Outcome::kWaited);
  EXPECT_EQ(reader->only().value, "client value");
  EXPECT_EQ(reader->only().outcome, Outcome::kWaited);
  EXPECT_EQ(service_->Pttl("user:1"), 60'000) << "the namespace's TTL";

  LeaseGetResult cached = LeaseGet("user:1");
  EXPECT_EQ(cached.answer.kind, LeaseKind::kValue);
  EXPECT_EQ(cached.record->only().value, "client value");
  EXPECT_EQ(cached.record->only().outcome, Outcome::kHit);
  EXPECT_FALSE(service_->LeaseSet("user:1", holder.answer.token, "again", std::nullopt))
      << "a token is good once";
}

TEST_F(CacheServiceTest, LeaseSetAfterInvalidationStoresNothing) {
  LeaseGetResult holder = LeaseGet("user:1");
  LeaseGetResult waiter = LeaseGet("user:1");
  service_->Invalidate("user:1", InvalidationSource::kDel);
  EXPECT_FALSE(service_->LeaseSet("user:1", holder.answer.token, "old", std::nullopt));
  EXPECT_EQ(waiter.record->only().value, "old") << "it asked before the invalidation";
  EXPECT_FALSE(service_->Exists("user:1"));
  EXPECT_EQ(LeaseGet("user:1").answer.kind, LeaseKind::kLease);
}

TEST_F(CacheServiceTest, LeaseReleaseHandsTheLeaseToTheNextWaiter) {
  LeaseGetResult holder = LeaseGet("user:1");
  LeaseGetResult next = LeaseGet("user:1");
  LeaseGetResult last = LeaseGet("user:1");
  EXPECT_TRUE(service_->LeaseRelease("user:1", holder.answer.token));
  ASSERT_EQ(next.record->grants.size(), 1u);
  lease::LeaseToken token = next.record->grants[0];
  EXPECT_NE(token, holder.answer.token);
  EXPECT_EQ(next.record->count(), 1u) << "granted, not answered";
  EXPECT_EQ(last.record->count(), 0u);
  EXPECT_FALSE(service_->LeaseSet("user:1", holder.answer.token, "x", std::nullopt));
  EXPECT_TRUE(service_->LeaseSet("user:1", token, "y", 5'000));
  EXPECT_EQ(last.record->only().value, "y");
  EXPECT_EQ(service_->Pttl("user:1"), 5'000) << "PX given";
  EXPECT_FALSE(service_->LeaseRelease("user:1", token)) << "already completed";
}

TEST_F(CacheServiceTest, LeaseReleaseHandsTheLeaseToAWaitingReader) {
  LeaseGetResult holder = LeaseGet("user:1");
  RecordPtr reader = Read("user:1");
  EXPECT_TRUE(service_->LeaseRelease("user:1", holder.answer.token));
  EXPECT_EQ(backend_.loads(), 1u) << "the reader took the lease and loads through the backend";
  ASSERT_TRUE(backend_.Complete("1", Found("db")));
  EXPECT_EQ(reader->only().value, "db");
  EXPECT_EQ(reader->only().outcome, Outcome::kMiss);
  EXPECT_EQ(Read("user:1")->only().value, "db");
}

TEST_F(CacheServiceTest, LeaseGetOnAPlainKey) {
  LeaseGetResult holder = LeaseGet("plain");
  ASSERT_EQ(holder.answer.kind, LeaseKind::kLease);
  EXPECT_TRUE(service_->LeaseSet("plain", holder.answer.token, "v", std::nullopt));
  EXPECT_EQ(service_->Pttl("plain"), -1);
  EXPECT_EQ(LeaseGet("plain").answer.kind, LeaseKind::kValue);
  EXPECT_EQ(backend_.loads(), 0u);
}

// --- Plain keys --------------------------------------------------------------------------------

TEST_F(CacheServiceTest, PlainKeysNeverLoad) {
  for (std::string_view key : {"plain", "other:1", ":1", "USER:1", ""}) {
    RecordPtr r = Read(key);
    EXPECT_TRUE(r->returned_now) << key;
    EXPECT_EQ(r->only().kind, AnswerKind::kNotFound) << key;
    EXPECT_EQ(r->only().outcome, Outcome::kMiss) << key;
  }
  EXPECT_EQ(backend_.loads(), 0u);
  EXPECT_EQ(Requests(Outcome::kMiss), 5u);
  EXPECT_EQ(service_->Set("other:1", "v", std::nullopt), lease::SetResult::kStored);
  EXPECT_EQ(service_->Pttl("other:1"), -1) << "no namespace TTL";
  RecordPtr hit = Read("other:1", Proto::kHttp);
  EXPECT_EQ(hit->only().value, "v");
  EXPECT_EQ(Requests(Outcome::kHit, Proto::kHttp), 1u);
  clock_.Advance(1'000'000'000);
  EXPECT_EQ(Read("other:1")->only().outcome, Outcome::kHit);
  EXPECT_EQ(draw_random_.calls(), 0u);
  EXPECT_EQ(backend_.loads(), 0u);
}

TEST(CacheServiceNoNamespacesTest, WorksWithoutABackend) {
  lease::FakeClock clock;
  lease::FakeRandom random({0.5});
  Metrics metrics;
  Config config;
  lease::Store store(lease::StoreOptions{}, clock, random);
  lease::LeaseTable leases(lease::LeaseTableOptions{}, clock);
  CacheService service(config, store, leases, clock, random, metrics, nullptr);
  int answers = 0;
  bool now = service.Read(
      Proto::kResp, "user:1",
      [&](const ReadAnswer& a) {
        ++answers;
        EXPECT_EQ(a.kind, AnswerKind::kNotFound);
      },
      [&]() -> ReadLater {
        ADD_FAILURE() << "a plain miss is answered at once";
        return [](const ReadAnswer&) {};
      });
  EXPECT_TRUE(now);
  EXPECT_EQ(answers, 1);
  EXPECT_EQ(metrics.Requests(Proto::kResp, Outcome::kMiss), 1u);
}

// --- Concurrency -------------------------------------------------------------------------------

// Four reader threads and one backend thread: every key is loaded at most once until it is
// invalidated, and every read is answered exactly once with its key's value.
TEST_F(CacheServiceTest, ConcurrentReadersAndBackendThread) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 50;
  constexpr int kRounds = 3;  // each thread reads each key this many times per phase
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);

  std::atomic<bool> stop{false};
  std::thread backend_thread([&] {
    while (!stop.load()) {
      std::optional<FakeBackend::Call> call = backend_.Take(deadline);
      if (!call) break;
      call->done(Found("value of " + call->id));
    }
  });

  std::vector<std::pair<std::string, RecordPtr>> all;
  std::mutex all_mu;
  auto phase = [&] {
    std::vector<std::thread> readers;
    for (int t = 0; t < kThreads; ++t) {
      readers.emplace_back([&, t] {
        std::vector<std::pair<std::string, RecordPtr>> mine;
        for (int round = 0; round < kRounds; ++round) {
          for (int k = 0; k < kKeys; ++k) {
            std::string key = "user:" + std::to_string((k * 7 + t * 13 + round) % kKeys);
            mine.emplace_back(key, Read(key));
          }
        }
        std::lock_guard lock(all_mu);
        for (auto& m : mine) all.push_back(std::move(m));
      });
    }
    for (auto& r : readers) r.join();
  };

  // Waits (bounded) until the backend thread has answered everyone and no load is in flight.
  auto settled = [&] {
    if (service_->pending_loads() != 0) return false;
    for (const auto& [key, r] : all) {
      if (r->count() == 0) return false;
    }
    return true;
  };
  auto settle = [&] {
    while (!settled() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  };

  phase();
  settle();
  std::map<std::string, size_t> first_phase = backend_.loads_by_id();
  for (int k = 0; k < kKeys; ++k)
    service_->Invalidate("user:" + std::to_string(k), InvalidationSource::kDel);
  phase();
  settle();
  stop.store(true);
  backend_.Stop();
  backend_thread.join();

  ASSERT_EQ(all.size(), 2u * kThreads * kKeys * kRounds);
  for (const auto& [key, r] : all) {
    Answer a = r->only();
    EXPECT_EQ(a.kind, AnswerKind::kValue) << key << ": " << a.error;
    EXPECT_EQ(a.value, "value of " + key.substr(5)) << key;
  }
  ASSERT_TRUE(settled());
  EXPECT_EQ(first_phase.size(), static_cast<size_t>(kKeys));
  for (const auto& [id, n] : first_phase) EXPECT_EQ(n, 1u) << "key " << id << ", first phase";
  std::map<std::string, size_t> loads = backend_.loads_by_id();
  for (const auto& [id, n] : loads) EXPECT_EQ(n, 2u) << "key " << id << ", both phases";
  EXPECT_EQ(AllRequests(), all.size());
  EXPECT_EQ(leases_->leases(), 0u);
  EXPECT_EQ(leases_->waiters(), 0u);
}

}  // namespace
}  // namespace corral::server

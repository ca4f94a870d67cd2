// corral_hitratio: the hit ratio of lease::Store's eviction policies (memory.policy tinylfu and
// clock, replayed in-process) and of redis-server's allkeys-lru and allkeys-lfu (over RESP, with
// --redis), on synthetic read-through traces, next to the static optimum (the top-N keys by
// frequency over the measured part). Usage: corral_hitratio [--redis HOST:PORT] [--scale F]
// [--only NAME]. bench/hitratio.sh starts a redis-server and runs it.
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lease/clock.h"
#include "lease/random.h"
#include "lease/store.h"

namespace {

using corral::lease::EvictionPolicy;
using corral::lease::FakeClock;
using corral::lease::FakeRandom;
using corral::lease::Store;
using corral::lease::StoreOptions;

// One read-through trace: key ids in request order; the first `warmup` requests are not counted.
struct Trace {
  std::string name;
  std::vector<uint32_t> keys;
  size_t warmup = 0;
  size_t capacity = 0;  // entries both caches are sized to hold
  size_t value_size = 100;
};

// Every key has the same length, so the capacity in entries is the same for every key.
std::string KeyOf(uint32_t id) {
  char key[16];
  std::snprintf(key, sizeof(key), "k:%09u", id);
  return key;
}

// Zipf(alpha) over ranks 0..n-1, drawn by inverting the CDF.
class Zipf {
 public:
  Zipf(size_t n, double alpha) : cdf_(n) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), alpha);
      cdf_[i] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  uint32_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<uint32_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

// A random permutation of 0..n-1: rank -> key id, so that hot keys are not neighbours.
std::vector<uint32_t> Permutation(size_t n, std::mt19937_64& rng) {
  std::vector<uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  std::shuffle(perm.begin(), perm.end(), rng);
  return perm;
}

Trace ZipfTrace(double alpha, double capacity_fraction, size_t universe, size_t requests) {
  std::mt19937_64 rng(static_cast<uint64_t>(alpha * 1000) + 17);
  const Zipf zipf(universe, alpha);
  const std::vector<uint32_t> perm = Permutation(universe, rng);
  Trace t;
  char name[64];
  std::snprintf(name, sizeof(name), "zipf %.1f, %g%% cache", alpha, capacity_fraction * 100);
  t.name = name;
  t.capacity = static_cast<size_t>(static_cast<double>(universe) * capacity_fraction);
  t.warmup = requests / 4;
  t.keys.reserve(requests);
  for (size_t i = 0; i < requests; ++i) t.keys.push_back(perm[zipf(rng)]);
  return t;
}

// A hot set read uniformly, interleaved with one-off scans: `cycles` of (hot_reads reads of the
// hot set, then scan_len keys never seen before nor after).
Trace HotScanTrace(size_t hot, size_t hot_reads, size_t scan_len, size_t cycles, size_t capacity) {
  std::mt19937_64 rng(5);
  Trace t;
  t.name = "hot set + one-off scans";
  t.capacity = capacity;
  uint32_t next_cold = static_cast<uint32_t>(hot);
  for (size_t c = 0; c < cycles; ++c) {
    for (size_t i = 0; i < hot_reads; ++i) t.keys.push_back(static_cast<uint32_t>(rng() % hot));
    for (size_t i = 0; i < scan_len; ++i) t.keys.push_back(next_cold++);
    if (c == 0) t.warmup = t.keys.size();
  }
  return t;
}

// The issue's scan test: `hot` keys read five times each, one pass of `scan_len` other keys,
// then the hot keys read again; only that last pass counts, so the hit ratio is the share of the
// hot set kept.
Trace IssueScanTrace(size_t hot, size_t scan_len, size_t capacity, size_t value_size) {
  Trace t;
  t.name = "scan test (hot kept)";
  t.capacity = capacity;
  t.value_size = value_size;
  for (int round = 0; round < 5; ++round) {
    for (size_t i = 0; i < hot; ++i) t.keys.push_back(static_cast<uint32_t>(i));
  }
  for (size_t i = 0; i < scan_len; ++i) t.keys.push_back(static_cast<uint32_t>(hot + i));
  t.warmup = t.keys.size();
  for (size_t i = 0; i < hot; ++i) t.keys.push_back(static_cast<uint32_t>(i));
  return t;
}

// A loop over `length` keys, `passes` times: larger than the cache, so LRU never hits.
Trace LoopTrace(size_t length, size_t passes, size_t capacity) {
  Trace t;
  t.name = "loop 1.5x the cache";
  t.capacity = capacity;
  for (size_t p = 0; p < passes; ++p) {
    for (size_t i = 0; i < length; ++i) t.keys.push_back(static_cast<uint32_t>(i));
  }
  t.warmup = 2 * length;
  return t;
}

// Zipf 0.9 whose hot keys move: each phase maps ranks to keys shifted by a quarter of the
// universe, so a phase's hot set was cold in the one before.
Trace ShiftTrace(size_t universe, size_t phases, size_t per_phase, size_t capacity) {
  std::mt19937_64 rng(9);
  const Zipf zipf(universe, 0.9);
  const std::vector<uint32_t> perm = Permutation(universe, rng);
  Trace t;
  t.name = "shifting zipf 0.9";
  t.capacity = capacity;
  t.warmup = per_phase;
  for (size_t p = 0; p < phases; ++p) {
    for (size_t i = 0; i < per_phase; ++i) {
      t.keys.push_back(static_cast<uint32_t>((perm[zipf(rng)] + p * universe / 4) % universe));
    }
  }
  return t;
}

// The static optimum: a cache that holds, throughout, the `capacity` keys most frequent over the
// whole trace; its hit ratio over the measured part. (Counting over the measured part alone would
// pick keys that were lucky in that sample and overstate what any online policy can reach.)
double StaticOptimal(const Trace& t) {
  std::unordered_map<uint32_t, uint32_t> counts;
  for (uint32_t key : t.keys) ++counts[key];
  std::vector<std::pair<uint32_t, uint32_t>> by_count(counts.begin(), counts.end());
  const size_t n = std::min(t.capacity, by_count.size());
  std::partial_sort(by_count.begin(), by_count.begin() + static_cast<ptrdiff_t>(n), by_count.end(),
                    [](const auto& a, const auto& b) { return a.second > b.second; });
  std::unordered_map<uint32_t, bool> kept;
  for (size_t i = 0; i < n; ++i) kept.emplace(by_count[i].first, true);
  size_t hits = 0;
  for (size_t i = t.warmup; i < t.keys.size(); ++i) hits += kept.contains(t.keys[i]) ? 1 : 0;
  return static_cast<double>(hits) / static_cast<double>(t.keys.size() - t.warmup);
}

// Perfect LFU: every key's count over the whole trace so far is known (no sketch, no aging), and
// the cache holds the `capacity` keys with the highest counts among those seen; a missed key is
// admitted when its count beats the least counted resident. What frequency alone can reach
// online, against which TinyLFU's approximations (4-bit counters, aging, a window) are judged.
double PerfectLfu(const Trace& t) {
  std::unordered_map<uint32_t, uint32_t> counts;
  std::set<std::pair<uint32_t, uint32_t>> resident;  // (count, key)
  size_t hits = 0;
  for (size_t i = 0; i < t.keys.size(); ++i) {
    const uint32_t key = t.keys[i];
    uint32_t& count = counts[key];
    const auto it = resident.find({count, key});
    ++count;
    if (it != resident.end()) {
      resident.erase(it);
      resident.insert({count, key});
      if (i >= t.warmup) ++hits;
    } else if (resident.size() < t.capacity) {
      resident.insert({count, key});
    } else if (resident.begin()->first < count) {
      resident.erase(resident.begin());
      resident.insert({count, key});
    }
  }
  return static_cast<double>(hits) / static_cast<double>(t.keys.size() - t.warmup);
}

// corral's bytes for `capacity` entries: key + value + kEntryOverhead each, plus the policy's
// state once they are held (the sketch grows with the keys, up to a size set by max_bytes: the
// sum is found by filling a probe store and iterating).
size_t CorralMaxBytes(const Trace& t, EvictionPolicy policy) {
  const size_t entries = t.capacity * (KeyOf(0).size() + t.value_size + Store::kEntryOverhead);
  const std::string value(t.value_size, 'v');
  FakeClock clock;
  FakeRandom random({0.5});
  size_t max_bytes = entries;
  for (int i = 0; i < 4; ++i) {
    Store probe({.max_bytes = max_bytes, .policy = policy}, clock, random);
    for (size_t k = 0; k < t.capacity; ++k)
      probe.Set(KeyOf(static_cast<uint32_t>(k)), value, std::nullopt);
    if (max_bytes == entries + probe.PolicyBytes()) break;
    max_bytes = entries + probe.PolicyBytes();
  }
  return max_bytes;
}

double RunCorral(const Trace& t, EvictionPolicy policy, size_t* max_bytes_out) {
  FakeClock clock;
  FakeRandom random({0.5});
  const size_t max_bytes = CorralMaxBytes(t, policy);
  *max_bytes_out = max_bytes;
  Store store({.max_bytes = max_bytes, .policy = policy}, clock, random);
  const std::string value(t.value_size, 'v');
  size_t hits = 0;
  for (size_t i = 0; i < t.keys.size(); ++i) {
    const std::string key = KeyOf(t.keys[i]);
    if (store.Get(key, [](std::string_view, const corral::lease::EntryMeta&) {})) {
      if (i >= t.warmup) ++hits;
    } else {
      store.Fill(key, value, {.ttl_ms = corral::lease::kNever});
    }
    if ((i & 1023) == 0) clock.Advance(1);
  }
  return static_cast<double>(hits) / static_cast<double>(t.keys.size() - t.warmup);
}

class Redis {
 public:
  explicit Redis(const std::string& address) {
    const size_t colon = address.rfind(':');
    const std::string host = address.substr(0, colon);
    const int port = std::atoi(address.c_str() + colon + 1);
    context_.reset(redisConnect(host.c_str(), port));
    if (context_ == nullptr || context_->err != 0) {
      std::fprintf(stderr, "cannot connect to redis at %s\n", address.c_str());
      std::exit(1);
    }
  }

  std::string Command(const char* format, const char* arg = nullptr) {
    redisReply* reply = static_cast<redisReply*>(redisCommand(context_.get(), format, arg));
    if (reply == nullptr) Die("no reply");
    std::string text = reply->str != nullptr ? std::string(reply->str, reply->len) : "";
    if (reply->type == REDIS_REPLY_ERROR) Die(text.c_str());
    freeReplyObject(reply);
    return text;
  }

  size_t UsedMemory() {
    const std::string info = Command("INFO memory");
    const size_t at = info.find("used_memory:");
    return std::strtoull(info.c_str() + at + std::strlen("used_memory:"), nullptr, 10);
  }

  // SET key value NX GET for keys[from, to): a nil reply is a miss (and the SET stored it), a
  // value is a hit (and nothing was written). Read-through in one round trip per key, pipelined.
  size_t ReadThrough(const std::vector<uint32_t>& keys, size_t from, size_t to,
                     const std::string& value) {
    size_t hits = 0;
    constexpr size_t kBatch = 64;
    for (size_t start = from; start < to; start += kBatch) {
      const size_t end = std::min(to, start + kBatch);
      for (size_t i = start; i < end; ++i) {
        const std::string key = KeyOf(keys[i]);
        redisAppendCommand(context_.get(), "SET %b %b NX GET", key.data(), key.size(), value.data(),
                           value.size());
      }
      for (size_t i = start; i < end; ++i) {
        void* raw = nullptr;
        if (redisGetReply(context_.get(), &raw) != REDIS_OK) Die("connection lost");
        auto* reply = static_cast<redisReply*>(raw);
        if (reply->type == REDIS_REPLY_ERROR) Die(reply->str);
        if (reply->type == REDIS_REPLY_STRING) ++hits;
        freeReplyObject(reply);
      }
    }
    return hits;
  }

 private:
  [[noreturn]] void Die(const char* what) {
    std::fprintf(stderr, "redis: %s\n", what);
    std::exit(1);
  }
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, Free> context_;
};

// Redis sized to hold the same number of entries: maxmemory is its used_memory with `capacity`
// keys of the trace's shape loaded (measured on this server, this run).
double RunRedis(Redis& redis, const Trace& t, const char* policy, size_t* maxmemory_out) {
  redis.Command("FLUSHALL");
  redis.Command("CONFIG SET maxmemory %s", "0");
  std::vector<uint32_t> fill(t.capacity);
  std::iota(fill.begin(), fill.end(), 0u);
  const std::string value(t.value_size, 'v');
  redis.ReadThrough(fill, 0, fill.size(), value);
  const size_t maxmemory = redis.UsedMemory();
  *maxmemory_out = maxmemory;
  redis.Command("FLUSHALL");
  redis.Command("CONFIG SET maxmemory-policy %s", policy);
  redis.Command("CONFIG SET maxmemory %s", std::to_string(maxmemory).c_str());
  redis.ReadThrough(t.keys, 0, t.warmup, value);
  const size_t hits = redis.ReadThrough(t.keys, t.warmup, t.keys.size(), value);
  return static_cast<double>(hits) / static_cast<double>(t.keys.size() - t.warmup);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> redis_address;
  double scale = 1.0;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--redis" && i + 1 < argc) {
      redis_address = argv[++i];
    } else if (arg == "--scale" && i + 1 < argc) {
      scale = std::atof(argv[++i]);
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: corral_hitratio [--redis HOST:PORT] [--scale F] [--only SUBSTRING]\n");
      return 2;
    }
  }
  if (!(scale > 0 && scale <= 10)) {
    std::fprintf(stderr, "--scale must be in (0, 10]\n");
    return 2;
  }
  auto n = [&](double count) { return static_cast<size_t>(count * scale); };

  // Each trace is made when its turn comes, so that only one is in memory.
  std::vector<std::function<Trace()>> traces;
  const size_t universe = n(1'000'000);
  for (double capacity : {0.01, 0.1}) {
    for (double alpha : {0.6, 0.8, 0.9, 1.0, 1.2}) {
      // Long enough for the cache to turn over many times after the warm-up quarter: 80 requests
      // per entry of the cache, at least 2 M.
      const double requests = std::max(2e6, 80 * capacity * 1e6);
      traces.push_back([=] { return ZipfTrace(alpha, capacity, universe, n(requests)); });
    }
  }
  traces.push_back([=] { return HotScanTrace(n(20'000), n(100'000), n(300'000), 4, n(100'000)); });
  // The issue's figures: 30 MiB of corral's accounting for 200-byte values, 20 000 hot keys.
  traces.push_back([=] {
    return IssueScanTrace(n(20'000), n(300'000),
                          n(30.0 * (1 << 20) / (11 + 200 + Store::kEntryOverhead)), 200);
  });
  traces.push_back([=] { return LoopTrace(n(150'000), 10, n(100'000)); });
  traces.push_back([=] { return ShiftTrace(universe, 4, n(500'000), n(100'000)); });

  std::unique_ptr<Redis> redis;
  if (redis_address) redis = std::make_unique<Redis>(*redis_address);

  std::printf(
      "| trace | cache (entries) | static optimal | perfect LFU | corral tinylfu | corral clock "
      "|%s\n",
      redis ? " redis allkeys-lru | redis allkeys-lfu |" : "");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: |%s\n", redis ? " ---: | ---: |" : "");
  for (const auto& make : traces) {
    const Trace t = make();
    if (!only.empty() && t.name.find(only) == std::string::npos) continue;
    size_t tinylfu_bytes = 0;
    size_t clock_bytes = 0;
    const double optimal = StaticOptimal(t);
    const double perfect_lfu = PerfectLfu(t);
    const double tinylfu = RunCorral(t, EvictionPolicy::kTinyLfu, &tinylfu_bytes);
    const double clock = RunCorral(t, EvictionPolicy::kClock, &clock_bytes);
    std::printf("| %s | %zu | %.1f%% | %.1f%% | %.1f%% | %.1f%% |", t.name.c_str(), t.capacity,
                100 * optimal, 100 * perfect_lfu, 100 * tinylfu, 100 * clock);
    std::string memory = "corral max_bytes " + std::to_string(tinylfu_bytes) + " (tinylfu), " +
                         std::to_string(clock_bytes) + " (clock)";
    if (redis) {
      size_t lru_bytes = 0;
      size_t lfu_bytes = 0;
      const double lru = RunRedis(*redis, t, "allkeys-lru", &lru_bytes);
      const double lfu = RunRedis(*redis, t, "allkeys-lfu", &lfu_bytes);
      std::printf(" %.1f%% | %.1f%% |", 100 * lru, 100 * lfu);
      memory += "; redis maxmemory " + std::to_string(lru_bytes);
    }
    std::printf("\n");
    std::fprintf(stderr, "%s: %s\n", t.name.c_str(), memory.c_str());
    std::fflush(stdout);
  }
  return 0;
}

// The per-key lease table: sharded maps of leases and their waiters, with lazily pruned min-heaps
// of waiter deadlines and lease expiries. Callbacks are collected under a shard lock and run after
// it is released, so a callback may re-enter the table.
#include "lease/lease_table.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace corral::lease {
namespace {

struct Waiter {
  Millis deadline;
  WaiterFn fn;
};

// A deadline (waiter) or an expiry (lease) in a min-heap. `id` is a waiter's sequence number or a
// lease's token; an entry whose id is gone from the shard is stale and skipped when it surfaces.
struct HeapEntry {
  Millis at;
  uint64_t id;
};

struct LaterFirst {
  bool operator()(const HeapEntry& a, const HeapEntry& b) const { return a.at > b.at; }
};

// A callback to run once the shard lock is released.
struct Wake {
  WaiterFn fn;
  WaitOutcome outcome;
};

void RunAll(std::vector<Wake>& wakes) {
  for (Wake& w : wakes) w.fn(std::move(w.outcome));
}

// Stale heap entries are allowed up to twice the live count plus this slack before a rebuild, so
// lazy deletion stays bounded even if ExpireDue is never called.
constexpr size_t kHeapSlack = 1024;

}  // namespace

struct LeaseTable::Lease {
  std::string key;
  LeaseToken token = 0;
  Millis granted_at = 0;
  bool voided = false;
  // Keyed by the shard's arrival sequence number, so begin() is the oldest waiter.
  std::map<uint64_t, Waiter> waiters;
};

// Everything below is guarded by `mu`. Waiters are owned by their lease; `waiter_index` finds a
// waiter's lease from its sequence number (waiters move between leases when a voided lease is given
// up while a newer live lease exists).
struct alignas(64) LeaseTable::Shard {
  std::mutex mu;
  std::unordered_map<LeaseToken, std::unique_ptr<Lease>> by_token;  // every lease, live or voided
  // The un-voided lease of each key. The string_views point into that lease's own `key`.
  std::unordered_map<std::string_view, Lease*> live;
  std::unordered_map<uint64_t, Lease*> waiter_index;
  std::vector<HeapEntry> waiter_heap;
  std::vector<HeapEntry> lease_heap;
  uint64_t next_seq = 1;

  Lease* Grant(LeaseTable& table, std::string_view key, Millis now) {
    auto lease = std::make_unique<Lease>();
    lease->key.assign(key);
    lease->token = table.next_token_.fetch_add(1, std::memory_order_relaxed);
    lease->granted_at = now;
    Lease* raw = lease.get();
    by_token.emplace(raw->token, std::move(lease));
    live.emplace(raw->key, raw);
    PushExpiry(table, raw);
    table.leases_.fetch_add(1, std::memory_order_relaxed);
    return raw;
  }

  // Gives `lease` a fresh token and TTL, as if just granted. The old token stops naming anything.
  void Regrant(LeaseTable& table, Lease* lease, Millis now) {
    auto node = by_token.extract(lease->token);
    lease->token = table.next_token_.fetch_add(1, std::memory_order_relaxed);
    lease->granted_at = now;
    node.key() = lease->token;
    by_token.insert(std::move(node));
    PushExpiry(table, lease);
  }

  // Unlinks `lease`; the caller destroys it after unlocking (it may own many waiter nodes).
  std::unique_ptr<Lease> Remove(LeaseTable& table, Lease* lease) {
    auto it = live.find(lease->key);
    if (it != live.end() && it->second == lease) live.erase(it);
    auto node = by_token.extract(lease->token);
    table.leases_.fetch_sub(1, std::memory_order_relaxed);
    return std::move(node.mapped());
  }

  // Moves every waiter of `lease` into `out` (fn only; the caller builds the outcome).
  void TakeAllWaiters(LeaseTable& table, Lease* lease, std::vector<WaiterFn>& out) {
    out.reserve(out.size() + lease->waiters.size());
    for (auto& [seq, waiter] : lease->waiters) {
      out.push_back(std::move(waiter.fn));
      waiter_index.erase(seq);
    }
    table.waiters_.fetch_sub(lease->waiters.size(), std::memory_order_relaxed);
    lease->waiters.clear();
  }

  // The holder of `lease` is gone (Release or expiry). Its oldest waiter becomes the holder under a
  // fresh token; if the lease was voided and the key has a newer live lease, the waiters join that
  // one instead (its load started after the invalidation, so its result is the one they want);
  // with no waiters the lease is removed and returned for destruction.
  std::unique_ptr<Lease> HandOver(LeaseTable& table, Lease* lease, Millis now,
                                  std::vector<Wake>& wakes) {
    if (lease->waiters.empty()) return Remove(table, lease);
    if (lease->voided) {
      auto it = live.find(lease->key);
      if (it != live.end()) {
        Lease* target = it->second;
        for (auto& entry : lease->waiters) waiter_index[entry.first] = target;
        target->waiters.merge(lease->waiters);
        return Remove(table, lease);
      }
      // The new holder loads after the invalidation, so its result may be cached again.
      lease->voided = false;
      live.emplace(lease->key, lease);
    }
    Regrant(table, lease, now);
    auto oldest = lease->waiters.extract(lease->waiters.begin());
    waiter_index.erase(oldest.key());
    table.waiters_.fetch_sub(1, std::memory_order_relaxed);
    wakes.push_back({std::move(oldest.mapped().fn),
                     WaitOutcome{WaitOutcome::Kind::kLeaseGranted, nullptr, lease->token}});
    return nullptr;
  }

  void PushDeadline(Millis deadline, uint64_t seq) {
    if (waiter_heap.size() > 2 * waiter_index.size() + kHeapSlack) {
      waiter_heap.clear();
      for (const auto& [id, lease] : waiter_index) {
        waiter_heap.push_back({lease->waiters.find(id)->second.deadline, id});
      }
      std::make_heap(waiter_heap.begin(), waiter_heap.end(), LaterFirst());
    }
    waiter_heap.push_back({deadline, seq});
    std::push_heap(waiter_heap.begin(), waiter_heap.end(), LaterFirst());
  }

  void PushExpiry(LeaseTable& table, const Lease* lease) {
    const Millis ttl = table.options_.lease_ttl_ms;
    if (lease_heap.size() > 2 * by_token.size() + kHeapSlack) {
      lease_heap.clear();
      for (const auto& [token, other] : by_token) {
        if (other.get() != lease) lease_heap.push_back({other->granted_at + ttl, token});
      }
      std::make_heap(lease_heap.begin(), lease_heap.end(), LaterFirst());
    }
    lease_heap.push_back({lease->granted_at + ttl, lease->token});
    std::push_heap(lease_heap.begin(), lease_heap.end(), LaterFirst());
  }

  static void PopTop(std::vector<HeapEntry>& heap) {
    std::pop_heap(heap.begin(), heap.end(), LaterFirst());
    heap.pop_back();
  }

  // Earliest live deadline or expiry; drops stale entries on top first so the answer is exact.
  Millis NextDue() {
    while (!waiter_heap.empty() && !waiter_index.contains(waiter_heap.front().id)) {
      PopTop(waiter_heap);
    }
    while (!lease_heap.empty() && !by_token.contains(lease_heap.front().id)) PopTop(lease_heap);
    Millis next = kNever;
    if (!waiter_heap.empty()) next = waiter_heap.front().at;
    if (!lease_heap.empty()) next = std::min(next, lease_heap.front().at);
    return next;
  }
};

LeaseTable::LeaseTable(LeaseTableOptions options, const Clock& clock)
    : options_([&] {
        // A non-positive TTL would re-expire a handed-over lease in the same ExpireDue forever.
        options.lease_ttl_ms = std::max<Millis>(options.lease_ttl_ms, 1);
        options.wait_timeout_ms = std::max<Millis>(options.wait_timeout_ms, 0);
        return options;
      }()),
      clock_(clock),
      shard_count_(std::max<size_t>(options.shards, 1)),
      shards_(std::make_unique<Shard[]>(shard_count_)) {}

LeaseTable::~LeaseTable() = default;

LeaseTable::Shard& LeaseTable::ShardFor(std::string_view key) const {
  size_t h = std::hash<std::string_view>{}(key);
  h ^= h >> 29;  // the per-shard maps hash the same key again; keep the two choices apart
  return shards_[h % shard_count_];
}

LeaseTable::Acquired LeaseTable::AcquireOrWait(std::string_view key, WaiterFn fn, Millis deadline,
                                               LeaseToken holding) {
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mu);
  const Millis now = clock_.NowMs();
  auto it = shard.live.find(key);
  if (it == shard.live.end()) return {true, shard.Grant(*this, key, now)->token};

  Lease* lease = it->second;
  Millis due = now + options_.wait_timeout_ms;
  if (deadline != 0 && deadline < due) due = deadline;
  const uint64_t seq = shard.next_seq++;
  // seq is the largest in the shard, so the new waiter goes last.
  lease->waiters.emplace_hint(lease->waiters.end(), seq, Waiter{due, std::move(fn)});
  shard.waiter_index.emplace(seq, lease);
  shard.PushDeadline(due, seq);
  waiters_.fetch_add(1, std::memory_order_relaxed);
  if (holding == 0 || lease->token != holding) {
    coalesced_total_.fetch_add(1, std::memory_order_relaxed);
  }
  return {false, 0};
}

std::optional<LeaseToken> LeaseTable::TryAcquire(std::string_view key) {
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mu);
  if (shard.live.contains(key)) return std::nullopt;
  return shard.Grant(*this, key, clock_.NowMs())->token;
}

bool LeaseTable::Complete(std::string_view key, LeaseToken token, LoadResult result) {
  return Complete(key, token, std::move(result), nullptr);
}

bool LeaseTable::Complete(std::string_view key, LeaseToken token, LoadResult result,
                          const std::function<void(const LoadResult&)>& commit) {
  Shard& shard = ShardFor(key);
  std::vector<WaiterFn> fns;
  std::unique_ptr<Lease> dead;
  bool cacheable;
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.by_token.find(token);
    if (it == shard.by_token.end() || it->second->key != key) return false;
    Lease* lease = it->second.get();
    cacheable = !lease->voided;
    // Under the lock: a Void either came first (no commit) or waits until the commit is done.
    if (cacheable && commit) commit(result);
    shard.TakeAllWaiters(*this, lease, fns);
    dead = shard.Remove(*this, lease);
  }
  if (!fns.empty()) {
    // One copy of the value for every waiter, however many there are.
    auto shared = std::make_shared<const LoadResult>(std::move(result));
    for (WaiterFn& fn : fns) fn(WaitOutcome{WaitOutcome::Kind::kResult, shared, 0});
  }
  return cacheable;
}

bool LeaseTable::Release(std::string_view key, LeaseToken token) {
  Shard& shard = ShardFor(key);
  std::vector<Wake> wakes;
  std::unique_ptr<Lease> dead;
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.by_token.find(token);
    if (it == shard.by_token.end() || it->second->key != key) return false;
    dead = shard.HandOver(*this, it->second.get(), clock_.NowMs(), wakes);
  }
  RunAll(wakes);
  return true;
}

bool LeaseTable::Void(std::string_view key) {
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.live.find(key);
  if (it == shard.live.end()) return false;
  it->second->voided = true;
  shard.live.erase(it);
  return true;
}

void LeaseTable::VoidAll() {
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    for (auto& [key, lease] : shard.live) lease->voided = true;
    shard.live.clear();
  }
}

bool LeaseTable::IsValid(std::string_view key, LeaseToken token) const {
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.live.find(key);
  return it != shard.live.end() && it->second->token == token;
}

bool LeaseTable::HasLive(std::string_view key) const {
  Shard& shard = ShardFor(key);
  std::lock_guard lock(shard.mu);
  return shard.live.find(key) != shard.live.end();
}

Millis LeaseTable::ExpireDue() {
  // With no waiter and no lease nothing can be due: the common case of a cache that is hitting
  // costs two loads, not a lock and a clock reading per shard (it is called every few ms).
  if (waiters_.load(std::memory_order_relaxed) == 0 &&
      leases_.load(std::memory_order_relaxed) == 0) {
    return kNever;
  }
  Millis next = kNever;
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    std::vector<Wake> wakes;
    std::vector<std::unique_ptr<Lease>> dead;
    {
      std::lock_guard lock(shard.mu);
      const Millis now = clock_.NowMs();
      // Waiters first: one whose deadline is now has waited its full time and is told so, rather
      // than being handed a lease that expires at the same instant.
      while (!shard.waiter_heap.empty() && shard.waiter_heap.front().at <= now) {
        const uint64_t seq = shard.waiter_heap.front().id;
        Shard::PopTop(shard.waiter_heap);
        auto idx = shard.waiter_index.find(seq);
        if (idx == shard.waiter_index.end()) continue;
        auto node = idx->second->waiters.extract(seq);
        shard.waiter_index.erase(idx);
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        wakes.push_back(
            {std::move(node.mapped().fn), WaitOutcome{WaitOutcome::Kind::kTimedOut, nullptr, 0}});
      }
      while (!shard.lease_heap.empty() && shard.lease_heap.front().at <= now) {
        const LeaseToken token = shard.lease_heap.front().id;
        Shard::PopTop(shard.lease_heap);
        auto it = shard.by_token.find(token);
        if (it == shard.by_token.end()) continue;
        if (auto gone = shard.HandOver(*this, it->second.get(), now, wakes)) {
          dead.push_back(std::move(gone));
        }
      }
      next = std::min(next, shard.NextDue());
    }
    RunAll(wakes);
  }
  return next;
}

size_t LeaseTable::waiters() const { return waiters_.load(std::memory_order_relaxed); }

size_t LeaseTable::leases() const { return leases_.load(std::memory_order_relaxed); }

uint64_t LeaseTable::coalesced_total() const {
  return coalesced_total_.load(std::memory_order_relaxed);
}

}  // namespace corral::lease

// Client-side caching (docs/protocol.md "Client tracking"): CLIENT TRACKING's table of which
// connection read which key, and the invalidation messages sent when a key changes — written by a
// client, or invalidated because its row changed in PostgreSQL (NOTIFY, the WAL, another node).
// Redis 7.0's semantics (tracking.c): default mode remembers the keys a connection read and
// forgets each once it has been told; BCAST tells every connection whose prefix matches; REDIRECT
// sends to another connection (RESP2: as a message on __redis__:invalidate); NOLOOP skips the
// connection's own writes; OPTIN / OPTOUT with CLIENT CACHING. The table holds at most
// `max_keys` keys: beyond, a key is told to its readers at once and forgotten (Redis's
// tracking-table-max-keys). Thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache-server/pubsub.h"

namespace corral::server {

// The connections of the server by CLIENT ID, as targets of pushes (REDIRECT).
class ClientRegistry {
 public:
  void Add(uint64_t id, std::weak_ptr<PushTarget> target);
  void Remove(uint64_t id);
  std::shared_ptr<PushTarget> Find(uint64_t id) const;
  // Every connection still open, with its id (CLIENT LIST, CLIENT KILL).
  std::vector<std::pair<uint64_t, std::shared_ptr<PushTarget>>> All() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::weak_ptr<PushTarget>> targets_;
};

struct TrackingOptions {
  uint64_t redirect = 0;  // 0: the connection itself
  bool bcast = false;
  bool optin = false;
  bool optout = false;
  bool noloop = false;
  std::vector<std::string> prefixes;  // BCAST only; none: every key
};

// "Tell the connection `key` (null: everything) changed": the bytes a connection gets, given its
// own protocol and subscriptions (PushTarget::PushFor runs it on the connection's thread).
// `keys` null: every key (FLUSHALL).
std::string InvalidationMessage(const RespClient& receiver, const std::vector<std::string>* keys,
                                bool redirected);

class TrackingTable {
 public:
  explicit TrackingTable(const ClientRegistry& clients, size_t max_keys = 1'000'000)
      : clients_(clients), max_keys_(max_keys) {}

  // Connection `id` tracks with `options` from now on (again: the new options replace the old,
  // and what it read before is still remembered). `self` receives what is not redirected.
  void Enable(uint64_t id, std::weak_ptr<PushTarget> self, TrackingOptions options);
  void Disable(uint64_t id);
  // Connection `id` read `key` (default mode): it is told when `key` next changes.
  // `fresh_until` (ms on the caller's clock; 0: none): a read-through value answered fresh stops
  // being fresh then, which is a change for a near cache (see TakeFreshTimeOver).
  void Remember(uint64_t id, std::string_view key, int64_t fresh_until = 0);
  // BCAST connection `id` was answered the read-through value of `key` fresh, until `fresh_until`
  // (0: not known yet, SetFreshUntil follows when its load ends). BCAST trackers name no keys,
  // so a near cache would otherwise keep the value past its fresh time: the table remembers the
  // key (without readers; it counts against max_keys, not in Stats::keys) and its fresh end
  // comes out of TakeFreshTimeOver like a reader's, to be told to every matching BCAST tracker.
  // Nothing is remembered when none of `id`'s prefixes matches `key`: it is not told of it.
  void RememberFreshEnd(uint64_t id, std::string_view key, int64_t fresh_until);
  // The remembered keys whose fresh time ended at or before `now` (Remember's clock) and that
  // nobody was told of since: the caller tells them (Invalidate) if they are not fresh again,
  // else remembers their new fresh time (SetFreshUntil).
  std::vector<std::string> TakeFreshTimeOver(int64_t now);
  // `key`, still remembered, is fresh until `fresh_until` now (it was filled again).
  void SetFreshUntil(std::string_view key, int64_t fresh_until);
  // `key` changed; `by`: the connection that wrote it (NOLOOP), 0 for none.
  void Invalidate(std::string_view key, uint64_t by);
  // Every key changed (FLUSHALL): every tracking connection is told so once (a null key).
  void InvalidateAll();

  // CONFIG SET tracking-table-max-keys: 0 is no bound. A lower bound takes effect at once: the
  // readers of the keys beyond it are told now, as if those keys had changed.
  void SetMaxKeys(size_t max_keys);
  size_t max_keys() const { return max_keys_.load(std::memory_order_relaxed); }

  // While a Batch lives on a thread, the BCAST invalidations raised there are gathered and sent
  // when it ends: one message per prefix per connection, with every key of that prefix (Redis
  // sends one per prefix per turn of its event loop). A write command that names several keys,
  // and EXEC, hold one. A batch inside another joins the outer one.
  class Batch {
   public:
    explicit Batch(TrackingTable& table);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    TrackingTable* table_ = nullptr;  // null when an outer batch gathers
  };

  // Fast path: false when no connection tracks.
  bool active() const { return trackers_count_.load(std::memory_order_relaxed) != 0; }
  // INFO's tracking fields, read together.
  struct Stats {
    size_t clients = 0;   // tracking_clients: connections with tracking on
    size_t keys = 0;      // tracking_total_keys: keys remembered in the table
    size_t items = 0;     // tracking_total_items: (key, reader) pairs
    size_t prefixes = 0;  // tracking_total_prefixes: distinct BCAST prefixes ("" counts)
  };
  Stats stats() const;
  // The options connection `id` tracks with (CLIENT TRACKINGINFO); null if it does not.
  std::unique_ptr<TrackingOptions> OptionsOf(uint64_t id) const;

 private:
  struct Tracker {
    std::weak_ptr<PushTarget> self;
    TrackingOptions options;
  };
  // Sends the invalidation of `keys` to the tracker `t` (its redirect target if it has one).
  // Called with mu_ held; the push itself only posts.
  // `keys` null: every key.
  void Tell(const Tracker& t, const std::vector<std::string>* keys);
  // Sends what the ending Batch gathered: (connection, prefix) -> keys. Takes mu_.
  void SendBatch(std::map<std::pair<uint64_t, std::string>, std::vector<std::string>>& gathered);
  // While the table holds more keys than the bound: tells one key's readers and forgets it (not
  // `keep`, the key just added). Called with mu_ held.
  void EvictOverBound(const std::string* keep);
  // Tells every BCAST tracker whose prefix matches `key` (but `by` under NOLOOP), or gathers it
  // into the thread's Batch. Called with mu_ held.
  void TellBcast(const std::string& key, uint64_t by);

  const ClientRegistry& clients_;
  std::atomic<size_t> max_keys_;  // 0: no bound
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Tracker> trackers_;
  // The keys connections read in default mode, with their readers, and when a read-through
  // value answered fresh stops being fresh (0: not such a value).
  struct Readers {
    std::unordered_set<uint64_t> ids;
    int64_t fresh_until = 0;
    bool bcast = false;  // a BCAST connection was answered it fresh (RememberFreshEnd)
  };
  std::unordered_map<std::string, Readers> keys_;
  // The fresh ends of keys_, soonest first; an entry whose key is gone or whose fresh_until
  // changed is dropped when it comes up.
  using Due = std::pair<int64_t, std::string>;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> fresh_ends_;
  // keys_ is emptied: so is fresh_ends_.
  void ClearKeys();
  // Records `fresh_until` for `readers` (of `key`), with mu_ held.
  void SetFreshUntilLocked(const std::string& key, Readers& readers, int64_t fresh_until);
  std::atomic<size_t> trackers_count_{0};
};

}  // namespace corral::server

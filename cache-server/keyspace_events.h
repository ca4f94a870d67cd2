// Keyspace notifications (Redis's notify-keyspace-events, notify.c): when a command changes a
// key, or the store expires or evicts one, a message on __keyspace@0__:<key> (the event's name)
// and one on __keyevent@0__:<event> (the key), as the classes chosen by CONFIG SET allow. Off
// (no class) by default, as in Redis; a command then pays one relaxed atomic load. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace corral::server {

class PubSub;

// The event classes, one bit each (Redis's NOTIFY_* flags, with their letters).
enum KeyspaceEventClass : uint32_t {
  kEventKeyspace = 1u << 0,  // K: __keyspace@0__:<key> channels
  kEventKeyevent = 1u << 1,  // E: __keyevent@0__:<event> channels
  kEventGeneric = 1u << 2,   // g: DEL, EXPIRE, RENAME, ... (type-independent)
  kEventString = 1u << 3,    // $
  kEventList = 1u << 4,      // l  (corral has no lists: accepted, never raised)
  kEventSet = 1u << 5,       // s  (likewise)
  kEventHash = 1u << 6,      // h  (likewise)
  kEventZset = 1u << 7,      // z  (likewise)
  kEventExpired = 1u << 8,   // x: a key removed because its TTL ran out
  kEventEvicted = 1u << 9,   // e: a key evicted for memory
  kEventStream = 1u << 10,   // t  (corral has no streams)
  kEventKeyMiss = 1u << 11,  // m: accepted; corral does not raise it (the GET hit path)
  kEventModule = 1u << 12,   // d  (no modules)
  kEventNew = 1u << 13,      // n: a key added to the keyspace
  // A: every class but m and n (and K, E).
  kEventAll = kEventGeneric | kEventString | kEventList | kEventSet | kEventHash | kEventZset |
              kEventExpired | kEventEvicted | kEventStream | kEventModule,
};

// notify-keyspace-events text to flags ("KEA"); nullopt for a character that is no class.
std::optional<uint32_t> ParseKeyspaceEvents(std::string_view text);
// Flags to text as CONFIG GET shows them (Redis's order: "AK" for "KA").
std::string KeyspaceEventsText(uint32_t flags);

class KeyspaceEvents {
 public:
  explicit KeyspaceEvents(PubSub& pubsub) : pubsub_(pubsub) {}

  void set_flags(uint32_t flags) { flags_.store(flags, std::memory_order_relaxed); }
  uint32_t flags() const { return flags_.load(std::memory_order_relaxed); }
  // Whether an event of `type` would be published now (its class and K or E are on).
  bool Wants(uint32_t type) const {
    const uint32_t f = flags();
    return (f & type) != 0 && (f & (kEventKeyspace | kEventKeyevent)) != 0;
  }
  // Publishes `event` on `key` if its class `type` is on.
  void Notify(uint32_t type, std::string_view event, std::string_view key) {
    if (Wants(type)) [[unlikely]]
      Publish(event, key);
  }

 private:
  void Publish(std::string_view event, std::string_view key);

  PubSub& pubsub_;
  std::atomic<uint32_t> flags_{0};
};

}  // namespace corral::server

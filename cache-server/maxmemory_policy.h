// Redis's maxmemory-policy names (CONFIG GET/SET, INFO) and what each means for corral's store:
// corral evicts any key, by W-TinyLFU or CLOCK, or (noeviction) refuses writes instead.
// docs/protocol.md "Memory" says how each name differs from Redis.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "lease/store.h"

namespace corral::server {

// In Redis's order (config.c maxmemory_policy_enum), which its CONFIG SET error lists.
enum class MaxmemoryPolicy : uint8_t {
  kVolatileLru,
  kVolatileLfu,
  kVolatileRandom,
  kVolatileTtl,
  kAllkeysLru,
  kAllkeysLfu,
  kAllkeysRandom,
  kNoEviction,
};
inline constexpr std::string_view kMaxmemoryPolicyNames[] = {
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
    "allkeys-lru",  "allkeys-lfu",  "allkeys-random",  "noeviction"};
// Redis 7.0's CONFIG SET complaint about any other value (setEnumConfig).
inline constexpr std::string_view kBadMaxmemoryPolicy =
    "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, "
    "volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction";

inline std::string_view NameOf(MaxmemoryPolicy policy) {
  return kMaxmemoryPolicyNames[static_cast<size_t>(policy)];
}

// The name (any case, as Redis takes it), or nullopt.
inline std::optional<MaxmemoryPolicy> ParseMaxmemoryPolicy(std::string_view name) {
  for (size_t i = 0; i < std::size(kMaxmemoryPolicyNames); ++i) {
    const std::string_view known = kMaxmemoryPolicyNames[i];
    if (name.size() != known.size()) continue;
    bool same = true;
    for (size_t j = 0; j < name.size() && same; ++j) {
      char c = name[j];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      same = c == known[j];
    }
    if (same) return static_cast<MaxmemoryPolicy>(i);
  }
  return std::nullopt;
}

// What corral reports at start for its memory options: noeviction when it does not evict, else
// the Redis name nearest its algorithm (TinyLFU counts frequency: allkeys-lfu; CLOCK approximates
// recency: allkeys-lru).
inline MaxmemoryPolicy DefaultMaxmemoryPolicy(const lease::StoreOptions& memory) {
  if (!memory.evict) return MaxmemoryPolicy::kNoEviction;
  return memory.policy == lease::EvictionPolicy::kTinyLfu ? MaxmemoryPolicy::kAllkeysLfu
                                                          : MaxmemoryPolicy::kAllkeysLru;
}

// Whether the store evicts under `policy`: every name but noeviction does (volatile-* included:
// corral evicts any key, docs/protocol.md).
inline bool Evicts(MaxmemoryPolicy policy) { return policy != MaxmemoryPolicy::kNoEviction; }

// The algorithm a name selects: the LFU names W-TinyLFU (frequency), the others CLOCK (second
// chance, an approximation of LRU as Redis's own LRU is; corral has no random or TTL order);
// noeviction none (the store keeps the algorithm it has, for a later evicting name).
inline std::optional<lease::EvictionPolicy> AlgorithmOf(MaxmemoryPolicy policy) {
  switch (policy) {
    case MaxmemoryPolicy::kVolatileLfu:
    case MaxmemoryPolicy::kAllkeysLfu:
      return lease::EvictionPolicy::kTinyLfu;
    case MaxmemoryPolicy::kNoEviction:
      return std::nullopt;
    default:
      return lease::EvictionPolicy::kClock;
  }
}

}  // namespace corral::server

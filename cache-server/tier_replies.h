// Decoders of what the Redis tier answers TierBackend: each Lua script's reply (tier_scripts.h
// documents the shapes) and the payloads of its pub/sub channels. Pure functions, tested and
// fuzzed on their own (tests/fuzz/redis_reply_fuzz.cc). Redis, or whatever answers on its port,
// may send any shape: each decoder checks every type, count and range the backend relies on, and
// returns nullopt rather than guess. The backend then does what it does when the tier cannot
// help: loads node-locally, does not cache, or retries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tier/redis_client.h"

namespace corral::server {

// kLookup: {'hit', value, kind, fresh ms left, stale window ms, load ms, position},
// {'error', text}, {'wait', owner} or {'won'}.
struct LookupReply {
  enum class Kind { kHit, kError, kWait, kWon };
  Kind kind = Kind::kWon;
  // kHit: the value; kError: the held-off error's text; kWait: the holder's lease name.
  std::string data;
  bool not_found = false;       // kHit: L2 holds "no such row"
  int64_t fresh_left_ms = 0;    // kHit: > 0
  int64_t stale_window_ms = 0;  // kHit: >= 0
  uint32_t load_ms = 0;         // kHit
  uint64_t position = 0;        // kHit: the WAL position the value was read at (0: unknown)
};
std::optional<LookupReply> DecodeLookup(const tier::Reply& reply);

// kFill: 1 (filled), 0 (an invalidation or a takeover took the lease), {2, fence position}.
struct FillReply {
  enum class Kind { kFilled, kVoided, kFenced };
  Kind kind = Kind::kVoided;
  uint64_t fenced_at = 0;  // kFenced
};
std::optional<FillReply> DecodeFill(const tier::Reply& reply);

// kRelease, kTakeover, kAlive: the integer 1 or 0.
std::optional<bool> DecodeFlag(const tier::Reply& reply);

// kInvalidate: {1 if L2 held an entry, the subscribers the broadcast reached (-1: none sent)}.
struct InvalidateReply {
  bool held = false;
  int64_t reached = -1;
};
std::optional<InvalidateReply> DecodeInvalidate(const tier::Reply& reply);

// kMembers: the live node ids. nullopt unless an array; an element that is not a non-empty
// string is no node, and is left out.
std::optional<std::vector<std::string>> DecodeMembers(const tier::Reply& reply);

// kBumpEpoch: the new epoch, an integer >= 0.
std::optional<int64_t> DecodeBumpedEpoch(const tier::Reply& reply);

// GET of the epoch key: nil (never bumped) is epoch 0; else a decimal integer >= 0.
std::optional<int64_t> DecodeStoredEpoch(const tier::Reply& reply);

// A message on the invalidated channel: "origin seq:position key", or "origin seq key" from a
// node that predates positions. The key is the rest of the message, spaces and all.
struct InvalidationMessage {
  std::string origin;
  std::string seq;          // as sent: echoed back in the acknowledgement; "0": nobody waits
  uint64_t seq_number = 0;  // seq as a number; 0 when it is "0" or not a number
  uint64_t position = 0;    // 0: none (or unreadable: the invalidation applies regardless)
  std::string key;
};
// nullopt without the two spaces. Anything else is taken leniently: dropping an invalidation
// would leave a stale value in L1, applying one too many costs a reload.
std::optional<InvalidationMessage> DecodeInvalidation(std::string_view message);

// A message on this node's ack channel: "seq node" ("seq:position node" from nodes that echo
// the whole field); seq >= 1.
struct AckMessage {
  uint64_t seq = 0;
  std::string node;
};
std::optional<AckMessage> DecodeAck(std::string_view message);

// A message on the epoch channel: the new epoch, a decimal integer >= 0.
std::optional<int64_t> DecodeEpochMessage(std::string_view message);

}  // namespace corral::server

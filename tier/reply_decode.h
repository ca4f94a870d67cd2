// Decoders of the Redis replies the tier's client and subscriber act on: cluster redirects,
// CLUSTER SLOTS and pub/sub pushes. Pure functions over corral's Reply copies, so they can be
// tested and fuzzed without a connection. A Redis reply is bytes from the network: each decoder
// checks every type, count and range it relies on, and returns nullopt (or skips the part) rather
// than trust a shape Redis is expected to send.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tier/redis_client.h"

namespace corral::tier {

constexpr int kClusterSlots = 16384;

// An error reply that asks the client to go elsewhere or try again (Redis Cluster only).
struct ClusterError {
  enum class Kind { kMoved, kAsk, kTryAgain, kClusterDown };
  Kind kind = Kind::kMoved;
  int slot = -1;        // kMoved, kAsk: 0..kClusterSlots-1
  std::string address;  // kMoved, kAsk: "host:port", or ":port" when the node has no address
};

// "MOVED 3999 127.0.0.1:6381", "ASK 3999 127.0.0.1:6381", "TRYAGAIN ...", "CLUSTERDOWN ...".
// nullopt for any other error, and for a MOVED/ASK whose slot or address is unusable: the caller
// then hands the error reply on as it is.
std::optional<ClusterError> ParseClusterError(std::string_view error);

// One master's slots from CLUSTER SLOTS.
struct SlotRange {
  int start = 0;  // 0 <= start <= end < kClusterSlots
  int end = 0;
  std::string host;  // "" when the reply says "the node you asked" ("" or "?")
  int port = 0;      // 1..65535
};

struct SlotMap {
  std::vector<SlotRange> ranges;
  size_t skipped = 0;  // entries of the reply that were not a usable range
};

// CLUSTER SLOTS: [[start, end, [host, port, id, ...], replicas...], ...]. nullopt unless the reply
// is an array; a malformed entry is skipped (counted in `skipped`), so one bad entry costs only
// its slots, which the client then treats as unserved until the next refresh.
std::optional<SlotMap> DecodeClusterSlots(const Reply& reply);

// What a subscribed connection receives (RESP2): ["message", channel, payload] and the
// ["subscribe", channel, count] confirmations.
struct PubSubPush {
  enum class Kind { kMessage, kSubscribe, kOther };
  Kind kind = Kind::kOther;
  std::string channel;
  std::string payload;  // kMessage
};

// nullopt unless the reply is an array of at least 3 elements whose first two are strings: any
// such push proves the connection alive even when its kind is of no interest (kOther), e.g. an
// "unsubscribe", or a "message" whose payload is not a string.
std::optional<PubSubPush> DecodePubSub(const Reply& reply);

// The run_id line of INFO server's text; nullopt without one. Tells a restart from a reconnect.
std::optional<std::string> ParseRunId(std::string_view info);

}  // namespace corral::tier

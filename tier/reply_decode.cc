// Decoders of the Redis replies the tier acts on (reply_decode.h).
#include "tier/reply_decode.h"

#include <charconv>

namespace corral::tier {
namespace {

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// "<verb> <slot> <address>", the slot in decimal digits only (from_chars would take a '-').
std::optional<ClusterError> ParseRedirect(std::string_view error, std::string_view verb,
                                          ClusterError::Kind kind) {
  if (!StartsWith(error, verb) || error.size() <= verb.size() || error[verb.size()] != ' ') {
    return std::nullopt;
  }
  std::string_view rest = error.substr(verb.size() + 1);
  size_t space = rest.find(' ');
  if (space == std::string_view::npos || space == 0 || rest[0] == '-') return std::nullopt;
  ClusterError out;
  out.kind = kind;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + space, out.slot);
  if (ec != std::errc() || ptr != rest.data() + space || out.slot < 0 ||
      out.slot >= kClusterSlots) {
    return std::nullopt;
  }
  out.address = std::string(rest.substr(space + 1));
  if (out.address.empty()) return std::nullopt;
  return out;
}

bool IsString(const Reply& r) { return r.type == Reply::Type::kString; }
bool IsInteger(const Reply& r) { return r.type == Reply::Type::kInteger; }

}  // namespace

std::optional<ClusterError> ParseClusterError(std::string_view error) {
  if (auto moved = ParseRedirect(error, "MOVED", ClusterError::Kind::kMoved)) return moved;
  if (auto ask = ParseRedirect(error, "ASK", ClusterError::Kind::kAsk)) return ask;
  // A slot in the middle of a resharding (multi-key commands) or a cluster healing: both are
  // worth asking again shortly.
  if (StartsWith(error, "TRYAGAIN")) return ClusterError{ClusterError::Kind::kTryAgain, -1, {}};
  if (StartsWith(error, "CLUSTERDOWN")) {
    return ClusterError{ClusterError::Kind::kClusterDown, -1, {}};
  }
  return std::nullopt;
}

std::optional<SlotMap> DecodeClusterSlots(const Reply& reply) {
  if (reply.type != Reply::Type::kArray) return std::nullopt;
  SlotMap map;
  for (const Reply& entry : reply.elements) {
    // Replicas (elements 3...) are not used: the tier reads and writes masters only.
    if (entry.type != Reply::Type::kArray || entry.elements.size() < 3) {
      map.skipped++;
      continue;
    }
    const Reply& start = entry.elements[0];
    const Reply& end = entry.elements[1];
    const Reply& master = entry.elements[2];
    if (!IsInteger(start) || !IsInteger(end) || master.type != Reply::Type::kArray ||
        master.elements.size() < 2 || !IsString(master.elements[0]) ||
        !IsInteger(master.elements[1])) {
      map.skipped++;
      continue;
    }
    // A range outside the slot space or reversed is no range Redis sends: rather than clamp it
    // into slots the node may not own, leave its slots unserved (a refresh comes with the first
    // command that needs one).
    const long long port = master.elements[1].integer;
    if (start.integer < 0 || end.integer >= kClusterSlots || start.integer > end.integer ||
        port <= 0 || port > 65535) {
      map.skipped++;
      continue;
    }
    SlotRange range;
    range.start = static_cast<int>(start.integer);
    range.end = static_cast<int>(end.integer);
    range.host = master.elements[0].str;
    // Redis 7 says "?" for an endpoint it does not know, older ones "": the node asked knows.
    if (range.host == "?") range.host.clear();
    range.port = static_cast<int>(port);
    map.ranges.push_back(std::move(range));
  }
  return map;
}

std::optional<PubSubPush> DecodePubSub(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() < 3 ||
      !IsString(reply.elements[0]) || !IsString(reply.elements[1])) {
    return std::nullopt;
  }
  PubSubPush push;
  const std::string& kind = reply.elements[0].str;
  push.channel = reply.elements[1].str;
  if (kind == "message" && IsString(reply.elements[2])) {
    push.kind = PubSubPush::Kind::kMessage;
    push.payload = reply.elements[2].str;
  } else if (kind == "subscribe") {
    push.kind = PubSubPush::Kind::kSubscribe;
  }
  return push;
}

std::optional<std::string> ParseRunId(std::string_view info) {
  size_t at = info.find("run_id:");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = info.substr(at + 7);
  return std::string(rest.substr(0, rest.find_first_of("\r\n")));
}

}  // namespace corral::tier

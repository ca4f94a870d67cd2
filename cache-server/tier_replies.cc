// Decoders of the tier's script replies and pub/sub payloads (tier_replies.h).
#include "cache-server/tier_replies.h"

#include <charconv>
#include <limits>

namespace corral::server {

using tier::Reply;

namespace {

// Decimal digits with an optional '-' (signed types only), nothing else: the scripts write numbers
// with Lua's tostring or pass on what the nodes wrote with std::to_string.
template <typename Int>
std::optional<Int> ParseDecimal(std::string_view text) {
  Int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

bool IsString(const Reply& r) { return r.type == Reply::Type::kString; }
bool IsInteger(const Reply& r) { return r.type == Reply::Type::kInteger; }

std::optional<int64_t> StringInt(const Reply& r) {
  if (!IsString(r)) return std::nullopt;
  return ParseDecimal<int64_t>(r.str);
}

std::optional<uint64_t> StringUint(const Reply& r) {
  if (!IsString(r)) return std::nullopt;
  return ParseDecimal<uint64_t>(r.str);
}

std::optional<LookupReply> DecodeHit(const std::vector<Reply>& e) {
  if (e.size() != 7 || !IsString(e[1]) || !IsString(e[2])) return std::nullopt;
  LookupReply out;
  out.kind = LookupReply::Kind::kHit;
  out.data = e[1].str;
  if (e[2].str == "n") {
    out.not_found = true;
  } else if (e[2].str != "v") {
    return std::nullopt;
  }
  std::optional<int64_t> fresh_left = StringInt(e[3]);
  std::optional<int64_t> stale_window = StringInt(e[4]);
  std::optional<int64_t> load_ms = StringInt(e[5]);
  std::optional<uint64_t> position = StringUint(e[6]);
  // kLookup answers a hit only while it is fresh, and the stale window follows the fresh time.
  if (!fresh_left || *fresh_left <= 0 || !stale_window || *stale_window < 0 || !load_ms ||
      *load_ms < 0 || *load_ms > std::numeric_limits<uint32_t>::max() || !position) {
    return std::nullopt;
  }
  out.fresh_left_ms = *fresh_left;
  out.stale_window_ms = *stale_window;
  out.load_ms = static_cast<uint32_t>(*load_ms);
  out.position = *position;
  return out;
}

}  // namespace

std::optional<LookupReply> DecodeLookup(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty() || !IsString(reply.elements[0])) {
    return std::nullopt;
  }
  const std::vector<Reply>& e = reply.elements;
  const std::string& what = e[0].str;
  if (what == "hit") return DecodeHit(e);
  if (what == "won") return LookupReply{};
  if ((what == "error" || what == "wait") && e.size() == 2 && IsString(e[1])) {
    LookupReply out;
    out.kind = what == "error" ? LookupReply::Kind::kError : LookupReply::Kind::kWait;
    out.data = e[1].str;
    // A lease without a holder's name could never be checked on (CheckHolder).
    if (out.kind == LookupReply::Kind::kWait && out.data.empty()) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::optional<FillReply> DecodeFill(const Reply& reply) {
  if (IsInteger(reply) && (reply.integer == 0 || reply.integer == 1)) {
    FillReply out;
    out.kind = reply.integer == 1 ? FillReply::Kind::kFilled : FillReply::Kind::kVoided;
    return out;
  }
  if (reply.type == Reply::Type::kArray && reply.elements.size() == 2 &&
      IsInteger(reply.elements[0]) && reply.elements[0].integer == 2) {
    std::optional<uint64_t> fence = StringUint(reply.elements[1]);
    if (!fence) return std::nullopt;
    FillReply out;
    out.kind = FillReply::Kind::kFenced;
    out.fenced_at = *fence;
    return out;
  }
  return std::nullopt;
}

std::optional<bool> DecodeFlag(const Reply& reply) {
  if (!IsInteger(reply) || (reply.integer != 0 && reply.integer != 1)) return std::nullopt;
  return reply.integer == 1;
}

std::optional<InvalidateReply> DecodeInvalidate(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 2 ||
      !IsInteger(reply.elements[0]) || !IsInteger(reply.elements[1])) {
    return std::nullopt;
  }
  const long long held = reply.elements[0].integer;
  const long long reached = reply.elements[1].integer;
  // DEL of one key answers 0 or 1; PUBLISH a count, or the script's -1 when nothing was sent.
  if ((held != 0 && held != 1) || reached < -1) return std::nullopt;
  return InvalidateReply{held == 1, reached};
}

std::optional<std::vector<std::string>> DecodeMembers(const Reply& reply) {
  if (reply.type != Reply::Type::kArray) return std::nullopt;
  std::vector<std::string> members;
  members.reserve(reply.elements.size());
  for (const Reply& e : reply.elements) {
    if (IsString(e) && !e.str.empty()) members.push_back(e.str);
  }
  return members;
}

std::optional<int64_t> DecodeBumpedEpoch(const Reply& reply) {
  if (!IsInteger(reply) || reply.integer < 0) return std::nullopt;
  return reply.integer;
}

std::optional<int64_t> DecodeStoredEpoch(const Reply& reply) {
  if (reply.type == Reply::Type::kNil) return 0;
  std::optional<int64_t> epoch = StringInt(reply);
  if (!epoch || *epoch < 0) return std::nullopt;
  return epoch;
}

std::optional<InvalidationMessage> DecodeInvalidation(std::string_view message) {
  const size_t a = message.find(' ');
  if (a == std::string_view::npos) return std::nullopt;
  const size_t b = message.find(' ', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  InvalidationMessage out;
  out.origin = std::string(message.substr(0, a));
  std::string_view seq_position = message.substr(a + 1, b - a - 1);
  const size_t colon = seq_position.find(':');
  std::string_view seq = seq_position.substr(0, colon);
  out.seq = std::string(seq);
  out.seq_number = ParseDecimal<uint64_t>(seq).value_or(0);
  if (colon != std::string_view::npos) {
    out.position = ParseDecimal<uint64_t>(seq_position.substr(colon + 1)).value_or(0);
  }
  out.key = std::string(message.substr(b + 1));
  return out;
}

std::optional<AckMessage> DecodeAck(std::string_view message) {
  const size_t space = message.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  std::string_view number = message.substr(0, space);
  std::optional<uint64_t> seq = ParseDecimal<uint64_t>(number.substr(0, number.find(':')));
  if (!seq || *seq == 0 || space + 1 == message.size()) return std::nullopt;
  return AckMessage{*seq, std::string(message.substr(space + 1))};
}

std::optional<int64_t> DecodeEpochMessage(std::string_view message) {
  std::optional<int64_t> epoch = ParseDecimal<int64_t>(message);
  if (!epoch || *epoch < 0) return std::nullopt;
  return epoch;
}

}  // namespace corral::server

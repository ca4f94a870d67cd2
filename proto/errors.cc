// Redis 7.0 error texts (server.c processCommand / commandCheckExistence) and string2ll rules.
#include "proto/errors.h"

#include <cstddef>

namespace corral::proto {
namespace {

// Redis formats the user's bytes with printf("%.*s"), so an argument ends at its first NUL as
// well as at the precision.
void AppendCut(std::string& out, std::string_view s, size_t max_len) {
  s = s.substr(0, max_len);
  s = s.substr(0, s.find('\0'));
  out.append(s);
}

// Redis's sdsmapchars(s, "\r\n", "  "): a reply error must stay on one line.
void MapNewlinesToSpaces(std::string& s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
}

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char ToUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

std::string UnknownCommandError(std::span<const std::string_view> args) {
  constexpr size_t kMaxEcho = 128;
  std::string out = "ERR unknown command '";
  if (!args.empty()) AppendCut(out, args[0], kMaxEcho);
  out += "', with args beginning with: ";
  const size_t args_start = out.size();
  for (size_t i = 1; i < args.size() && out.size() - args_start < kMaxEcho; ++i) {
    out += '\'';
    AppendCut(out, args[i], kMaxEcho - (out.size() - 1 - args_start));
    out += "' ";
  }
  MapNewlinesToSpaces(out);
  return out;
}

std::string NoPermCommandError(std::string_view cmd) {
  return "NOPERM this user has no permissions to run the '" + std::string(cmd) + "' command";
}

std::string TrackingPrefixCollision(std::string_view a, std::string_view b) {
  return "ERR Prefix '" + std::string(a) + "' overlaps with another provided prefix '" +
         std::string(b) + "'. Prefixes for a single client must not overlap.";
}

std::string TrackingPrefixOverlapsExisting(std::string_view a, std::string_view b) {
  return "ERR Prefix '" + std::string(a) + "' overlaps with an existing prefix '" + std::string(b) +
         "'. Prefixes for a single client must not overlap.";
}

std::string PubSubContextError(std::string_view cmd) {
  return "ERR Can't execute '" + std::string(cmd) +
         "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
         "context";
}

std::string ConfigRangeError(int64_t min) {
  return "argument must be between " + std::to_string(min) + " and 9223372036854775807 inclusive";
}

std::string UnknownClientTypeError(std::string_view type) {
  return "ERR Unknown client type '" + std::string(type) + "'";
}

std::string NoLatencySamplesError(std::string_view event) {
  std::string out = "ERR No samples available for event '";
  AppendCut(out, event, 128);
  out += '\'';
  MapNewlinesToSpaces(out);
  return out;
}

std::string NoSuchUserError(std::string_view user) {
  return "ERR No such user '" + std::string(user) + "'";
}

std::string WrongArgsError(std::string_view cmd) {
  std::string out = "ERR wrong number of arguments for '";
  for (char c : cmd) out += ToLower(c);
  out += "' command";
  MapNewlinesToSpaces(out);
  return out;
}

namespace {
// "<lead>'<sub>'. Try <CMD> HELP.", as Redis's addReplySubcommandSyntaxError words both forms.
std::string TryHelpError(std::string_view lead, std::string_view cmd, std::string_view sub) {
  std::string out(lead);
  out += '\'';
  AppendCut(out, sub, 128);
  out += "'. Try ";
  for (char c : cmd.substr(0, cmd.find('\0'))) out += ToUpper(c);
  out += " HELP.";
  MapNewlinesToSpaces(out);
  return out;
}
}  // namespace

std::string SubcommandSyntaxError(std::string_view cmd, std::string_view sub) {
  return TryHelpError("ERR unknown subcommand or wrong number of arguments for ", cmd, sub);
}

std::string UnknownSubcommandError(std::string_view cmd, std::string_view sub) {
  return TryHelpError("ERR unknown subcommand ", cmd, sub);
}

std::string NamespaceKeyError(std::string_view key, std::string_view cmd) {
  std::string out = "ERR read-through key '";
  AppendCut(out, key, 128);
  out += "': ";
  for (char c : cmd) out += ToUpper(c);
  out += " is not supported on namespace keys";
  MapNewlinesToSpaces(out);
  return out;
}

std::string InvalidExpireError(std::string_view cmd) {
  std::string out = "ERR invalid expire time in '";
  for (char c : cmd) out += ToLower(c);
  out += "' command";
  MapNewlinesToSpaces(out);
  return out;
}

std::string InvalidWalPositionError(std::string_view text) {
  std::string out = "ERR invalid WAL position '";
  out.append(text.substr(0, 64)).append("': expected pg_lsn text like 0/16B3748");
  MapNewlinesToSpaces(out);
  return out;
}

std::string_view ShedReasonLabel(ShedReason reason) {
  switch (reason) {
    case ShedReason::kBlocked:
      return "blocked";
    case ShedReason::kNamespaceInflight:
      return "max_inflight_loads";
    case ShedReason::kRate:
      return "max_loads_per_s";
    case ShedReason::kPendingLoads:
      return "max_pending_loads";
    case ShedReason::kPoolInflight:
      return "pool_max_inflight_loads";
    case ShedReason::kWaitTimeout:
      return "wait_timeout";
    case ShedReason::kInvalidatedRepeatedly:
      return "invalidated_repeatedly";
    case ShedReason::kMaxClients:
      return "max_clients";
    case ShedReason::kNotReplayed:
      return "not_replayed";
  }
  return "unknown";
}

std::string ShedText(ShedReason reason, std::string_view ns) {
  switch (reason) {
    case ShedReason::kWaitTimeout:
      return "lease wait timed out";
    case ShedReason::kInvalidatedRepeatedly:
      return "key invalidated repeatedly during load";
    case ShedReason::kMaxClients:
      return "max number of clients reached";
    case ShedReason::kNotReplayed:
      return "no server has replayed the client's write yet";
    default: {
      std::string out = "load shed: ";
      out.append(ShedReasonLabel(reason)).append(" for namespace ").append(ns);
      return out;
    }
  }
}

std::string UnsupportedOptionError(std::string_view option) {
  std::string out = "ERR Unsupported option ";
  out.append(option);
  MapNewlinesToSpaces(out);
  return out;
}

std::string HelloOptionError(std::string_view option) {
  std::string out = "ERR Syntax error in HELLO option '";
  out.append(option).append("'");
  MapNewlinesToSpaces(out);
  return out;
}

std::string UnrecognizedOptionError(std::string_view option) {
  std::string out = "ERR Unrecognized option '";
  out.append(option).append("'");
  MapNewlinesToSpaces(out);
  return out;
}

std::string ExecAbortError(std::string_view error) {
  std::string out = "EXECABORT Transaction discarded because of: ";
  out.append(error);
  MapNewlinesToSpaces(out);
  return out;
}

std::string ConfigSetError(std::string_view name, std::string_view why) {
  std::string out = "ERR CONFIG SET failed (possibly related to argument '";
  out.append(name).append("') - ").append(why);
  MapNewlinesToSpaces(out);
  return out;
}

bool ParseInt64(std::string_view s, int64_t* value) {
  // Redis's LONG_STR_SIZE is 21: anything of 21 characters or more is not a long long.
  if (s.empty() || s.size() >= 21) return false;
  if (s == "0") {
    if (value != nullptr) *value = 0;
    return true;
  }
  size_t i = 0;
  const bool negative = s[0] == '-';
  if (negative) ++i;
  if (i == s.size() || s[i] < '1' || s[i] > '9') return false;
  // Up to 20 digits: accumulate in uint64_t, checking every step for overflow.
  constexpr uint64_t kCut = UINT64_MAX / 10;
  constexpr uint64_t kCutDigit = UINT64_MAX % 10;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > kCut || (v == kCut && digit > kCutDigit)) return false;
    v = v * 10 + digit;
  }
  constexpr uint64_t kMaxPositive = static_cast<uint64_t>(INT64_MAX);
  if (negative) {
    if (v > kMaxPositive + 1) return false;
    // Negate in unsigned arithmetic: -(2^63) is representable only as the result.
    if (value != nullptr) *value = static_cast<int64_t>(0 - v);
  } else {
    if (v > kMaxPositive) return false;
    if (value != nullptr) *value = static_cast<int64_t>(v);
  }
  return true;
}

}  // namespace corral::proto

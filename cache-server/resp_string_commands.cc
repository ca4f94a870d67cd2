// corral's Redis string and key commands beyond GET/SET: INCR..., APPEND, STRLEN, GETRANGE,
// SETRANGE, MSET(NX), SETNX, (P)SETEX, GETEX, GETDEL, GETSET, SCAN, KEYS, TYPE, TOUCH, PERSIST,
// RENAME(NX), RANDOMKEY, (P)EXPIRETIME; and FUNCTION/SCRIPT FLUSH as no-ops. Replies and error
// texts are Redis 7.0's (t_string.c, db.c, expire.c). Every read-modify-write runs under the key's
// store shard lock (lease::Store::Update), so it is atomic with respect to other clients.
//
// Read-through (namespace) keys, one rule (docs/protocol.md "Namespace keys"): commands that only
// read (STRLEN, GETRANGE, TYPE, TOUCH, EXPIRETIME, SCAN, KEYS, RANDOMKEY) see what the cache holds
// fresh and never load; SETNX, SETEX and PSETEX are SET with NX / EX / PX and go through
// CacheService::Set as SET does (the lease is voided, the tier told); every other writing command
// is refused with proto::NamespaceKeyError, since it would change a row-derived value in place.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cache-server/resp_commands.h"
#include "cache-server/resp_util.h"
#include "proto/errors.h"
#include "proto/glob.h"
#include "proto/key.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendNil;
using proto::AppendSimple;

namespace {

// Redis's MAX_LONG_DOUBLE_CHARS: the longest text string2ld parses.
constexpr size_t kMaxLongDoubleChars = 5 * 1024;

// Redis's string2ld(): the whole text is a long double, no leading space, not NaN, no overflow to
// infinity or underflow to zero from ERANGE. "inf" itself parses (INCRBYFLOAT then refuses it).
bool ParseLongDouble(std::string_view s, long double* value) {
  if (s.empty() || s.size() >= kMaxLongDoubleChars) return false;
  char buf[kMaxLongDoubleChars];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  errno = 0;
  char* end = nullptr;
  const long double v = std::strtold(buf, &end);
  if (std::isspace(static_cast<unsigned char>(buf[0])) || *end != '\0' ||
      static_cast<size_t>(end - buf) != s.size() ||
      (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || std::fpclassify(v) == FP_ZERO)) ||
      errno == EINVAL || std::isnan(v)) {
    return false;
  }
  *value = v;
  return true;
}

// Redis's ld2string(..., LD_STR_HUMAN): "%.17Lf" with the trailing zeros (and a bare '.') cut,
// and "-0" written "0". So 3.0 is "3", 1.1 + 0.25 is "1.35", 17179869184 + 1.5 is
// "17179869185.5".
std::string FormatLongDouble(long double v) {
  char buf[kMaxLongDoubleChars];
  int n = std::snprintf(buf, sizeof buf, "%.17Lf", v);
  if (n < 0 || static_cast<size_t>(n) >= sizeof buf) return {};
  std::string s(buf, static_cast<size_t>(n));
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

// Redis's string2ull() for SCAN cursors: an unsigned 64-bit decimal.
bool ParseCursor(std::string_view s, uint64_t* cursor) {
  int64_t v;
  if (proto::ParseInt64(s, &v)) {
    if (v < 0) return false;
    *cursor = static_cast<uint64_t>(v);
    return true;
  }
  if (s.empty() || s.size() > 20 || s[0] < '0' || s[0] > '9') return false;
  std::string text(s);
  errno = 0;
  char* end = nullptr;
  const unsigned long long u = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *cursor = u;
  return true;
}

// The reply for a Store write that did not fit a shard (as SET answers it).
void AppendTooLarge(std::string& out) { AppendError(out, proto::kOutOfMemory); }

// Parses an expiry option's number as Redis's getExpireMillisecondsOrReply does: `seconds` for
// EX/EXAT, `absolute` for EXAT/PXAT (Unix time). On success *ttl_ms is the time to live from now
// (<= 0 for an absolute time already past). On failure appends the error.
bool ParseExpire(std::string_view text, bool seconds, bool absolute, std::string_view cmd,
                 int64_t* ttl_ms, std::string& out) {
  int64_t n;
  if (!proto::ParseInt64(text, &n)) {
    AppendError(out, proto::kNotInteger);
    return false;
  }
  if (n <= 0 || (seconds && n > INT64_MAX / 1000)) {
    AppendError(out, proto::InvalidExpireError(cmd));
    return false;
  }
  const int64_t ms = seconds ? n * 1000 : n;
  const int64_t now_ms = UnixMillis();
  if (!absolute && ms > INT64_MAX - now_ms) {  // its absolute time would overflow
    AppendError(out, proto::InvalidExpireError(cmd));
    return false;
  }
  *ttl_ms = absolute ? ms - now_ms : ms;
  return true;
}

}  // namespace

bool RespCommands::RefuseNamespaceKey(const RespClient& client, std::string_view key,
                                      std::string& out) const {
  if (!IsNamespaceKey(key)) return false;
  AppendError(out, proto::NamespaceKeyError(key, client.cmd->name));
  return true;
}

bool RespCommands::IsNamespaceKey(std::string_view key) const {
  if (state_.config.namespaces.empty()) return false;
  const std::optional<proto::KeyParts> parts = proto::SplitKey(key);
  return parts && state_.config.namespaces.count(std::string(parts->ns)) != 0;
}

// INCR, DECR (param ±1, no argument) and INCRBY, DECRBY (param ±1 times the argument).
CommandStatus RespCommands::IncrBy(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  int64_t delta = client.cmd->param;
  if (args.size() == 3) {
    int64_t n;
    if (!proto::ParseInt64(args[2], &n)) {
      AppendError(out, proto::kNotInteger);
      return CommandStatus::kDone;
    }
    if (delta < 0 && n == INT64_MIN) {  // negating it would overflow
      AppendError(out, proto::kDecrOverflow);
      return CommandStatus::kDone;
    }
    delta *= n;
  }
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  std::string_view error;
  int64_t result = 0;
  const bool fits =
      state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
        lease::Change change;
        int64_t value = 0;
        if (current != nullptr && !proto::ParseInt64(current->value, &value)) {
          error = proto::kNotInteger;
          return change;
        }
        if ((delta < 0 && value < 0 && delta < INT64_MIN - value) ||
            (delta > 0 && value > 0 && delta > INT64_MAX - value)) {
          error = proto::kIncrOverflow;
          return change;
        }
        result = value + delta;
        change.kind = lease::Change::Kind::kStore;
        change.value = std::to_string(result);
        if (current != nullptr) change.expire_at = current->expire_at;  // INCR keeps the TTL
        return change;
      });
  if (!error.empty()) {
    AppendError(out, error);
  } else if (!fits) {
    AppendTooLarge(out);
  } else {
    AppendInteger(out, result);
    state_.keyspace_events.Notify(kEventString, "incrby", args[1]);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::IncrByFloat(RespClient& client, Args args, std::string& out,
                                        AsyncReplyTarget&) {
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  std::string_view error;
  std::string result;
  const bool fits =
      state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
        lease::Change change;
        long double value = 0, incr = 0;
        // As Redis: the key's value is checked before the increment.
        if ((current != nullptr && !ParseLongDouble(current->value, &value)) ||
            !ParseLongDouble(args[2], &incr)) {
          error = proto::kNotFloat;
          return change;
        }
        value += incr;
        if (std::isnan(value) || std::isinf(value)) {
          error = proto::kFloatNanOrInf;
          return change;
        }
        result = FormatLongDouble(value);
        change.kind = lease::Change::Kind::kStore;
        change.value = result;
        if (current != nullptr) change.expire_at = current->expire_at;
        return change;
      });
  if (!error.empty()) {
    AppendError(out, error);
  } else if (!fits) {
    AppendTooLarge(out);
  } else {
    AppendBulk(out, result);
    state_.keyspace_events.Notify(kEventString, "incrbyfloat", args[1]);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Append(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  const auto max_len = static_cast<uint64_t>(state_.config.resp_options.proto_max_bulk_len);
  bool too_long = false;
  size_t length = 0;
  const bool fits =
      state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
        lease::Change change;
        if (current == nullptr) {
          change.value = std::string(args[2]);
        } else {
          if (current->value.size() + args[2].size() > max_len) {
            too_long = true;
            return change;
          }
          change.value.reserve(current->value.size() + args[2].size());
          change.value.append(current->value).append(args[2]);
          change.expire_at = current->expire_at;
        }
        change.kind = lease::Change::Kind::kStore;
        length = change.value.size();
        return change;
      });
  if (too_long) {
    AppendError(out, proto::kStringTooLong);
  } else if (!fits) {
    AppendTooLarge(out);
  } else {
    AppendInteger(out, static_cast<int64_t>(length));
    state_.keyspace_events.Notify(kEventString, "append", args[1]);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Strlen(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  size_t length = 0;
  state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
    if (current != nullptr) length = current->value.size();
    return lease::Change{};  // a read: nothing changes
  });
  AppendInteger(out, static_cast<int64_t>(length));
  return CommandStatus::kDone;
}

CommandStatus RespCommands::GetRange(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  int64_t start, end;
  if (!proto::ParseInt64(args[2], &start) || !proto::ParseInt64(args[3], &end)) {
    AppendError(out, proto::kNotInteger);
    return CommandStatus::kDone;
  }
  std::string part;
  state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
    if (current == nullptr) return lease::Change{};
    // Redis's getrangeCommand, index by index.
    const auto len = static_cast<int64_t>(current->value.size());
    int64_t from = start, to = end;
    if (from < 0 && to < 0 && from > to) return lease::Change{};
    if (from < 0) from = len + from;
    if (to < 0) to = len + to;
    if (from < 0) from = 0;
    if (to < 0) to = 0;
    if (to >= len) to = len - 1;
    if (from > to || len == 0) return lease::Change{};
    part.assign(
        current->value.substr(static_cast<size_t>(from), static_cast<size_t>(to - from + 1)));
    return lease::Change{};
  });
  AppendBulk(out, part);  // a missing key or an empty range: the empty string, as Redis
  return CommandStatus::kDone;
}

CommandStatus RespCommands::SetRange(RespClient& client, Args args, std::string& out,
                                     AsyncReplyTarget&) {
  int64_t offset;
  if (!proto::ParseInt64(args[2], &offset)) {
    AppendError(out, proto::kNotInteger);
    return CommandStatus::kDone;
  }
  if (offset < 0) {
    AppendError(out, proto::kOffsetOutOfRange);
    return CommandStatus::kDone;
  }
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  const std::string_view patch = args[3];
  const auto max_len = static_cast<uint64_t>(state_.config.resp_options.proto_max_bulk_len);
  const auto off = static_cast<uint64_t>(offset);
  // Redis's checkStringLength(offset + len), checked only when something is written.
  const bool too_long = !patch.empty() && (off > max_len || patch.size() > max_len - off);
  size_t length = 0;
  bool refused = false;
  const bool fits =
      state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
        lease::Change change;
        length = current == nullptr ? 0 : current->value.size();
        if (patch.empty()) return change;  // nothing to write: the length as it is
        if (too_long) {
          refused = true;
          return change;
        }
        const size_t end = static_cast<size_t>(off) + patch.size();
        if (current != nullptr) {
          change.value.reserve(std::max(current->value.size(), end));
          change.value.assign(current->value);
          change.expire_at = current->expire_at;
        }
        if (change.value.size() < end) change.value.resize(end, '\0');  // zero padding
        change.value.replace(static_cast<size_t>(off), patch.size(), patch);
        change.kind = lease::Change::Kind::kStore;
        length = change.value.size();
        return change;
      });
  if (refused) {
    AppendError(out, proto::kStringTooLong);
  } else if (!fits) {
    AppendTooLarge(out);
  } else {
    AppendInteger(out, static_cast<int64_t>(length));
    if (!patch.empty()) state_.keyspace_events.Notify(kEventString, "setrange", args[1]);
  }
  return CommandStatus::kDone;
}

// MSET (param 0) and MSETNX (param 1): atomic over every key (lease::Store::SetMany).
CommandStatus RespCommands::MSet(RespClient& client, Args args, std::string& out,
                                 AsyncReplyTarget&) {
  if (args.size() % 2 == 0) {
    AppendError(out, proto::WrongArgsError(client.cmd->name));
    return CommandStatus::kDone;
  }
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  pairs.reserve(args.size() / 2);
  for (size_t i = 1; i + 1 < args.size(); i += 2) {
    if (RefuseNamespaceKey(client, args[i], out)) return CommandStatus::kDone;
    pairs.emplace_back(args[i], args[i + 1]);
  }
  const bool nx = client.cmd->param != 0;
  switch (state_.cache.store().SetMany(pairs, nx)) {
    case lease::SetResult::kStored:
      if (nx) {
        AppendInteger(out, 1);
      } else {
        AppendSimple(out, proto::kOk);
      }
      for (const auto& [key, value] : pairs)
        state_.keyspace_events.Notify(kEventString, "set", key);
      break;
    case lease::SetResult::kNotStored:
      AppendInteger(out, 0);
      break;
    case lease::SetResult::kTooLarge:
      AppendTooLarge(out);
      break;
  }
  return CommandStatus::kDone;
}

// SETNX: SET key value NX, also for namespace keys (CacheService::Set, as SET).
CommandStatus RespCommands::SetNx(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  switch (state_.cache.Set(args[1], args[2], std::nullopt, lease::SetCondition::kIfAbsent)) {
    case lease::SetResult::kStored:
      AppendInteger(out, 1);
      state_.keyspace_events.Notify(kEventString, "set", args[1]);
      break;
    case lease::SetResult::kNotStored:
      AppendInteger(out, 0);
      break;
    case lease::SetResult::kTooLarge:
      AppendTooLarge(out);
      break;
  }
  return CommandStatus::kDone;
}

// SETEX key seconds value / PSETEX key ms value (param: the unit in ms): SET key value EX|PX n,
// also for namespace keys (CacheService::Set, as SET).
CommandStatus RespCommands::SetEx(RespClient& client, Args args, std::string& out,
                                  AsyncReplyTarget&) {
  int64_t ttl_ms;
  if (!ParseExpire(args[2], client.cmd->param == 1000, false, client.cmd->name, &ttl_ms, out)) {
    return CommandStatus::kDone;
  }
  if (state_.cache.Set(args[1], args[3], ttl_ms) == lease::SetResult::kTooLarge) {
    AppendTooLarge(out);
  } else {
    AppendSimple(out, proto::kOk);
    state_.keyspace_events.Notify(kEventString, "set", args[1]);
    state_.keyspace_events.Notify(kEventGeneric, "expire", args[1]);
  }
  return CommandStatus::kDone;
}

// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]
CommandStatus RespCommands::GetEx(RespClient& client, Args args, std::string& out,
                                  AsyncReplyTarget&) {
  bool persist = false, have_expire = false;
  int64_t ttl_ms = 0;
  std::string_view expire_opt;
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string_view opt = args[i];
    const bool has_next = i + 1 < args.size();
    if (EqualsIgnoreCase(opt, "persist") && !have_expire) {
      persist = true;
    } else if (has_next && !persist &&
               (EqualsIgnoreCase(opt, "ex") || EqualsIgnoreCase(opt, "px") ||
                EqualsIgnoreCase(opt, "exat") || EqualsIgnoreCase(opt, "pxat")) &&
               (!have_expire || EqualsIgnoreCase(opt, expire_opt))) {
      // As Redis: one kind of expiry; the same option repeated is allowed (the last wins).
      expire_opt = opt;
      const bool seconds = EqualsIgnoreCase(opt, "ex") || EqualsIgnoreCase(opt, "exat");
      const bool absolute = EqualsIgnoreCase(opt, "exat") || EqualsIgnoreCase(opt, "pxat");
      if (!ParseExpire(args[i + 1], seconds, absolute, "getex", &ttl_ms, out)) {
        return CommandStatus::kDone;
      }
      have_expire = true;
      ++i;
    } else {
      AppendError(out, proto::kSyntaxError);
      return CommandStatus::kDone;
    }
  }
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  std::optional<std::string> value;
  std::string_view event;  // the keyspace event, if the expiry changed
  state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis now) {
    lease::Change change;
    if (current == nullptr) return change;
    value.emplace(current->value);
    if (persist) {
      change.set_expiry = true;
      change.expire_at = lease::kNever;
      if (current->expire_at != lease::kNever) event = "persist";
    } else if (have_expire) {
      event = ttl_ms <= 0 ? "del" : "expire";
      change.set_expiry = true;
      change.expire_at =
          ttl_ms <= 0 ? now : (ttl_ms > lease::kNever - now ? lease::kNever : now + ttl_ms);
    }
    return change;
  });
  if (value) {
    AppendBulk(out, *value);
  } else {
    AppendNil(out, client.resp);
  }
  if (!event.empty()) state_.keyspace_events.Notify(kEventGeneric, event, args[1]);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::GetDel(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  std::optional<std::string> value;
  state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
    if (current == nullptr) return lease::Change{};
    value.emplace(current->value);
    lease::Change change;
    change.kind = lease::Change::Kind::kDelete;
    return change;
  });
  if (value) {
    AppendBulk(out, *value);
    state_.keyspace_events.Notify(kEventGeneric, "del", args[1]);
  } else {
    AppendNil(out, client.resp);
  }
  return CommandStatus::kDone;
}

// GETSET key value: SET key value GET, atomically; the TTL is cleared, as SET clears it.
CommandStatus RespCommands::GetSet(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  std::optional<std::string> old;
  const bool fits =
      state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
        if (current != nullptr) old.emplace(current->value);
        lease::Change change;  // no expiry: SET clears the TTL
        change.kind = lease::Change::Kind::kStore;
        change.value = std::string(args[2]);
        return change;
      });
  if (!fits) {
    AppendTooLarge(out);
  } else if (old) {
    AppendBulk(out, *old);
  } else {
    AppendNil(out, client.resp);
  }
  if (fits) state_.keyspace_events.Notify(kEventString, "set", args[1]);
  return CommandStatus::kDone;
}

// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]; see lease::Store::Scan for the cursor and
// its guarantee. Every key is a string: TYPE string lists them all, any other type none.
CommandStatus RespCommands::Scan(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  uint64_t cursor;
  if (!ParseCursor(args[1], &cursor)) {
    AppendError(out, proto::kInvalidCursor);
    return CommandStatus::kDone;
  }
  int64_t count = 10;
  std::optional<std::string_view> pattern, type;
  for (size_t i = 2; i < args.size(); i += 2) {
    if (i + 1 >= args.size()) {
      AppendError(out, proto::kSyntaxError);
      return CommandStatus::kDone;
    }
    if (EqualsIgnoreCase(args[i], "count")) {
      if (!proto::ParseInt64(args[i + 1], &count)) {
        AppendError(out, proto::kNotInteger);
        return CommandStatus::kDone;
      }
      if (count < 1) {
        AppendError(out, proto::kSyntaxError);
        return CommandStatus::kDone;
      }
    } else if (EqualsIgnoreCase(args[i], "match")) {
      pattern = args[i + 1];
      if (*pattern == "*") pattern.reset();  // as Redis: every key, the empty one included
    } else if (EqualsIgnoreCase(args[i], "type")) {
      type = args[i + 1];
    } else {
      AppendError(out, proto::kSyntaxError);
      return CommandStatus::kDone;
    }
  }
  const bool none = type && !EqualsIgnoreCase(*type, "string");
  std::vector<std::string> keys;
  const uint64_t next =
      state_.cache.store().Scan(cursor, static_cast<size_t>(count), [&](std::string_view key) {
        if (none || (pattern && !proto::GlobMatch(*pattern, key))) return;
        keys.emplace_back(key);
      });
  AppendArrayHeader(out, 2);
  AppendBulk(out, std::to_string(next));
  AppendArrayHeader(out, keys.size());
  for (const std::string& key : keys) AppendBulk(out, key);
  return CommandStatus::kDone;
}

// KEYS pattern: each shard is listed whole under its lock (a SCAN whose count never ends a
// call early), so no key is listed twice; a key written meanwhile may or may not be listed.
CommandStatus RespCommands::Keys(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  const std::string_view pattern = args[1];
  lease::Store& store = state_.cache.store();
  std::vector<std::string> keys;
  if (proto::GlobIsLiteral(pattern)) {
    if (store.Exists(pattern)) keys.emplace_back(pattern);
  } else {
    const bool all = pattern == "*";
    uint64_t cursor = 0;
    do {
      cursor = store.Scan(cursor, SIZE_MAX / 10, [&](std::string_view key) {
        if (all || proto::GlobMatch(pattern, key)) keys.emplace_back(key);
      });
    } while (cursor != 0);
  }
  AppendArrayHeader(out, keys.size());
  for (const std::string& key : keys) AppendBulk(out, key);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Type(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  AppendSimple(out, state_.cache.Exists(args[1]) ? "string" : "none");
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Touch(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  int64_t n = 0;
  for (size_t i = 1; i < args.size(); ++i) n += state_.cache.store().Touch(args[i]) ? 1 : 0;
  AppendInteger(out, n);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Persist(RespClient& client, Args args, std::string& out,
                                    AsyncReplyTarget&) {
  if (RefuseNamespaceKey(client, args[1], out)) return CommandStatus::kDone;
  bool removed = false;
  state_.cache.store().Update(args[1], [&](const lease::Current* current, lease::Millis) {
    lease::Change change;
    if (current == nullptr || current->expire_at == lease::kNever) return change;
    removed = true;
    change.set_expiry = true;
    change.expire_at = lease::kNever;
    return change;
  });
  AppendInteger(out, removed ? 1 : 0);
  if (removed) state_.keyspace_events.Notify(kEventGeneric, "persist", args[1]);
  return CommandStatus::kDone;
}

// RENAME (param 0) and RENAMENX (param 1).
CommandStatus RespCommands::Rename(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  if (RefuseNamespaceKey(client, args[1], out) || RefuseNamespaceKey(client, args[2], out)) {
    return CommandStatus::kDone;
  }
  const bool nx = client.cmd->param != 0;
  switch (state_.cache.store().Rename(args[1], args[2], nx)) {
    case lease::RenameResult::kRenamed:
      if (nx) {
        AppendInteger(out, 1);
      } else {
        AppendSimple(out, proto::kOk);
      }
      state_.keyspace_events.Notify(kEventGeneric, "rename_from", args[1]);
      state_.keyspace_events.Notify(kEventGeneric, "rename_to", args[2]);
      break;
    case lease::RenameResult::kTargetExists:
      AppendInteger(out, 0);
      break;
    case lease::RenameResult::kNoSuchKey:
      AppendError(out, proto::kNoSuchKey);
      break;
    case lease::RenameResult::kTooLarge:
      AppendTooLarge(out);
      break;
  }
  return CommandStatus::kDone;
}

// COPY source destination [DB 0] [REPLACE]: the value and its expiry; only database 0 exists.
CommandStatus RespCommands::Copy(RespClient& client, Args args, std::string& out,
                                 AsyncReplyTarget&) {
  bool replace = false;
  for (size_t i = 3; i < args.size(); ++i) {
    if (EqualsIgnoreCase(args[i], "replace")) {
      replace = true;
    } else if (EqualsIgnoreCase(args[i], "db") && i + 1 < args.size()) {
      int64_t db;
      if (!proto::ParseInt64(args[++i], &db)) {
        AppendError(out, proto::kNotInteger);
        return CommandStatus::kDone;
      }
      if (db != 0) {
        AppendError(out, proto::kDbIndexOutOfRange);
        return CommandStatus::kDone;
      }
    } else {
      AppendError(out, proto::kSyntaxError);
      return CommandStatus::kDone;
    }
  }
  if (args[1] == args[2]) {
    AppendError(out, proto::kSameObject);
    return CommandStatus::kDone;
  }
  if (RefuseNamespaceKey(client, args[1], out) || RefuseNamespaceKey(client, args[2], out)) {
    return CommandStatus::kDone;
  }
  switch (state_.cache.store().Copy(args[1], args[2], replace)) {
    case lease::RenameResult::kRenamed:
      AppendInteger(out, 1);
      state_.keyspace_events.Notify(kEventGeneric, "copy_to", args[2]);
      break;
    case lease::RenameResult::kTargetExists:
    case lease::RenameResult::kNoSuchKey:
      AppendInteger(out, 0);
      break;
    case lease::RenameResult::kTooLarge:
      AppendTooLarge(out);
      break;
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::RandomKey(RespClient& client, Args, std::string& out,
                                      AsyncReplyTarget&) {
  if (std::optional<std::string> key = state_.cache.store().RandomKey()) {
    AppendBulk(out, *key);
  } else {
    AppendNil(out, client.resp);
  }
  return CommandStatus::kDone;
}

// EXPIRETIME / PEXPIRETIME (param: the reply's unit in ms): the Unix time at which the key
// expires, -1 without expiry, -2 when missing. The store keeps a monotonic deadline, so the
// Unix time is now + PTTL; seconds are rounded to the nearest (as TTL is), so that a key set
// with EXAT t answers t.
CommandStatus RespCommands::ExpireTime(RespClient& client, Args args, std::string& out,
                                       AsyncReplyTarget&) {
  lease::Millis pttl = state_.cache.Pttl(args[1]);
  if (pttl < 0) {
    AppendInteger(out, pttl);
    return CommandStatus::kDone;
  }
  const int64_t unit = client.cmd->param;
  const int64_t at = UnixMillis() + pttl;
  AppendInteger(out, unit > 1 ? (at + unit / 2) / unit : at);
  return CommandStatus::kDone;
}

// FUNCTION FLUSH / SCRIPT FLUSH [ASYNC|SYNC]: corral runs no scripts, so there is nothing to
// flush; answered +OK so that tools that reset a server before use (the Redis test suite) work.
CommandStatus RespCommands::ScriptFlush(RespClient& client, Args args, std::string& out,
                                        AsyncReplyTarget&) {
  if (!EqualsIgnoreCase(args[1], "flush")) {
    AppendError(out, proto::UnknownSubcommandError(client.cmd->name, args[1]));
    return CommandStatus::kDone;
  }
  if (args.size() > 3) {
    AppendError(out, proto::WrongArgsError(std::string(client.cmd->name) + "|flush"));
    return CommandStatus::kDone;
  }
  if (args.size() == 3 && !EqualsIgnoreCase(args[2], "sync") &&
      !EqualsIgnoreCase(args[2], "async")) {
    AppendError(out, proto::kSyntaxError);
    return CommandStatus::kDone;
  }
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

}  // namespace corral::server

// corral's RESP commands; see resp_commands.h. Behaviour and error texts follow Redis 7.0
// (t_string.c, expire.c, networking.c) wherever a Redis client could tell the difference.
#include "cache-server/resp_commands.h"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendNullBulk;
using proto::AppendSimple;

namespace {

constexpr std::string_view kCompatVersion = "7.0.0";  // what INFO/HELLO report as redis_version
constexpr std::string_view kCorralVersion = "0.1.0";

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct RespCommands::Spec {
  std::string_view name;  // lower case
  int arity;              // Redis convention: exact if > 0, at least -arity if < 0 (name included)
  bool allowed_before_auth;
  CommandStatus (RespCommands::*handler)(RespClient&, Args, std::string&, AsyncReplyTarget&);
};

RespCommands::RespCommands(ServerState& state) : state_(state) {}

CommandStatus RespCommands::Execute(RespClient& client, Args args, std::string& out,
                                    AsyncReplyTarget& target) {
  if (args.empty()) return CommandStatus::kDone;
  state_.metrics.commands.Add();
  // The order of checks is Redis's (processCommand): unknown command, arity, then NOAUTH.
  const Spec* spec = FindSpec(args[0]);
  if (spec == nullptr) {
    AppendError(out, proto::UnknownCommandError(args));
    return CommandStatus::kDone;
  }
  int argc = static_cast<int>(args.size());
  if ((spec->arity > 0 && argc != spec->arity) || (spec->arity < 0 && argc < -spec->arity)) {
    AppendError(out, proto::WrongArgsError(spec->name));
    return CommandStatus::kDone;
  }
  if (!client.authenticated && !spec->allowed_before_auth) {
    AppendError(out, proto::kNoAuth);
    return CommandStatus::kDone;
  }
  return (this->*(spec->handler))(client, args, out, target);
}

void AppendReadAnswer(std::string& out, const ReadAnswer& answer) {
  switch (answer.kind) {
    case ReadAnswer::Kind::kValue:
      AppendBulk(out, answer.value);
      return;
    case ReadAnswer::Kind::kNotFound:
      AppendNullBulk(out);
      return;
    case ReadAnswer::Kind::kBusy:
      AppendError(out, std::string("BUSY ").append(answer.error));
      return;
    case ReadAnswer::Kind::kError:
      AppendError(out, std::string("ERR ").append(answer.error));
      return;
  }
}

CommandStatus RespCommands::Get(RespClient&, Args args, std::string& out,
                                AsyncReplyTarget& target) {
  bool now = state_.cache.Read(
      Proto::kResp, args[1], [&](const ReadAnswer& answer) { AppendReadAnswer(out, answer); },
      [&]() -> ReadLater {
        return [t = target.Self()](const ReadAnswer& answer) {
          std::string reply;
          AppendReadAnswer(reply, answer);
          t->DeliverLater(std::move(reply));
        };
      });
  return now ? CommandStatus::kDone : CommandStatus::kPending;
}

namespace {
// MGET's replies, gathered in key order while some keys are still loading.
struct MGetGather {
  std::mutex mu;
  std::vector<std::string> parts;  // the RESP encoding of each element; each written once
  size_t remaining;                // keys not yet answered, plus one while MGET is still issuing
  std::shared_ptr<AsyncReplyTarget> target;

  std::string Reply() const {
    std::string reply;
    AppendArrayHeader(reply, parts.size());
    for (const auto& p : parts) reply += p;
    return reply;
  }
  // Counts one answer; true when it was the last.
  bool Done() {
    std::lock_guard lock(mu);
    return --remaining == 0;
  }
};
}  // namespace

CommandStatus RespCommands::MGet(RespClient&, Args args, std::string& out,
                                 AsyncReplyTarget& target) {
  size_t n = args.size() - 1;
  auto gather = std::make_shared<MGetGather>();
  gather->parts.resize(n);
  gather->remaining = n + 1;
  bool any_later = false;
  for (size_t i = 0; i < n; ++i) {
    // An element is the value, nil for a miss or not-found, or an error element if its load
    // failed or was shed, so one bad key does not fail the whole batch.
    auto element = [](std::string& part, const ReadAnswer& a) {
      if (a.kind == ReadAnswer::Kind::kNotFound) {
        AppendNullBulk(part);
      } else {
        AppendReadAnswer(part, a);
      }
    };
    bool now = state_.cache.Read(
        Proto::kResp, args[i + 1], [&](const ReadAnswer& a) { element(gather->parts[i], a); },
        [&]() -> ReadLater {
          any_later = true;
          if (!gather->target) gather->target = target.Self();
          return [gather, i, element](const ReadAnswer& a) {
            element(gather->parts[i], a);
            if (gather->Done()) gather->target->DeliverLater(gather->Reply());
          };
        });
    if (now) gather->Done();
  }
  bool last = gather->Done();
  if (!any_later) {
    out += gather->Reply();
    return CommandStatus::kDone;
  }
  if (last) gather->target->DeliverLater(gather->Reply());
  return CommandStatus::kPending;
}

namespace {
void AppendLeaseGrant(std::string& out, lease::LeaseToken token) {
  AppendArrayHeader(out, 2);
  AppendBulk(out, "lease");
  AppendInteger(out, static_cast<int64_t>(token));
}

bool ParseToken(std::string_view s, lease::LeaseToken* token) {
  int64_t v;
  if (!proto::ParseInt64(s, &v) || v <= 0) return false;
  *token = static_cast<lease::LeaseToken>(v);
  return true;
}
}  // namespace

CommandStatus RespCommands::LeaseGet(RespClient&, Args args, std::string& out,
                                     AsyncReplyTarget& target) {
  auto self = target.Self();
  CacheService::LeaseGetAnswer answer = state_.cache.LeaseGet(
      args[1], [&](const ReadAnswer& a) { AppendReadAnswer(out, a); },
      [self]() -> ReadLater {
        return [self](const ReadAnswer& a) {
          std::string reply;
          AppendReadAnswer(reply, a);
          self->DeliverLater(std::move(reply));
        };
      },
      [self](lease::LeaseToken token) {
        std::string reply;
        AppendLeaseGrant(reply, token);
        self->DeliverLater(std::move(reply));
      });
  switch (answer.kind) {
    case CacheService::LeaseGetAnswer::Kind::kValue:
      return CommandStatus::kDone;
    case CacheService::LeaseGetAnswer::Kind::kLease:
      AppendLeaseGrant(out, answer.token);
      return CommandStatus::kDone;
    case CacheService::LeaseGetAnswer::Kind::kPending:
      return CommandStatus::kPending;
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::LeaseSet(RespClient&, Args args, std::string& out,
                                     AsyncReplyTarget&) {
  // LEASE.SET key token value [PX ms]
  lease::LeaseToken token;
  if (!ParseToken(args[2], &token)) {
    AppendError(out, "ERR invalid lease token");
    return CommandStatus::kDone;
  }
  std::optional<lease::Millis> ttl;
  if (args.size() == 6 && EqualsIgnoreCase(args[4], "px")) {
    int64_t ms;
    if (!proto::ParseInt64(args[5], &ms)) {
      AppendError(out, proto::kNotInteger);
      return CommandStatus::kDone;
    }
    if (ms <= 0) {
      AppendError(out, proto::InvalidExpireError("lease.set"));
      return CommandStatus::kDone;
    }
    ttl = ms;
  } else if (args.size() != 4) {
    AppendError(out, proto::kSyntaxError);
    return CommandStatus::kDone;
  }
  if (state_.cache.LeaseSet(args[1], token, args[3], ttl)) {
    AppendSimple(out, "OK");
  } else {
    AppendError(out, "ERR lease voided: the key was invalidated, or the token is not its live lease");
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::LeaseRelease(RespClient&, Args args, std::string& out,
                                         AsyncReplyTarget&) {
  lease::LeaseToken token;
  if (!ParseToken(args[2], &token)) {
    AppendError(out, "ERR invalid lease token");
  } else if (state_.cache.LeaseRelease(args[1], token)) {
    AppendSimple(out, "OK");
  } else {
    AppendError(out, "ERR no such lease: the token is not the key's live lease");
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Set(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  // SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]
  auto cond = lease::SetCondition::kAlways;
  bool keep_ttl = false, get = false, have_expire = false;
  int64_t expire_ms = 0;
  std::string_view expire_opt;
  for (size_t i = 3; i < args.size(); ++i) {
    std::string_view opt = args[i];
    bool has_next = i + 1 < args.size();
    if (EqualsIgnoreCase(opt, "nx") && cond != lease::SetCondition::kIfPresent) {
      cond = lease::SetCondition::kIfAbsent;
    } else if (EqualsIgnoreCase(opt, "xx") && cond != lease::SetCondition::kIfAbsent) {
      cond = lease::SetCondition::kIfPresent;
    } else if (EqualsIgnoreCase(opt, "get")) {
      get = true;
    } else if (EqualsIgnoreCase(opt, "keepttl") && !have_expire) {
      keep_ttl = true;
    } else if (has_next && !keep_ttl &&
               (EqualsIgnoreCase(opt, "ex") || EqualsIgnoreCase(opt, "px") ||
                EqualsIgnoreCase(opt, "exat") || EqualsIgnoreCase(opt, "pxat")) &&
               (!have_expire || EqualsIgnoreCase(opt, expire_opt))) {
      // As Redis: one kind of expiry; repeating the same option is allowed (the last wins).
      expire_opt = opt;
      int64_t n;
      if (!proto::ParseInt64(args[i + 1], &n)) {
        AppendError(out, proto::kNotInteger);
        return CommandStatus::kDone;
      }
      bool seconds = EqualsIgnoreCase(opt, "ex") || EqualsIgnoreCase(opt, "exat");
      bool absolute = EqualsIgnoreCase(opt, "exat") || EqualsIgnoreCase(opt, "pxat");
      if (n <= 0 || (seconds && n > INT64_MAX / 1000)) {
        AppendError(out, proto::InvalidExpireError("set"));
        return CommandStatus::kDone;
      }
      expire_ms = seconds ? n * 1000 : n;
      int64_t now_ms = UnixMillis();
      // Redis: an expiry whose absolute time would overflow is invalid.
      if (!absolute && expire_ms > INT64_MAX - now_ms) {
        AppendError(out, proto::InvalidExpireError("set"));
        return CommandStatus::kDone;
      }
      if (absolute) expire_ms -= now_ms;
      have_expire = true;
      ++i;
    } else {
      AppendError(out, proto::kSyntaxError);
      return CommandStatus::kDone;
    }
  }
  if (get) {
    // Not atomic with the write below (another connection may write in between); Redis's
    // single thread makes it atomic there. Documented in README.
    state_.cache.Read(
        Proto::kResp, args[1],
        [&](const ReadAnswer& answer) {
          if (answer.kind == ReadAnswer::Kind::kValue) {
            AppendBulk(out, answer.value);
          } else {
            AppendNullBulk(out);
          }
        },
        []() -> ReadLater { return nullptr; });
  }
  if (have_expire && expire_ms <= 0) {
    // An absolute time in the past: Redis sets and at once expires the key.
    state_.cache.Invalidate(args[1], "set");
    if (!get) AppendSimple(out, "OK");
    return CommandStatus::kDone;
  }
  std::optional<lease::Millis> ttl;
  if (have_expire) ttl = expire_ms;
  lease::SetResult result = state_.cache.Set(args[1], args[2], ttl, cond, keep_ttl);
  if (get) return CommandStatus::kDone;
  switch (result) {
    case lease::SetResult::kStored:
      AppendSimple(out, "OK");
      break;
    case lease::SetResult::kNotStored:
      AppendNullBulk(out);
      break;
    case lease::SetResult::kTooLarge:
      AppendError(out, "OOM command not allowed when used memory > 'maxmemory'.");
      break;
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Del(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  int64_t deleted = 0;
  for (size_t i = 1; i < args.size(); ++i) {
    deleted += state_.cache.Invalidate(args[i], "del") ? 1 : 0;
  }
  AppendInteger(out, deleted);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Exists(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  int64_t n = 0;
  for (size_t i = 1; i < args.size(); ++i) n += state_.cache.Exists(args[i]) ? 1 : 0;
  AppendInteger(out, n);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Ttl(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  lease::Millis pttl = state_.cache.Pttl(args[1]);
  bool millis = args[0].size() == 4;  // PTTL vs TTL
  if (pttl >= 0 && !millis) pttl = (pttl + 500) / 1000;
  AppendInteger(out, pttl);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Expire(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  // EXPIRE/PEXPIRE key n [NX|XX|GT|LT]
  int64_t n;
  if (!proto::ParseInt64(args[2], &n)) {
    AppendError(out, proto::kNotInteger);
    return CommandStatus::kDone;
  }
  bool millis = args[0].size() == 7;  // PEXPIRE vs EXPIRE
  std::string lower_name = millis ? "pexpire" : "expire";
  if (!millis && (n > INT64_MAX / 1000 || n < INT64_MIN / 1000)) {
    AppendError(out, proto::InvalidExpireError(lower_name));
    return CommandStatus::kDone;
  }
  int64_t ttl_ms = millis ? n : n * 1000;
  if (ttl_ms > INT64_MAX - UnixMillis()) {
    AppendError(out, proto::InvalidExpireError(lower_name));
    return CommandStatus::kDone;
  }
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < args.size(); ++i) {
    if (EqualsIgnoreCase(args[i], "nx")) nx = true;
    else if (EqualsIgnoreCase(args[i], "xx")) xx = true;
    else if (EqualsIgnoreCase(args[i], "gt")) gt = true;
    else if (EqualsIgnoreCase(args[i], "lt")) lt = true;
    else {
      AppendError(out, std::string("ERR Unsupported option ").append(args[i]));
      return CommandStatus::kDone;
    }
  }
  if (nx && (xx || gt || lt)) {
    AppendError(out, "ERR NX and XX, GT or LT options at the same time are not compatible");
    return CommandStatus::kDone;
  }
  if (gt && lt) {
    AppendError(out, "ERR GT and LT options at the same time are not compatible");
    return CommandStatus::kDone;
  }
  lease::Millis current = state_.cache.Pttl(args[1]);
  if (current == -2) {
    AppendInteger(out, 0);
    return CommandStatus::kDone;
  }
  // Redis: a key without TTL counts as an infinite TTL for GT/LT.
  bool has_ttl = current >= 0;
  if ((nx && has_ttl) || (xx && !has_ttl) || (gt && (!has_ttl || ttl_ms <= current)) ||
      (lt && has_ttl && ttl_ms >= current)) {
    AppendInteger(out, 0);
    return CommandStatus::kDone;
  }
  AppendInteger(out, state_.cache.Expire(args[1], ttl_ms) ? 1 : 0);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Ping(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  if (args.size() > 2) {
    AppendError(out, proto::WrongArgsError("ping"));
  } else if (args.size() == 2) {
    AppendBulk(out, args[1]);
  } else {
    AppendSimple(out, "PONG");
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Echo(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  AppendBulk(out, args[1]);
  return CommandStatus::kDone;
}

bool RespCommands::CheckPassword(std::string_view password) const {
  const std::string& want = state_.config.resp_options.requirepass;
  // Compare in constant time over the longer length so the reply time tells nothing.
  size_t n = std::max(want.size(), password.size());
  unsigned diff = want.size() != password.size();
  for (size_t i = 0; i < n; ++i) {
    char a = i < want.size() ? want[i] : 0;
    char b = i < password.size() ? password[i] : 0;
    diff |= static_cast<unsigned char>(a ^ b);
  }
  return diff == 0;
}

CommandStatus RespCommands::Auth(RespClient& client, Args args, std::string& out,
                                 AsyncReplyTarget&) {
  if (args.size() > 3) {
    AppendError(out, proto::kSyntaxError);
    return CommandStatus::kDone;
  }
  if (state_.config.resp_options.requirepass.empty()) {
    AppendError(out,
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?");
    return CommandStatus::kDone;
  }
  bool user_ok = args.size() == 2 || args[1] == "default";
  if (user_ok && CheckPassword(args.back())) {
    client.authenticated = true;
    AppendSimple(out, "OK");
  } else {
    AppendError(out, proto::kWrongPass);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Hello(RespClient& client, Args args, std::string& out,
                                  AsyncReplyTarget&) {
  // HELLO [protover [AUTH username password] [SETNAME clientname]]
  int64_t ver = 2;
  if (args.size() >= 2) {
    if (!proto::ParseInt64(args[1], &ver)) {
      AppendError(out, "ERR Protocol version is not an integer or out of range");
      return CommandStatus::kDone;
    }
    if (ver < 2 || ver > 3) {
      AppendError(out, proto::kNoProto);
      return CommandStatus::kDone;
    }
  }
  std::string_view setname;
  bool have_setname = false;
  for (size_t i = 2; i < args.size(); ++i) {
    if (EqualsIgnoreCase(args[i], "auth") && i + 2 < args.size()) {
      if (state_.config.resp_options.requirepass.empty() ||
          !(args[i + 1] == "default" && CheckPassword(args[i + 2]))) {
        AppendError(out, proto::kWrongPass);
        return CommandStatus::kDone;
      }
      client.authenticated = true;
      i += 2;
    } else if (EqualsIgnoreCase(args[i], "setname") && i + 1 < args.size()) {
      setname = args[++i];
      have_setname = true;
    } else {
      AppendError(out, std::string("ERR Syntax error in HELLO option '").append(args[i]) + "'");
      return CommandStatus::kDone;
    }
  }
  if (!client.authenticated) {
    AppendError(out, "NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO AUTH <user> <pass> option can be used to authenticate "
                     "the client and select the RESP protocol version at the same time");
    return CommandStatus::kDone;
  }
  // RESP3 is refused until it is complete (SPEC.md), after the checks Redis makes first.
  if (ver == 3) {
    AppendError(out, proto::kNoProto);
    return CommandStatus::kDone;
  }
  if (have_setname) client.name = std::string(setname);
  AppendArrayHeader(out, 14);
  AppendBulk(out, "server");
  AppendBulk(out, "corral");
  AppendBulk(out, "version");
  AppendBulk(out, kCompatVersion);
  AppendBulk(out, "proto");
  AppendInteger(out, 2);
  AppendBulk(out, "id");
  AppendInteger(out, static_cast<int64_t>(client.id));
  AppendBulk(out, "mode");
  AppendBulk(out, "standalone");
  AppendBulk(out, "role");
  AppendBulk(out, "master");
  AppendBulk(out, "modules");
  AppendArrayHeader(out, 0);
  return CommandStatus::kDone;
}

std::string RespCommands::ClientInfoLine(const RespClient& client) const {
  std::time_t now = std::time(nullptr);
  std::string line = "id=" + std::to_string(client.id) + " addr=" + client.addr +
                     " laddr=" + client.laddr + " name=" + client.name +
                     " age=" + std::to_string(now - client.created_unix) +
                     " idle=" + std::to_string(now - client.last_command_unix) +
                     " flags=N db=0 sub=0 psub=0 multi=-1 user=default resp=2 lib-name=" +
                     client.lib_name + " lib-ver=" + client.lib_ver + "\n";
  return line;
}

CommandStatus RespCommands::Client(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  std::string_view sub = args[1];
  if (EqualsIgnoreCase(sub, "setname") && args.size() == 3) {
    for (char c : args[2]) {
      if (c < '!' || c > '~') {
        AppendError(out, "ERR Client names cannot contain spaces, newlines or special characters.");
        return CommandStatus::kDone;
      }
    }
    client.name = std::string(args[2]);
    AppendSimple(out, "OK");
  } else if (EqualsIgnoreCase(sub, "getname") && args.size() == 2) {
    if (client.name.empty()) {
      AppendNullBulk(out);
    } else {
      AppendBulk(out, client.name);
    }
  } else if (EqualsIgnoreCase(sub, "id") && args.size() == 2) {
    AppendInteger(out, static_cast<int64_t>(client.id));
  } else if (EqualsIgnoreCase(sub, "setinfo") && args.size() == 4) {
    if (EqualsIgnoreCase(args[2], "lib-name")) {
      client.lib_name = std::string(args[3]);
    } else if (EqualsIgnoreCase(args[2], "lib-ver")) {
      client.lib_ver = std::string(args[3]);
    } else {
      AppendError(out, std::string("ERR Unrecognized option '").append(args[2]) + "'");
      return CommandStatus::kDone;
    }
    AppendSimple(out, "OK");
  } else if (EqualsIgnoreCase(sub, "info") && args.size() == 2) {
    AppendBulk(out, ClientInfoLine(client));
  } else if (EqualsIgnoreCase(sub, "setname") || EqualsIgnoreCase(sub, "getname") ||
             EqualsIgnoreCase(sub, "id") || EqualsIgnoreCase(sub, "setinfo") ||
             EqualsIgnoreCase(sub, "info")) {
    std::string name = "client|";
    for (char c : sub) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    AppendError(out, proto::WrongArgsError(name));
  } else {
    AppendError(out, proto::UnknownSubcommandError("CLIENT", sub));
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Select(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  int64_t db;
  if (!proto::ParseInt64(args[1], &db)) {
    AppendError(out, proto::kNotInteger);
  } else if (db != 0) {
    AppendError(out, proto::kDbIndexOutOfRange);
  } else {
    AppendSimple(out, "OK");
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Quit(RespClient&, Args, std::string& out, AsyncReplyTarget&) {
  AppendSimple(out, "OK");
  return CommandStatus::kClose;
}

namespace {
struct CommandInfo {
  std::string_view name;
  int arity;
  std::string_view flags;  // space-separated
  int first_key, last_key, step;
};
// What COMMAND reports: enough for redis-cli and client libraries that route by key position.
constexpr CommandInfo kCommandInfo[] = {
    {"get", 2, "readonly fast", 1, 1, 1},        {"mget", -2, "readonly fast", 1, -1, 1},
    {"set", -3, "write denyoom", 1, 1, 1},       {"del", -2, "write", 1, -1, 1},
    {"unlink", -2, "write fast", 1, -1, 1},      {"exists", -2, "readonly fast", 1, -1, 1},
    {"ttl", 2, "readonly fast", 1, 1, 1},        {"pttl", 2, "readonly fast", 1, 1, 1},
    {"expire", -3, "write fast", 1, 1, 1},       {"pexpire", -3, "write fast", 1, 1, 1},
    {"ping", -1, "fast", 0, 0, 0},               {"echo", 2, "fast", 0, 0, 0},
    {"hello", -1, "noscript loading stale fast no_auth", 0, 0, 0},
    {"auth", -2, "noscript loading stale fast no_auth", 0, 0, 0},
    {"client", -2, "noscript loading stale", 0, 0, 0},
    {"select", 2, "loading stale fast", 0, 0, 0}, {"quit", -1, "fast no_auth", 0, 0, 0},
    {"command", -1, "loading stale", 0, 0, 0},   {"config", -2, "admin noscript loading stale", 0, 0, 0},
    {"info", -1, "loading stale", 0, 0, 0},      {"dbsize", 1, "readonly fast", 0, 0, 0},
    {"flushall", -1, "write", 0, 0, 0},          {"flushdb", -1, "write", 0, 0, 0},
    {"lease.get", 2, "readonly", 1, 1, 1},       {"lease.set", -4, "write", 1, 1, 1},
    {"lease.release", 3, "write fast", 1, 1, 1},
};

void AppendCommandInfo(std::string& out, const CommandInfo& c) {
  AppendArrayHeader(out, 6);
  AppendBulk(out, c.name);
  AppendInteger(out, c.arity);
  size_t nflags = 1 + std::count(c.flags.begin(), c.flags.end(), ' ');
  AppendArrayHeader(out, nflags);
  std::string_view rest = c.flags;
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    AppendSimple(out, rest.substr(0, sp));
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
  }
  AppendInteger(out, c.first_key);
  AppendInteger(out, c.last_key);
  AppendInteger(out, c.step);
}
}  // namespace

CommandStatus RespCommands::Command(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  if (args.size() == 1) {
    AppendArrayHeader(out, std::size(kCommandInfo));
    for (const auto& c : kCommandInfo) AppendCommandInfo(out, c);
  } else if (EqualsIgnoreCase(args[1], "count") && args.size() == 2) {
    AppendInteger(out, static_cast<int64_t>(std::size(kCommandInfo)));
  } else if (EqualsIgnoreCase(args[1], "info")) {
    AppendArrayHeader(out, args.size() - 2);
    for (size_t i = 2; i < args.size(); ++i) {
      const CommandInfo* found = nullptr;
      for (const auto& c : kCommandInfo) {
        if (EqualsIgnoreCase(c.name, args[i])) found = &c;
      }
      if (found) {
        AppendCommandInfo(out, *found);
      } else {
        proto::AppendNullArray(out);
      }
    }
  } else if (EqualsIgnoreCase(args[1], "docs")) {
    // redis-cli asks for docs to show hints; an empty reply makes it use its built-in help.
    AppendArrayHeader(out, 0);
  } else {
    AppendError(out, proto::UnknownSubcommandError("COMMAND", args[1]));
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Config(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  if (EqualsIgnoreCase(args[1], "set")) return ConfigSet(args, out);
  if (!EqualsIgnoreCase(args[1], "get")) {
    AppendError(out, proto::UnknownSubcommandError("CONFIG", args[1]));
    return CommandStatus::kDone;
  }
  if (args.size() < 3) {
    AppendError(out, proto::WrongArgsError("config|get"));
    return CommandStatus::kDone;
  }
  const auto& cfg = state_.config;
  // What Redis tools ask for (redis-benchmark reads "save" and "appendonly").
  const std::pair<std::string, std::string> params[] = {
      {"save", ""},
      {"appendonly", "no"},
      {"databases", "1"},
      {"maxmemory", std::to_string(cfg.max_bytes)},
      {"maxmemory-policy", "allkeys-lru"},
      {"maxclients", std::to_string(cfg.shedding.max_clients)},
      {"proto-max-bulk-len", std::to_string(cfg.resp_options.proto_max_bulk_len)},
      {"client-query-buffer-limit", std::to_string(cfg.resp_options.max_query_buffer)},
      {"timeout", std::to_string(cfg.resp_options.idle_timeout_s)},
      {"port", std::to_string(state_.resp_port)},
      {"bind", cfg.resp.host},
      {"io-threads", std::to_string(cfg.threads)},
  };
  std::vector<const std::pair<std::string, std::string>*> matched;
  for (const auto& p : params) {
    for (size_t i = 2; i < args.size(); ++i) {
      std::string pattern(args[i]);
      if (fnmatch(pattern.c_str(), p.first.c_str(), FNM_CASEFOLD) == 0) {
        matched.push_back(&p);
        break;
      }
    }
  }
  AppendArrayHeader(out, matched.size() * 2);
  for (const auto* p : matched) {
    AppendBulk(out, p->first);
    AppendBulk(out, p->second);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::ConfigSet(Args args, std::string& out) {
  // CONFIG SET namespace.<ns>.<max_inflight_loads|max_loads_per_s|blocked> <value> [...]:
  // load-shedding knobs changed at run time, without a restart (SPEC rule 8).
  if (args.size() < 4 || args.size() % 2 != 0) {
    AppendError(out, proto::WrongArgsError("config|set"));
    return CommandStatus::kDone;
  }
  struct Change {
    std::string ns;
    std::optional<int64_t> inflight;
    std::optional<double> rate;
    std::optional<bool> blocked;
  };
  std::vector<Change> changes;
  for (size_t i = 2; i < args.size(); i += 2) {
    std::string_view name = args[i], value = args[i + 1];
    auto bad = [&](std::string_view why) {
      AppendError(out, std::string("ERR CONFIG SET failed (possibly related to argument '")
                           .append(name) + "') - " + std::string(why));
      return CommandStatus::kDone;
    };
    if (name.substr(0, 10) != "namespace.") return bad("unknown or read-only parameter");
    std::string_view rest = name.substr(10);
    size_t dot = rest.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return bad("unknown or read-only parameter");
    Change c{std::string(rest.substr(0, dot)), {}, {}, {}};
    std::string_view field = rest.substr(dot + 1);
    if (field == "max_inflight_loads") {
      int64_t v;
      if (!proto::ParseInt64(value, &v) || v < 0) return bad("argument must be an integer >= 0");
      c.inflight = v;
    } else if (field == "max_loads_per_s") {
      char* end = nullptr;
      std::string text(value);
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(v >= 0)) return bad("argument must be a number >= 0");
      c.rate = v;
    } else if (field == "blocked") {
      if (EqualsIgnoreCase(value, "yes") || value == "1" || EqualsIgnoreCase(value, "true")) {
        c.blocked = true;
      } else if (EqualsIgnoreCase(value, "no") || value == "0" || EqualsIgnoreCase(value, "false")) {
        c.blocked = false;
      } else {
        return bad("argument must be 'yes' or 'no'");
      }
    } else {
      return bad("unknown or read-only parameter");
    }
    if (!state_.cache.SetNamespaceLimit(c.ns, std::nullopt, std::nullopt, std::nullopt)) {
      return bad("no such namespace");
    }
    changes.push_back(std::move(c));
  }
  // All arguments were valid: apply them together.
  for (const Change& c : changes) state_.cache.SetNamespaceLimit(c.ns, c.inflight, c.rate, c.blocked);
  AppendSimple(out, "OK");
  return CommandStatus::kDone;
}

std::string RespCommands::Info(std::string_view section) const {
  std::string lower;
  for (char c : section) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool all = lower.empty() || lower == "default" || lower == "all" || lower == "everything";
  auto want = [&](std::string_view s) { return all || lower == s; };
  std::string out;
  auto field = [&](std::string_view k, const std::string& v) {
    out.append(k).append(":").append(v).append("\r\n");
  };
  const auto& m = state_.metrics;
  lease::Store& store = state_.cache.store();
  if (want("server")) {
    out += "# Server\r\n";
    field("redis_version", std::string(kCompatVersion));
    field("corral_version", std::string(kCorralVersion));
    field("redis_mode", "standalone");
    field("os", "Linux");
    field("arch_bits", "64");
    field("multiplexing_api", "epoll");
    field("process_id", std::to_string(getpid()));
    field("tcp_port", std::to_string(state_.resp_port));
    std::time_t up = std::time(nullptr) - state_.started_unix;
    field("uptime_in_seconds", std::to_string(up));
    field("uptime_in_days", std::to_string(up / 86400));
    field("io_threads_active", std::to_string(state_.config.threads > 1 ? 1 : 0));
    out += "\r\n";
  }
  if (want("clients")) {
    out += "# Clients\r\n";
    field("connected_clients", std::to_string(state_.connected_clients.load()));
    field("maxclients", std::to_string(state_.config.shedding.max_clients));
    field("blocked_clients", "0");
    out += "\r\n";
  }
  if (want("memory")) {
    out += "# Memory\r\n";
    field("used_memory", std::to_string(store.MemoryBytes()));
    long pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
      std::fclose(f);
    }
    field("used_memory_rss", std::to_string(resident * sysconf(_SC_PAGESIZE)));
    field("maxmemory", std::to_string(state_.config.max_bytes));
    field("maxmemory_policy", "allkeys-lru");
    out += "\r\n";
  }
  if (want("stats")) {
    out += "# Stats\r\n";
    field("total_connections_received", std::to_string(m.connections.Value()));
    field("total_commands_processed", std::to_string(m.commands.Value()));
    field("rejected_connections", std::to_string(m.rejected_connections.Value()));
    field("expired_keys", std::to_string(store.expirations()));
    field("evicted_keys", std::to_string(store.evictions()));
    uint64_t hits = 0, misses = 0;
    for (Proto p : {Proto::kResp, Proto::kHttp}) {
      hits += m.Requests(p, Outcome::kHit) + m.Requests(p, Outcome::kStale);
      misses += m.Requests(p, Outcome::kMiss) + m.Requests(p, Outcome::kWaited);
    }
    field("keyspace_hits", std::to_string(hits));
    field("keyspace_misses", std::to_string(misses));
    field("coalesced_requests", std::to_string(m.coalesced.Value()));
    out += "\r\n";
  }
  if (want("keyspace")) {
    out += "# Keyspace\r\n";
    size_t keys = store.Size();
    if (keys > 0) field("db0", "keys=" + std::to_string(keys) + ",expires=0,avg_ttl=0");
    out += "\r\n";
  }
  return out;
}

CommandStatus RespCommands::InfoCmd(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  AppendBulk(out, Info(args.size() > 1 ? args[1] : std::string_view()));
  return CommandStatus::kDone;
}

CommandStatus RespCommands::DbSize(RespClient&, Args, std::string& out, AsyncReplyTarget&) {
  AppendInteger(out, static_cast<int64_t>(state_.cache.store().Size()));
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Flush(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  if (args.size() > 2 ||
      (args.size() == 2 && !EqualsIgnoreCase(args[1], "sync") &&
       !EqualsIgnoreCase(args[1], "async"))) {
    AppendError(out, proto::kSyntaxError);
    return CommandStatus::kDone;
  }
  state_.cache.FlushAll();
  AppendSimple(out, "OK");
  return CommandStatus::kDone;
}

const RespCommands::Spec* RespCommands::FindSpec(std::string_view name) {
  using R = RespCommands;
  // The hot commands first: lookup is a short linear scan, length first, then bytes.
  static constexpr Spec kSpecs[] = {
      {"get", 2, false, &R::Get},           {"set", -3, false, &R::Set},
      {"mget", -2, false, &R::MGet},        {"ping", -1, false, &R::Ping},
      {"del", -2, false, &R::Del},          {"unlink", -2, false, &R::Del},
      {"exists", -2, false, &R::Exists},    {"ttl", 2, false, &R::Ttl},
      {"pttl", 2, false, &R::Ttl},          {"expire", -3, false, &R::Expire},
      {"pexpire", -3, false, &R::Expire},   {"echo", 2, false, &R::Echo},
      {"hello", -1, true, &R::Hello},       {"auth", -2, true, &R::Auth},
      {"client", -2, false, &R::Client},    {"select", 2, false, &R::Select},
      {"quit", -1, true, &R::Quit},         {"command", -1, false, &R::Command},
      {"config", -2, false, &R::Config},    {"info", -1, false, &R::InfoCmd},
      {"dbsize", 1, false, &R::DbSize},     {"flushall", -1, false, &R::Flush},
      {"flushdb", -1, false, &R::Flush},  {"lease.get", 2, false, &R::LeaseGet},
      {"lease.set", -4, false, &R::LeaseSet}, {"lease.release", 3, false, &R::LeaseRelease},
  };
  for (const Spec& spec : kSpecs) {
    if (spec.name.size() == name.size() && EqualsIgnoreCase(spec.name, name)) return &spec;
  }
  return nullptr;
}

}  // namespace corral::server

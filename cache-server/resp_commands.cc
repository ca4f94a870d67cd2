// corral's RESP data commands (GET, MGET, SET, DEL, EXISTS, TTL, EXPIRE, LEASE.*, FLUSHALL,
// DBSIZE) and the command table; see resp_commands.h. Behaviour and error texts follow Redis 7.0
// (t_string.c, expire.c, networking.c) wherever a Redis client could tell the difference. The
// connection and server commands (PING ... INFO) are in resp_server_commands.cc.
#include "cache-server/resp_commands.h"

#include <mutex>

#include "cache-server/resp_util.h"
#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendNullBulk;
using proto::AppendSimple;

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

CommandStatus RespCommands::LeaseSet(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
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
    AppendError(out,
                "ERR lease voided: the key was invalidated, or the token is not its live lease");
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
    state_.cache.Invalidate(args[1], InvalidationSource::kSet);
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
    deleted += state_.cache.Invalidate(args[i], InvalidationSource::kDel) ? 1 : 0;
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
    if (EqualsIgnoreCase(args[i], "nx"))
      nx = true;
    else if (EqualsIgnoreCase(args[i], "xx"))
      xx = true;
    else if (EqualsIgnoreCase(args[i], "gt"))
      gt = true;
    else if (EqualsIgnoreCase(args[i], "lt"))
      lt = true;
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

CommandStatus RespCommands::DbSize(RespClient&, Args, std::string& out, AsyncReplyTarget&) {
  AppendInteger(out, static_cast<int64_t>(state_.cache.store().Size()));
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Flush(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  if (args.size() > 2 || (args.size() == 2 && !EqualsIgnoreCase(args[1], "sync") &&
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
      {"get", 2, false, &R::Get},
      {"set", -3, false, &R::Set},
      {"mget", -2, false, &R::MGet},
      {"ping", -1, false, &R::Ping},
      {"del", -2, false, &R::Del},
      {"unlink", -2, false, &R::Del},
      {"exists", -2, false, &R::Exists},
      {"ttl", 2, false, &R::Ttl},
      {"pttl", 2, false, &R::Ttl},
      {"expire", -3, false, &R::Expire},
      {"pexpire", -3, false, &R::Expire},
      {"echo", 2, false, &R::Echo},
      {"hello", -1, true, &R::Hello},
      {"auth", -2, true, &R::Auth},
      {"client", -2, false, &R::Client},
      {"select", 2, false, &R::Select},
      {"quit", -1, true, &R::Quit},
      {"command", -1, false, &R::Command},
      {"config", -2, false, &R::Config},
      {"info", -1, false, &R::InfoCmd},
      {"dbsize", 1, false, &R::DbSize},
      {"flushall", -1, false, &R::Flush},
      {"flushdb", -1, false, &R::Flush},
      {"lease.get", 2, false, &R::LeaseGet},
      {"lease.set", -4, false, &R::LeaseSet},
      {"lease.release", 3, false, &R::LeaseRelease},
  };
  for (const Spec& spec : kSpecs) {
    if (spec.name.size() == name.size() && EqualsIgnoreCase(spec.name, name)) return &spec;
  }
  return nullptr;
}

}  // namespace corral::server

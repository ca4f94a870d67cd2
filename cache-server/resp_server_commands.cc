// corral's RESP connection and server commands: PING, ECHO, AUTH, HELLO, CLIENT, SELECT, QUIT,
// COMMAND, CONFIG GET/SET and INFO (Redis 7.0's replies, so that redis-cli, redis-benchmark and
// client libraries work unchanged). The data commands are in resp_commands.cc.
#include <fnmatch.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "cache-server/resp_commands.h"
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
    AppendError(out,
                "NOAUTH HELLO must be called with the client already authenticated, "
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
  std::string line =
      "id=" + std::to_string(client.id) + " addr=" + client.addr + " laddr=" + client.laddr +
      " name=" + client.name + " age=" + std::to_string(now - client.created_unix) +
      " idle=" + std::to_string(now - client.last_command_unix) +
      " flags=N db=0 sub=0 psub=0 multi=-1 user=default resp=2 lib-name=" + client.lib_name +
      " lib-ver=" + client.lib_ver + "\n";
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
    {"get", 2, "readonly fast", 1, 1, 1},
    {"mget", -2, "readonly fast", 1, -1, 1},
    {"set", -3, "write denyoom", 1, 1, 1},
    {"del", -2, "write", 1, -1, 1},
    {"unlink", -2, "write fast", 1, -1, 1},
    {"exists", -2, "readonly fast", 1, -1, 1},
    {"ttl", 2, "readonly fast", 1, 1, 1},
    {"pttl", 2, "readonly fast", 1, 1, 1},
    {"expire", -3, "write fast", 1, 1, 1},
    {"pexpire", -3, "write fast", 1, 1, 1},
    {"ping", -1, "fast", 0, 0, 0},
    {"echo", 2, "fast", 0, 0, 0},
    {"hello", -1, "noscript loading stale fast no_auth", 0, 0, 0},
    {"auth", -2, "noscript loading stale fast no_auth", 0, 0, 0},
    {"client", -2, "noscript loading stale", 0, 0, 0},
    {"select", 2, "loading stale fast", 0, 0, 0},
    {"quit", -1, "fast no_auth", 0, 0, 0},
    {"command", -1, "loading stale", 0, 0, 0},
    {"config", -2, "admin noscript loading stale", 0, 0, 0},
    {"info", -1, "loading stale", 0, 0, 0},
    {"dbsize", 1, "readonly fast", 0, 0, 0},
    {"flushall", -1, "write", 0, 0, 0},
    {"flushdb", -1, "write", 0, 0, 0},
    {"lease.get", 2, "readonly", 1, 1, 1},
    {"lease.set", -4, "write", 1, 1, 1},
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
      AppendError(
          out, std::string("ERR CONFIG SET failed (possibly related to argument '").append(name) +
                   "') - " + std::string(why));
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
      } else if (EqualsIgnoreCase(value, "no") || value == "0" ||
                 EqualsIgnoreCase(value, "false")) {
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
  for (const Change& c : changes)
    state_.cache.SetNamespaceLimit(c.ns, c.inflight, c.rate, c.blocked);
  AppendSimple(out, "OK");
  return CommandStatus::kDone;
}

std::string RespCommands::Info(std::string_view section) const {
  // Rendered by metrics.cc, with /metrics and /v1/stats.
  MetricSources sources = MetricSourcesOf(state_);
  sources.redis_version = kCompatVersion;
  sources.corral_version = kCorralVersion;
  return RenderInfo(sources, section);
}

CommandStatus RespCommands::InfoCmd(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  AppendBulk(out, Info(args.size() > 1 ? args[1] : std::string_view()));
  return CommandStatus::kDone;
}

}  // namespace corral::server

// corral's RESP connection and server commands: PING, ECHO, AUTH, HELLO, CLIENT, SELECT, QUIT,
// COMMAND, CONFIG GET/SET and INFO (Redis 7.0's replies, so that redis-cli, redis-benchmark and
// client libraries work unchanged). The data commands are in resp_commands.cc.
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>

#include "cache-server/build_info.h"
#include "cache-server/resp_commands.h"
#include "cache-server/resp_util.h"
#include "cache-server/users.h"
#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendNil;
using proto::AppendSimple;

CommandStatus RespCommands::Ping(RespClient& client, Args args, std::string& out,
                                 AsyncReplyTarget&) {
  if (args.size() > 2) {
    AppendError(out, proto::WrongArgsError("ping"));
  } else if (client.resp == 2 && client.subscribed()) {
    // A RESP2 subscriber's PING answers in the shape of a message: ["pong", text or ""].
    AppendArrayHeader(out, 2);
    AppendBulk(out, "pong");
    AppendBulk(out, args.size() == 2 ? args[1] : std::string_view());
  } else if (args.size() == 2) {
    AppendBulk(out, args[1]);
  } else {
    AppendSimple(out, proto::kPong);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Echo(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  AppendBulk(out, args[1]);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Time(RespClient&, Args, std::string& out, AsyncReplyTarget&) {
  // Unix time: seconds, and microseconds within the second, as two bulk strings (Redis).
  const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  proto::AppendArrayHeader(out, 2);
  AppendBulk(out, std::to_string(us / 1'000'000));
  AppendBulk(out, std::to_string(us % 1'000'000));
  return CommandStatus::kDone;
}

bool RespCommands::LogIn(RespClient& client, std::string_view name,
                         std::string_view password) const {
  const uint64_t generation = state_.users.generation();
  std::shared_ptr<const auth::User> user = state_.users.Authenticate(name, password);
  if (user == nullptr) return false;
  client.user = std::move(user);
  client.users_generation = generation;
  client.authenticated = true;
  return true;
}

CommandStatus RespCommands::Auth(RespClient& client, Args args, std::string& out,
                                 AsyncReplyTarget&) {
  if (args.size() > 3) {
    AppendError(out, proto::kSyntaxError);
    return CommandStatus::kDone;
  }
  if (args.size() == 2) {
    // Redis: the one-argument form is the default user's, and an error when it has no password.
    std::shared_ptr<const auth::User> default_user = state_.users.Find("default");
    if (default_user != nullptr && default_user->nopass) {
      AppendError(out, proto::kAuthWithoutPassword);
      return CommandStatus::kDone;
    }
  }
  if (LogIn(client, args.size() == 2 ? std::string_view("default") : args[1], args.back())) {
    AppendSimple(out, proto::kOk);
  } else {
    AppendError(out, proto::kWrongPass);
  }
  return CommandStatus::kDone;
}

RespCommands::Permission RespCommands::Permit(RespClient& client, const CommandSpec& spec,
                                              Args args, std::string& out) const {
  const uint64_t generation = state_.users.generation();
  if (client.users_generation != generation) {
    // The users changed (ACL SETUSER / DELUSER): take the connection's user as it is now.
    std::shared_ptr<const auth::User> now = state_.users.Find(client.user->name);
    if (now == nullptr) return Permission::kUserGone;
    client.user = std::move(now);
    client.users_generation = generation;
    if (client.user->unrestricted) return Permission::kAllowed;
  }
  const auth::User& user = *client.user;
  const size_t index = static_cast<size_t>(&spec - Table().data());
  const std::string_view sub =
      spec.has_subcommands() && args.size() > 1 ? args[1] : std::string_view();
  // A container's subcommand has its own categories (ContainerAclOf): `-@dangerous` refuses
  // CLIENT KILL and leaves ACL WHOAMI.
  if (!user.MayRun(index, spec.name, sub)) {
    std::string name(spec.name);
    if (!sub.empty()) {
      name += '|';
      for (char c : sub) name += AsciiLower(c);
    }
    AppendError(out, proto::NoPermCommandError(name));
    return Permission::kRefused;
  }
  if (spec.first_key > 0 && !user.all_keys) {
    // As Redis 7.0 for corral's commands: a write command needs write access to its keys, any
    // other command read access.
    const auth::Access access =
        (spec.flags & kCmdWrite) ? auth::Access::kWrite : auth::Access::kRead;
    if (!spec.EveryKey(args, [&](std::string_view key) { return user.MayAccess(key, access); })) {
      AppendError(out, proto::kNoPermKey);
      return Permission::kRefused;
    }
  }
  // Channels (`&pattern`): PUBLISH's, and every channel or pattern (P)SUBSCRIBE names, as Redis
  // 7.0 checks them; (P)UNSUBSCRIBE and PUBSUB are not checked.
  if (!user.all_channels &&
      (spec.handler == &RespCommands::Publish || spec.handler == &RespCommands::Subscribe)) {
    const bool patterns = spec.handler == &RespCommands::Subscribe && spec.param == 1;
    const size_t last = spec.handler == &RespCommands::Publish ? 2 : args.size();
    for (size_t i = 1; i < last; ++i) {
      if (!user.MayUseChannel(args[i], patterns)) {
        AppendError(out, proto::kNoPermChannel);
        return Permission::kRefused;
      }
    }
  }
  return Permission::kAllowed;
}

// As Redis 7.0 after ACL DELUSER (`now` null: every connection of the users `names` is closed)
// and ACL SETUSER (`now`: the user's new rules; a connection of it subscribed to a channel or
// pattern they no longer allow is closed). Each is closed on its own thread between commands;
// the caller, if it is one, after this reply.
void RespCommands::DisconnectUsers(RespClient& caller, std::vector<std::string> names,
                                   std::shared_ptr<const auth::User> now) {
  if (names.empty() || (now != nullptr && now->all_channels)) return;
  PubSub& pubsub = state_.pubsub;
  auto must_go = [names = std::move(names), now, &pubsub](const RespClient& c) {
    const std::string_view user = c.user != nullptr ? std::string_view(c.user->name) : "default";
    if (std::find(names.begin(), names.end(), user) == names.end()) return false;
    if (now == nullptr) return true;
    if (c.subscriber == nullptr) return false;
    for (const std::string& channel : pubsub.Channels(*c.subscriber)) {
      if (!now->MayUseChannel(channel, false)) return true;
    }
    for (const std::string& pattern : pubsub.Patterns(*c.subscriber)) {
      if (!now->MayUseChannel(pattern, true)) return true;
    }
    return false;
  };
  if (must_go(caller)) caller.close_after_reply = true;
  for (auto& [id, connection] : state_.clients.All()) {
    if (id != caller.id) connection->Visit(must_go);
  }
}

CommandStatus RespCommands::Acl(RespClient& client, Args args, std::string& out,
                                AsyncReplyTarget&) {
  const std::string_view sub = args[1];
  auto wrong_args = [&] {
    std::string name = "acl|";
    for (char c : sub) name += AsciiLower(c);
    AppendError(out, proto::WrongArgsError(name));
    return CommandStatus::kDone;
  };
  if (EqualsIgnoreCase(sub, "whoami")) {
    if (args.size() != 2) return wrong_args();
    AppendBulk(out, client.user != nullptr ? client.user->name : "default");
  } else if (EqualsIgnoreCase(sub, "users") || EqualsIgnoreCase(sub, "list")) {
    if (args.size() != 2) return wrong_args();
    std::vector<std::shared_ptr<const auth::User>> users = state_.users.All();
    AppendArrayHeader(out, users.size());
    for (const auto& user : users) {
      AppendBulk(out, EqualsIgnoreCase(sub, "users") ? user->name : user->Describe());
    }
  } else if (EqualsIgnoreCase(sub, "cat")) {
    if (args.size() > 3) return wrong_args();
    if (args.size() == 2) {
      AppendArrayHeader(out, auth::Categories().size());
      for (const auth::CategoryName& c : auth::Categories()) AppendBulk(out, c.name);
    } else {
      uint32_t category = auth::FindCategory(args[2]);
      if (category == 0 || category == ~0u) {
        AppendError(out, "ERR Unknown category '" + std::string(args[2]) + "'");
        return CommandStatus::kDone;
      }
      // As Redis lists them: a command, or a container whose own categories match, then each
      // subcommand of the category as "client|kill".
      std::vector<std::string> names;
      for (const auth::CommandInfo& command : CommandCatalogue()) {
        if (command.categories & category) names.emplace_back(command.name);
        for (const auth::SubcommandInfo& s : command.subcommands) {
          if (s.categories & category) {
            names.push_back(std::string(command.name) + "|" + std::string(s.name));
          }
        }
      }
      AppendArrayHeader(out, names.size());
      for (const std::string& n : names) AppendBulk(out, n);
    }
  } else if (EqualsIgnoreCase(sub, "setuser")) {
    if (args.size() < 3) return wrong_args();
    std::shared_ptr<const auth::User> existing = state_.users.Find(args[2]);
    auth::User user;
    if (existing != nullptr) {
      user = *existing;
    } else {
      user.name = std::string(args[2]);
      auth::ApplyRuleString(user, "reset", state_.users.catalogue());  // as Redis creates one
    }
    if (auto error = auth::ApplyRules(user, args.subspan(3), state_.users.catalogue())) {
      AppendError(out, "ERR " + error->Message());
      return CommandStatus::kDone;
    }
    auto changed = std::make_shared<const auth::User>(user);
    state_.users.Put(std::move(user));
    AppendSimple(out, proto::kOk);
    DisconnectUsers(client, {changed->name}, changed);
  } else if (EqualsIgnoreCase(sub, "deluser")) {
    if (args.size() < 3) return wrong_args();
    for (std::string_view name : args.subspan(2)) {
      if (name == "default") {
        AppendError(out, proto::kDefaultUserUndeletable);
        return CommandStatus::kDone;
      }
    }
    int64_t removed = 0;
    std::vector<std::string> gone;
    for (std::string_view name : args.subspan(2)) {
      if (state_.users.Remove(name)) {
        ++removed;
        gone.emplace_back(name);
      }
    }
    AppendInteger(out, removed);
    DisconnectUsers(client, std::move(gone), nullptr);
  } else {
    AppendError(out, proto::UnknownSubcommandError("ACL", sub));
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Hello(RespClient& client, Args args, std::string& out,
                                  AsyncReplyTarget&) {
  // HELLO [protover [AUTH username password] [SETNAME clientname]]
  int64_t ver = 2;
  if (args.size() >= 2) {
    if (!proto::ParseInt64(args[1], &ver)) {
      AppendError(out, proto::kProtocolVersionNotInteger);
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
      if (!LogIn(client, args[i + 1], args[i + 2])) {
        AppendError(out, proto::kWrongPass);
        return CommandStatus::kDone;
      }
      i += 2;
    } else if (EqualsIgnoreCase(args[i], "setname") && i + 1 < args.size()) {
      setname = args[++i];
      have_setname = true;
    } else {
      AppendError(out, proto::HelloOptionError(args[i]));
      return CommandStatus::kDone;
    }
  }
  if (!client.authenticated) {
    AppendError(out, proto::kHelloNoAuth);
    return CommandStatus::kDone;
  }
  if (have_setname) client.name = std::string(setname);
  // HELLO without a version keeps the connection's protocol; with one, switches to it.
  if (args.size() >= 2) client.resp = static_cast<int>(ver);
  if (client.subscriber != nullptr) client.subscriber->set_resp(client.resp);
  proto::AppendMap(out, 7, client.resp);
  AppendBulk(out, "server");
  AppendBulk(out, "corral");
  AppendBulk(out, "version");
  AppendBulk(out, kCompatVersion);
  AppendBulk(out, "proto");
  AppendInteger(out, client.resp);
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

size_t RespCommands::ArgvMem(Args args) {
  size_t bytes = 0;
  for (std::string_view arg : args) bytes += arg.size();
  return bytes;
}

std::string RespCommands::ClientInfoLine(const RespClient& client, std::string_view sub,
                                         size_t argv_mem) const {
  std::time_t now = std::time(nullptr);
  // Redis 7.0's flags (networking.c catClientInfoString), in its order, for the states corral
  // has: P subscribed, x in MULTI, t tracking, B broadcast tracking, d a WATCHed key changed,
  // c closing after this reply, e no-evict; N for none.
  std::string flags;
  if (client.subscribed()) flags += 'P';
  if (client.multi != nullptr) flags += 'x';
  if (client.tracking != RespClient::Tracking::kOff) flags += 't';
  if (client.tracking == RespClient::Tracking::kBcast) flags += 'B';
  if (client.watch != nullptr && client.watch->dirty()) flags += 'd';
  if (client.close_after_reply) flags += 'c';
  if (client.no_evict) flags += 'e';
  if (flags.empty()) flags = "N";
  size_t sub_count = 0, psub = 0;
  if (client.subscriber != nullptr) {
    sub_count = state_.pubsub.Channels(*client.subscriber).size();
    psub = state_.pubsub.Patterns(*client.subscriber).size();
  }
  const int64_t multi =
      client.multi != nullptr ? static_cast<int64_t>(client.multi->queued.size()) : -1;
  size_t multi_mem = 0;
  if (client.multi != nullptr) {
    for (const auto& command : client.multi->queued) {
      for (const std::string& arg : command) multi_mem += arg.size();
    }
  }
  std::unique_ptr<TrackingOptions> tracking;
  if (client.tracking != RespClient::Tracking::kOff)
    tracking = state_.tracking.OptionsOf(client.id);
  const RespClient::Buffers& b = client.buffers;
  // The command's name as Redis shows it: a container's with the subcommand it ran
  // ("client|list": `sub` for the caller's own line, else the one it last ran).
  std::string cmd = client.cmd != nullptr ? std::string(client.cmd->name) : "NULL";
  if (sub.empty() && client.cmd != nullptr && client.cmd->has_subcommands()) sub = client.cmd_sub;
  if (!sub.empty()) {
    cmd += '|';
    for (char c : sub) cmd += AsciiLower(c);
  }
  std::string line =
      "id=" + std::to_string(client.id) + " addr=" + client.addr + " laddr=" + client.laddr +
      " fd=" + std::to_string(b.fd) + " name=" + client.name +
      " age=" + std::to_string(now - client.created_unix) +
      " idle=" + std::to_string(now - client.last_command_unix) + " flags=" + flags +
      " db=0 sub=" + std::to_string(sub_count) + " psub=" + std::to_string(psub) +
      " ssub=0 multi=" + std::to_string(multi) + " qbuf=" + std::to_string(b.qbuf) +
      " qbuf-free=" + std::to_string(b.qbuf_free) + " argv-mem=" + std::to_string(argv_mem) +
      " multi-mem=" + std::to_string(multi_mem) + " rbs=" + std::to_string(b.rbs) +
      " rbp=" + std::to_string(b.rbp) + " obl=" + std::to_string(b.obl) +
      " oll=0 omem=" + std::to_string(b.omem) +
      " tot-mem=" + std::to_string(b.own + b.rbs + multi_mem + argv_mem) +
      " events=" + (b.writing ? "rw" : "r") + " cmd=" + cmd +
      " user=" + (client.user != nullptr ? client.user->name : std::string("default")) + " redir=" +
      std::to_string(tracking != nullptr ? static_cast<int64_t>(tracking->redirect) : -1) +
      " resp=" + std::to_string(client.resp) + " lib-name=" + client.lib_name +
      " lib-ver=" + client.lib_ver + "\n";
  return line;
}

CommandStatus RespCommands::Client(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget& target) {
  std::string_view sub = args[1];
  if (TrackingSubcommand(client, args, out, target)) return CommandStatus::kDone;
  if (EqualsIgnoreCase(sub, "list")) return ClientList(client, args, out, target);
  if (EqualsIgnoreCase(sub, "kill")) return ClientKill(client, args, out, target);
  if (EqualsIgnoreCase(sub, "no-evict")) return ClientNoEvict(client, args, out, target);
  if (EqualsIgnoreCase(sub, "setname") && args.size() == 3) {
    for (char c : args[2]) {
      if (c < '!' || c > '~') {
        AppendError(out, proto::kBadClientName);
        return CommandStatus::kDone;
      }
    }
    client.name = std::string(args[2]);
    AppendSimple(out, proto::kOk);
  } else if (EqualsIgnoreCase(sub, "getname") && args.size() == 2) {
    if (client.name.empty()) {
      AppendNil(out, client.resp);
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
      AppendError(out, proto::UnrecognizedOptionError(args[2]));
      return CommandStatus::kDone;
    }
    AppendSimple(out, proto::kOk);
  } else if (EqualsIgnoreCase(sub, "info") && args.size() == 2) {
    target.DescribeBuffers(client.buffers);
    proto::AppendText(out, ClientInfoLine(client, sub, ArgvMem(args)), client.resp);
  } else if (EqualsIgnoreCase(sub, "reply") && args.size() == 3) {
    // The session drops the replies (not the pushes) while the mode is not kOn; OFF and SKIP
    // have none of their own, ON answers OK (Redis's clientCommand).
    if (EqualsIgnoreCase(args[2], "on")) {
      client.reply = RespClient::Reply::kOn;
      AppendSimple(out, proto::kOk);
    } else if (EqualsIgnoreCase(args[2], "off")) {
      client.reply = RespClient::Reply::kOff;
    } else if (EqualsIgnoreCase(args[2], "skip")) {
      if (client.reply != RespClient::Reply::kOff) client.reply = RespClient::Reply::kSkipNext;
    } else {
      AppendError(out, proto::kSyntaxError);
    }
  } else if (EqualsIgnoreCase(sub, "setname") || EqualsIgnoreCase(sub, "getname") ||
             EqualsIgnoreCase(sub, "id") || EqualsIgnoreCase(sub, "setinfo") ||
             EqualsIgnoreCase(sub, "info") || EqualsIgnoreCase(sub, "reply")) {
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
    AppendSimple(out, proto::kOk);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Quit(RespClient&, Args, std::string& out, AsyncReplyTarget&) {
  AppendSimple(out, proto::kOk);
  return CommandStatus::kClose;
}

namespace {

// Redis 7.0's names for the CommandFlag and AclCategory bits, in the order Redis lists them.
constexpr std::pair<uint32_t, std::string_view> kFlagNames[] = {
    {kCmdWrite, "write"},     {kCmdReadonly, "readonly"}, {kCmdDenyOom, "denyoom"},
    {kCmdAdmin, "admin"},     {kCmdPubSub, "pubsub"},     {kCmdNoScript, "noscript"},
    {kCmdLoading, "loading"}, {kCmdStale, "stale"},       {kCmdFast, "fast"},
    {kCmdNoAuth, "no_auth"},
};
constexpr std::pair<uint32_t, std::string_view> kAclNames[] = {
    {kAclKeyspace, "@keyspace"},
    {kAclRead, "@read"},
    {kAclWrite, "@write"},
    {kAclString, "@string"},
    {kAclPubSub, "@pubsub"},
    {kAclAdmin, "@admin"},
    {kAclFast, "@fast"},
    {kAclSlow, "@slow"},
    {kAclDangerous, "@dangerous"},
    {kAclConnection, "@connection"},
    {kAclTransaction, "@transaction"},
    {kAclScripting, "@scripting"},
};

// A RESP2 set of the status names of the bits in `bits`.
template <size_t N>
void AppendBitNames(std::string& out, uint32_t bits,
                    const std::pair<uint32_t, std::string_view> (&names)[N]) {
  size_t n = 0;
  for (const auto& [bit, name] : names) n += (bits & bit) ? 1 : 0;
  AppendArrayHeader(out, n);
  for (const auto& [bit, name] : names) {
    if (bits & bit) AppendSimple(out, name);
  }
}

// Redis 7.0's key specs (a RESP2 map is a flat array), derived from the legacy key positions:
// one range spec, read-only access for readonly commands, read-write update otherwise.
void AppendKeySpecs(std::string& out, const CommandSpec& c) {
  if (c.first_key == 0) {
    AppendArrayHeader(out, 0);
    return;
  }
  AppendArrayHeader(out, 1);
  AppendArrayHeader(out, 6);
  AppendBulk(out, "flags");
  AppendArrayHeader(out, 2);
  bool readonly = (c.flags & kCmdReadonly) != 0;
  AppendSimple(out, readonly ? "RO" : "RW");
  AppendSimple(out, readonly ? "access" : "update");
  AppendBulk(out, "begin_search");
  AppendArrayHeader(out, 4);
  AppendBulk(out, "type");
  AppendBulk(out, "index");
  AppendBulk(out, "spec");
  AppendArrayHeader(out, 2);
  AppendBulk(out, "index");
  AppendInteger(out, c.first_key);
  AppendBulk(out, "find_keys");
  AppendArrayHeader(out, 4);
  AppendBulk(out, "type");
  AppendBulk(out, "range");
  AppendBulk(out, "spec");
  AppendArrayHeader(out, 6);
  AppendBulk(out, "lastkey");
  AppendInteger(out, c.last_key < 0 ? c.last_key : c.last_key - c.first_key);
  AppendBulk(out, "keystep");
  AppendInteger(out, c.key_step);
  AppendBulk(out, "limit");
  AppendInteger(out, 0);
}

// One COMMAND / COMMAND INFO element in Redis 7.0's shape: name, arity, flags, first key, last
// key, step, ACL categories, tips, key specs, subcommands.
void AppendCommandInfo(std::string& out, const CommandSpec& c) {
  AppendArrayHeader(out, 10);
  AppendBulk(out, c.name);
  AppendInteger(out, c.arity);
  AppendBitNames(out, c.flags, kFlagNames);
  AppendInteger(out, c.first_key);
  AppendInteger(out, c.last_key);
  AppendInteger(out, c.key_step);
  AppendBitNames(out, c.acl_categories(), kAclNames);
  AppendArrayHeader(out, 0);  // tips
  AppendKeySpecs(out, c);
  AppendArrayHeader(out, 0);  // subcommands
}

// One COMMAND DOCS entry: the name, then its doc map (summary, since, group): a RESP3 map, or
// a flat array in RESP2.
void AppendCommandDocs(std::string& out, const CommandSpec& c, int resp) {
  AppendBulk(out, c.name);
  proto::AppendMap(out, 3, resp);
  AppendBulk(out, "summary");
  AppendBulk(out, c.summary);
  AppendBulk(out, "since");
  AppendBulk(out, kCorralVersion);
  AppendBulk(out, "group");
  AppendBulk(out, c.group);
}

}  // namespace

CommandStatus RespCommands::Command(RespClient& client, Args args, std::string& out,
                                    AsyncReplyTarget&) {
  std::span<const CommandSpec> table = Table();
  if (args.size() == 1) {
    AppendArrayHeader(out, table.size());
    for (const CommandSpec& c : table) AppendCommandInfo(out, c);
  } else if (EqualsIgnoreCase(args[1], "count") && args.size() == 2) {
    AppendInteger(out, static_cast<int64_t>(table.size()));
  } else if (EqualsIgnoreCase(args[1], "info")) {
    // COMMAND INFO with no name lists every command, as COMMAND does (Redis 7.0).
    if (args.size() == 2) {
      AppendArrayHeader(out, table.size());
      for (const CommandSpec& c : table) AppendCommandInfo(out, c);
      return CommandStatus::kDone;
    }
    AppendArrayHeader(out, args.size() - 2);
    for (size_t i = 2; i < args.size(); ++i) {
      if (const CommandSpec* c = Find(args[i])) {
        AppendCommandInfo(out, *c);
      } else {
        proto::AppendNullArray(out);
      }
    }
  } else if (EqualsIgnoreCase(args[1], "docs")) {
    // A map of name to docs; unknown names are left out (Redis 7.0). redis-cli builds its
    // command hints from it.
    if (args.size() == 2) {
      proto::AppendMap(out, table.size(), client.resp);
      for (const CommandSpec& c : table) AppendCommandDocs(out, c, client.resp);
      return CommandStatus::kDone;
    }
    std::vector<const CommandSpec*> found;
    for (size_t i = 2; i < args.size(); ++i) {
      if (const CommandSpec* c = Find(args[i])) found.push_back(c);
    }
    proto::AppendMap(out, found.size(), client.resp);
    for (const CommandSpec* c : found) AppendCommandDocs(out, *c, client.resp);
  } else {
    AppendError(out, proto::UnknownSubcommandError("COMMAND", args[1]));
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Config(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
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
      {"maxmemory", std::to_string(state_.cache.store().max_bytes())},
      {"maxmemory-policy",
       std::string(NameOf(state_.maxmemory_policy.load(std::memory_order_relaxed)))},
      {"maxclients", std::to_string(cfg.shedding.max_clients)},
      {"proto-max-bulk-len", std::to_string(cfg.resp_options.proto_max_bulk_len)},
      {"client-query-buffer-limit", std::to_string(cfg.resp_options.max_query_buffer)},
      {"timeout", std::to_string(cfg.resp_options.idle_timeout_s)},
      {"tracking-table-max-keys", std::to_string(state_.tracking.max_keys())},
      {"notify-keyspace-events", KeyspaceEventsText(state_.keyspace_events.flags())},
      {"port", std::to_string(state_.resp_port)},
      {"bind", cfg.resp.host},
      {"io-threads", std::to_string(cfg.threads)},
      {"slowlog-log-slower-than", std::to_string(state_.command_log.slower_than_us())},
      {"slowlog-max-len", std::to_string(state_.command_log.max_len())},
      {"latency-monitor-threshold", std::to_string(state_.command_log.latency_threshold_ms())},
      {"latency-tracking", state_.command_log.latency_tracking() ? "yes" : "no"},
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
  proto::AppendMap(out, matched.size(), client.resp);
  for (const auto* p : matched) {
    AppendBulk(out, p->first);
    AppendBulk(out, p->second);
  }
  return CommandStatus::kDone;
}

namespace {
// Redis's memtoull: a byte count with an optional unit (k = 1000, kb = 1024, ..., gb), any case.
std::optional<int64_t> ParseMemory(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  int64_t n;
  if (digits == 0 || !proto::ParseInt64(text.substr(0, digits), &n)) return std::nullopt;
  const std::string_view unit = text.substr(digits);
  static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
      {"", 1},        {"b", 1},        {"k", 1000},       {"kb", 1024},
      {"m", 1000000}, {"mb", 1 << 20}, {"g", 1000000000}, {"gb", int64_t{1} << 30}};
  for (const auto& [name, scale] : kUnits) {
    if (EqualsIgnoreCase(unit, name)) {
      if (n > INT64_MAX / scale) return std::nullopt;
      return n * scale;
    }
  }
  return std::nullopt;
}
}  // namespace

CommandStatus RespCommands::ConfigSet(Args args, std::string& out) {
  // CONFIG SET namespace.<ns>.<max_inflight_loads|max_loads_per_s|blocked> <value> [...]:
  // load-shedding knobs changed at run time, without a restart (SPEC rule 8); Redis's maxmemory,
  // maxmemory-policy and notify-keyspace-events; and Redis's
  // tracking-table-max-keys (0: no bound).
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
  std::optional<int64_t> tracking_max_keys;
  std::optional<uint32_t> keyspace_events;
  std::optional<int64_t> max_bytes;
  std::optional<int64_t> slower_than, slowlog_max_len, latency_threshold;
  std::optional<MaxmemoryPolicy> maxmemory_policy;
  std::optional<bool> latency_tracking;
  for (size_t i = 2; i < args.size(); i += 2) {
    std::string_view name = args[i], value = args[i + 1];
    auto bad = [&](std::string_view why) {
      AppendError(out, proto::ConfigSetError(name, why));
      return CommandStatus::kDone;
    };
    // SLOWLOG's and LATENCY's thresholds, with Redis's ranges and texts.
    struct Ranged {
      std::string_view name;
      int64_t min;
      std::optional<int64_t>* into;
    };
    const Ranged ranged[] = {{"slowlog-log-slower-than", -1, &slower_than},
                             {"slowlog-max-len", 0, &slowlog_max_len},
                             {"latency-monitor-threshold", 0, &latency_threshold}};
    const Ranged* r = std::find_if(std::begin(ranged), std::end(ranged),
                                   [&](const Ranged& r) { return EqualsIgnoreCase(name, r.name); });
    if (r != std::end(ranged)) {
      int64_t v;
      if (!proto::ParseInt64(value, &v)) return bad(proto::kConfigNotInteger);
      if (v < r->min) {
        return bad(proto::ConfigRangeError(r->min));
      }
      *r->into = v;
      continue;
    }
    if (EqualsIgnoreCase(name, "latency-tracking")) {
      // Redis's boolean config: yes or no, any case.
      if (EqualsIgnoreCase(value, "yes")) {
        latency_tracking = true;
      } else if (EqualsIgnoreCase(value, "no")) {
        latency_tracking = false;
      } else {
        return bad("argument must be 'yes' or 'no'");
      }
      continue;
    }
    if (EqualsIgnoreCase(name, "tracking-table-max-keys")) {
      int64_t v;
      if (!proto::ParseInt64(value, &v) || v < 0) return bad("argument must be an integer >= 0");
      tracking_max_keys = v;
      continue;
    }
    if (EqualsIgnoreCase(name, "maxmemory")) {
      max_bytes = ParseMemory(value);
      if (!max_bytes) return bad("argument must be a memory value");
      continue;
    }
    if (EqualsIgnoreCase(name, "maxmemory-policy")) {
      maxmemory_policy = ParseMaxmemoryPolicy(value);
      if (!maxmemory_policy) return bad(kBadMaxmemoryPolicy);
      continue;
    }
    if (EqualsIgnoreCase(name, "notify-keyspace-events")) {
      keyspace_events = ParseKeyspaceEvents(value);
      if (!keyspace_events) return bad(proto::kBadKeyspaceEvents);
      continue;
    }
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
  if (tracking_max_keys) state_.tracking.SetMaxKeys(static_cast<size_t>(*tracking_max_keys));
  if (keyspace_events) state_.keyspace_events.set_flags(*keyspace_events);
  if (slower_than) state_.command_log.SetSlowerThanUs(*slower_than);
  if (slowlog_max_len) state_.command_log.SetMaxLen(static_cast<size_t>(*slowlog_max_len));
  if (latency_threshold) state_.command_log.SetLatencyThresholdMs(*latency_threshold);
  if (latency_tracking) state_.command_log.SetLatencyTracking(*latency_tracking);
  // Two CONFIG SETs of the memory settings at once apply one after the other, so that the name
  // reported is the store's policy. Not on any command's path but CONFIG SET's.
  static std::mutex memory_mu;
  std::lock_guard<std::mutex> memory_lock(memory_mu);
  if (maxmemory_policy) {
    // Before maxmemory: "noeviction maxmemory 1" evicts nothing. The algorithm first, so that
    // turning eviction on evicts by the new one (docs/protocol.md "Memory").
    state_.maxmemory_policy.store(*maxmemory_policy, std::memory_order_relaxed);
    if (auto algorithm = AlgorithmOf(*maxmemory_policy)) state_.cache.store().SetPolicy(*algorithm);
    state_.cache.store().SetEvict(Evicts(*maxmemory_policy));
  }
  if (max_bytes) {
    // 0 is Redis's "no bound"; corral always has one (a cache without a bound grows until the
    // kernel kills it), so 0 goes back to the configured memory.max_bytes.
    state_.cache.store().SetMaxBytes(
        static_cast<size_t>(*max_bytes == 0 ? state_.config.memory.max_bytes : *max_bytes));
  }
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

std::string RespCommands::Info(const std::vector<std::string_view>& sections) const {
  // Rendered by metrics.cc, with /metrics and /v1/stats.
  MetricSources sources = MetricSourcesOf(state_);
  sources.redis_version = kCompatVersion;
  sources.corral_version = kCorralVersion;
  sources.corral_commit = BuildCommit();
  std::span<const CommandSpec> table = Table();
  for (size_t i = 0; i < table.size(); ++i) {
    const CallCounts& counts = call_counts_[i];
    MetricSources::CommandCalls c{table[i].name, counts.calls.Value(),
                                  counts.rejected.load(std::memory_order_relaxed),
                                  counts.failed.Value()};
    if (c.calls + c.rejected > 0) sources.command_calls.push_back(c);
  }
  return RenderInfo(sources, sections);
}

CommandStatus RespCommands::InfoCmd(RespClient& client, Args args, std::string& out,
                                    AsyncReplyTarget&) {
  proto::AppendText(out, Info(std::vector<std::string_view>(args.begin() + 1, args.end())),
                    client.resp);
  return CommandStatus::kDone;
}

}  // namespace corral::server

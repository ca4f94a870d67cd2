// SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB and RESET
// (docs/protocol.md "Pub/sub"), with Redis 7.0's replies (pubsub.c, networking.c resetCommand).
#include <string>
#include <vector>

#include "cache-server/resp_commands.h"
#include "cache-server/resp_util.h"
#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendSimple;

namespace {

// [kind, name, count]: what (P)(UN)SUBSCRIBE answers for each name, a RESP3 push or a RESP2 array;
// a null name (UNSUBSCRIBE with nothing subscribed) is RESP2's null bulk or RESP3's null.
void AppendSubscription(std::string& out, int resp, std::string_view kind, const std::string* name,
                        size_t count) {
  if (resp >= 3) {
    proto::AppendPushHeader(out, 3);
  } else {
    AppendArrayHeader(out, 3);
  }
  AppendBulk(out, kind);
  if (name != nullptr) {
    AppendBulk(out, *name);
  } else {
    proto::AppendNil(out, resp);
  }
  AppendInteger(out, static_cast<int64_t>(count));
}

}  // namespace

CommandStatus RespCommands::Subscribe(RespClient& client, Args args, std::string& out,
                                      AsyncReplyTarget& target) {
  const bool patterns = client.cmd->param == 1;
  if (client.subscriber == nullptr) {
    std::shared_ptr<PushTarget> pusher = target.Pusher();
    if (pusher == nullptr) {
      AppendError(out, proto::kSubscribeUnavailable);
      return CommandStatus::kDone;
    }
    client.subscriber = std::make_unique<Subscriber>(state_.pubsub, pusher);
  }
  client.subscriber->set_resp(client.resp);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string name(args[i]);
    size_t count = patterns ? state_.pubsub.PSubscribe(*client.subscriber, name)
                            : state_.pubsub.Subscribe(*client.subscriber, name);
    AppendSubscription(out, client.resp, patterns ? "psubscribe" : "subscribe", &name, count);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Unsubscribe(RespClient& client, Args args, std::string& out,
                                        AsyncReplyTarget&) {
  const bool patterns = client.cmd->param == 1;
  const std::string_view kind = patterns ? "punsubscribe" : "unsubscribe";
  std::vector<std::string> names;
  if (args.size() > 1) {
    names.assign(args.begin() + 1, args.end());
  } else if (client.subscriber != nullptr) {
    names = patterns ? state_.pubsub.Patterns(*client.subscriber)
                     : state_.pubsub.Channels(*client.subscriber);
  }
  if (names.empty()) {
    // Nothing to leave: one reply with a null name.
    AppendSubscription(out, client.resp, kind, nullptr,
                       client.subscriber == nullptr ? 0 : client.subscriber->count());
    return CommandStatus::kDone;
  }
  for (const std::string& name : names) {
    size_t count = 0;
    if (client.subscriber != nullptr) {
      count = patterns ? state_.pubsub.PUnsubscribe(*client.subscriber, name)
                       : state_.pubsub.Unsubscribe(*client.subscriber, name);
    }
    AppendSubscription(out, client.resp, kind, &name, count);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Publish(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  // The count is this node's receivers, as Redis Cluster counts its own node's.
  AppendInteger(out, state_.pubsub.Publish(args[1], args[2]));
  if (state_.publish_to_fleet) state_.publish_to_fleet(args[1], args[2]);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::PubSubCmd(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  std::string_view sub = args[1];
  if (EqualsIgnoreCase(sub, "channels") && args.size() <= 3) {
    std::vector<std::string> names =
        state_.pubsub.ActiveChannels(args.size() == 3 ? args[2] : std::string_view());
    AppendArrayHeader(out, names.size());
    for (const std::string& n : names) AppendBulk(out, n);
  } else if (EqualsIgnoreCase(sub, "numsub")) {
    AppendArrayHeader(out, (args.size() - 2) * 2);
    for (size_t i = 2; i < args.size(); ++i) {
      AppendBulk(out, args[i]);
      AppendInteger(out, state_.pubsub.NumSub(args[i]));
    }
  } else if (EqualsIgnoreCase(sub, "numpat") && args.size() == 2) {
    AppendInteger(out, state_.pubsub.NumPat());
  } else if (EqualsIgnoreCase(sub, "shardchannels") && args.size() <= 3) {
    AppendArrayHeader(out, 0);  // corral has no shard channels (SSUBSCRIBE)
  } else if (EqualsIgnoreCase(sub, "shardnumsub")) {
    AppendArrayHeader(out, (args.size() - 2) * 2);
    for (size_t i = 2; i < args.size(); ++i) {
      AppendBulk(out, args[i]);
      AppendInteger(out, 0);
    }
  } else if (EqualsIgnoreCase(sub, "help") && args.size() == 2) {
    static constexpr std::string_view kHelp[] = {
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "HELP",
        "    Print this help."};
    AppendArrayHeader(out, std::size(kHelp));
    for (std::string_view line : kHelp) AppendSimple(out, line);
  } else {
    AppendError(out, proto::UnknownSubcommandError("PUBSUB", sub));
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Reset(RespClient& client, Args, std::string& out, AsyncReplyTarget&) {
  // Redis's clearClientConnectionState: out of MULTI, nothing watched or subscribed, RESP2, no
  // name, and logged in as the default user only if it needs no password.
  client.multi.reset();
  client.watch.reset();
  client.subscriber.reset();
  if (client.tracking != RespClient::Tracking::kOff) state_.tracking.Disable(client.id);
  client.tracking = RespClient::Tracking::kOff;
  client.caching_next = false;
  client.resp = 2;
  client.name.clear();
  client.written = 0;
  client.users_generation = state_.users.generation();
  client.user = state_.users.DefaultIsOpen() ? state_.users.Find("default") : nullptr;
  client.authenticated = client.user != nullptr;
  AppendSimple(out, "RESET");
  return CommandStatus::kDone;
}

}  // namespace corral::server

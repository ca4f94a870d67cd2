// CLIENT TRACKING, CLIENT CACHING, CLIENT GETREDIR and CLIENT TRACKINGINFO (docs/protocol.md
// "Client tracking"), with Redis 7.0's options, checks and error texts (networking.c).
#include <algorithm>
#include <string>
#include <vector>

#include "cache-server/resp_commands.h"
#include "cache-server/resp_util.h"
#include "lease/clock.h"
#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendSimple;
using Tracking = RespClient::Tracking;

namespace {

// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP]: the
// options, or false with the error in `out`.
bool ParseTracking(Args args, const ClientRegistry& clients, TrackingOptions& o, std::string& out) {
  bool redirect_seen = false;
  for (size_t j = 3; j < args.size(); ++j) {
    const bool more = j + 1 < args.size();
    if (EqualsIgnoreCase(args[j], "redirect") && more) {
      ++j;
      if (redirect_seen) {
        AppendError(out, proto::kTrackingOneRedirect);
        return false;
      }
      int64_t id = 0;
      if (!proto::ParseInt64(args[j], &id)) {
        AppendError(out, proto::kNotInteger);
        return false;
      }
      if (id <= 0 || clients.Find(static_cast<uint64_t>(id)) == nullptr) {
        AppendError(out, proto::kTrackingNoSuchClient);
        return false;
      }
      redirect_seen = true;
      o.redirect = static_cast<uint64_t>(id);
    } else if (EqualsIgnoreCase(args[j], "bcast")) {
      o.bcast = true;
    } else if (EqualsIgnoreCase(args[j], "optin")) {
      o.optin = true;
    } else if (EqualsIgnoreCase(args[j], "optout")) {
      o.optout = true;
    } else if (EqualsIgnoreCase(args[j], "noloop")) {
      o.noloop = true;
    } else if (EqualsIgnoreCase(args[j], "prefix") && more) {
      o.prefixes.emplace_back(args[++j]);
    } else {
      AppendError(out, proto::kSyntaxError);
      return false;
    }
  }
  return true;
}

// BCAST prefixes may not overlap, neither the connection's existing ones (from an earlier
// CLIENT TRACKING ON BCAST, "" when it gave none) nor each other (Redis's
// checkPrefixCollisionsOrReply).
bool PrefixesCollide(const std::vector<std::string>& existing,
                     const std::vector<std::string>& prefixes, std::string& out) {
  for (size_t i = 0; i < prefixes.size(); ++i) {
    for (const std::string& old : existing) {
      if (old.starts_with(prefixes[i]) || prefixes[i].starts_with(old)) {
        AppendError(out, proto::TrackingPrefixOverlapsExisting(prefixes[i], old));
        return true;
      }
    }
    for (size_t j = i + 1; j < prefixes.size(); ++j) {
      const std::string& a = prefixes[i];
      const std::string& b = prefixes[j];
      if (a.starts_with(b) || b.starts_with(a)) {
        AppendError(out, proto::TrackingPrefixCollision(a, b));
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> RespCommands::ExistingPrefixes(const RespClient& client) const {
  if (client.tracking != Tracking::kBcast) return {};
  std::unique_ptr<TrackingOptions> o = state_.tracking.OptionsOf(client.id);
  return o == nullptr ? std::vector<std::string>() : o->prefixes;
}

bool RespCommands::TrackingSubcommand(RespClient& client, Args args, std::string& out,
                                      AsyncReplyTarget& target) {
  std::string_view sub = args[1];
  if (EqualsIgnoreCase(sub, "tracking") && args.size() >= 3) {
    TrackingOptions o;
    if (!ParseTracking(args, state_.clients, o, out)) return true;
    if (EqualsIgnoreCase(args[2], "off")) {
      state_.tracking.Disable(client.id);
      client.tracking = Tracking::kOff;
      client.caching_next = false;
      AppendSimple(out, proto::kOk);
      return true;
    }
    if (!EqualsIgnoreCase(args[2], "on")) {
      AppendError(out, proto::kSyntaxError);
      return true;
    }
    const bool tracking = client.tracking != Tracking::kOff;
    if (!o.bcast && !o.prefixes.empty()) {
      AppendError(out, proto::kTrackingPrefixNeedsBcast);
    } else if (tracking && (client.tracking == Tracking::kBcast) != o.bcast) {
      AppendError(out, proto::kTrackingBcastSwitch);
    } else if (o.bcast && (o.optin || o.optout)) {
      AppendError(out, proto::kTrackingOptWithBcast);
    } else if (o.optin && o.optout) {
      AppendError(out, proto::kTrackingOptInAndOut);
    } else if ((o.optin && client.tracking == Tracking::kOptOut) ||
               (o.optout && client.tracking == Tracking::kOptIn)) {
      AppendError(out, proto::kTrackingOptSwitch);
    } else if (o.bcast && PrefixesCollide(ExistingPrefixes(client), o.prefixes, out)) {
      // the error is in `out`
    } else {
      // BCAST again adds its prefixes to those the connection has (Redis's enableTracking);
      // without a prefix, it is told of every key (the prefix "").
      if (o.bcast) {
        std::vector<std::string> prefixes = ExistingPrefixes(client);
        if (o.prefixes.empty()) o.prefixes.emplace_back();
        for (std::string& p : o.prefixes) {
          if (std::find(prefixes.begin(), prefixes.end(), p) == prefixes.end())
            prefixes.push_back(std::move(p));
        }
        o.prefixes = std::move(prefixes);
      }
      std::shared_ptr<PushTarget> self = target.Pusher();
      if (self == nullptr) {
        AppendError(out, proto::kSubscribeUnavailable);
        return true;
      }
      client.tracking = o.bcast    ? Tracking::kBcast
                        : o.optin  ? Tracking::kOptIn
                        : o.optout ? Tracking::kOptOut
                                   : Tracking::kDefault;
      client.caching_next = false;
      state_.tracking.Enable(client.id, self, std::move(o));
      AppendSimple(out, proto::kOk);
    }
    return true;
  }
  if (EqualsIgnoreCase(sub, "caching") && args.size() >= 3) {
    if (client.tracking == Tracking::kOff) {
      AppendError(out, proto::kCachingWithoutTracking);
    } else if (EqualsIgnoreCase(args[2], "yes")) {
      if (client.tracking != Tracking::kOptIn) {
        AppendError(out, proto::kCachingYesNeedsOptIn);
        return true;
      }
      client.caching_next = true;
      AppendSimple(out, proto::kOk);
    } else if (EqualsIgnoreCase(args[2], "no")) {
      if (client.tracking != Tracking::kOptOut) {
        AppendError(out, proto::kCachingNoNeedsOptOut);
        return true;
      }
      client.caching_next = true;
      AppendSimple(out, proto::kOk);
    } else {
      AppendError(out, proto::kSyntaxError);
    }
    return true;
  }
  if (EqualsIgnoreCase(sub, "getredir") && args.size() == 2) {
    std::unique_ptr<TrackingOptions> o = state_.tracking.OptionsOf(client.id);
    AppendInteger(out, o == nullptr ? -1 : static_cast<int64_t>(o->redirect));
    return true;
  }
  if (EqualsIgnoreCase(sub, "trackinginfo") && args.size() == 2) {
    std::unique_ptr<TrackingOptions> o = state_.tracking.OptionsOf(client.id);
    std::vector<std::string_view> flags = {o != nullptr ? "on" : "off"};
    if (o != nullptr) {
      if (o->bcast) flags.push_back("bcast");
      if (o->optin) flags.push_back("optin");
      if (o->optin && client.caching_next) flags.push_back("caching-yes");
      if (o->optout) flags.push_back("optout");
      if (o->optout && client.caching_next) flags.push_back("caching-no");
      if (o->noloop) flags.push_back("noloop");
      if (o->redirect != 0 && state_.clients.Find(o->redirect) == nullptr) {
        flags.push_back("broken_redirect");
      }
    }
    proto::AppendMap(out, 3, client.resp);
    AppendBulk(out, "flags");
    proto::AppendSet(out, flags.size(), client.resp);
    for (std::string_view f : flags) AppendBulk(out, f);
    AppendBulk(out, "redirect");
    AppendInteger(out, o == nullptr ? -1 : static_cast<int64_t>(o->redirect));
    AppendBulk(out, "prefixes");
    AppendArrayHeader(out, o == nullptr ? 0 : o->prefixes.size());
    if (o != nullptr) {
      for (const std::string& p : o->prefixes) AppendBulk(out, p);
    }
    return true;
  }
  return false;
}

void RespCommands::Track(RespClient& client, const CommandSpec& spec, Args args) {
  // CLIENT CACHING answers for the command after it.
  if (spec.handler == &RespCommands::Client && args.size() > 1 &&
      EqualsIgnoreCase(args[1], "caching")) {
    return;
  }
  const bool caching_next = client.caching_next;
  const bool read_stale = client.read_stale;
  client.caching_next = client.read_stale = false;
  if (!(spec.flags & kCmdReadonly) || spec.first_key <= 0) return;
  switch (client.tracking) {
    case Tracking::kDefault:
      break;
    case Tracking::kOptIn:
      if (!caching_next) return;
      break;
    case Tracking::kOptOut:
      if (caching_next) return;
      break;
    case Tracking::kOff:
      return;
    case Tracking::kBcast:
      // Told of every write by prefix anyway; what it cannot be told by prefix alone is that a
      // read-through value it was answered stops being fresh, or was served stale.
      spec.EveryKey(args, [&](std::string_view key) {
        if (!IsNamespaceKey(key)) return true;
        if (read_stale) {
          state_.tracking.Invalidate(key, 0);
        } else {
          const lease::Millis pttl = state_.cache.store().Pttl(key);
          state_.tracking.RememberFreshEnd(client.id, key, pttl > 0 ? TrackingNowMs() + pttl : 0);
        }
        return true;
      });
      return;
  }
  spec.EveryKey(args, [&](std::string_view key) {
    // A read-through value answered fresh: its reader is told when it stops being fresh too.
    int64_t fresh_until = 0;
    if (!read_stale && IsNamespaceKey(key)) {
      const lease::Millis pttl = state_.cache.store().Pttl(key);
      if (pttl > 0) fresh_until = TrackingNowMs() + pttl;
    }
    state_.tracking.Remember(client.id, key, fresh_until);
    // A stale answer: the key's fresh time is over, so it has changed as far as a near cache
    // should know (the reply goes out first).
    if (read_stale) state_.tracking.Invalidate(key, 0);
    return true;
  });
}

int64_t RespCommands::TrackingNowMs() { return lease::SteadyClock().NowMs(); }

void RespCommands::TellFreshTimeOver() {
  if (!state_.tracking.active()) return;
  const int64_t now = TrackingNowMs();
  for (const std::string& key : state_.tracking.TakeFreshTimeOver(now)) {
    const lease::Millis pttl = state_.cache.store().Pttl(key);
    if (pttl > 0) {
      state_.tracking.SetFreshUntil(key, now + pttl);  // filled again (an early refresh)
    } else {
      state_.tracking.Invalidate(key, 0);  // stale now (or gone)
    }
  }
}

}  // namespace corral::server

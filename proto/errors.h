// Every RESP reply text corral writes (Redis 7.0's exact error and status texts, and corral's own
// BUSY/upstream texts), so that clients that match on them see the same bytes; and Redis's strict
// integer parsing (string2ll) that commands and the RESP parser share.
// Error strings exclude the leading '-' and the trailing CRLF: pass them to AppendError().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace corral::proto {

inline constexpr std::string_view kSyntaxError = "ERR syntax error";
inline constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kNoAuth = "NOAUTH Authentication required.";
inline constexpr std::string_view kWrongPass =
    "WRONGPASS invalid username-password pair or user is disabled.";
inline constexpr std::string_view kNoProto = "NOPROTO unsupported protocol version";
inline constexpr std::string_view kDbIndexOutOfRange = "ERR DB index is out of range";
inline constexpr std::string_view kSameObject = "ERR source and destination objects are the same";
inline constexpr std::string_view kOutOfMemory =
    "OOM command not allowed when used memory > 'maxmemory'.";
inline constexpr std::string_view kMaxClients = "ERR max number of clients reached";
inline constexpr std::string_view kAuthWithoutPassword =
    "ERR AUTH <password> called without any password configured for the default user. Are you "
    "sure your configuration is correct?";
inline constexpr std::string_view kHelloNoAuth =
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
    "<user> <pass> option can be used to authenticate the client and select the RESP protocol "
    "version at the same time";
inline constexpr std::string_view kProtocolVersionNotInteger =
    "ERR Protocol version is not an integer or out of range";
inline constexpr std::string_view kBadClientName =
    "ERR Client names cannot contain spaces, newlines or special characters.";
// ACL (Redis 7.0 server.c processCommand, acl.c).
inline constexpr std::string_view kNoPermKey =
    "NOPERM this user has no permissions to access one of the keys used as arguments";
inline constexpr std::string_view kNoPermChannel =
    "NOPERM this user has no permissions to access one of the channels used as arguments";
inline constexpr std::string_view kDefaultUserUndeletable =
    "ERR The 'default' user cannot be removed";
inline constexpr std::string_view kExpireNxConflict =
    "ERR NX and XX, GT or LT options at the same time are not compatible";
inline constexpr std::string_view kExpireGtLtConflict =
    "ERR GT and LT options at the same time are not compatible";

// The string and key commands (Redis 7.0 t_string.c, db.c).
inline constexpr std::string_view kIncrOverflow = "ERR increment or decrement would overflow";
inline constexpr std::string_view kDecrOverflow = "ERR decrement would overflow";
inline constexpr std::string_view kNotFloat = "ERR value is not a valid float";
inline constexpr std::string_view kFloatNanOrInf = "ERR increment would produce NaN or Infinity";
inline constexpr std::string_view kStringTooLong =
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
inline constexpr std::string_view kOffsetOutOfRange = "ERR offset is out of range";
inline constexpr std::string_view kNoSuchKey = "ERR no such key";
inline constexpr std::string_view kInvalidCursor = "ERR invalid cursor";

// Transactions (Redis 7.0 multi.c).
inline constexpr std::string_view kQueued = "QUEUED";  // a status reply
inline constexpr std::string_view kMultiNested = "ERR MULTI calls can not be nested";
inline constexpr std::string_view kExecWithoutMulti = "ERR EXEC without MULTI";
inline constexpr std::string_view kDiscardWithoutMulti = "ERR DISCARD without MULTI";
inline constexpr std::string_view kWatchInsideMulti = "ERR WATCH inside MULTI is not allowed";
inline constexpr std::string_view kExecAbort =
    "EXECABORT Transaction discarded because of previous errors.";
// "EXECABORT Transaction discarded because of: <error>": EXEC refused before running (Redis 7.0
// execCommandAbort), e.g. with kOutOfMemory.
std::string ExecAbortError(std::string_view error);
// Client tracking (Redis 7.0 networking.c clientCommand).
inline constexpr std::string_view kTrackingOneRedirect =
    "ERR A client can only redirect to a single other client";
inline constexpr std::string_view kTrackingNoSuchClient =
    "ERR The client ID you want redirect to does not exist";
inline constexpr std::string_view kTrackingPrefixNeedsBcast =
    "ERR PREFIX option requires BCAST mode to be enabled";
inline constexpr std::string_view kTrackingBcastSwitch =
    "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then "
    "re-enabling it with a different mode.";
inline constexpr std::string_view kTrackingOptWithBcast =
    "ERR OPTIN and OPTOUT are not compatible with BCAST";
inline constexpr std::string_view kTrackingOptInAndOut =
    "ERR You can't specify both OPTIN mode and OPTOUT mode";
inline constexpr std::string_view kTrackingOptSwitch =
    "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then "
    "re-enabling it with a different mode.";
inline constexpr std::string_view kCachingWithoutTracking =
    "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or "
    "OPTOUT mode enabled";
inline constexpr std::string_view kCachingYesNeedsOptIn =
    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.";
inline constexpr std::string_view kCachingNoNeedsOptOut =
    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.";
// Pub/sub (Redis 7.0 server.c processCommand); corral's own for a connection without pushes.
inline constexpr std::string_view kSubscribeUnavailable =
    "ERR this connection cannot take pushed messages";

// Introspection (Redis 7.0 networking.c clientCommand, slowlog.c, config.c).
inline constexpr std::string_view kInvalidClientId = "ERR Invalid client ID";
inline constexpr std::string_view kClientIdNotPositive = "ERR client-id should be greater than 0";
inline constexpr std::string_view kNoSuchClient = "ERR No such client";
inline constexpr std::string_view kSlowlogCount = "ERR count should be greater than or equal to -1";
inline constexpr std::string_view kConfigNotInteger = "argument couldn't be parsed into an integer";

// corral's lease protocol (LEASE.SET / LEASE.RELEASE, lease/README.md).
inline constexpr std::string_view kInvalidLeaseToken = "ERR invalid lease token";
inline constexpr std::string_view kLeaseVoided =
    "ERR lease voided: the key was invalidated, or the token is not its live lease";
inline constexpr std::string_view kNoSuchLease =
    "ERR no such lease: the token is not the key's live lease";

// Status replies (pass to AppendSimple()).
inline constexpr std::string_view kOk = "OK";
inline constexpr std::string_view kPong = "PONG";

// The prefixes of corral's own answers to a read: "-BUSY <text>" (shed or wait timed out) and
// "-ERR upstream: <reason>" (the load failed); on HTTP, a 503 whose body is "busy: <text>\n".
inline constexpr std::string_view kBusyPrefix = "BUSY ";
inline constexpr std::string_view kErrPrefix = "ERR ";
inline constexpr std::string_view kHttpBusyPrefix = "busy: ";
inline constexpr std::string_view kUpstreamPrefix = "upstream: ";
inline constexpr std::string_view kHeldOffSuffix = " (held off)";

// Why a request was shed: answered at once with -BUSY / HTTP 503 instead of waiting or loading.
// The label is corral_shed_total{reason}; the text follows "BUSY " (RESP) or "busy: " (HTTP).
enum class ShedReason : uint8_t {
  kBlocked,                // the namespace's `blocked` switch
  kNamespaceInflight,      // the namespace's max_inflight_loads
  kRate,                   // the namespace's max_loads_per_s
  kPendingLoads,           // shedding.max_pending_loads, across every namespace
  kPoolInflight,           // the pool's max_inflight_loads, across its namespaces
  kWaitTimeout,            // lease.wait_timeout_ms passed and nothing stale was there
  kInvalidatedRepeatedly,  // the key was invalidated again and again while its holder loaded
  kMaxClients,             // shedding.max_clients: the connection itself was refused
  kNotReplayed,            // read-your-writes: no server had replayed the client's write in time
};
inline constexpr size_t kShedReasonCount = 9;

// "blocked", "max_inflight_loads", ... (the metric label value).
std::string_view ShedReasonLabel(ShedReason reason);

// The text after "BUSY ": "load shed: max_inflight_loads for namespace user" for an admission
// refusal (`ns` is the namespace), "lease wait timed out", ...
std::string ShedText(ShedReason reason, std::string_view ns);

// "ERR Unsupported option x" (EXPIRE's option check).
std::string UnsupportedOptionError(std::string_view option);
// "ERR Syntax error in HELLO option 'x'".
std::string HelloOptionError(std::string_view option);
// "ERR Unrecognized option 'x'" (CLIENT SETINFO).
std::string UnrecognizedOptionError(std::string_view option);
// "ERR CONFIG SET failed (possibly related to argument 'name') - why".
std::string ConfigSetError(std::string_view name, std::string_view why);
// CONFIG SET's range error: "argument must be between MIN and 9223372036854775807 inclusive".
std::string ConfigRangeError(int64_t min);
// "ERR Unknown client type 'x'" (CLIENT LIST / KILL TYPE).
std::string UnknownClientTypeError(std::string_view type);
// "ERR No such user 'x'" (CLIENT KILL USER).
std::string NoSuchUserError(std::string_view user);

// "ERR unknown command 'foo', with args beginning with: 'a' 'b' " as Redis 7.0 builds it: the
// name is cut to 128 bytes, the arguments are quoted one after another while their text is
// shorter than 128 bytes, each cut to what is left of those 128; CR and LF become spaces.
// `args` holds the command name first; an empty span gives an empty name.
std::string UnknownCommandError(std::span<const std::string_view> args);

// "ERR wrong number of arguments for 'get' command"; `cmd` is lower-cased (Redis prints the
// table name, e.g. "client|setname" for a subcommand).
std::string WrongArgsError(std::string_view cmd);
// "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are
// allowed in this context" (a RESP2 connection with subscriptions).
std::string PubSubContextError(std::string_view cmd);
// "ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must
// not overlap."
std::string TrackingPrefixCollision(std::string_view a, std::string_view b);
// The same for a prefix `a` and one the connection already tracks, `b`.
std::string TrackingPrefixOverlapsExisting(std::string_view a, std::string_view b);
// CONFIG SET notify-keyspace-events with a character that is no event class (Redis's text).
inline constexpr std::string_view kBadKeyspaceEvents =
    "Invalid event class character. Use 'Ag$lshzxeKEtmd'.";
// "NOPERM this user has no permissions to run the 'config|set' command".
std::string NoPermCommandError(std::string_view cmd);

// "ERR unknown subcommand or wrong number of arguments for 'x'. Try SLOWLOG HELP." (Redis's
// addReplySubcommandSyntaxError), with `sub` as sent, cut to 128 bytes, and `cmd` upper-cased.
std::string SubcommandSyntaxError(std::string_view cmd, std::string_view sub);
// "ERR No samples available for event 'x'" (LATENCY GRAPH of an event without samples), `event`
// cut to 128 bytes, CR and LF as spaces.
std::string NoLatencySamplesError(std::string_view event);
// "ERR unknown subcommand 'x'. Try CLIENT HELP." with `sub` cut to 128 bytes and `cmd`
// upper-cased; CR and LF become spaces.
std::string UnknownSubcommandError(std::string_view cmd, std::string_view sub);

// "ERR invalid WAL position 'x': expected pg_lsn text like 0/16B3748", `text` cut to 64 bytes.
std::string InvalidWalPositionError(std::string_view text);

// corral's refusal of a write command on a read-through key (docs/protocol.md, "Namespace
// keys"): "ERR read-through key 'user:1': INCR is not supported on namespace keys", `key` cut to
// 128 bytes and `cmd` upper-cased; CR and LF become spaces.
std::string NamespaceKeyError(std::string_view key, std::string_view cmd);

// "ERR invalid expire time in 'set' command"; `cmd` is lower-cased.
std::string InvalidExpireError(std::string_view cmd);

// Redis's string2ll(): optional '-', then "0" alone or digits without a leading zero; no spaces,
// no '+', no "-0", nothing after the digits, at most 20 characters, within int64_t. On success
// stores the value in *value (which may be null) and returns true; otherwise leaves it alone.
bool ParseInt64(std::string_view s, int64_t* value);

}  // namespace corral::proto

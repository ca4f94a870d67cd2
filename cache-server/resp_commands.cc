// corral's RESP command table, its dispatch, and the data commands (GET, MGET, SET, DEL, EXISTS,
// TTL, EXPIRE, LEASE.*, FLUSHALL, DBSIZE); see resp_commands.h. Behaviour and error texts follow
// Redis 7.0 (t_string.c, expire.c, networking.c) wherever a Redis client could tell the difference.
// The connection and server commands (PING ... INFO) are in resp_server_commands.cc.
#include "cache-server/resp_commands.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>

#include "cache-server/resp_util.h"
#include "lease/wal_position.h"
#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendNil;
using proto::AppendSimple;

std::span<const CommandSpec> RespCommands::Table() {
  using R = RespCommands;
  // Flags and key positions as Redis 7.0's COMMAND reports them for the same commands.
  constexpr uint32_t kKeyRead = kAclKeyspace | kAclRead;
  constexpr uint32_t kKeyWrite = kAclKeyspace | kAclWrite;
  // clang-format off
  static constexpr CommandSpec kTable[] = {
    // name, arity, flags, ACL categories, first/last key and step, handler, docs group and summary, param
    {"get",            2, kCmdReadonly | kCmdFast,                      kAclRead | kAclString,               1,  1, 1, &R::Get,          "string",     "Get the value of a key (read-through for namespace keys)"},
    {"set",           -3, kCmdWrite | kCmdDenyOom,                      kAclWrite | kAclString,              1,  1, 1, &R::Set,          "string",     "Set the value of a key, with optional expiry and condition"},
    {"mget",          -2, kCmdReadonly | kCmdFast,                      kAclRead | kAclString,               1, -1, 1, &R::MGet,         "string",     "Get the values of several keys"},
    {"ping",          -1, kCmdFast | kCmdPubSubContext,                                  kAclConnection,                      0,  0, 0, &R::Ping,         "connection", "Ping the server"},
    {"del",           -2, kCmdWrite,                                    kKeyWrite,                           1, -1, 1, &R::Del,          "generic",    "Delete keys and invalidate their leases"},
    {"unlink",        -2, kCmdWrite | kCmdFast,                         kKeyWrite,                           1, -1, 1, &R::Del,          "generic",    "Delete keys and invalidate their leases"},
    {"exists",        -2, kCmdReadonly | kCmdFast,                      kKeyRead,                            1, -1, 1, &R::Exists,       "generic",    "Count the given keys that exist"},
    {"object",        -2, kCmdReadonly,                                 kKeyRead,                            2,  2, 1, &R::Object,       "generic",    "What the eviction policy knows of a key: FREQ, IDLETIME"},
    {"ttl",            2, kCmdReadonly | kCmdFast,                      kKeyRead,                            1,  1, 1, &R::Ttl,          "generic",    "Get the time to live of a key in seconds",            1000},
    {"pttl",           2, kCmdReadonly | kCmdFast,                      kKeyRead,                            1,  1, 1, &R::Ttl,          "generic",    "Get the time to live of a key in milliseconds",       1},
    {"expire",        -3, kCmdWrite | kCmdFast,                         kKeyWrite,                           1,  1, 1, &R::Expire,       "generic",    "Set a key's time to live in seconds",                 1000},
    {"pexpire",       -3, kCmdWrite | kCmdFast,                         kKeyWrite,                           1,  1, 1, &R::Expire,       "generic",    "Set a key's time to live in milliseconds",            1},
    {"expireat",      -3, kCmdWrite | kCmdFast,                         kKeyWrite,                           1,  1, 1, &R::Expire,       "generic",    "Set the expiration for a key as a UNIX timestamp",    -1000},
    {"pexpireat",     -3, kCmdWrite | kCmdFast,                         kKeyWrite,                           1,  1, 1, &R::Expire,       "generic",    "Set the expiration for a key as a UNIX timestamp specified in milliseconds", -1},
    {"time",           1, kCmdLoading | kCmdStale | kCmdFast,           0,                                   0,  0, 0, &R::Time,         "server",     "Return the current server time"},
    {"echo",           2, kCmdFast,                                     kAclConnection,                      0,  0, 0, &R::Echo,         "connection", "Echo the given string"},
    {"hello",         -1, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast | kCmdNoAuth, kAclConnection, 0,  0, 0, &R::Hello,        "connection", "Handshake: protocol version, authentication, client name"},
    {"auth",          -2, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast | kCmdNoAuth, kAclConnection, 0,  0, 0, &R::Auth,         "connection", "Authenticate the connection"},
    {"client",        -2, kCmdNoScript | kCmdLoading | kCmdStale,       kAclConnection,                      0,  0, 0, &R::Client,       "connection", "Connection name, id, library and info"},
    {"select",         2, kCmdLoading | kCmdStale | kCmdFast,           kAclConnection,                      0,  0, 0, &R::Select,       "connection", "Select the database (only 0 exists)"},
    {"quit",          -1, kCmdFast | kCmdNoAuth | kCmdNotQueued | kCmdPubSubContext,                        kAclConnection,                      0,  0, 0, &R::Quit,         "connection", "Close the connection"},
    {"command",       -1, kCmdLoading | kCmdStale,                      kAclConnection,                      0,  0, 0, &R::Command,      "server",     "Describe the commands (COUNT, INFO, DOCS)"},
    {"config",        -2, kCmdAdmin | kCmdNoScript | kCmdLoading | kCmdStale, kAclAdmin | kAclDangerous,   0,  0, 0, &R::Config,       "server",     "Read parameters; set the namespaces' shedding limits"},
    {"info",          -1, kCmdLoading | kCmdStale,                      kAclDangerous,                       0,  0, 0, &R::InfoCmd,      "server",     "Server information and statistics"},
    {"dbsize",         1, kCmdReadonly | kCmdFast,                      kAclKeyspace | kAclRead,             0,  0, 0, &R::DbSize,       "server",     "Count the keys"},
    {"flushall",      -1, kCmdWrite,                                    kKeyWrite | kAclDangerous,           0,  0, 0, &R::Flush,        "server",     "Delete every key and void every lease"},
    {"flushdb",       -1, kCmdWrite,                                    kKeyWrite | kAclDangerous,           0,  0, 0, &R::Flush,        "server",     "Delete every key and void every lease"},
    {"lease.get",      2, kCmdReadonly,                                 kAclRead | kAclString,               1,  1, 1, &R::LeaseGet,     "lease",      "Get a value, or a lease to load it"},
    {"lease.set",     -4, kCmdWrite | kCmdDenyOom,                      kAclWrite | kAclString,              1,  1, 1, &R::LeaseSet,     "lease",      "Fill a key under its lease"},
    {"corral.written", -1, kCmdLoading | kCmdStale | kCmdFast,          kAclConnection,                      0,  0, 0, &R::Written,      "connection", "Read your writes: the WAL position of this connection's last write"},
    {"lease.release",  3, kCmdWrite | kCmdFast,                         kAclWrite | kAclString,              1,  1, 1, &R::LeaseRelease, "lease",      "Give a lease up"},
    // The string family (resp_string_commands.cc). param: INCR/DECR's sign, SETEX/PSETEX's unit.
    {"incr",           2, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::IncrBy,       "string",     "Increment the integer value of a key by one",         1},
    {"decr",           2, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::IncrBy,       "string",     "Decrement the integer value of a key by one",         -1},
    {"incrby",         3, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::IncrBy,       "string",     "Increment the integer value of a key by a number",    1},
    {"decrby",         3, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::IncrBy,       "string",     "Decrement the integer value of a key by a number",    -1},
    {"incrbyfloat",    3, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::IncrByFloat,  "string",     "Increment the float value of a key by a number"},
    {"append",         3, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::Append,       "string",     "Append a value to a key"},
    {"strlen",         2, kCmdReadonly | kCmdFast,                      kAclRead | kAclString,               1,  1, 1, &R::Strlen,       "string",     "Get the length of the value stored in a key"},
    {"getrange",       4, kCmdReadonly,                                 kAclRead | kAclString,               1,  1, 1, &R::GetRange,     "string",     "Get a substring of the string stored at a key"},
    {"setrange",       4, kCmdWrite | kCmdDenyOom,                      kAclWrite | kAclString,              1,  1, 1, &R::SetRange,     "string",     "Overwrite part of a string at key starting at the specified offset"},
    {"mset",          -3, kCmdWrite | kCmdDenyOom,                      kAclWrite | kAclString,              1, -1, 2, &R::MSet,         "string",     "Set multiple keys to multiple values, atomically",    0},
    {"msetnx",        -3, kCmdWrite | kCmdDenyOom,                      kAclWrite | kAclString,              1, -1, 2, &R::MSet,         "string",     "Set multiple keys only if none of them exists, atomically", 1},
    {"setnx",          3, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::SetNx,        "string",     "Set the value of a key, only if the key does not exist"},
    {"setex",          4, kCmdWrite | kCmdDenyOom,                      kAclWrite | kAclString,              1,  1, 1, &R::SetEx,        "string",     "Set the value and expiration of a key",               1000},
    {"psetex",         4, kCmdWrite | kCmdDenyOom,                      kAclWrite | kAclString,              1,  1, 1, &R::SetEx,        "string",     "Set the value and expiration in milliseconds of a key", 1},
    {"getex",         -2, kCmdWrite | kCmdFast,                         kAclWrite | kAclString,              1,  1, 1, &R::GetEx,        "string",     "Get the value of a key and optionally set its expiration"},
    {"getdel",         2, kCmdWrite | kCmdFast,                         kAclWrite | kAclString,              1,  1, 1, &R::GetDel,       "string",     "Get the value of a key and delete the key"},
    {"getset",         3, kCmdWrite | kCmdDenyOom | kCmdFast,           kAclWrite | kAclString,              1,  1, 1, &R::GetSet,       "string",     "Set the string value of a key and return its old value"},
    // Keys. param: RENAMENX's "only if absent", EXPIRETIME/PEXPIRETIME's unit.
    {"scan",          -2, kCmdReadonly,                                 kKeyRead,                            0,  0, 0, &R::Scan,         "generic",    "Incrementally iterate the keys space"},
    {"keys",           2, kCmdReadonly,                                 kKeyRead | kAclDangerous,            0,  0, 0, &R::Keys,         "generic",    "Find all keys matching the given pattern"},
    {"type",           2, kCmdReadonly | kCmdFast,                      kKeyRead,                            1,  1, 1, &R::Type,         "generic",    "Determine the type stored at key"},
    {"touch",         -2, kCmdReadonly | kCmdFast,                      kKeyRead,                            1, -1, 1, &R::Touch,        "generic",    "Alters the last access time of a key(s). Returns the number of existing keys specified."},
    {"persist",        2, kCmdWrite | kCmdFast,                         kKeyWrite,                           1,  1, 1, &R::Persist,      "generic",    "Remove the expiration from a key"},
    {"rename",         3, kCmdWrite,                                    kKeyWrite,                           1,  2, 1, &R::Rename,       "generic",    "Rename a key",                                        0},
    {"renamenx",       3, kCmdWrite | kCmdFast,                         kKeyWrite,                           1,  2, 1, &R::Rename,       "generic",    "Rename a key, only if the new key does not exist",    1},
    {"copy",          -3, kCmdWrite | kCmdDenyOom,                      kKeyWrite,                           1,  2, 1, &R::Copy,         "generic",    "Copy a key"},
    {"randomkey",      1, kCmdReadonly,                                 kKeyRead,                            0,  0, 0, &R::RandomKey,    "generic",    "Return a random key from the keyspace"},
    {"expiretime",     2, kCmdReadonly | kCmdFast,                      kKeyRead,                            1,  1, 1, &R::ExpireTime,   "generic",    "Get the expiration Unix timestamp for a key",         1000},
    {"pexpiretime",    2, kCmdReadonly | kCmdFast,                      kKeyRead,                            1,  1, 1, &R::ExpireTime,   "generic",    "Get the expiration Unix timestamp for a key in milliseconds", 1},
    // No scripts exist: FLUSH is accepted (the Redis test suite's harness sends FUNCTION FLUSH).
    {"function",      -2, kCmdNoScript,                                 kAclScripting,                       0,  0, 0, &R::ScriptFlush,  "scripting",  "Functions: only FLUSH, which has nothing to remove"},
    {"script",        -2, kCmdNoScript,                                 kAclScripting,                       0,  0, 0, &R::ScriptFlush,  "scripting",  "Scripts: only FLUSH, which has nothing to remove"},
    // Transactions (resp_transaction_commands.cc).
    {"multi",          1, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast | kCmdNotQueued, kAclTransaction, 0, 0, 0, &R::Multi, "transactions", "Start a transaction"},
    {"exec",           1, kCmdNoScript | kCmdLoading | kCmdStale | kCmdNotQueued, kAclTransaction,        0,  0, 0, &R::Exec,         "transactions", "Run the commands queued since MULTI, with no other client's command in between"},
    {"discard",        1, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast | kCmdNotQueued, kAclTransaction, 0, 0, 0, &R::Discard, "transactions", "Forget the commands queued since MULTI"},
    {"watch",         -2, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast | kCmdNotQueued, kAclTransaction, 1, -1, 1, &R::Watch, "transactions", "Make the next EXEC run only if none of these keys changes first"},
    {"unwatch",        1, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast, kAclTransaction,             0,  0, 0, &R::Unwatch,      "transactions", "Forget every WATCHed key"},
    // Pub/sub (resp_pubsub_commands.cc). param: 0 channels, 1 patterns.
    {"subscribe",     -2, kCmdPubSub | kCmdNoScript | kCmdLoading | kCmdStale | kCmdPubSubContext, kAclPubSub, 0, 0, 0, &R::Subscribe, "pubsub", "Listen for messages published to the given channels", 0},
    {"psubscribe",    -2, kCmdPubSub | kCmdNoScript | kCmdLoading | kCmdStale | kCmdPubSubContext, kAclPubSub, 0, 0, 0, &R::Subscribe, "pubsub", "Listen for messages published to channels matching the given patterns", 1},
    {"unsubscribe",   -1, kCmdPubSub | kCmdNoScript | kCmdLoading | kCmdStale | kCmdPubSubContext, kAclPubSub, 0, 0, 0, &R::Unsubscribe, "pubsub", "Stop listening for messages posted to the given channels", 0},
    {"punsubscribe",  -1, kCmdPubSub | kCmdNoScript | kCmdLoading | kCmdStale | kCmdPubSubContext, kAclPubSub, 0, 0, 0, &R::Unsubscribe, "pubsub", "Stop listening for messages posted to channels matching the given patterns", 1},
    {"publish",        3, kCmdPubSub | kCmdLoading | kCmdStale | kCmdFast, kAclPubSub,                  0,  0, 0, &R::Publish,      "pubsub",     "Post a message to a channel"},
    {"pubsub",        -2, kCmdPubSub | kCmdLoading | kCmdStale,         kAclPubSub,               0,  0, 0, &R::PubSubCmd,    "pubsub",     "Inspect the pub/sub state: CHANNELS, NUMSUB, NUMPAT"},
    {"reset",          1, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast | kCmdNoAuth | kCmdNotQueued | kCmdPubSubContext, kAclConnection, 0, 0, 0, &R::Reset, "connection", "Reset the connection: out of MULTI, nothing watched or subscribed, RESP2, no name"},
    {"acl",           -2, kCmdAdmin | kCmdNoScript | kCmdLoading | kCmdStale, kAclAdmin | kAclDangerous,   0,  0, 0, &R::Acl,          "server",     "Users: WHOAMI, USERS, LIST, CAT, SETUSER, DELUSER"},
    // Introspection (resp_introspection_commands.cc): flags and categories of Redis 7.0's
    // subcommands that change or reveal state (SLOWLOG GET, LATENCY LATEST, MEMORY USAGE).
    {"slowlog",       -2, kCmdAdmin | kCmdLoading | kCmdStale,          kAclAdmin | kAclDangerous,           0,  0, 0, &R::SlowLog,      "server",     "The commands that ran slower than slowlog-log-slower-than: GET, LEN, RESET"},
    {"latency",       -2, kCmdAdmin | kCmdNoScript | kCmdLoading | kCmdStale, kAclAdmin | kAclDangerous,   0,  0, 0, &R::Latency,      "server",     "Latency spikes of commands: LATEST, HISTORY, RESET, DOCTOR"},
    {"memory",        -2, kCmdReadonly,                                 kAclRead,                            2,  2, 1, &R::Memory,       "server",     "Memory the store accounts: USAGE, STATS, DOCTOR"},
    {"role",           1, kCmdNoScript | kCmdLoading | kCmdStale | kCmdFast, kAclAdmin | kAclDangerous,      0,  0, 0, &R::Role,         "server",     "The node's replication role: always a master without replicas"},
  };
  // clang-format on
  return kTable;
}

const RespCommands::ContainerAcl* RespCommands::ContainerAclOf(std::string_view name) {
  using Sub = auth::SubcommandInfo;
  // Redis 7.0's COMMAND INFO: every subcommand is @slow; the ones that administer the server are
  // @admin @dangerous besides.
  constexpr uint32_t S = kAclSlow, A = kAclAdmin | kAclDangerous | kAclSlow, C = kAclConnection;
  static constexpr Sub kAcl[] = {{"cat", S},     {"deluser", A}, {"dryrun", A},  {"genpass", S},
                                 {"getuser", A}, {"help", S},    {"list", A},    {"load", A},
                                 {"log", A},     {"save", A},    {"setuser", A}, {"users", A},
                                 {"whoami", S}};
  static constexpr Sub kClient[] = {
      {"caching", S | C},  {"getname", S | C},      {"getredir", S | C}, {"help", S | C},
      {"id", S | C},       {"info", S | C},         {"kill", A | C},     {"list", A | C},
      {"no-evict", A | C}, {"pause", A | C},        {"reply", S | C},    {"setname", S | C},
      {"tracking", S | C}, {"trackinginfo", S | C}, {"unblock", A | C},  {"unpause", A | C}};
  static constexpr Sub kCommand[] = {
      {"count", S | C}, {"docs", S | C}, {"getkeys", S | C}, {"getkeysandflags", S | C},
      {"help", S | C},  {"info", S | C}, {"list", S | C}};
  static constexpr Sub kConfig[] = {
      {"get", A}, {"help", S}, {"resetstat", A}, {"rewrite", A}, {"set", A}};
  constexpr uint32_t W = kAclWrite | kAclSlow | kAclScripting, X = kAclSlow | kAclScripting;
  static constexpr Sub kFunction[] = {{"delete", W}, {"dump", X},    {"flush", W},
                                      {"help", X},   {"kill", X},    {"list", X},
                                      {"load", W},   {"restore", W}, {"stats", X}};
  static constexpr Sub kLatency[] = {{"doctor", A},  {"graph", A},  {"help", S}, {"histogram", A},
                                     {"history", A}, {"latest", A}, {"reset", A}};
  static constexpr Sub kMemory[] = {{"doctor", S}, {"help", S},  {"malloc-stats", S},
                                    {"purge", S},  {"stats", S}, {"usage", kAclRead | S}};
  constexpr uint32_t K = kAclKeyspace | kAclRead | kAclSlow;
  static constexpr Sub kObject[] = {
      {"encoding", K}, {"freq", K}, {"help", kAclKeyspace | S}, {"idletime", K}, {"refcount", K}};
  static constexpr Sub kScript[] = {{"debug", X}, {"exists", X}, {"flush", X},
                                    {"help", X},  {"kill", X},   {"load", X}};
  static constexpr Sub kSlowlog[] = {{"get", A}, {"help", S}, {"len", A}, {"reset", A}};
  static constexpr ContainerAcl kContainers[] = {
      {"acl", S, kAcl},        {"client", S, kClient},     {"command", S | C, kCommand},
      {"config", S, kConfig},  {"function", S, kFunction}, {"latency", S, kLatency},
      {"memory", S, kMemory},  {"object", S, kObject},     {"script", S, kScript},
      {"slowlog", S, kSlowlog}};
  for (const ContainerAcl& c : kContainers) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {

// Case-insensitive open-addressing index over the table, built once: Find() hashes the name's
// bytes folded to lower case (no copy, no allocation) and compares one or two entries.
class CommandIndex {
 public:
  explicit CommandIndex(std::span<const CommandSpec> table) : table_(table) {
    slots_.fill(kEmpty);
    for (size_t i = 0; i < table.size(); ++i) {
      size_t s = Hash(table[i].name) & kMask;
      while (slots_[s] != kEmpty) s = (s + 1) & kMask;
      slots_[s] = static_cast<uint16_t>(i);
    }
  }
  const CommandSpec* Find(std::string_view name) const {
    if (name.size() > kMaxName) return nullptr;
    for (size_t s = Hash(name) & kMask;; s = (s + 1) & kMask) {
      if (slots_[s] == kEmpty) return nullptr;
      const CommandSpec& spec = table_[slots_[s]];
      if (EqualsIgnoreCase(spec.name, name)) return &spec;
    }
  }

 private:
  static constexpr size_t kSlots = 512;  // a power of two, well above twice the commands
  static constexpr size_t kMask = kSlots - 1;
  static constexpr size_t kMaxName = 64;
  static constexpr uint16_t kEmpty = 0xffff;
  // FNV-1a over the bytes with ASCII letters folded to lower case.
  static size_t Hash(std::string_view s) {
    uint32_t h = 2166136261u;
    for (char c : s) h = (h ^ static_cast<uint8_t>(AsciiLower(c))) * 16777619u;
    return h ^ (h >> 16);
  }
  std::span<const CommandSpec> table_;
  std::array<uint16_t, kSlots> slots_;
};

}  // namespace

const CommandSpec* RespCommands::Find(std::string_view name) {
  static const CommandIndex index(Table());
  return index.Find(name);
}

RespCommands::RespCommands(ServerState& state)
    : state_(state),
      table_(Table().data()),
      call_counts_(std::make_unique<CallCounts[]>(Table().size())),
      containers_(std::make_unique<const ContainerAcl*[]>(Table().size())),
      histograms_(std::make_unique<LatencyHistogram[]>(Table().size())) {
  for (size_t i = 0; i < Table().size(); ++i) {
    containers_[i] = table_[i].has_subcommands() ? ContainerAclOf(table_[i].name) : nullptr;
  }
  // WATCH: a read-through key changes when it is invalidated (DEL here, or the database's change
  // through NOTIFY, the WAL or another node).
  state_.cache.SetInvalidatedHook(
      [&state = state_](std::string_view key) {
        state.watches.Touch(key);
        state.tracking.Invalidate(key, 0);
      },
      // Everything cached may be older than the database now (the listener reconnected, a new
      // WAL slot or tier epoch): tracking connections drop everything.
      [&tracking = state_.tracking] { tracking.InvalidateAll(); });
  // A key the store expires or evicts has changed for a near cache (Redis's signalModifiedKey
  // there too), and raises the keyspace event "expired" or "evicted".
  state_.cache.store().SetRemovalHook([&state = state_](std::string_view key, lease::Removal why) {
    state.tracking.Invalidate(key, 0);
    if (why == lease::Removal::kExpired) {
      state.keyspace_events.Notify(kEventExpired, "expired", key);
    } else {
      state.keyspace_events.Notify(kEventEvicted, "evicted", key);
    }
  });
}

CommandStatus RespCommands::Execute(RespClient& client, Args args, std::string& out,
                                    AsyncReplyTarget& target) {
  if (args.empty()) return CommandStatus::kDone;
  // The order of checks is Redis's (processCommand): unknown command, arity, then NOAUTH.
  const CommandSpec* spec = Find(args[0]);
  // client.cmd is what ran last (SLOWLOG, CLIENT LIST): a command that does not run here (an
  // error, a refusal, one queued in MULTI) clears it, on these cold paths only.
  if (spec == nullptr) {
    client.cmd = nullptr;
    AppendError(out, proto::UnknownCommandError(args));
    if (client.multi != nullptr) client.multi->aborted = true;
    return CommandStatus::kDone;
  }
  int argc = static_cast<int>(args.size());
  if ((spec->arity > 0 && argc != spec->arity) || (spec->arity < 0 && argc < -spec->arity)) {
    client.cmd = nullptr;
    AppendError(out, proto::WrongArgsError(spec->name));
    if (client.multi != nullptr) client.multi->aborted = true;
    Rejected(*spec);
    return CommandStatus::kDone;
  }
  if (!client.authenticated && !(spec->flags & kCmdNoAuth)) {
    client.cmd = nullptr;
    AppendError(out, proto::kNoAuth);
    Rejected(*spec);
    return CommandStatus::kDone;
  }
  // The ACL (auth/acl.h). A user that may do anything (the default one without ACL rules) costs
  // one atomic load and one flag test here.
  if (client.user != nullptr &&
      (client.users_generation != state_.users.generation() || !client.user->unrestricted)) {
    switch (Permit(client, *spec, args, out)) {
      case Permission::kAllowed:
        break;
      case Permission::kRefused:
        client.cmd = nullptr;
        if (client.multi != nullptr) client.multi->aborted = true;
        Rejected(*spec);
        return CommandStatus::kDone;
      case Permission::kUserGone:
        return CommandStatus::kClose;
    }
  }
  // Redis's OOM refusal (processCommand): one relaxed load of a flag that is false unless the
  // store cannot take writes (lease::Store::out_of_memory: noeviction and full, or a bound too
  // small for any entry).
  if (state_.cache.store().out_of_memory()) [[unlikely]] {
    if (RefuseOutOfMemory(client, *spec, out)) {
      client.cmd = nullptr;
      Rejected(*spec);
      return CommandStatus::kDone;
    }
  }
  if (client.multi != nullptr || client.subscriber != nullptr) [[unlikely]] {
    if (client.resp == 2 && client.subscribed() && !(spec->flags & kCmdPubSubContext)) {
      client.cmd = nullptr;
      AppendError(out, proto::PubSubContextError(spec->name));
      if (client.multi != nullptr) client.multi->aborted = true;
      return CommandStatus::kDone;
    }
    if (client.multi != nullptr && !(spec->flags & kCmdNotQueued)) {
      client.cmd = nullptr;
      Queue(client, *spec, args, out);
      return CommandStatus::kDone;
    }
  }
  return Run(client, *spec, args, out, target);
}

bool RespCommands::ReplyDropped(RespClient& client, std::string_view command,
                                std::string_view reply) {
  switch (client.reply) {
    case RespClient::Reply::kOn:
      return false;  // on, or CLIENT REPLY ON just now
    case RespClient::Reply::kSkipNext:
      client.reply = RespClient::Reply::kSkip;  // CLIENT REPLY SKIP itself answers nothing
      return true;
    case RespClient::Reply::kSkip:
      client.reply = RespClient::Reply::kOn;  // the one reply is skipped
      break;
    case RespClient::Reply::kOff:
      break;
  }
  // As Redis 7.0 (CLIENT_PUSHING): pub/sub confirmations are pushes in RESP2 too; an error
  // (arity, a refusal) is a reply.
  const CommandSpec* spec = Find(command);
  const bool pushed =
      spec != nullptr &&
      (spec->handler == &RespCommands::Subscribe || spec->handler == &RespCommands::Unsubscribe) &&
      !reply.empty() && reply[0] != '-';
  return !pushed;
}

bool RespCommands::RefuseOutOfMemory(RespClient& client, const CommandSpec& spec,
                                     std::string& out) {
  // EXEC was admitted as a whole (Redis checks commands once, not again as EXEC runs them).
  if (client.in_exec) return false;
  const bool exec = spec.handler == &RespCommands::Exec;
  bool refuse = (spec.flags & kCmdDenyOom) != 0;
  if (client.multi != nullptr) {
    if (exec) {
      // EXEC is refused only if it would run a command that may use memory.
      refuse = (client.multi->flags & kCmdDenyOom) != 0;
    } else if (spec.handler != &RespCommands::Discard && spec.handler != &RespCommands::Quit &&
               spec.handler != &RespCommands::Reset) {
      // Queueing takes memory too: inside MULTI every command is refused but these.
      refuse = true;
    }
  }
  if (!refuse) return false;
  if (exec && client.multi != nullptr) {
    // Redis's execCommandAbort: the transaction is discarded, with the reason.
    client.multi.reset();
    client.watch.reset();
    AppendError(out, proto::ExecAbortError(proto::kOutOfMemory));
  } else {
    AppendError(out, proto::kOutOfMemory);
    if (client.multi != nullptr) client.multi->aborted = true;
  }
  return true;
}

// A write command that someone observes: connections WATCH keys or track them, or keyspace
// events want "new". Out of line, so that the hit path tests three relaxed loads only.
//
// WATCH and CLIENT TRACKING: a write command changes the keys it names (even one it left as they
// were, such as SET NX on an existing key: Redis counts only real changes, so corral may abort an
// EXEC that Redis would run, never run one Redis would abort, and may tell a tracking client of a
// change that was none). BCAST trackers get one message per prefix for the whole command, with
// what the handler itself invalidated (DEL of a read-through key) included.
//
// Keyspace events' "new" (class n): the keys a write command added. Which keys exist is read
// before and after the command, so two connections that create one key at the same moment may
// both report it (Redis's single thread reports one), and "new" comes after the command's own
// events (Redis sends it first).
[[gnu::noinline, gnu::cold]] CommandStatus RespCommands::RunObservedWrite(
    RespClient& client, const CommandSpec& spec, Args args, std::string& out,
    AsyncReplyTarget& target) {
  TrackingTable::Batch batch(state_.tracking);
  std::vector<std::string_view> absent;
  if (state_.keyspace_events.Wants(kEventNew)) {
    spec.EveryKey(args, [&](std::string_view key) {
      if (std::find(absent.begin(), absent.end(), key) == absent.end() &&
          !state_.cache.Exists(key)) {
        absent.push_back(key);
      }
      return true;
    });
  }
  CommandStatus status = (this->*(spec.handler))(client, args, out, target);
  for (std::string_view key : absent) {
    if (state_.cache.Exists(key)) state_.keyspace_events.Notify(kEventNew, "new", key);
  }
  if (state_.watches.watched_keys() != 0 || state_.tracking.active()) {
    spec.EveryKey(args, [&](std::string_view key) {
      state_.watches.Touch(key);
      state_.tracking.Invalidate(key, client.id);
      return true;
    });
  }
  return status;
}

CommandStatus RespCommands::Run(RespClient& client, const CommandSpec& spec, Args args,
                                std::string& out, AsyncReplyTarget& target) {
  client.cmd = &spec;
  if (const ContainerAcl* container = containers_[&spec - table_]) [[unlikely]] {
    client.cmd_sub = {};
    for (const auth::SubcommandInfo& sub : container->subcommands) {
      if (args.size() > 1 && EqualsIgnoreCase(sub.name, args[1])) client.cmd_sub = sub.name;
    }
  }
  const size_t reply_at = out.size();
  CommandStatus status;
  if ((spec.flags & kCmdWrite) && spec.first_key > 0 &&
      (state_.watches.watched_keys() != 0 || state_.tracking.active() ||
       state_.keyspace_events.Wants(kEventNew))) [[unlikely]] {
    status = RunObservedWrite(client, spec, args, out, target);
  } else {
    status = (this->*(spec.handler))(client, args, out, target);
  }
  CallCounts& counts = CountsOf(spec);
  counts.calls.Add();
  if (out.size() > reply_at && out[reply_at] == '-') [[unlikely]] {
    counts.failed.Add();
  }
  if (client.tracking != RespClient::Tracking::kOff) [[unlikely]] {
    Track(client, spec, args);
  }
  return status;
}

void AppendReadAnswer(std::string& out, const ReadAnswer& answer, int resp) {
  switch (answer.kind) {
    case ReadAnswer::Kind::kValue:
      AppendBulk(out, answer.value);
      return;
    case ReadAnswer::Kind::kNotFound:
      AppendNil(out, resp);
      return;
    case ReadAnswer::Kind::kBusy:
      AppendError(out, proto::kBusyPrefix, answer.error);
      return;
    case ReadAnswer::Kind::kError:
      AppendError(out, proto::kErrPrefix, answer.error);
      return;
  }
}

void RespCommands::TellTrackerOfLoad(TrackingTable& tracker, lease::Store& store,
                                     const std::string& key, const ReadAnswer& answer) {
  if (answer.outcome == Outcome::kStale) {
    tracker.Invalidate(key, 0);
  } else if (const lease::Millis pttl = store.Pttl(key); pttl > 0) {
    // Loaded: the reader (remembered when the command ran) is told when the value's fresh time
    // is over (Track, TellFreshTimeOver).
    tracker.SetFreshUntil(key, TrackingNowMs() + pttl);
  }
}

CommandStatus RespCommands::Get(RespClient& client, Args args, std::string& out,
                                AsyncReplyTarget& target) {
  // A tracking connection that is answered a stale value is told at once that the key changed
  // (after the reply): its near cache drops the value, and its next read comes back to corral.
  const bool tracking = client.tracking != RespClient::Tracking::kOff;
  bool now = state_.cache.Read(
      Proto::kResp, args[1],
      [&](const ReadAnswer& answer) {
        AppendReadAnswer(out, answer, client.resp);
        if (tracking && answer.outcome == Outcome::kStale) client.read_stale = true;
      },
      [&]() -> ReadLater {
        return [t = target.Self(), resp = client.resp,
                tracker = tracking ? &state_.tracking : nullptr, store = &state_.cache.store(),
                key = tracking ? std::string(args[1]) : std::string()](const ReadAnswer& answer) {
          std::string reply;
          AppendReadAnswer(reply, answer, resp);
          t->DeliverLater(std::move(reply));
          if (tracker != nullptr) TellTrackerOfLoad(*tracker, *store, key, answer);
        };
      },
      client.written);
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

CommandStatus RespCommands::MGet(RespClient& client, Args args, std::string& out,
                                 AsyncReplyTarget& target) {
  size_t n = args.size() - 1;
  // Tracking: as GET, a stale answer is followed by an invalidation (of every key of this MGET
  // when answered at once, which may tell of keys that were fresh: they are read again), and a
  // value loaded is told when its fresh time ends.
  const bool tracking = client.tracking != RespClient::Tracking::kOff;
  auto gather = std::make_shared<MGetGather>();
  gather->parts.resize(n);
  gather->remaining = n + 1;
  bool any_later = false;
  {
    // Cold keys of one batched namespace go to the database as one call (sent as this ends).
    CacheService::Gather together(state_.cache);
    for (size_t i = 0; i < n; ++i) {
      // An element is the value, nil for a miss or not-found, or an error element if its load
      // failed or was shed, so one bad key does not fail the whole batch.
      auto element = [resp = client.resp](std::string& part, const ReadAnswer& a) {
        if (a.kind == ReadAnswer::Kind::kNotFound) {
          AppendNil(part, resp);
        } else {
          AppendReadAnswer(part, a, resp);
        }
      };
      bool now = state_.cache.Read(
          Proto::kResp, args[i + 1],
          [&](const ReadAnswer& a) {
            element(gather->parts[i], a);
            if (tracking && a.outcome == Outcome::kStale) client.read_stale = true;
          },
          [&]() -> ReadLater {
            any_later = true;
            if (!gather->target) gather->target = target.Self();
            return
                [gather, i, element, tracker = tracking ? &state_.tracking : nullptr,
                 store = &state_.cache.store(),
                 key = tracking ? std::string(args[i + 1]) : std::string()](const ReadAnswer& a) {
                  element(gather->parts[i], a);
                  if (gather->Done()) gather->target->DeliverLater(gather->Reply());
                  if (tracker != nullptr) TellTrackerOfLoad(*tracker, *store, key, a);
                };
          },
          client.written);
      if (now) gather->Done();
    }
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

CommandStatus RespCommands::LeaseGet(RespClient& client, Args args, std::string& out,
                                     AsyncReplyTarget& target) {
  auto self = target.Self();
  CacheService::LeaseGetAnswer answer = state_.cache.LeaseGet(
      args[1], [&](const ReadAnswer& a) { AppendReadAnswer(out, a, client.resp); },
      [self, resp = client.resp]() -> ReadLater {
        return [self, resp](const ReadAnswer& a) {
          std::string reply;
          AppendReadAnswer(reply, a, resp);
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
    AppendError(out, proto::kInvalidLeaseToken);
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
    AppendSimple(out, proto::kOk);
  } else {
    AppendError(out, proto::kLeaseVoided);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::LeaseRelease(RespClient&, Args args, std::string& out,
                                         AsyncReplyTarget&) {
  lease::LeaseToken token;
  if (!ParseToken(args[2], &token)) {
    AppendError(out, proto::kInvalidLeaseToken);
  } else if (state_.cache.LeaseRelease(args[1], token)) {
    AppendSimple(out, proto::kOk);
  } else {
    AppendError(out, proto::kNoSuchLease);
  }
  return CommandStatus::kDone;
}

// CORRAL.WRITTEN [position]: read-your-writes (SPEC rule 6). With the WAL position (pg_lsn text)
// that the client's own write returned, this connection's later reads of namespace keys are never
// answered from a read older than it, and its DELs take it as their position instead of asking
// the primary. Positions only move forward. Without an argument: the connection's position, or
// nil.
CommandStatus RespCommands::Written(RespClient& client, Args args, std::string& out,
                                    AsyncReplyTarget&) {
  if (args.size() > 2) {
    AppendError(out, proto::WrongArgsError(args[0]));
    return CommandStatus::kDone;
  }
  if (args.size() == 1) {
    if (client.written == 0) {
      AppendNil(out, client.resp);
    } else {
      AppendBulk(out, lease::FormatWalPosition(client.written));
    }
    return CommandStatus::kDone;
  }
  if (!state_.cache.tracks_positions()) {
    AppendError(out, "ERR read-your-writes needs a \"postgres\" section in the configuration");
    return CommandStatus::kDone;
  }
  std::optional<lease::WalPosition> position = lease::ParseWalPosition(args[1]);
  if (!position) {
    AppendError(out, proto::InvalidWalPositionError(args[1]));
    return CommandStatus::kDone;
  }
  client.written = std::max(client.written, *position);
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Set(RespClient& client, Args args, std::string& out,
                                AsyncReplyTarget&) {
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
            AppendNil(out, client.resp);
          }
        },
        []() -> ReadLater { return nullptr; });
  }
  if (have_expire && expire_ms <= 0) {
    // An absolute time in the past: Redis sets and at once expires the key.
    state_.cache.Invalidate(args[1], InvalidationSource::kSet);
    if (!get) AppendSimple(out, proto::kOk);
    return CommandStatus::kDone;
  }
  std::optional<lease::Millis> ttl;
  if (have_expire) ttl = expire_ms;
  lease::SetResult result = state_.cache.Set(args[1], args[2], ttl, cond, keep_ttl);
  if (result == lease::SetResult::kStored) {
    state_.keyspace_events.Notify(kEventString, "set", args[1]);
    if (ttl) state_.keyspace_events.Notify(kEventGeneric, "expire", args[1]);
  }
  if (get) return CommandStatus::kDone;
  switch (result) {
    case lease::SetResult::kStored:
      AppendSimple(out, proto::kOk);
      break;
    case lease::SetResult::kNotStored:
      AppendNil(out, client.resp);
      break;
    case lease::SetResult::kTooLarge:
      AppendError(out, proto::kOutOfMemory);
      break;
  }
  return CommandStatus::kDone;
}

namespace {
// DEL's reply once every key's invalidation has reached the Redis tier (or timed out there): the
// keys that existed here or in the tier.
struct DelGather {
  std::atomic<size_t> remaining;
  std::atomic<int64_t> deleted{0};
  std::shared_ptr<AsyncReplyTarget> target;
  void Done(bool existed) {
    if (existed) ++deleted;
    if (--remaining != 0) return;
    std::string reply;
    AppendInteger(reply, deleted.load());
    target->DeliverLater(std::move(reply));
  }
};
}  // namespace

CommandStatus RespCommands::Del(RespClient& client, Args args, std::string& out,
                                AsyncReplyTarget& target) {
  if (!state_.cache.invalidations_complete_later()) {
    int64_t deleted = 0;
    for (size_t i = 1; i < args.size(); ++i) {
      if (state_.cache.Invalidate(args[i], InvalidationSource::kDel)) {
        ++deleted;
        state_.keyspace_events.Notify(kEventGeneric, "del", args[i]);
      }
    }
    AppendInteger(out, deleted);
    return CommandStatus::kDone;
  }
  // With the Redis tier, DEL answers once the other nodes can no longer serve the old value from
  // L2 and the broadcast to their L1 is out (bounded by redis.timeout_ms); with PostgreSQL, once
  // the invalidation's WAL position is known (one primary round trip, shared by concurrent DELs).
  auto gather = std::make_shared<DelGather>();
  gather->remaining = args.size();  // one per key, plus one while issuing
  gather->target = target.Self();
  KeyspaceEvents* events =
      state_.keyspace_events.Wants(kEventGeneric) ? &state_.keyspace_events : nullptr;
  for (size_t i = 1; i < args.size(); ++i) {
    state_.cache.Invalidate(
        args[i], InvalidationSource::kDel,
        [gather, events,
         key = events != nullptr ? std::string(args[i]) : std::string()](bool existed) {
          if (existed && events != nullptr) events->Notify(kEventGeneric, "del", key);
          gather->Done(existed);
        },
        client.written);
  }
  gather->Done(false);
  return CommandStatus::kPending;
}

CommandStatus RespCommands::Exists(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  int64_t n = 0;
  for (size_t i = 1; i < args.size(); ++i) n += state_.cache.Exists(args[i]) ? 1 : 0;
  AppendInteger(out, n);
  return CommandStatus::kDone;
}

namespace {
// OBJECT ENCODING as Redis 7.0 reports a string (object.c tryObjectEncoding): "int" for what
// string2ll takes (at most 20 characters), "embstr" up to 44 bytes, "raw" beyond.
std::string_view StringEncoding(std::string_view value) {
  if (value.size() <= 20 && proto::ParseInt64(value, nullptr)) return "int";
  return value.size() <= 44 ? "embstr" : "raw";
}
}  // namespace

// OBJECT FREQ|IDLETIME|REFCOUNT|ENCODING key. FREQ and IDLETIME come from the eviction policy's
// own state (lease::Store::Inspect): FREQ is the TinyLFU sketch's estimate (0-15; an error under
// memory.policy clock, as Redis errs without an LFU policy), IDLETIME the seconds since the last
// read or write. REFCOUNT is always 1 (corral shares no values between keys) and ENCODING says
// how Redis would store the string. Nil for a key the store does not hold (a cached "not found"
// counts as absent for REFCOUNT and ENCODING). Inspecting is not an access.
CommandStatus RespCommands::Object(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  if (args.size() == 2 && EqualsIgnoreCase(args[1], "help")) {
    static constexpr std::string_view kHelp[] = {
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>: the eviction policy's estimate",
        "    (TinyLFU's sketch, 0-15).",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    };
    AppendArrayHeader(out, std::size(kHelp));
    for (std::string_view line : kHelp) proto::AppendSimple(out, line);
    return CommandStatus::kDone;
  }
  enum class Sub { kFreq, kIdletime, kRefcount, kEncoding };
  static constexpr std::pair<std::string_view, Sub> kSubs[] = {{"freq", Sub::kFreq},
                                                               {"idletime", Sub::kIdletime},
                                                               {"refcount", Sub::kRefcount},
                                                               {"encoding", Sub::kEncoding}};
  const auto* found = std::find_if(std::begin(kSubs), std::end(kSubs), [&](const auto& s) {
    return EqualsIgnoreCase(args[1], s.first);
  });
  if (found == std::end(kSubs)) {
    AppendError(out, proto::UnknownSubcommandError("OBJECT", args[1]));
    return CommandStatus::kDone;
  }
  if (args.size() != 3) {
    AppendError(out, proto::WrongArgsError("object|" + std::string(found->first)));
    return CommandStatus::kDone;
  }
  lease::Store& store = state_.cache.store();
  if (found->second == Sub::kRefcount || found->second == Sub::kEncoding) {
    std::string_view encoding;
    bool present = false;
    store.Peek(args[2], [&](std::string_view value, const lease::EntryMeta& meta, size_t) {
      present = meta.kind == lease::EntryKind::kValue;
      encoding = StringEncoding(value);  // a literal: outlives the lock
    });
    if (!present) {
      AppendNil(out, client.resp);
    } else if (found->second == Sub::kRefcount) {
      AppendInteger(out, 1);
    } else {
      AppendBulk(out, encoding);
    }
    return CommandStatus::kDone;
  }
  const bool freq = found->second == Sub::kFreq;
  if (freq && store.policy() != lease::EvictionPolicy::kTinyLfu) {
    AppendError(out,
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked "
                "(memory.policy is clock).");
    return CommandStatus::kDone;
  }
  const std::optional<lease::PolicyView> view = store.Inspect(args[2]);
  if (!view) {
    AppendNil(out, client.resp);
  } else {
    AppendInteger(out, freq ? view->frequency : view->idle_ms / 1000);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Ttl(RespClient& client, Args args, std::string& out,
                                AsyncReplyTarget&) {
  // TTL/PTTL: the table's param is the reply's unit in milliseconds (1000 or 1).
  lease::Millis pttl = state_.cache.Pttl(args[1]);
  int64_t unit = client.cmd->param;
  if (pttl >= 0 && unit > 1) pttl = (pttl + unit / 2) / unit;
  AppendInteger(out, pttl);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Expire(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  // EXPIRE/PEXPIRE key n, EXPIREAT/PEXPIREAT key unix-time [NX|XX|GT|LT]; the table's param is
  // n's unit in milliseconds, negative when n is a Unix time rather than a time to live.
  int64_t n;
  if (!proto::ParseInt64(args[2], &n)) {
    AppendError(out, proto::kNotInteger);
    return CommandStatus::kDone;
  }
  const bool absolute = client.cmd->param < 0;
  const int64_t unit = absolute ? -client.cmd->param : client.cmd->param;
  if (n > INT64_MAX / unit || n < INT64_MIN / unit) {
    AppendError(out, proto::InvalidExpireError(client.cmd->name));
    return CommandStatus::kDone;
  }
  const int64_t now = UnixMillis();
  int64_t ttl_ms = n * unit;
  if (absolute) {
    // A time already past deletes the key, as a time to live of 0 does (Redis).
    ttl_ms = ttl_ms <= now ? 0 : ttl_ms - now;
  } else if (ttl_ms > INT64_MAX - now) {
    AppendError(out, proto::InvalidExpireError(client.cmd->name));
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
      AppendError(out, proto::UnsupportedOptionError(args[i]));
      return CommandStatus::kDone;
    }
  }
  if (nx && (xx || gt || lt)) {
    AppendError(out, proto::kExpireNxConflict);
    return CommandStatus::kDone;
  }
  if (gt && lt) {
    AppendError(out, proto::kExpireGtLtConflict);
    return CommandStatus::kDone;
  }
  lease::Millis current = state_.cache.Pttl(args[1]);
  if (current == -2) {
    AppendInteger(out, 0);
    return CommandStatus::kDone;
  }
  // Redis: a key without TTL counts as an infinite TTL for GT/LT.
  bool has_ttl = current >= 0;
  // The store keeps deadlines on the monotonic clock: a Unix time set before comes back from it
  // within 1 ms (two clocks, each read in whole ms), so for GT/LT that counts as the same time.
  const int64_t slack = absolute ? 1 : 0;
  if ((nx && has_ttl) || (xx && !has_ttl) || (gt && (!has_ttl || ttl_ms <= current + slack)) ||
      (lt && has_ttl && ttl_ms >= current - slack)) {
    AppendInteger(out, 0);
    return CommandStatus::kDone;
  }
  const bool set = state_.cache.Expire(args[1], ttl_ms);
  AppendInteger(out, set ? 1 : 0);
  // A time to live of 0 or less deletes the key (Redis's "del" event).
  if (set) state_.keyspace_events.Notify(kEventGeneric, ttl_ms > 0 ? "expire" : "del", args[1]);
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
  // WATCH: the keys it deletes change; a watched key that did not exist does not (Redis).
  state_.watches.TouchIf([this](const std::string& key) { return state_.cache.Exists(key); });
  state_.tracking.InvalidateAll();
  state_.cache.FlushAll();
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

}  // namespace corral::server

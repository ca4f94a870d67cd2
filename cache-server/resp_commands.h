// corral's RESP command set (SPEC.md "RESP endpoint"): one declarative table (CommandSpec) that
// drives dispatch, the before-AUTH rule and COMMAND; turns one parsed command into reply bytes.
// No sockets here: the session feeds commands in and writes out what this appends.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/acl.h"
#include "cache-server/pubsub.h"
#include "cache-server/server_state.h"
#include "cache-server/watch_table.h"
#include "lease/wal_position.h"

namespace corral::server {

struct CommandSpec;

// A transaction being queued (between MULTI and EXEC or DISCARD).
struct Transaction {
  std::vector<std::vector<std::string>> queued;  // each command's arguments, name first
  uint32_t flags = 0;    // the queued commands' CommandFlag bits, or-ed (Redis's mstate.cmd_flags)
  bool aborted = false;  // a command could not be queued: EXEC answers EXECABORT
};

// Per-connection state that commands read and change.
struct RespClient {
  const CommandSpec* cmd = nullptr;  // the command being executed (Redis's c->cmd)
  // When `cmd` is a container (CLIENT, CONFIG, ...): the known subcommand it ran ("list"; static
  // storage), for CLIENT LIST's cmd=client|list. Empty otherwise, or for an unknown subcommand.
  std::string_view cmd_sub;
  uint64_t id = 0;
  std::string name, lib_name, lib_ver;
  std::string addr, laddr;
  bool authenticated = true;
  // The user this connection is logged in as (null before AUTH), and the user table's
  // generation when it was looked up: a change (ACL SETUSER) is picked up at the next command.
  std::shared_ptr<const auth::User> user;
  uint64_t users_generation = 0;
  int resp = 2;  // the protocol HELLO chose: 2 or 3
  std::time_t created_unix = 0;
  std::time_t last_command_unix = 0;
  // CORRAL.WRITTEN: the WAL position of this connection's last write (read-your-writes); 0: none.
  lease::WalPosition written = 0;
  std::unique_ptr<Transaction> multi;  // inside MULTI
  bool in_exec = false;  // running EXEC's queued commands (admitted as a whole: no OOM check)
  std::unique_ptr<Watcher> watch;          // WATCHed keys, until EXEC, DISCARD, UNWATCH or RESET
  std::unique_ptr<Subscriber> subscriber;  // after the first (P)SUBSCRIBE
  // CLIENT TRACKING (tracking.h): how this connection tracks, and CLIENT CACHING's answer for
  // the next command (OPTIN: YES was sent; OPTOUT: NO was sent).
  enum class Tracking : uint8_t {
    kOff,
    kDefault,
    kOptIn,
    kOptOut,
    kBcast
  } tracking = Tracking::kOff;
  bool caching_next = false;
  // CLIENT REPLY: kOff drops every reply, kSkip the next command's; pushes (invalidations,
  // RESP3 pub/sub) are always sent. The session applies it (RespCommands::ReplyDropped).
  // kSkipNext: CLIENT REPLY SKIP just ran; the command after it is kSkip.
  enum class Reply : uint8_t { kOn, kOff, kSkip, kSkipNext } reply = Reply::kOn;
  bool read_stale = false;  // the command just run answered a stale value (tracking only)
  bool no_evict = false;    // CLIENT NO-EVICT ON (a flag only: corral never evicts clients)
  // CLIENT KILL of this very connection (SKIPME no): the session closes it once the reply of
  // the command in hand is written.
  bool close_after_reply = false;
  // What CLIENT LIST and CLIENT INFO show of the connection's socket and buffers (Redis's fd,
  // qbuf, qbuf-free, rbs, rbp, obl, omem, events): the session writes it just before they read
  // it (its Visit, and AsyncReplyTarget::DescribeBuffers for the caller itself).
  struct Buffers {
    int fd = -1;
    size_t qbuf = 0, qbuf_free = 0;  // unparsed bytes in the query buffer, and room after them
    size_t rbs = 0, rbp = 0;         // the query buffer's size, and its largest so far
    size_t obl = 0, omem = 0;        // replies not yet written; all output waiting (with pushes)
    size_t own = 0;                  // the connection's own memory besides these (tot-mem)
    bool writing = false;            // a write is under way (events=rw)
  };
  Buffers buffers;
  // In RESP2, a connection with subscriptions takes only the pub/sub commands, PING, QUIT, RESET.
  bool subscribed() const { return subscriber != nullptr && subscriber->count() > 0; }
};

// A session that can take a reply later, from any thread (read-through waits). Thread-safe.
class AsyncReplyTarget {
 public:
  virtual ~AsyncReplyTarget() = default;
  // Appends `reply` to the connection's output in command order and resumes the pipeline.
  virtual void DeliverLater(std::string reply) = 0;
  virtual std::shared_ptr<AsyncReplyTarget> Self() = 0;
  // The connection, as a target of pushes (pub/sub messages); null where there is none.
  virtual std::shared_ptr<PushTarget> Pusher() { return nullptr; }
  // Fills RespClient::Buffers for CLIENT LIST / INFO of the caller itself (none: left as is).
  virtual void DescribeBuffers(RespClient::Buffers&) {}
};

enum class CommandStatus {
  kDone,     // the reply is in `out`
  kClose,    // the reply is in `out`; close the connection after writing it (QUIT)
  kPending,  // the reply will come through AsyncReplyTarget::DeliverLater; stop the pipeline
};

// Appends the answer to a read as a RESP reply (bulk, nil, -BUSY ... or -ERR ...) in the
// connection's protocol (2 or 3).
void AppendReadAnswer(std::string& out, const ReadAnswer& answer, int resp);

// Redis 7.0's command flags, as COMMAND reports them.
enum CommandFlag : uint32_t {
  kCmdWrite = 1u << 0,
  kCmdReadonly = 1u << 1,
  kCmdDenyOom = 1u << 2,
  kCmdAdmin = 1u << 3,
  kCmdNoScript = 1u << 4,
  kCmdLoading = 1u << 5,
  kCmdStale = 1u << 6,
  kCmdFast = 1u << 7,
  kCmdNoAuth = 1u << 8,  // allowed before AUTH
  // corral's own, not reported by COMMAND: runs at once inside MULTI instead of being queued
  // (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET: Redis's processCommand list).
  kCmdNotQueued = 1u << 9,
  // corral's own: allowed on a RESP2 connection that has subscriptions ((P)SUBSCRIBE,
  // (P)UNSUBSCRIBE, PING, QUIT, RESET).
  kCmdPubSubContext = 1u << 10,
  kCmdPubSub = 1u << 11,  // COMMAND's "pubsub"
};

// Redis 7.0's ACL categories (ACL CAT), as auth/ defines them. @fast and @slow are derived from
// kCmdFast, never written in the table.
inline constexpr uint32_t kAclKeyspace = auth::kKeyspace;
inline constexpr uint32_t kAclRead = auth::kRead;
inline constexpr uint32_t kAclWrite = auth::kWrite;
inline constexpr uint32_t kAclString = auth::kString;
inline constexpr uint32_t kAclFast = auth::kFast;
inline constexpr uint32_t kAclSlow = auth::kSlow;
inline constexpr uint32_t kAclAdmin = auth::kAdmin;
inline constexpr uint32_t kAclDangerous = auth::kDangerous;
inline constexpr uint32_t kAclConnection = auth::kConnection;
inline constexpr uint32_t kAclScripting = auth::kScripting;
inline constexpr uint32_t kAclTransaction = auth::kTransaction;
inline constexpr uint32_t kAclPubSub = auth::kPubSub;

class RespCommands;
using Args = std::span<const std::string_view>;
using CommandHandler = CommandStatus (RespCommands::*)(RespClient&, Args, std::string&,
                                                       AsyncReplyTarget&);

// One command, declared once: dispatch, the before-AUTH rule, COMMAND (INFO, COUNT, DOCS) and ACL
// categories all read this. Adding a command is one table entry (resp_commands.cc) + a handler.
struct CommandSpec {
  std::string_view name;  // lower case
  int arity;              // Redis convention: exact if > 0, at least -arity if < 0 (name included)
  uint32_t flags;         // CommandFlag bits
  uint32_t acl;           // AclCategory bits, besides @fast/@slow (derived from kCmdFast)
  int first_key, last_key, key_step;  // Redis's legacy key positions; 0 0 0 when keyless
  CommandHandler handler;
  std::string_view group;    // COMMAND DOCS's group: "string", "generic", "connection", ...
  std::string_view summary;  // COMMAND DOCS's summary
  // The handler's parameter, so that no handler looks at its own name. TTL/PTTL and
  // EXPIRE/PEXPIRE: milliseconds per unit of the command's argument or reply (1000 or 1).
  int64_t param = 0;

  uint32_t acl_categories() const { return acl | ((flags & kCmdFast) ? kAclFast : kAclSlow); }
  // Calls fn(key) for each key the command `args` names (the legacy key positions), in order,
  // while fn returns true; false if it stopped early.
  template <typename Fn>
  bool EveryKey(std::span<const std::string_view> args, Fn&& fn) const {
    if (first_key <= 0) return true;
    const int argc = static_cast<int>(args.size());
    const int last = last_key < 0 ? argc + last_key : last_key;
    for (int i = first_key; i <= last && i < argc; i += key_step) {
      if (!fn(args[i])) return false;
    }
    return true;
  }
  // True for commands whose first argument is a subcommand (CONFIG GET): ACL rules may name it.
  bool has_subcommands() const {
    for (std::string_view container : {"acl", "client", "command", "config", "function", "latency",
                                       "memory", "object", "script", "slowlog"}) {
      if (name == container) return true;
    }
    return false;
  }
};

class RespCommands {
 public:
  explicit RespCommands(ServerState& state);

  // Executes one command. Never throws; every failure is a RESP error reply in `out`.
  // Thread-safe (sessions on different threads call it concurrently).
  CommandStatus Execute(RespClient& client, std::span<const std::string_view> args,
                        std::string& out, AsyncReplyTarget& target);

  // The INFO text (Redis format) for `sections` (none: the default ones); see RenderInfo.
  std::string Info(const std::vector<std::string_view>& sections) const;

  // After `command` answered `reply` while `client.reply` is not kOn: whether the reply is
  // dropped (CLIENT REPLY OFF or SKIP; an (un)subscribe confirmation is a push and goes out).
  // Arms SKIP after CLIENT REPLY SKIP, and ends it once it has skipped its one reply.
  static bool ReplyDropped(RespClient& client, std::string_view command, std::string_view reply);

  // Tells the tracking connections of each read-through key they were answered fresh whose fresh
  // time has ended since (docs/protocol.md "Tracking and staleness agree"). Run every 100 ms.
  void TellFreshTimeOver();

  // Every command corral answers, in the table's order.
  static std::span<const CommandSpec> Table();
  // The command `name` (any case), or null. Does not allocate; a hash probe and one compare.
  static const CommandSpec* Find(std::string_view name);

  // A container command (has_subcommands) as ACL rules and ACL CAT see it: its own categories
  // and every subcommand's, as Redis 7.0 has them (CLIENT KILL is @admin @dangerous, CLIENT ID is
  // not). Null for other commands; then the table's categories hold for the whole command.
  // latency-tracking: command `args` (spec `spec`) ran for `us`: counted in its histogram, a
  // container's known subcommand in its own ("config|get"), as Redis's LATENCY HISTOGRAM.
  void RecordLatency(const CommandSpec& spec, Args args, int64_t us);

  struct ContainerAcl {
    std::string_view name;
    uint32_t categories;
    std::span<const auth::SubcommandInfo> subcommands;
  };
  static const ContainerAcl* ContainerAclOf(std::string_view name);

 private:
  CommandStatus Get(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus MGet(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Set(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Del(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Exists(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Object(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Ttl(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Expire(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Ping(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Echo(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Time(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Hello(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Auth(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Client(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Select(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Quit(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Command(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Config(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus InfoCmd(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus DbSize(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Flush(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus LeaseGet(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus LeaseSet(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus LeaseRelease(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Written(RespClient&, Args, std::string&, AsyncReplyTarget&);
  // The string and key commands (resp_string_commands.cc).
  CommandStatus IncrBy(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus IncrByFloat(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Append(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Strlen(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus GetRange(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus SetRange(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus MSet(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus SetNx(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus SetEx(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus GetEx(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus GetDel(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus GetSet(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Scan(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Keys(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Type(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Touch(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Persist(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Rename(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Copy(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus RandomKey(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus ExpireTime(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus ScriptFlush(RespClient&, Args, std::string&, AsyncReplyTarget&);
  // Transactions (resp_transaction_commands.cc).
  CommandStatus Multi(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Exec(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Discard(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Watch(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Unwatch(RespClient&, Args, std::string&, AsyncReplyTarget&);
  // Closes the connections of users ACL DELUSER removed (`now` null) or whose channel rules ACL
  // SETUSER narrowed below their subscriptions (resp_server_commands.cc).
  void DisconnectUsers(RespClient& caller, std::vector<std::string> names,
                       std::shared_ptr<const auth::User> now);
  // Pub/sub (resp_pubsub_commands.cc). param: 0 channels, 1 patterns.
  CommandStatus Subscribe(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Unsubscribe(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Publish(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus PubSubCmd(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Reset(RespClient&, Args, std::string&, AsyncReplyTarget&);
  // Queues the command `spec` in `args` (checked) into the client's transaction: +QUEUED.
  void Queue(RespClient& client, const CommandSpec& spec, Args args, std::string& out);
  // While the store is out of memory: true, with the refusal in `out`, if Redis 7.0 would refuse
  // `spec` now (processCommand): a denyoom command; inside MULTI any command but EXEC, DISCARD,
  // QUIT and RESET (and the transaction then aborts at EXEC); EXEC when a queued command is
  // denyoom (EXECABORT ... because of: OOM ..., the transaction discarded).
  bool RefuseOutOfMemory(RespClient& client, const CommandSpec& spec, std::string& out);
  // Runs the checked command `spec` (Execute after its checks); then, for a write command, marks
  // its keys changed for the connections that WATCH them.
  CommandStatus Run(RespClient& client, const CommandSpec& spec, Args args, std::string& out,
                    AsyncReplyTarget& target);
  // Run's handler call for a write command with keys that WATCH, CLIENT TRACKING or keyspace
  // events' "new" observe.
  CommandStatus RunObservedWrite(RespClient& client, const CommandSpec& spec, Args args,
                                 std::string& out, AsyncReplyTarget& target);
  CommandStatus ConfigSet(Args args, std::string& out);
  // True, with the refusal in `out`, when `key` is a read-through (namespace) key: the write
  // commands that cannot keep the lease rules refuse them (docs/protocol.md).
  bool RefuseNamespaceKey(const RespClient& client, std::string_view key, std::string& out) const;
  // True when `key` is a read-through key: "<namespace>:<id>" of a configured namespace.
  bool IsNamespaceKey(std::string_view key) const;
  // CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO (resp_tracking_commands.cc); true if
  // `args` was one of them (the reply is in `out`).
  bool TrackingSubcommand(RespClient& client, Args args, std::string& out,
                          AsyncReplyTarget& target);
  // The BCAST prefixes `client` tracks with now ("" for every key); none if it is not in BCAST.
  std::vector<std::string> ExistingPrefixes(const RespClient& client) const;
  // After a command on a tracking connection: remember the keys a read command named.
  void Track(RespClient& client, const CommandSpec& spec, Args args);
  // The clock of the tracking table's fresh times (steady, in ms).
  static int64_t TrackingNowMs();
  // A read a tracking connection waited for was answered (`answer`, for `key`): a stale value is
  // told at once, a value loaded is told when its fresh time ends. Any thread.
  static void TellTrackerOfLoad(TrackingTable& tracker, lease::Store& store, const std::string& key,
                                const ReadAnswer& answer);

  // CLIENT LIST's line of `client` (its buffers as last described). For the caller's own line,
  // `sub` is the running CLIENT subcommand (cmd=client|list) and `argv_mem` its arguments' bytes.
  std::string ClientInfoLine(const RespClient& client, std::string_view sub = {},
                             size_t argv_mem = 0) const;
  // The bytes of a command's arguments (CLIENT LIST's argv-mem).
  static size_t ArgvMem(Args args);
  // Logs `client` in as `name` if `password` is right; false (nothing changed) otherwise.
  bool LogIn(RespClient& client, std::string_view name, std::string_view password) const;
  // The ACL's verdict on the command in `args`: NOPERM in `out` when refused; kUserGone when the
  // connection's user was deleted (ACL DELUSER), which closes the connection as Redis does.
  enum class Permission { kAllowed, kRefused, kUserGone };
  Permission Permit(RespClient& client, const CommandSpec& spec, Args args, std::string& out) const;
  CommandStatus Acl(RespClient&, Args, std::string&, AsyncReplyTarget&);
  // Introspection (resp_introspection_commands.cc): CLIENT LIST / KILL / NO-EVICT, SLOWLOG,
  // LATENCY, MEMORY, ROLE.
  CommandStatus ClientList(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus ClientKill(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus ClientNoEvict(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus SlowLog(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Latency(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Memory(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Role(RespClient&, Args, std::string&, AsyncReplyTarget&);

  ServerState& state_;
  // INFO commandstats, per command in Table()'s order: calls run (counted after each, as Redis
  // does), calls refused before running, and calls answered at once with an error.
  struct CallCounts {
    Counter calls;
    Counter failed;
    std::atomic<uint64_t> rejected{0};
  };
  CallCounts& CountsOf(const CommandSpec& spec) { return call_counts_[&spec - table_]; }
  void Rejected(const CommandSpec& spec) {
    CountsOf(spec).rejected.fetch_add(1, std::memory_order_relaxed);
  }
  const CommandSpec* table_;
  std::unique_ptr<CallCounts[]> call_counts_;
  // Per command in Table()'s order: its subcommands if it is a container, else null.
  std::unique_ptr<const ContainerAcl*[]> containers_;
  // LATENCY HISTOGRAM: per command in Table()'s order, and per known subcommand of a container
  // by its full name ("client|list"; made at its first call, under the mutex).
  std::unique_ptr<LatencyHistogram[]> histograms_;
  mutable std::mutex subcommand_histograms_mu_;
  std::map<std::string, std::unique_ptr<LatencyHistogram>, std::less<>> subcommand_histograms_;
  // The histogram of `full_name` ("get", "config|get"); null if it has no calls or no such
  // command. Subcommand ones are found under the mutex and live as long as this object.
  const LatencyHistogram* HistogramOf(std::string_view full_name) const;
  // LATENCY HISTOGRAM's reply for the named commands (none: every command with calls).
  void AppendLatencyHistograms(const RespClient& client, Args names, std::string& out) const;
};

}  // namespace corral::server

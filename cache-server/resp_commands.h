// corral's RESP command set (SPEC.md "RESP endpoint"): turns one parsed command into reply bytes.
// No sockets here: the session feeds commands in and writes out what this appends.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache-server/server_state.h"

namespace corral::server {

// Per-connection state that commands read and change.
struct RespClient {
  uint64_t id = 0;
  std::string name, lib_name, lib_ver;
  std::string addr, laddr;
  bool authenticated = true;
  std::time_t created_unix = 0;
  std::time_t last_command_unix = 0;
};

// A session that can take a reply later, from any thread (read-through waits). Thread-safe.
class AsyncReplyTarget {
 public:
  virtual ~AsyncReplyTarget() = default;
  // Appends `reply` to the connection's output in command order and resumes the pipeline.
  virtual void DeliverLater(std::string reply) = 0;
  virtual std::shared_ptr<AsyncReplyTarget> Self() = 0;
};

enum class CommandStatus {
  kDone,     // the reply is in `out`
  kClose,    // the reply is in `out`; close the connection after writing it (QUIT)
  kPending,  // the reply will come through AsyncReplyTarget::DeliverLater; stop the pipeline
};

// Appends the answer to a read as a RESP reply (bulk, null, -BUSY ... or -ERR ...).
void AppendReadAnswer(std::string& out, const ReadAnswer& answer);

class RespCommands {
 public:
  explicit RespCommands(ServerState& state);

  // Executes one command. Never throws; every failure is a RESP error reply in `out`.
  // Thread-safe (sessions on different threads call it concurrently).
  CommandStatus Execute(RespClient& client, std::span<const std::string_view> args,
                        std::string& out, AsyncReplyTarget& target);

  // The INFO text (Redis format) for `section` ("" = default).
  std::string Info(std::string_view section) const;

 private:
  struct Spec;
  static const Spec* FindSpec(std::string_view name);
  using Args = std::span<const std::string_view>;
  CommandStatus Get(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus MGet(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Set(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Del(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Exists(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Ttl(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Expire(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Ping(RespClient&, Args, std::string&, AsyncReplyTarget&);
  CommandStatus Echo(RespClient&, Args, std::string&, AsyncReplyTarget&);
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
  CommandStatus ConfigSet(Args args, std::string& out);

  std::string ClientInfoLine(const RespClient& client) const;
  bool CheckPassword(std::string_view password) const;

  ServerState& state_;
};

}  // namespace corral::server

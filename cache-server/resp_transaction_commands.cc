// MULTI, EXEC, DISCARD, WATCH and UNWATCH (docs/protocol.md "Transactions"): Redis 7.0's
// semantics (multi.c) for plain keys, and corral's rule for read-through keys.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache-server/resp_commands.h"
#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendError;
using proto::AppendSimple;

namespace {

// EXEC's reply: one part per queued command, in order. A part a command answers later (a
// read-through key that has to be loaded, a DEL the tier acknowledges) arrives through its own
// Slot; the reply goes out once every part is in, through the session if any came later.
class ExecReplies : public std::enable_shared_from_this<ExecReplies> {
 public:
  ExecReplies(size_t commands, std::shared_ptr<AsyncReplyTarget> session)
      : parts_(commands), session_(std::move(session)) {}

  class Slot final : public AsyncReplyTarget, public std::enable_shared_from_this<Slot> {
   public:
    Slot(std::shared_ptr<ExecReplies> replies, size_t index)
        : replies_(std::move(replies)), index_(index) {}
    void DeliverLater(std::string reply) override { replies_->Later(index_, std::move(reply)); }
    std::shared_ptr<AsyncReplyTarget> Self() override { return shared_from_this(); }
    std::shared_ptr<PushTarget> Pusher() override { return replies_->session_->Pusher(); }

   private:
    std::shared_ptr<ExecReplies> replies_;
    size_t index_;
  };

  std::string& part(size_t i) { return parts_[i]; }
  // Before a command runs: its part is expected (it may come later, on any thread).
  void Expect() {
    std::lock_guard lock(mu_);
    ++left_;
  }
  // A command answered at once, or (the last call) every command has run. True once every part
  // is in: the caller appends the reply itself. Otherwise the last part to come in sends it.
  bool Arrived() {
    std::lock_guard lock(mu_);
    return --left_ == 0;
  }
  void AppendTo(std::string& out) {
    AppendArrayHeader(out, parts_.size());
    for (const std::string& p : parts_) out += p;
  }

 private:
  void Later(size_t i, std::string reply) {
    {
      std::lock_guard lock(mu_);
      parts_[i] = std::move(reply);
      if (--left_ != 0) return;
    }
    std::string out;
    AppendTo(out);
    session_->DeliverLater(std::move(out));
  }

  std::mutex mu_;
  std::vector<std::string> parts_;
  size_t left_ = 1;  // the parts expected and not in, plus one until every command has run
  std::shared_ptr<AsyncReplyTarget> session_;
};

}  // namespace

void RespCommands::Queue(RespClient& client, const CommandSpec& spec, Args args, std::string& out) {
  client.multi->queued.emplace_back(args.begin(), args.end());
  client.multi->flags |= spec.flags;
  AppendSimple(out, proto::kQueued);
}

CommandStatus RespCommands::Multi(RespClient& client, Args, std::string& out, AsyncReplyTarget&) {
  if (client.multi != nullptr) {
    AppendError(out, proto::kMultiNested);
  } else {
    client.multi = std::make_unique<Transaction>();
    AppendSimple(out, proto::kOk);
  }
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Discard(RespClient& client, Args, std::string& out, AsyncReplyTarget&) {
  if (client.multi == nullptr) {
    AppendError(out, proto::kDiscardWithoutMulti);
    return CommandStatus::kDone;
  }
  client.multi.reset();
  client.watch.reset();
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Watch(RespClient& client, Args args, std::string& out,
                                  AsyncReplyTarget&) {
  if (client.multi != nullptr) {
    AppendError(out, proto::kWatchInsideMulti);
    return CommandStatus::kDone;
  }
  if (client.watch == nullptr) client.watch = std::make_unique<Watcher>(state_.watches);
  for (size_t i = 1; i < args.size(); ++i) {
    state_.watches.Watch(*client.watch, args[i], state_.cache.Exists(args[i]));
  }
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Unwatch(RespClient& client, Args, std::string& out, AsyncReplyTarget&) {
  client.watch.reset();
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

CommandStatus RespCommands::Exec(RespClient& client, Args, std::string& out,
                                 AsyncReplyTarget& target) {
  if (client.multi == nullptr) {
    AppendError(out, proto::kExecWithoutMulti);
    return CommandStatus::kDone;
  }
  // Whatever happens next, the transaction is over and nothing is watched any more.
  std::unique_ptr<Transaction> tx = std::move(client.multi);
  std::unique_ptr<Watcher> watch = std::move(client.watch);
  if (tx->aborted) {
    AppendError(out, proto::kExecAbort);
    return CommandStatus::kDone;
  }
  auto replies = std::make_shared<ExecReplies>(tx->queued.size(), target.Self());
  bool changed = false;
  bool close = false;
  // No other client's command runs from the WATCH check to the last queued command. BCAST
  // trackers get one message per prefix for the whole transaction.
  TrackingTable::Batch batch(state_.tracking);
  state_.gate.Exclusive([&] {
    if (watch != nullptr) {
      changed = watch->dirty();
      // A key that existed at WATCH and is gone now expired or was evicted: a change too.
      for (const Watcher::Key& k : watch->keys()) {
        if (changed) break;
        changed = k.existed && !state_.cache.Exists(k.key);
      }
      if (changed) return;
    }
    std::vector<std::string_view> argv;
    client.in_exec = true;
    // As Redis's call() for each queued command: SLOWLOG and LATENCY see each one (the session
    // logs EXEC itself, with the whole transaction's time).
    CommandTimer timer(state_.command_log, CommandLog::PreciseUs());
    for (size_t i = 0; i < tx->queued.size(); ++i) {
      argv.assign(tx->queued[i].begin(), tx->queued[i].end());
      auto slot = std::make_shared<ExecReplies::Slot>(replies, i);
      replies->Expect();
      client.cmd = nullptr;  // set by Run: a command refused before running is not logged
      CommandStatus status = Execute(client, argv, replies->part(i), *slot);
      if (timer.active()) {
        if (const int64_t us = timer.Lap(); us >= 0 && client.cmd != nullptr) {
          if (state_.command_log.latency_tracking()) RecordLatency(*client.cmd, argv, us);
          state_.command_log.Record(argv, (client.cmd->flags & kCmdFast) != 0, us,
                                    client.last_command_unix, client.addr, client.name);
        }
      }
      if (status != CommandStatus::kPending) replies->Arrived();
      if (status == CommandStatus::kClose) close = true;
    }
    client.in_exec = false;
  });
  if (changed) {
    // The null array: a WATCHed key changed.
    if (client.resp >= 3) {
      proto::AppendNull(out);
    } else {
      proto::AppendNullArray(out);
    }
    return CommandStatus::kDone;
  }
  if (!replies->Arrived()) return CommandStatus::kPending;
  replies->AppendTo(out);
  return close ? CommandStatus::kClose : CommandStatus::kDone;
}

}  // namespace corral::server

// corral's introspection commands, as Redis 7.0 answers them (networking.c clientCommand,
// slowlog.c, latency.c, object.c memoryCommand, replication.c roleCommand): CLIENT LIST, KILL and
// NO-EVICT, SLOWLOG, LATENCY, MEMORY and ROLE. Connections live on several threads and each one's
// RespClient is touched only on its own: CLIENT LIST and KILL ask every connection on its thread
// (PushTarget::Visit) and answer once all have (DeliverLater).
#include <algorithm>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cache-server/allocator.h"
#include "cache-server/resp_commands.h"
#include "cache-server/resp_util.h"
#include "proto/errors.h"
#include "proto/resp_writer.h"

namespace corral::server {

using proto::AppendArrayHeader;
using proto::AppendBulk;
using proto::AppendError;
using proto::AppendInteger;
using proto::AppendNil;
using proto::AppendSimple;

namespace {

// A subcommand's arity, Redis's convention (name and subcommand included): exact if > 0, at least
// -arity if < 0. False with Redis's error ("wrong number of arguments for 'slowlog|len'") in `out`.
bool CheckArity(Args args, int arity, std::string& out) {
  const int argc = static_cast<int>(args.size());
  if (arity > 0 ? argc == arity : argc >= -arity) return true;
  std::string name;
  for (char c : args[0]) name += AsciiLower(c);
  name += '|';
  for (char c : args[1]) name += AsciiLower(c);
  AppendError(out, proto::WrongArgsError(name));
  return false;
}

// A HELP reply: one status line each (Redis's addReplyHelp).
void AppendHelp(std::string& out, std::span<const std::string_view> lines) {
  AppendArrayHeader(out, lines.size());
  for (std::string_view line : lines) AppendSimple(out, line);
}

// Redis's client types (CLIENT LIST TYPE, CLIENT KILL TYPE). corral has no replication: no
// connection is a master or a replica.
enum class ClientType { kNormal, kMaster, kReplica, kPubSub };
std::optional<ClientType> ParseClientType(std::string_view name) {
  if (EqualsIgnoreCase(name, "normal")) return ClientType::kNormal;
  if (EqualsIgnoreCase(name, "slave") || EqualsIgnoreCase(name, "replica")) {
    return ClientType::kReplica;
  }
  if (EqualsIgnoreCase(name, "pubsub")) return ClientType::kPubSub;
  if (EqualsIgnoreCase(name, "master")) return ClientType::kMaster;
  return std::nullopt;
}
ClientType TypeOf(const RespClient& client) {
  return client.subscribed() ? ClientType::kPubSub : ClientType::kNormal;
}

// Collects what each connection answers on its own thread; the last reference to go (the last
// connection's visit, run or dropped because it closed) builds and delivers the reply.
struct ClientGather {
  std::mutex mu;
  std::vector<std::pair<uint64_t, std::string>> lines;  // CLIENT LIST: id, line
  int64_t killed = 0;                                   // CLIENT KILL
  std::function<std::string(ClientGather&)> reply;
  std::shared_ptr<AsyncReplyTarget> target;
  ~ClientGather() { target->DeliverLater(reply(*this)); }
};

}  // namespace

// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]: one line per connection, by id
// (with ID, in the order given). The caller's own line is taken at once; the others' on their
// threads. A connection that closes before it answers is left out.
CommandStatus RespCommands::ClientList(RespClient& client, Args args, std::string& out,
                                       AsyncReplyTarget& target) {
  std::optional<ClientType> type;
  std::vector<uint64_t> ids;
  bool by_id = false;
  if (args.size() == 4 && EqualsIgnoreCase(args[2], "type")) {
    type = ParseClientType(args[3]);
    if (!type) {
      AppendError(out, proto::UnknownClientTypeError(args[3]));
      return CommandStatus::kDone;
    }
  } else if (args.size() > 3 && EqualsIgnoreCase(args[2], "id")) {
    by_id = true;
    for (size_t i = 3; i < args.size(); ++i) {
      int64_t id;
      if (!proto::ParseInt64(args[i], &id)) {
        AppendError(out, proto::kInvalidClientId);
        return CommandStatus::kDone;
      }
      ids.push_back(static_cast<uint64_t>(id));
    }
  } else if (args.size() != 2) {
    AppendError(out, proto::kSyntaxError);
    return CommandStatus::kDone;
  }
  auto gather = std::make_shared<ClientGather>();
  gather->target = target.Self();
  gather->reply = [resp = client.resp, ids, by_id](ClientGather& g) {
    std::string text;
    if (by_id) {
      for (uint64_t id : ids) {
        for (const auto& [line_id, line] : g.lines) {
          if (line_id == id) text += line;
        }
      }
    } else {
      std::sort(g.lines.begin(), g.lines.end());
      for (const auto& [id, line] : g.lines) text += line;
    }
    std::string reply;
    proto::AppendText(reply, text, resp);
    return reply;
  };
  auto wanted = [&](uint64_t id) {
    return !by_id || std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  if (wanted(client.id) && (!type || TypeOf(client) == *type)) {
    target.DescribeBuffers(client.buffers);
    gather->lines.emplace_back(client.id, ClientInfoLine(client, "list", ArgvMem(args)));
  }
  for (auto& [id, connection] : state_.clients.All()) {
    if (id == client.id || !wanted(id)) continue;
    connection->Visit([this, gather, type](const RespClient& other) {
      if (type && TypeOf(other) != *type) return false;
      std::string line = ClientInfoLine(other);
      std::lock_guard lock(gather->mu);
      gather->lines.emplace_back(other.id, std::move(line));
      return false;
    });
  }
  return CommandStatus::kPending;  // answered when `gather` goes
}

// CLIENT KILL addr:port (the old form: +OK, or an error when none matched) or CLIENT KILL with
// filters ID, ADDR, LADDR, USER, TYPE, SKIPME (the number killed). Each matching connection is
// closed on its own thread, between its commands; the caller itself (SKIPME no, or the old
// form) once this reply is written.
CommandStatus RespCommands::ClientKill(RespClient& client, Args args, std::string& out,
                                       AsyncReplyTarget& target) {
  if (!CheckArity(args, -3, out)) return CommandStatus::kDone;
  struct Filter {
    std::optional<uint64_t> id;
    std::optional<std::string> addr, laddr, user;
    std::optional<ClientType> type;
    bool Matches(const RespClient& c) const {
      if (id && c.id != *id) return false;
      if (addr && c.addr != *addr) return false;
      if (laddr && c.laddr != *laddr) return false;
      if (type && TypeOf(c) != *type) return false;
      if (user && (c.user != nullptr ? c.user->name : std::string("default")) != *user) {
        return false;
      }
      return true;
    }
  } filter;
  const bool old_form = args.size() == 3;
  bool skipme = true;
  if (old_form) {
    filter.addr = std::string(args[2]);
    skipme = false;  // the old form may kill the caller (Redis)
  } else {
    for (size_t i = 2; i < args.size(); i += 2) {
      if (i + 1 >= args.size()) {
        AppendError(out, proto::kSyntaxError);
        return CommandStatus::kDone;
      }
      const std::string_view option = args[i], value = args[i + 1];
      if (EqualsIgnoreCase(option, "id")) {
        int64_t id;
        if (!proto::ParseInt64(value, &id) || id < 1) {
          AppendError(out, proto::kClientIdNotPositive);
          return CommandStatus::kDone;
        }
        filter.id = static_cast<uint64_t>(id);
      } else if (EqualsIgnoreCase(option, "type")) {
        filter.type = ParseClientType(value);
        if (!filter.type) {
          AppendError(out, proto::UnknownClientTypeError(value));
          return CommandStatus::kDone;
        }
      } else if (EqualsIgnoreCase(option, "addr")) {
        filter.addr = std::string(value);
      } else if (EqualsIgnoreCase(option, "laddr")) {
        filter.laddr = std::string(value);
      } else if (EqualsIgnoreCase(option, "user")) {
        if (state_.users.Find(value) == nullptr) {
          AppendError(out, proto::NoSuchUserError(value));
          return CommandStatus::kDone;
        }
        filter.user = std::string(value);
      } else if (EqualsIgnoreCase(option, "skipme")) {
        if (EqualsIgnoreCase(value, "yes")) {
          skipme = true;
        } else if (EqualsIgnoreCase(value, "no")) {
          skipme = false;
        } else {
          AppendError(out, proto::kSyntaxError);
          return CommandStatus::kDone;
        }
      } else {
        AppendError(out, proto::kSyntaxError);
        return CommandStatus::kDone;
      }
    }
  }
  auto gather = std::make_shared<ClientGather>();
  gather->target = target.Self();
  gather->reply = [old_form](ClientGather& g) {
    std::string reply;
    if (!old_form) {
      AppendInteger(reply, g.killed);
    } else if (g.killed == 0) {
      AppendError(reply, proto::kNoSuchClient);
    } else {
      AppendSimple(reply, proto::kOk);
    }
    return reply;
  };
  if (!skipme && filter.Matches(client)) {
    client.close_after_reply = true;
    gather->killed = 1;
  }
  auto visit = [gather, filter](const RespClient& other) {
    if (!filter.Matches(other)) return false;
    std::lock_guard lock(gather->mu);
    ++gather->killed;
    return true;
  };
  if (filter.id) {
    // By id: only that connection is asked.
    if (*filter.id != client.id) {
      if (std::shared_ptr<PushTarget> other = state_.clients.Find(*filter.id)) other->Visit(visit);
    }
  } else {
    for (auto& [id, connection] : state_.clients.All()) {
      if (id != client.id) connection->Visit(visit);
    }
  }
  return CommandStatus::kPending;  // answered when `gather` goes
}

// CLIENT NO-EVICT ON|OFF: kept and shown as CLIENT LIST's flag "e"; corral never evicts clients
// (it has no maxmemory-clients), so it changes nothing else.
CommandStatus RespCommands::ClientNoEvict(RespClient& client, Args args, std::string& out,
                                          AsyncReplyTarget&) {
  if (!CheckArity(args, 3, out)) return CommandStatus::kDone;
  if (EqualsIgnoreCase(args[2], "on")) {
    client.no_evict = true;
  } else if (EqualsIgnoreCase(args[2], "off")) {
    client.no_evict = false;
  } else {
    AppendError(out, proto::kSyntaxError);
    return CommandStatus::kDone;
  }
  AppendSimple(out, proto::kOk);
  return CommandStatus::kDone;
}

// SLOWLOG GET [count] | LEN | RESET | HELP (CommandLog). GET's entries: id, Unix time,
// microseconds, arguments, client address, client name; newest first, 10 by default, -1 all.
CommandStatus RespCommands::SlowLog(RespClient&, Args args, std::string& out, AsyncReplyTarget&) {
  const std::string_view sub = args[1];
  CommandLog& log = state_.command_log;
  if (EqualsIgnoreCase(sub, "help")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    static constexpr std::string_view kHelp[] = {
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
        "    Entries are made of:",
        "    id, timestamp, time in microseconds, arguments array, client IP and port,",
        "    client name",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
        "HELP",
        "    Prints this help.",
    };
    AppendHelp(out, kHelp);
  } else if (EqualsIgnoreCase(sub, "get")) {
    if (args.size() > 3) {
      AppendError(out, proto::SubcommandSyntaxError("SLOWLOG", sub));
      return CommandStatus::kDone;
    }
    int64_t count = 10;
    if (args.size() == 3 && (!proto::ParseInt64(args[2], &count) || count < -1)) {
      AppendError(out, proto::kSlowlogCount);
      return CommandStatus::kDone;
    }
    const std::vector<SlowLogEntry> entries =
        log.SlowEntries(count < 0 ? SIZE_MAX : static_cast<size_t>(count));
    AppendArrayHeader(out, entries.size());
    for (const SlowLogEntry& e : entries) {
      AppendArrayHeader(out, 6);
      AppendInteger(out, static_cast<int64_t>(e.id));
      AppendInteger(out, e.unix_time);
      AppendInteger(out, e.duration_us);
      AppendArrayHeader(out, e.args.size());
      for (const std::string& arg : e.args) AppendBulk(out, arg);
      AppendBulk(out, e.addr);
      AppendBulk(out, e.name);
    }
  } else if (EqualsIgnoreCase(sub, "len")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    AppendInteger(out, static_cast<int64_t>(log.SlowLogLen()));
  } else if (EqualsIgnoreCase(sub, "reset")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    log.ResetSlowLog();
    AppendSimple(out, proto::kOk);
  } else {
    AppendError(out, proto::UnknownSubcommandError("SLOWLOG", sub));
  }
  return CommandStatus::kDone;
}

void RespCommands::RecordLatency(const CommandSpec& spec, Args args, int64_t us) {
  if (args.size() > 1 && spec.has_subcommands()) {
    if (const ContainerAcl* container = ContainerAclOf(spec.name)) {
      for (const auth::SubcommandInfo& sub : container->subcommands) {
        if (!EqualsIgnoreCase(sub.name, args[1])) continue;
        const std::string full_name = std::string(spec.name) + "|" + std::string(sub.name);
        std::lock_guard lock(subcommand_histograms_mu_);
        std::unique_ptr<LatencyHistogram>& h = subcommand_histograms_[full_name];
        if (h == nullptr) h = std::make_unique<LatencyHistogram>();
        h->Add(us);
        return;
      }
    }
  }
  histograms_[&spec - table_].Add(us);
}

const LatencyHistogram* RespCommands::HistogramOf(std::string_view full_name) const {
  if (full_name.find('|') != std::string_view::npos) {
    std::lock_guard lock(subcommand_histograms_mu_);
    auto it = subcommand_histograms_.find(full_name);
    return it == subcommand_histograms_.end() ? nullptr : it->second.get();
  }
  const CommandSpec* spec = Find(full_name);
  if (spec == nullptr) return nullptr;
  return &histograms_[spec - table_];
}

// Redis's fillCommandCDF: {calls, histogram_usec: {bound: cumulative count}} with a bound only
// where the count grew.
void RespCommands::AppendLatencyHistograms(const RespClient& client, Args names,
                                           std::string& out) const {
  // Full names with calls, in the order asked (none: Table()'s, each container's subcommands
  // after it); a container asked by name stands for its subcommands too.
  std::vector<std::string> asked;
  if (names.empty()) {
    for (const CommandSpec& spec : Table()) asked.emplace_back(spec.name);
  } else {
    for (std::string_view n : names) asked.push_back(AsciiLowerCopy(n));
  }
  std::vector<std::pair<std::string, const LatencyHistogram*>> found;
  for (const std::string& name : asked) {
    const LatencyHistogram* h = HistogramOf(name);
    if (h != nullptr && h->Total() > 0) found.emplace_back(name, h);
    if (name.find('|') != std::string::npos) continue;
    std::lock_guard lock(subcommand_histograms_mu_);
    const std::string prefix = name + "|";
    for (auto it = subcommand_histograms_.lower_bound(prefix);
         it != subcommand_histograms_.end() && it->first.starts_with(prefix); ++it) {
      if (it->second->Total() > 0) found.emplace_back(it->first, it->second.get());
    }
  }
  proto::AppendMap(out, found.size(), client.resp);
  for (const auto& [name, h] : found) {
    uint64_t counts[LatencyHistogram::kBuckets];
    uint64_t total = 0;
    int grew = 0;
    for (int b = 0; b < LatencyHistogram::kBuckets; ++b) {
      counts[b] = h->Count(b);
      total += counts[b];
      grew += counts[b] > 0;
    }
    AppendBulk(out, name);
    proto::AppendMap(out, 2, client.resp);
    AppendBulk(out, "calls");
    AppendInteger(out, static_cast<int64_t>(total));
    AppendBulk(out, "histogram_usec");
    proto::AppendMap(out, static_cast<size_t>(grew), client.resp);
    uint64_t cumulative = 0;
    for (int b = 0; b < LatencyHistogram::kBuckets; ++b) {
      if (counts[b] == 0) continue;
      cumulative += counts[b];
      AppendInteger(out, LatencyHistogram::BoundUs(b));
      AppendInteger(out, static_cast<int64_t>(cumulative));
    }
  }
}

// LATENCY LATEST | HISTORY event | GRAPH event | RESET [event ...] | DOCTOR | HELP
// (CommandLog): the events "command" and "fast-command", sampled when a command takes
// latency-monitor-threshold ms; and HISTOGRAM [command ...] (latency-tracking).
CommandStatus RespCommands::Latency(RespClient& client, Args args, std::string& out,
                                    AsyncReplyTarget&) {
  const std::string_view sub = args[1];
  CommandLog& log = state_.command_log;
  if (EqualsIgnoreCase(sub, "help")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    static constexpr std::string_view kHelp[] = {
        "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return a human readable latency analysis report.",
        "GRAPH <event>",
        "    Return an ASCII latency graph for the <event> class.",
        "HISTORY <event>",
        "    Return time-latency samples for the <event> class.",
        "LATEST",
        "    Return the latest latency samples for all events.",
        "RESET [<event> ...]",
        "    Reset latency data of one or more <event> classes.",
        "    (default: reset all data for all event classes)",
        "HISTOGRAM [COMMAND ...]",
        "    Return a cumulative distribution of latencies in the format of a histogram for the "
        "specified command names.",
        "    If no commands are specified then all histograms are replied.",
        "HELP",
        "    Prints this help.",
    };
    AppendHelp(out, kHelp);
  } else if (EqualsIgnoreCase(sub, "latest")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    const std::vector<LatencySeries> events = log.LatencyEvents();
    AppendArrayHeader(out, events.size());
    for (const LatencySeries& e : events) {
      AppendArrayHeader(out, 4);
      AppendBulk(out, e.event);
      AppendInteger(out, e.samples.back().unix_time);
      AppendInteger(out, e.samples.back().ms);
      AppendInteger(out, e.max_ms);
    }
  } else if (EqualsIgnoreCase(sub, "history")) {
    if (!CheckArity(args, 3, out)) return CommandStatus::kDone;
    const std::optional<LatencySeries> series = log.LatencyOf(args[2]);
    AppendArrayHeader(out, series ? series->samples.size() : 0);
    if (series) {
      for (const LatencySeries::Sample& s : series->samples) {
        AppendArrayHeader(out, 2);
        AppendInteger(out, s.unix_time);
        AppendInteger(out, s.ms);
      }
    }
  } else if (EqualsIgnoreCase(sub, "graph")) {
    if (!CheckArity(args, 3, out)) return CommandStatus::kDone;
    const std::optional<LatencySeries> series = log.LatencyOf(args[2]);
    if (!series || series->samples.empty()) {
      AppendError(out, proto::NoLatencySamplesError(args[2]));
    } else {
      proto::AppendText(out, LatencyGraph(*series, std::time(nullptr)), client.resp);
    }
  } else if (EqualsIgnoreCase(sub, "histogram")) {
    AppendLatencyHistograms(client, args.subspan(2), out);
  } else if (EqualsIgnoreCase(sub, "reset")) {
    AppendInteger(out, static_cast<int64_t>(log.ResetLatency(args.subspan(2))));
  } else if (EqualsIgnoreCase(sub, "doctor")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    std::string report;
    const std::vector<LatencySeries> events = log.LatencyEvents();
    if (log.latency_threshold_ms() == 0) {
      report =
          "Latency monitoring is disabled. Use \"CONFIG SET latency-monitor-threshold "
          "<milliseconds>\" to enable it.\n";
    } else if (events.empty()) {
      report = "No latency spike was observed since the monitor was enabled or last reset.\n";
    } else {
      report = "Commands that took at least latency-monitor-threshold (" +
               std::to_string(log.latency_threshold_ms()) + " ms):\n\n";
      int n = 0;
      for (const LatencySeries& e : events) {
        int64_t sum = 0;
        for (const LatencySeries::Sample& s : e.samples) sum += s.ms;
        report += std::to_string(++n) + ". " + e.event + ": " + std::to_string(e.samples.size()) +
                  " latency spikes (average " +
                  std::to_string(sum / static_cast<int64_t>(e.samples.size())) +
                  "ms). Worst all time event " + std::to_string(e.max_ms) + "ms.\n";
      }
      report +=
          "\nSLOWLOG GET shows which commands they were (when slowlog-log-slower-than is at or "
          "below the threshold).\n";
    }
    proto::AppendText(out, report, client.resp);
  } else {
    AppendError(out, proto::UnknownSubcommandError("LATENCY", sub));
  }
  return CommandStatus::kDone;
}

// MEMORY USAGE key [SAMPLES n] | STATS | DOCTOR | MALLOC-STATS | PURGE | HELP. USAGE is what the
// store accounts for the key against memory.max_bytes: key + value + the per-entry overhead
// (lease::Store::kEntryOverhead); nil when the key is absent.
CommandStatus RespCommands::Memory(RespClient& client, Args args, std::string& out,
                                   AsyncReplyTarget&) {
  const std::string_view sub = args[1];
  lease::Store& store = state_.cache.store();
  if (EqualsIgnoreCase(sub, "help")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    static constexpr std::string_view kHelp[] = {
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return memory problems reports.",
        "MALLOC-STATS",
        "    Return internal statistics report from the memory allocator.",
        "PURGE",
        "    Attempt to purge dirty pages for reclamation by the allocator.",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Prints this help.",
    };
    AppendHelp(out, kHelp);
  } else if (EqualsIgnoreCase(sub, "usage")) {
    if (!CheckArity(args, -3, out)) return CommandStatus::kDone;
    for (size_t i = 3; i < args.size(); i += 2) {
      // SAMPLES is accepted and checked as Redis does; a string has nothing to sample.
      if (!EqualsIgnoreCase(args[i], "samples") || i + 1 >= args.size()) {
        AppendError(out, proto::kSyntaxError);
        return CommandStatus::kDone;
      }
      int64_t samples;
      if (!proto::ParseInt64(args[i + 1], &samples)) {
        AppendError(out, proto::kNotInteger);
        return CommandStatus::kDone;
      }
      if (samples < 0) {
        AppendError(out, proto::kSyntaxError);
        return CommandStatus::kDone;
      }
    }
    std::optional<size_t> bytes;
    store.Peek(args[2], [&](std::string_view, const lease::EntryMeta& meta, size_t accounted) {
      if (meta.kind == lease::EntryKind::kValue) bytes = accounted;
    });
    if (bytes) {
      AppendInteger(out, static_cast<int64_t>(*bytes));
    } else {
      AppendNil(out, client.resp);
    }
  } else if (EqualsIgnoreCase(sub, "stats")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    const size_t keys = store.Size(), bytes = store.MemoryBytes();
    const std::pair<std::string_view, int64_t> fields[] = {
        {"keys.count", static_cast<int64_t>(keys)},
        {"keys.bytes-per-key", keys == 0 ? 0 : static_cast<int64_t>(bytes / keys)},
        {"dataset.bytes", static_cast<int64_t>(bytes)},
        {"store.max_bytes", static_cast<int64_t>(store.max_bytes())},
        {"store.policy.bytes", static_cast<int64_t>(store.PolicyBytes())},
        {"store.evictions", static_cast<int64_t>(store.evictions())},
    };
    proto::AppendMap(out, std::size(fields), client.resp);
    for (const auto& [name, value] : fields) {
      AppendBulk(out, name);
      AppendInteger(out, value);
    }
  } else if (EqualsIgnoreCase(sub, "doctor")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    const size_t used = store.MemoryBytes() + store.PolicyBytes(), max = store.max_bytes();
    std::string report;
    if (store.Size() == 0) {
      report = "The store is empty: nothing to report.\n";
    } else if (used * 10 >= max * 9 && store.evictions() > 0) {
      report = "The store is full (" + std::to_string(used) + " of " + std::to_string(max) +
               " bytes) and has evicted " + std::to_string(store.evictions()) +
               " entries: if the hit rate suffers, raise memory.max_bytes (CONFIG SET "
               "maxmemory).\n";
    } else {
      report = "No memory problem found: the store accounts " + std::to_string(used) + " of " +
               std::to_string(max) + " bytes.\n";
    }
    proto::AppendText(out, report, client.resp);
  } else if (EqualsIgnoreCase(sub, "malloc-stats")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    proto::AppendText(out, MallocStats(), client.resp);
  } else if (EqualsIgnoreCase(sub, "purge")) {
    if (!CheckArity(args, 2, out)) return CommandStatus::kDone;
    PurgeMalloc();
    AppendSimple(out, proto::kOk);
  } else {
    AppendError(out, proto::UnknownSubcommandError("MEMORY", sub));
  }
  return CommandStatus::kDone;
}

// ROLE: a Redis primary without replicas, ["master", 0, []]. corral nodes share data through
// the Redis tier, not by replicating from each other.
CommandStatus RespCommands::Role(RespClient&, Args, std::string& out, AsyncReplyTarget&) {
  AppendArrayHeader(out, 3);
  AppendBulk(out, "master");
  AppendInteger(out, 0);
  AppendArrayHeader(out, 0);
  return CommandStatus::kDone;
}

}  // namespace corral::server

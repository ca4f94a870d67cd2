// See pg_support.h.
#include "tests/integration/pg_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace corral::integration {

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int ConnectLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Length of the first complete RESP reply in `buf`, or 0 if incomplete. Handles the reply kinds
// GET answers with (+, -, :, $).
size_t CompleteResp(const std::string& buf) {
  size_t eol = buf.find("\r\n");
  if (eol == std::string::npos) return 0;
  if (buf[0] != '$') return eol + 2;
  long len = std::strtol(buf.c_str() + 1, nullptr, 10);
  if (len < 0) return eol + 2;
  size_t need = eol + 2 + static_cast<size_t>(len) + 2;
  return buf.size() >= need ? need : 0;
}

// Sends requests[i] on connection i and collects replies with epoll until `complete` says a
// reply is whole (or, for HTTP with Connection: close, the peer closed).
std::vector<HerdReply> Herd(uint16_t port, const std::vector<std::string>& requests, Millis timeout,
                            bool until_close) {
  size_t n = requests.size();
  std::vector<HerdReply> replies(n);
  std::vector<int> fds(n, -1);
  std::vector<Clock::time_point> sent(n);
  std::vector<bool> done(n, false);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  // Connect everything first, then send everything: the requests arrive as one herd.
  for (size_t i = 0; i < n; ++i) {
    fds[i] = ConnectLoopback(port);
    if (fds[i] < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  for (size_t i = 0; i < n; ++i) {
    if (fds[i] < 0) continue;
    sent[i] = Clock::now();
    ssize_t w = ::send(fds[i], requests[i].data(), requests[i].size(), MSG_NOSIGNAL);
    if (w != static_cast<ssize_t>(requests[i].size())) {
      ::close(fds[i]);
      fds[i] = -1;
    }
  }
  size_t remaining = std::count_if(fds.begin(), fds.end(), [](int fd) { return fd >= 0; });
  auto deadline = Clock::now() + timeout;
  std::vector<epoll_event> events(256);
  char buf[65536];
  while (remaining > 0 && Clock::now() < deadline) {
    int wait_ms =
        static_cast<int>(std::chrono::duration_cast<Millis>(deadline - Clock::now()).count());
    int k = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), std::max(1, wait_ms));
    for (int e = 0; e < k; ++e) {
      size_t i = events[e].data.u64;
      if (done[i]) continue;
      bool closed = false;
      for (;;) {
        ssize_t r = ::recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
          replies[i].reply.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r == 0) closed = true;
        break;
      }
      bool whole = until_close ? closed : (CompleteResp(replies[i].reply) > 0 || closed);
      if (whole) {
        replies[i].ms = MsSince(sent[i]);
        done[i] = true;
        --remaining;
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], nullptr);
      }
    }
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  ::close(ep);
  return replies;
}

std::string RespCommand(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

}  // namespace

PgCluster PgCluster::FromEnv() {
  PgCluster c;
  c.primary = Env("CORRAL_TEST_PG_PRIMARY");
  std::string replicas = Env("CORRAL_TEST_PG_REPLICAS");
  std::stringstream ss(replicas);
  std::string part;
  while (std::getline(ss, part, ';')) {
    if (!part.empty()) c.replicas.push_back(part);
  }
  c.pg_local = Env("CORRAL_TEST_PG_LOCAL");
  return c;
}

std::string PgCluster::Sql(const std::string& conn, const std::string& sql) {
  ProcessResult r = RunProcess({"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                                conn + " connect_timeout=10", "-c", sql},
                               {}, Millis(15000));
  if (!r.status.ok()) return "ERROR: " + Trim(r.err);
  return Trim(r.out);
}

void PgCluster::ResetStatements() const {
  Sql(primary, "SELECT pg_stat_statements_reset()");
  for (const auto& r : replicas) Sql(r, "SELECT pg_stat_statements_reset()");
}

int64_t PgCluster::CallsOn(const std::string& conn, const std::string& needle) {
  std::string out =
      Sql(conn, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%" +
                    needle + "%' AND query NOT LIKE '%pg_stat_statements%'");
  return out.rfind("ERROR", 0) == 0 ? 0 : std::atoll(out.c_str());
}

int64_t PgCluster::Calls(const std::string& needle) const {
  int64_t total = CallsOn(primary, needle);
  for (const auto& r : replicas) total += CallsOn(r, needle);
  return total;
}

std::string PgCluster::FlushedPosition() const {
  // The cluster runs with synchronous_commit = off (deploy/pg-local.sh): a commit just made may
  // not be written yet, and a replica streams only what is. The insert position is not the answer
  // either: WAL inserted after the last commit (a page pruned by a read, a vacuum) stays in the
  // primary's buffers until the next commit (the WAL writer flushes only whole pages and
  // asynchronous commits), so waiting for it can wait forever on an idle cluster. A synchronous
  // commit flushes all WAL inserted before it: the flush position after it covers every commit.
  // It must write WAL of its own (here a logical decoding message, which pgoutput passes on
  // only when asked to): a transaction that wrote nothing but its commit record is never waited
  // for, whatever synchronous_commit says (RecordTransactionCommit's wrote_xlog).
  const std::string sync =
      Sql(primary,
          "SET synchronous_commit = on; SELECT pg_logical_emit_message(true, 'corral-test', '')");
  if (sync.rfind("ERROR", 0) == 0) return sync;
  return Sql(primary, "SELECT pg_current_wal_flush_lsn()");
}

bool PgCluster::WaitReplayed(Millis timeout) const {
  std::string lsn = FlushedPosition();
  if (lsn.rfind("ERROR", 0) == 0) return false;
  auto deadline = Clock::now() + timeout;
  for (const auto& r : replicas) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    bool replayed = WaitFor(
        [&] { return Sql(r, "SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn") == "t"; },
        std::max(left, Millis(0)), Millis(20));
    if (!replayed) return false;
  }
  return true;
}

bool PgCluster::Node(const std::string& action, const std::string& node) const {
  ProcessResult r = RunProcess({"bash", pg_local, action, node}, {}, Millis(90000));
  return r.status.ok();
}

bool PgCluster::PauseReplay() const {
  for (const std::string& replica : replicas) Sql(replica, "SELECT pg_wal_replay_pause()");
  return WaitFor(
      [&] {
        for (const std::string& replica : replicas) {
          if (Sql(replica, "SELECT pg_get_wal_replay_pause_state()") != "paused") return false;
        }
        return true;
      },
      Millis(5000));
}

void PgCluster::ResumeReplay() const {
  for (const std::string& replica : replicas) Sql(replica, "SELECT pg_wal_replay_resume()");
}

int64_t PgCluster::UserVersion(int id) const {
  return std::atoll(
      Sql(primary, "SELECT version FROM users WHERE id = " + std::to_string(id)).c_str());
}

int64_t PgCluster::BumpUserVersion(int id) const {
  return std::atoll(Sql(primary, "UPDATE users SET version = version + 1 WHERE id = " +
                                     std::to_string(id) + " RETURNING version")
                        .c_str());
}

std::string PgCluster::PostgresJson(const std::string& extra) const {
  std::string json = "{\"primary\": \"" + primary + "\", \"replicas\": [";
  for (size_t i = 0; i < replicas.size(); ++i) {
    json += (i ? ", \"" : "\"") + replicas[i] + "\"";
  }
  json += "]";
  if (!extra.empty()) json += ", " + extra;
  return json + "}";
}

std::vector<HerdReply> RespHerd(uint16_t port,
                                const std::vector<std::vector<std::string>>& commands,
                                Millis timeout) {
  std::vector<std::string> requests;
  requests.reserve(commands.size());
  for (const auto& c : commands) requests.push_back(RespCommand(c));
  return Herd(port, requests, timeout, false);
}

std::vector<HerdReply> HttpHerd(uint16_t port, const std::vector<std::string>& targets,
                                Millis timeout) {
  std::vector<std::string> requests;
  requests.reserve(targets.size());
  for (const auto& t : targets) {
    requests.push_back("GET " + t + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  }
  return Herd(port, requests, timeout, true);
}

std::vector<HerdReply> ManyKeysHerd(uint16_t port, const std::string& ns, int first_id, int keys,
                                    int clients_per_key) {
  std::vector<std::vector<std::string>> commands;
  std::vector<std::string> ids;
  for (int c = 0; c < clients_per_key; ++c) {
    for (int k = 1; k <= keys; ++k) {
      ids.push_back(std::to_string(first_id + k));
      commands.push_back({"GET", ns + ":" + ids.back()});
    }
  }
  std::vector<HerdReply> replies = RespHerd(port, commands);
  for (size_t i = 0; i < replies.size(); ++i) {
    EXPECT_EQ(RespValue(replies[i].reply), "user " + ids[i]) << commands[i][1];
  }
  return replies;
}

std::string RespValue(const std::string& reply) {
  size_t len = CompleteResp(reply);
  if (len == 0) return "<incomplete:" + reply + ">";
  if (reply[0] != '$') return reply.substr(0, reply.find("\r\n"));
  if (reply.compare(0, 4, "$-1\r") == 0) return "<nil>";
  size_t eol = reply.find("\r\n");
  return reply.substr(eol + 2, len - eol - 4);
}

double Percentile(const std::vector<HerdReply>& replies, double p) {
  std::vector<double> ms;
  for (const auto& r : replies) {
    if (r.ms >= 0) ms.push_back(r.ms);
  }
  if (ms.empty()) return -1;
  std::sort(ms.begin(), ms.end());
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(ms.size() - 1) + 0.5);
  return ms[std::min(idx, ms.size() - 1)];
}

void ReportHerd(const char* what, const std::vector<HerdReply>& replies, int64_t queries) {
  std::printf("[figures] %s: clients=%zu queries=%lld p50=%.1fms p99=%.1fms max=%.1fms\n", what,
              replies.size(), static_cast<long long>(queries), Percentile(replies, 50),
              Percentile(replies, 99), Percentile(replies, 100));
}

bool WaitReady(uint16_t http_port, Millis timeout) {
  // /readyz/database, not /readyz: /readyz says only that corral takes traffic (SPEC).
  return WaitFor(
      [&] {
        auto r = HttpHerd(http_port, {"/readyz/database"}, Millis(2000));
        return r[0].reply.rfind("HTTP/1.1 200", 0) == 0;
      },
      timeout, Millis(50));
}

bool WaitInvalidationConnected(ServerProcess& server, bool wal, bool tier, Millis timeout) {
  // The WAL stream reports connected once it has created its slot (and marked everything stale).
  const auto connected = [&] {
    const std::string err = server.Stderr();
    if (!wal) return err.find("event=invalidation_listener_connected") != std::string::npos;
    return err.find("event=wal_stream_connected") != std::string::npos ||
           (tier && err.find("event=wal_reader_standby") != std::string::npos);
  };
  return WaitFor(connected, timeout, Millis(20));
}

double Metric(uint16_t http_port, const std::string& sample) {
  std::vector<HerdReply> r = HttpHerd(http_port, {"/metrics"}, Millis(5000));
  const std::string& body = r[0].reply;
  size_t pos = 0;
  while ((pos = body.find(sample, pos)) != std::string::npos) {
    bool line_start = pos == 0 || body[pos - 1] == '\n';
    size_t after = pos + sample.size();
    if (line_start && after < body.size() && body[after] == ' ') {
      return std::strtod(body.c_str() + after + 1, nullptr);
    }
    pos = after;
  }
  return 0;
}

void PgTest::SetUp() {
  pg_ = PgCluster::FromEnv();
  if (!pg_.available()) {
    if (std::getenv("CI") != nullptr) {
      FAIL() << "CORRAL_TEST_PG_* unset: run through deploy/run-tests.sh";
    }
    GTEST_SKIP() << "no PostgreSQL: set CORRAL_TEST_PG_* (deploy/run-tests.sh does)";
  }
  pg_.ResetStatements();
}

std::unique_ptr<ServerProcess> PgTest::StartCorral(const std::string& namespaces,
                                                   const std::string& extra,
                                                   const std::string& pg_extra) {
  ServerOptions options;
  options.config_json = "{\"threads\": 2, \"postgres\": " + pg_.PostgresJson(pg_extra) +
                        ", \"namespaces\": " + namespaces + (extra.empty() ? "" : ", " + extra) +
                        "}";
  std::string error;
  auto server = ServerProcess::Start(options, &error);
  EXPECT_NE(server, nullptr) << error;
  if (server != nullptr && !WaitReady(server->http_port())) {
    ADD_FAILURE() << "corral never became ready:\n" << server->Stderr();
    return nullptr;
  }
  const bool wal = pg_extra.find("\"logical\"") != std::string::npos;
  const bool tier = extra.find("\"redis\"") != std::string::npos;
  if (server != nullptr && !WaitInvalidationConnected(*server, wal, tier)) {
    ADD_FAILURE() << "corral's invalidation " << (wal ? "stream" : "listener")
                  << " never connected:\n"
                  << server->Stderr();
    return nullptr;
  }
  return server;
}

void PgTest::RestoreNodes() {
  if (!pg_.available() || pg_.pg_local.empty()) return;
  for (const char* node : {"replica1", "replica2"}) pg_.Node("resume-node", node);
  for (const char* node : {"primary", "replica1", "replica2"}) pg_.Node("start-node", node);
  for (const auto& replica : pg_.replicas) PgCluster::Sql(replica, "SELECT pg_wal_replay_resume()");
  pg_.WaitReplayed(Millis(30000));
}

}  // namespace corral::integration

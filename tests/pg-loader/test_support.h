// Shared helpers for the pg-loader tests: building statements, collecting callback results, waiting
// on conditions with a deadline, loopback sockets that refuse or never answer, and (for the
// PostgreSQL tests) the database environment, SQL through psql and pg-local.sh node control.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pg-loader/loader.h"

namespace corral::pg::testing {

using Clock = std::chrono::steady_clock;

// A statement without batching (field by field: partial aggregate initialisation warns).
inline Statement MakeStatement(std::string name, std::string sql, std::string pool = {}) {
  Statement statement;
  statement.name = std::move(name);
  statement.query = std::move(sql);
  statement.pool = std::move(pool);
  return statement;
}

// A statement whose loads are batched by `batch_query`.
inline Statement MakeBatchStatement(std::string name, std::string sql, std::string batch_sql,
                                    int batch_max, int64_t batch_window_us) {
  Statement statement = MakeStatement(std::move(name), std::move(sql));
  statement.batch_query = std::move(batch_sql);
  statement.batch_max = batch_max;
  statement.batch_window_us = batch_window_us;
  return statement;
}

// Polls `condition` until it holds or `timeout` passes; returns whether it held. Polling a
// condition (every 10 ms) is not a blind sleep: the test proceeds the moment it holds.
inline bool WaitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Collects LoadOutcomes from callbacks, with the thread each ran on.
class Collector {
 public:
  LoadCallback Callback() {
    return [this](LoadOutcome outcome) {
      std::lock_guard lock(mu_);
      outcomes_.push_back(std::move(outcome));
      threads_.push_back(std::this_thread::get_id());
      cv_.notify_all();
    };
  }
  // Waits (bounded) for at least n outcomes; returns whether they came.
  bool WaitCount(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return outcomes_.size() >= n; });
  }
  std::vector<LoadOutcome> outcomes() {
    std::lock_guard lock(mu_);
    return outcomes_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard lock(mu_);
    return threads_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<LoadOutcome> outcomes_;
  std::vector<std::thread::id> threads_;
};

// Runs one load and waits (bounded) for its outcome.
inline LoadOutcome LoadSync(Loader& loader, size_t statement, std::string id) {
  Collector collector;
  loader.Load(statement, std::move(id), collector.Callback());
  if (!collector.WaitCount(1, std::chrono::seconds(30))) {
    ADD_FAILURE() << "load did not complete within 30 s";
    LoadOutcome timed_out;
    timed_out.data = "test: no answer";
    return timed_out;
  }
  return collector.outcomes().front();
}

// A TCP socket on a free loopback port. Listening: connections complete and then hear nothing
// (a server that never answers). Not listening: connections are refused.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listen) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    if (listen) {
      EXPECT_EQ(::listen(fd_, 64), 0);
    }
  }
  ~LoopbackSocket() { ::close(fd_); }
  std::string conninfo() const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=app user=app";
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Runs argv[0] with arguments (no shell), returning its exit status; stdout+stderr go to *output.
// Output goes through a temporary file, not a pipe: a daemon the command starts (pg_ctl start)
// could inherit a pipe and keep it open long after the command itself exited.
inline int RunCommand(const std::vector<std::string>& argv, std::string* output = nullptr) {
  char path[] = "/tmp/corral-pgloader-test-XXXXXX";
  const int out_fd = ::mkstemp(path);
  if (out_fd < 0) return -1;
  ::unlink(path);
  // Built before fork(): the child of a multi-threaded process may only make async-signal-safe
  // calls.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::close(out_fd);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::string text;
  char buffer[4096];
  ssize_t n;
  ::lseek(out_fd, 0, SEEK_SET);
  while ((n = ::read(out_fd, buffer, sizeof(buffer))) > 0) text.append(buffer, n);
  ::close(out_fd);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The test database, from the environment the test runner sets.
struct PgEnv {
  std::string primary;                // CORRAL_TEST_PG_PRIMARY
  std::vector<std::string> replicas;  // CORRAL_TEST_PG_REPLICAS, ';'-separated
  std::string local;                  // CORRAL_TEST_PG_LOCAL: pg-local.sh (stop-node/start-node)

  static PgEnv FromEnvironment() {
    PgEnv env;
    if (const char* v = std::getenv("CORRAL_TEST_PG_PRIMARY")) env.primary = v;
    if (const char* v = std::getenv("CORRAL_TEST_PG_LOCAL")) env.local = v;
    if (const char* v = std::getenv("CORRAL_TEST_PG_REPLICAS")) {
      std::stringstream list(v);
      std::string item;
      while (std::getline(list, item, ';')) {
        if (!item.empty()) env.replicas.push_back(item);
      }
    }
    return env;
  }
};

// Runs SQL through psql; returns its trimmed, unaligned output, or fails the test.
inline std::string RunSql(const std::string& conninfo, const std::string& sql) {
  std::string output;
  const int status = RunCommand(
      {"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql},
      &output);
  EXPECT_EQ(status, 0) << "psql failed for: " << sql << "\n" << output;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return output;
}

// Runs `pg-local.sh VERB NODE`; fails the test on error.
inline void RunLocal(const PgEnv& env, const std::string& verb, const std::string& node) {
  std::string output;
  const int status = RunCommand({env.local, verb, node}, &output);
  EXPECT_EQ(status, 0) << env.local << " " << verb << " " << node << " failed:\n" << output;
}

}  // namespace corral::pg::testing

// Skips (or, under CI, fails) a test that needs PostgreSQL when the environment lacks it.
#define CORRAL_REQUIRE_PG(env, need_local)                                               \
  do {                                                                                   \
    const bool corral_missing = (env).primary.empty() || (env).replicas.size() < 2 ||    \
                                ((need_local) && (env).local.empty());                   \
    if (corral_missing) {                                                                \
      const char* corral_what =                                                          \
          "needs PostgreSQL: set CORRAL_TEST_PG_PRIMARY, CORRAL_TEST_PG_REPLICAS (two, " \
          "';'-separated) and CORRAL_TEST_PG_LOCAL (deploy/pg-local.sh), e.g. via "      \
          "deploy/pg-local.sh env";                                                      \
      if (std::getenv("CI") != nullptr) FAIL() << corral_what;                           \
      GTEST_SKIP() << corral_what;                                                       \
    }                                                                                    \
  } while (0)

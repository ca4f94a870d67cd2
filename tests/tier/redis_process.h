// Test support for tier/: a real redis-server child process on a free port in a temporary
// directory (killed at destruction), redis-cli for administration, and a tier thread that runs an
// io_context. Header-only; used by the *_redis_test.cc binaries.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tier/redis_client.h"

namespace corral::tier::tiertest {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// How late a deadline may fire on a loaded machine (2 cores shared by several builds) before a
// test calls it a hang. Deadlines themselves are checked from below (never early).
constexpr std::chrono::milliseconds kSlack{300};

// True when the tests can run here; otherwise they skip (or fail under CI, which has Redis).
inline bool HaveRedis() {
  return std::system(
             "command -v redis-server >/dev/null 2>&1 && command -v redis-cli "
             ">/dev/null 2>&1") == 0;
}

#define CORRAL_REQUIRE_REDIS()                                                \
  do {                                                                        \
    if (!::corral::tier::tiertest::HaveRedis()) {                             \
      if (std::getenv("CI") != nullptr) FAIL() << "redis-server not on PATH"; \
      GTEST_SKIP() << "redis-server / redis-cli not on PATH";                 \
    }                                                                         \
  } while (0)

// Binds 127.0.0.1:port (0: any) and returns the port bound, or 0; the socket is closed again.
inline int BindPort(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int bound = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    bound = ntohs(addr.sin_port);
  }
  ::close(fd);
  return bound;
}

// A port nothing listens on right now (bound to port 0, then released).
inline int FreePort() { return BindPort(0); }

// A free port P whose cluster bus port P + 10000 is free as well (and below 65536).
inline int FreeClusterPort() {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port = BindPort(0);
    if (port == 0) continue;
    if (port > 55535) port -= 30000;  // ephemeral ports are 32768-60999: move below
    if (BindPort(port) == port && BindPort(port + 10000) == port + 10000) return port;
  }
  return 0;
}

inline std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs redis-cli against 127.0.0.1:port and returns its stdout (trailing newline removed).
inline std::string Cli(int port, const std::vector<std::string>& args,
                       const std::string& password = "") {
  std::string command = "redis-cli -h 127.0.0.1 -p " + std::to_string(port);
  if (!password.empty()) command += " --no-auth-warning -a " + ShellQuote(password);
  for (const std::string& arg : args) command += " " + ShellQuote(arg);
  command += " 2>&1";
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
    ::pclose(pipe);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// Waits until `condition` holds, polling every 10 ms, at most `limit`.
inline bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit = 10s) {
  Clock::time_point give_up = Clock::now() + limit;
  while (Clock::now() < give_up) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

// One redis-server child. Start() waits until it answers PING; the destructor SIGKILLs it.
class RedisProcess {
 public:
  // `cluster_node`: the port is chosen so that its cluster bus port (+10000) is free too.
  explicit RedisProcess(std::vector<std::string> extra_args = {}, std::string password = "",
                        bool cluster_node = false)
      : extra_args_(std::move(extra_args)), password_(std::move(password)) {
    char pattern[] = "/tmp/corral-tier-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    port_ = cluster_node ? FreeClusterPort() : FreePort();
  }
  ~RedisProcess() {
    Kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  // Starts (or restarts, on the same port) the server; true once it answers.
  bool Start() {
    std::vector<std::string> args{"redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--dir",
                                  dir_,
                                  "--logfile",
                                  dir_ + "/redis.log",
                                  "--enable-debug-command",
                                  "yes"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;  // built before fork(): the child may only exec
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    return WaitFor([&] {
      std::string pong = Cli({"PING"});
      return pong == "PONG" || pong.find("NOAUTH") != std::string::npos;
    });
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Pause() { ::kill(pid_, SIGSTOP); }
  void Resume() { ::kill(pid_, SIGCONT); }

  std::string Cli(const std::vector<std::string>& args) const {
    return tiertest::Cli(port_, args, password_);
  }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }

 private:
  std::vector<std::string> extra_args_;
  std::string password_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// The tier thread: one thread running an io_context until destroyed.
class TierThread {
 public:
  TierThread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~TierThread() { Join(); }
  void Join() {
    if (!thread_.joinable()) return;
    work_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

// Command() and wait for its one result (at most `limit`; a hang fails the test).
inline Result Call(Client& client, std::vector<std::string> args, std::string_view key,
                   std::chrono::milliseconds limit = 5s) {
  auto promise = std::make_shared<std::promise<Result>>();
  std::future<Result> future = promise->get_future();
  client.Command(std::move(args), key,
                 [promise](Result result) { promise->set_value(std::move(result)); });
  if (future.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "a command did not end within " << limit.count() << " ms";
    Result hung;
    hung.status = Result::Status::kDown;
    hung.error = "hung";
    return hung;
  }
  return future.get();
}

inline Result CallEval(Client& client, const std::string& script, std::vector<std::string> keys,
                       std::vector<std::string> args, std::chrono::milliseconds limit = 5s) {
  auto promise = std::make_shared<std::promise<Result>>();
  std::future<Result> future = promise->get_future();
  client.Eval(script, std::move(keys), std::move(args),
              [promise](Result result) { promise->set_value(std::move(result)); });
  if (future.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "an Eval did not end within " << limit.count() << " ms";
    return Result{};
  }
  return future.get();
}

inline const char* StatusName(Result::Status status) {
  switch (status) {
    case Result::Status::kOk:
      return "kOk";
    case Result::Status::kTimeout:
      return "kTimeout";
    case Result::Status::kDisconnected:
      return "kDisconnected";
    case Result::Status::kDown:
      return "kDown";
  }
  return "?";
}

}  // namespace corral::tier::tiertest

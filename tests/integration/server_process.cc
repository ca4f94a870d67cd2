// The integration-test harness: child processes (fork/exec with pipes), raw sockets with poll()
// deadlines, HTTP/1.1 responses read with Boost.Beast's parser, and hiredis helpers. See
// server_process.h.
#include "tests/integration/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#ifndef CORRAL_SERVER_PATH
#error "CORRAL_SERVER_PATH must name the corral-server binary (set by CMake)"
#endif

namespace corral::integration {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, clamped to [0, INT_MAX] for poll().
int RemainingMs(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

ExitStatus FromWaitStatus(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.exited = true;
    s.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
  }
  return s;
}

// Waits for `pid` to end within `timeout`; past it, SIGKILLs `kill_target` (a pid, or -pgid)
// and reaps. Polls every 2 ms: the caller proceeds as soon as the child has gone.
ExitStatus WaitChild(pid_t pid, pid_t kill_target, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return FromWaitStatus(status);
    if (r < 0 && errno != EINTR) return ExitStatus{};  // not our child any more
    if (SteadyClock::now() >= deadline) break;
    std::this_thread::sleep_for(Millis(2));
  }
  kill(kill_target, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ExitStatus s = FromWaitStatus(status);
  s.timed_out = true;
  return s;
}

// argv as the char* array execv wants; the strings must outlive it.
std::vector<char*> CArgv(const std::vector<std::string>& args) {
  std::vector<char*> out;
  for (const auto& a : args) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// In a freshly forked child: die with the parent thread, so no test run leaves orphans.
void DieWithParent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(126);  // the parent died before prctl took effect
}

// In a child after a failed exec: say why on fd 2 with async-signal-safe calls only (no
// strerror, no allocation), then exit 127 as a shell would.
[[noreturn]] void ExecFailed(const char* what) {
  char digits[16];
  int n = sizeof digits;
  for (int e = errno; n > 0 && (e > 0 || n == static_cast<int>(sizeof digits)); e /= 10) {
    digits[--n] = static_cast<char>('0' + e % 10);
  }
  const char prefix[] = "exec failed: ";
  const char middle[] = ": errno ";
  ssize_t ignored = write(2, prefix, sizeof(prefix) - 1);
  ignored = write(2, what, strlen(what));
  ignored = write(2, middle, sizeof(middle) - 1);
  ignored = write(2, digits + n, sizeof(digits) - static_cast<size_t>(n));
  ignored = write(2, "\n", 1);
  (void)ignored;
  _exit(127);
}

// The full path of `program`: itself if it holds a '/', else the first executable in PATH.
std::optional<std::string> FindProgram(std::string_view program) {
  if (program.find('/') != std::string_view::npos) return std::string(program);
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + std::string(program);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool HasFlag(const std::vector<std::string>& args, std::string_view flag) {
  for (const auto& a : args) {
    if (a == flag || a.rfind(std::string(flag) + "=", 0) == 0) return true;
  }
  return false;
}

}  // namespace

std::string ServerBinary() { return CORRAL_SERVER_PATH; }

std::string ExitStatus::ToString() const {
  std::string s = timed_out ? "timed out, then " : "";
  if (exited) return s + "exit " + std::to_string(code);
  if (signal != 0) return s + "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return s + "unknown";
}

// ---------------------------------------------------------------------------------------------
// ServerProcess

std::unique_ptr<ServerProcess> ServerProcess::Start(const ServerOptions& options,
                                                    std::string* error) {
  auto fail = [error](std::string message) -> std::unique_ptr<ServerProcess> {
    if (error != nullptr) *error = std::move(message);
    return nullptr;
  };
  std::unique_ptr<ServerProcess> server(new ServerProcess());

  char config_template[] = "/tmp/corral-it-XXXXXX.json";
  int config_fd = mkstemps(config_template, 5);
  if (config_fd < 0) return fail(std::string("mkstemps: ") + strerror(errno));
  server->config_path_ = config_template;
  const std::string& json = options.config_json;
  bool written = write(config_fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
  close(config_fd);
  if (!written) return fail("cannot write " + server->config_path_);

  std::vector<std::string> args = {ServerBinary(), "--config", server->config_path_};
  if (!HasFlag(options.extra_args, "--resp")) {
    args.insert(args.end(), {"--resp", "127.0.0.1:0"});
  }
  if (!HasFlag(options.extra_args, "--http")) {
    args.insert(args.end(), {"--http", "127.0.0.1:0"});
  }
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv = CArgv(args);

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return fail(std::string("pipe2: ") + strerror(errno));
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return fail(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    DieWithParent(parent);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(pipe_fds[1], 1);  // --check-config and --help print to stdout: keep it too
    dup2(pipe_fds[1], 2);
    execv(argv[0], argv.data());
    ExecFailed(argv[0]);
  }
  close(pipe_fds[1]);
  server->pid_ = pid;
  server->reader_ = std::thread([s = server.get(), fd = pipe_fds[0]] { s->ReadStderr(fd); });

  // Wait for "event=listening resp_port=N http_port=M", or for the process to give up.
  const auto deadline = SteadyClock::now() + options.start_timeout;
  bool listening = false;
  {
    std::unique_lock lock(server->mu_);
    server->cv_.wait_until(lock, deadline, [&] {
      size_t at = server->stderr_.find("event=listening");
      if (at != std::string::npos && server->stderr_.find('\n', at) != std::string::npos) {
        unsigned resp = 0, http = 0;
        size_t r = server->stderr_.find("resp_port=", at);
        size_t h = server->stderr_.find("http_port=", at);
        if (r != std::string::npos && h != std::string::npos &&
            std::sscanf(server->stderr_.c_str() + r, "resp_port=%u", &resp) == 1 &&
            std::sscanf(server->stderr_.c_str() + h, "http_port=%u", &http) == 1) {
          server->resp_port_ = static_cast<uint16_t>(resp);
          server->http_port_ = static_cast<uint16_t>(http);
          listening = true;
          const size_t line_end = server->stderr_.find('\n', at);
          unsigned tls_port = 0;
          size_t t = server->stderr_.find("resp_tls_port=", at);
          if (t < line_end &&
              std::sscanf(server->stderr_.c_str() + t, "resp_tls_port=%u", &tls_port) == 1) {
            server->resp_tls_port_ = static_cast<uint16_t>(tls_port);
          }
          t = server->stderr_.find("http_tls_port=", at);
          if (t < line_end &&
              std::sscanf(server->stderr_.c_str() + t, "http_tls_port=%u", &tls_port) == 1) {
            server->http_tls_port_ = static_cast<uint16_t>(tls_port);
          }
        }
        return true;
      }
      return server->stderr_done_;
    });
  }
  if (!listening || server->resp_port_ == 0 || server->http_port_ == 0) {
    ExitStatus status = server->Kill();
    return fail("corral-server did not report listening ports (" + status.ToString() +
                "); stderr:\n" + server->Stderr());
  }
  return server;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exit_status_) Stop(Millis(5000));
  if (reader_.joinable()) reader_.join();
  if (!config_path_.empty()) unlink(config_path_.c_str());
}

void ServerProcess::ReadStderr(int fd) {
  char buf[16 * 1024];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::lock_guard lock(mu_);
    stderr_.append(buf, static_cast<size_t>(n));
    cv_.notify_all();
  }
  close(fd);
  std::lock_guard lock(mu_);
  stderr_done_ = true;
  cv_.notify_all();
}

int64_t ServerProcess::RssBytes() const {
  if (pid_ <= 0) return -1;
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kb) == 1) return kb * 1024;
  }
  return -1;
}

bool ServerProcess::Running() {
  if (pid_ <= 0 || exit_status_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = FromWaitStatus(status);
    return false;
  }
  return r == 0;
}

ExitStatus ServerProcess::Reap(Millis timeout) {
  if (!exit_status_) exit_status_ = WaitChild(pid_, pid_, timeout);
  // The pipe reaches EOF once the process is gone.
  if (reader_.joinable()) reader_.join();
  return *exit_status_;
}

ExitStatus ServerProcess::Stop(Millis timeout) {
  if (pid_ <= 0) return ExitStatus{};
  if (!exit_status_ && Running()) kill(pid_, SIGTERM);
  return Reap(timeout);
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0 && !exit_status_ && Running()) kill(pid_, signal);
}

ExitStatus ServerProcess::Wait(Millis timeout) {
  if (pid_ <= 0) return ExitStatus{};
  return Reap(timeout);
}

ExitStatus ServerProcess::Kill() {
  if (pid_ <= 0) return ExitStatus{};
  if (!exit_status_ && Running()) kill(pid_, SIGKILL);
  return Reap(Millis(5000));
}

std::string ServerProcess::Stderr() const {
  std::lock_guard lock(mu_);
  return stderr_;
}

bool ServerProcess::WaitForStderr(std::string_view needle, Millis timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout,
               [&] { return stderr_.find(needle) != std::string::npos || stderr_done_; });
  return stderr_.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// RunProcess

ProcessResult RunProcess(const std::vector<std::string>& args, std::string_view input,
                         Millis timeout) {
  ProcessResult result;
  if (args.empty()) {
    result.status.exited = true;
    result.status.code = 127;
    result.err = "no program";
    return result;
  }
  // Resolve PATH here: after fork() the child may only make async-signal-safe calls.
  std::optional<std::string> program = FindProgram(args[0]);
  if (!program) {
    result.status.exited = true;
    result.status.code = 127;
    result.err = args[0] + ": not found in PATH";
    return result;
  }
  std::vector<std::string> resolved = args;
  resolved[0] = *program;
  std::vector<char*> argv = CArgv(resolved);
  int in_fds[2] = {-1, -1}, out_fds[2] = {-1, -1}, err_fds[2] = {-1, -1};
  if (pipe2(in_fds, O_CLOEXEC) != 0 || pipe2(out_fds, O_CLOEXEC) != 0 ||
      pipe2(err_fds, O_CLOEXEC) != 0) {
    for (int fd : {in_fds[0], in_fds[1], out_fds[0], out_fds[1], err_fds[0], err_fds[1]}) {
      if (fd >= 0) close(fd);
    }
    result.status.exited = true;
    result.status.code = 127;
    result.err = std::string("pipe2: ") + strerror(errno);
    return result;
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    DieWithParent(parent);
    setpgid(0, 0);  // so a timeout can kill whatever it started too
    dup2(in_fds[0], 0);
    dup2(out_fds[1], 1);
    dup2(err_fds[1], 2);
    execv(argv[0], argv.data());
    ExecFailed(argv[0]);
  }
  close(in_fds[0]);
  close(out_fds[1]);
  close(err_fds[1]);
  if (pid < 0) {
    close(in_fds[1]);
    close(out_fds[0]);
    close(err_fds[0]);
    result.status.exited = true;
    result.status.code = 127;
    result.err = std::string("fork: ") + strerror(errno);
    return result;
  }

  const auto deadline = SteadyClock::now() + timeout;
  int in_fd = in_fds[1];
  fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
  size_t written = 0;
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  int out_fd = out_fds[0], err_fd = err_fds[0];
  bool timed_out = false;
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    int ready = poll(fds, n, RemainingMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();  // EPIPE
        if (written == input.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[16 * 1024];
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r <= 0) {
        close(fds[i].fd);
        (fds[i].fd == out_fd ? out_fd : err_fd) = -1;
        continue;
      }
      (fds[i].fd == out_fd ? result.out : result.err).append(buf, static_cast<size_t>(r));
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) close(fd);
  }
  result.status = WaitChild(pid, -pid, timed_out ? Millis(0) : Millis(RemainingMs(deadline)));
  result.status.timed_out = result.status.timed_out || timed_out;
  return result;
}

bool InPath(std::string_view program) {
  return program.find('/') == std::string_view::npos && FindProgram(program).has_value();
}

// ---------------------------------------------------------------------------------------------
// TcpClient

std::unique_ptr<TcpClient> TcpClient::Connect(uint16_t port, Millis timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      close(fd);
      return nullptr;
    }
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      close(fd);
      return nullptr;
    }
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return std::unique_ptr<TcpClient>(new TcpClient(fd));
}

TcpClient::~TcpClient() { Close(); }

void TcpClient::Close(bool reset) {
  if (fd_ < 0) return;
  if (reset) {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(fd_);
  fd_ = -1;
}

bool TcpClient::Drain() {
  if (fd_ < 0) return false;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      received_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    peer_closed_ = true;  // 0 = orderly close; ECONNRESET and the like count as closed too
    return false;
  }
}

size_t TcpClient::ReadSome(Millis timeout) {
  if (fd_ < 0 || peer_closed_) return 0;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return 0;
  size_t before = received_.size();
  Drain();
  return received_.size() - before;
}

bool TcpClient::Send(std::string_view bytes, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  size_t sent = 0;
  while (sent < bytes.size()) {
    if (fd_ < 0) return false;
    ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      // EPIPE/ECONNRESET: the peer is gone, but what it sent before may still be queued for
      // reading, so peer_closed() is left to the read side.
      Drain();
      return false;
    }
    pollfd p{fd_, POLLOUT | POLLIN, 0};
    int ready = poll(&p, 1, RemainingMs(deadline));
    if (ready <= 0) return false;
    if (p.revents & POLLIN) Drain();  // keep the server's replies flowing
  }
  return true;
}

bool TcpClient::ReadUntil(std::string_view needle, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  size_t from = 0;
  while (true) {
    if (received_.find(needle, from) != std::string::npos) return true;
    from = received_.size() >= needle.size() ? received_.size() - needle.size() + 1 : 0;
    if (peer_closed_ || fd_ < 0) return false;
    if (SteadyClock::now() >= deadline) return false;
    ReadSome(Millis(RemainingMs(deadline)));
  }
}

bool TcpClient::ReadAtLeast(size_t n, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (received_.size() < n) {
    if (peer_closed_ || fd_ < 0 || SteadyClock::now() >= deadline) return false;
    ReadSome(Millis(RemainingMs(deadline)));
  }
  return true;
}

bool TcpClient::WaitForClose(Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!peer_closed_) {
    if (fd_ < 0 || SteadyClock::now() >= deadline) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, RemainingMs(deadline)) > 0) Drain();
  }
  return true;
}

std::string TcpClient::Take() {
  std::string out;
  out.swap(received_);
  return out;
}

void TcpClient::Consume(size_t n) { received_.erase(0, std::min(n, received_.size())); }

// ---------------------------------------------------------------------------------------------
// HTTP

std::string HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

std::optional<HttpResponse> ReadHttpResponse(TcpClient& conn, Millis timeout, std::string* error) {
  namespace http = boost::beast::http;
  auto fail = [error](std::string message) -> std::optional<HttpResponse> {
    if (error != nullptr) *error = std::move(message);
    return std::nullopt;
  };
  const auto deadline = SteadyClock::now() + timeout;
  http::response_parser<http::string_body> parser;
  parser.eager(true);  // parse the body in the same call as the header when it is here
  parser.header_limit(1 << 20);
  parser.body_limit(boost::none);
  size_t consumed = 0;  // bytes of conn.received() the parser has taken
  while (!parser.is_done()) {
    boost::system::error_code ec;
    while (consumed < conn.received().size() && !parser.is_done()) {
      size_t n = parser.put(
          boost::asio::buffer(conn.received().data() + consumed, conn.received().size() - consumed),
          ec);
      consumed += n;
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec) return fail("malformed response: " + ec.message());
      if (n == 0) break;
    }
    if (parser.is_done()) break;
    if (conn.peer_closed()) {
      if (!parser.got_some()) return fail("connection closed before a response header");
      // The end of the stream completes only a body delimited by the close.
      parser.put_eof(ec);
      if (ec) {
        return fail(parser.is_header_done() ? "connection closed mid-body: " + ec.message()
                                            : "connection closed before a response header");
      }
      break;
    }
    if (RemainingMs(deadline) == 0) {
      return fail(parser.is_header_done() ? "timed out reading the response body"
                                          : "timed out waiting for a response header");
    }
    conn.ReadSome(Millis(RemainingMs(deadline)));
  }
  conn.Consume(consumed);
  const http::response<http::string_body>& message = parser.get();
  HttpResponse res;
  res.status = message.result_int();
  res.reason = std::string(message.reason());
  for (const auto& field : message) {
    res.headers[Lower(field.name_string())] = std::string(field.value());
  }
  res.body = message.body();
  return res;
}

std::string FormatHttpRequest(std::string_view method, std::string_view target,
                              std::string_view body,
                              const std::vector<std::string>& extra_headers) {
  std::string req;
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  req.append("Host: 127.0.0.1\r\n");
  if (!body.empty() || method == "PUT" || method == "POST") {
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  for (const auto& h : extra_headers) req.append(h).append("\r\n");
  req.append("\r\n").append(body);
  return req;
}

std::optional<HttpResponse> HttpRequestOnce(uint16_t port, std::string_view method,
                                            std::string_view target, std::string_view body,
                                            const std::vector<std::string>& extra_headers,
                                            std::string* error) {
  auto conn = TcpClient::Connect(port);
  if (conn == nullptr) {
    if (error != nullptr) *error = "cannot connect to port " + std::to_string(port);
    return std::nullopt;
  }
  if (!conn->Send(FormatHttpRequest(method, target, body, extra_headers))) {
    if (error != nullptr) *error = "cannot send the request";
    return std::nullopt;
  }
  return ReadHttpResponse(*conn, Millis(5000), error);
}

// ---------------------------------------------------------------------------------------------
// hiredis

RedisConnection ConnectRedis(uint16_t port, Millis timeout, std::string* error) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  RedisConnection c(redisConnectWithTimeout("127.0.0.1", port, tv));
  if (c == nullptr || c->err != 0) {
    if (error != nullptr) *error = c == nullptr ? "out of memory" : c->errstr;
    return nullptr;
  }
  redisSetTimeout(c.get(), tv);
  return c;
}

RedisReplyPtr RedisCmd(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return RedisReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data())));
}

std::string ReplyText(const redisReply* r) {
  if (r == nullptr) return "(io error)";
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      return "+" + std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return "-" + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return ":" + std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_STRING:
      return "$" + std::string(r->str, r->len);
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (size_t i = 0; i < r->elements; ++i) {
        if (i > 0) out += ", ";
        out += ReplyText(r->element[i]);
      }
      return out + "]";
    }
    default:
      return "(type " + std::to_string(r->type) + ")";
  }
}

bool WaitFor(const std::function<bool()>& condition, Millis timeout, Millis every) {
  const auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::min(every, Millis(RemainingMs(deadline)) + Millis(1)));
  }
  return condition();
}

}  // namespace corral::integration

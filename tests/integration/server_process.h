// Test harness for the integration tests: runs the real corral-server binary on free ports and
// talks to it the way clients do (hiredis, raw TCP bytes, HTTP/1.1 read with Beast's parser).
// Test-only code: every helper waits with a deadline and never throws; failures come back as
// values.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace corral::integration {

using Millis = std::chrono::milliseconds;

// Path of the corral-server binary under test (CORRAL_SERVER_PATH, set by CMake).
std::string ServerBinary();

// How a child process ended.
struct ExitStatus {
  bool exited = false;     // exited normally; `code` is valid
  int code = -1;           // exit code
  int signal = 0;          // the signal that killed it, when !exited
  bool timed_out = false;  // it did not end in time and was killed with SIGKILL
  bool ok() const { return exited && code == 0 && !timed_out; }
  std::string ToString() const;  // "exit 0", "signal 9", "timed out, then signal 9"
};

struct ServerOptions {
  // Written to a temporary file and passed as --config. listen.resp/http need not be set: the
  // harness passes --resp 127.0.0.1:0 --http 127.0.0.1:0 unless extra_args set them.
  std::string config_json = "{}";
  std::vector<std::string> extra_args;  // appended after the harness's own flags
  Millis start_timeout = Millis(10000);
};

// One running corral-server process. Start() launches it, waits for its "event=listening" log
// line and parses the bound ports from it; stderr keeps being collected for later assertions.
// The destructor stops it (SIGTERM, then SIGKILL) and removes the config file, so a failing test
// never leaves a server behind; the child also gets SIGKILL if the thread that started it dies.
// Not thread-safe except where noted: use one object from one test thread.
class ServerProcess {
 public:
  // nullptr when the binary could not be started or did not report listening within
  // options.start_timeout; *error (if given) then says why and holds the stderr seen so far.
  static std::unique_ptr<ServerProcess> Start(const ServerOptions& options,
                                              std::string* error = nullptr);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  uint16_t resp_port() const { return resp_port_; }
  uint16_t http_port() const { return http_port_; }
  // The TLS ports (listen.resp_tls / listen.http_tls); 0 when the server has none.
  uint16_t resp_tls_port() const { return resp_tls_port_; }
  uint16_t http_tls_port() const { return http_tls_port_; }
  pid_t pid() const { return pid_; }

  // Resident set size from /proc/PID/status (VmRSS), in bytes; -1 if it cannot be read (e.g. the
  // process has ended).
  int64_t RssBytes() const;
  // True while the process has not been reaped (it may be a zombie a moment after dying).
  bool Running();

  // Sends SIGTERM and waits up to `timeout` for the exit; past it, kills with SIGKILL and reports
  // timed_out. Idempotent: later calls return the first result.
  ExitStatus Stop(Millis timeout = Millis(10000));
  // SIGKILL and reap. Idempotent.
  ExitStatus Kill();
  // Sends `signal` (e.g. SIGTERM to begin a graceful drain) without waiting.
  void Signal(int signal);
  // Waits up to `timeout` for the process to exit on its own (no signal); past it, kills with
  // SIGKILL and reports timed_out. Idempotent like Stop().
  ExitStatus Wait(Millis timeout);

  // Everything the process wrote to stderr so far. Thread-safe.
  std::string Stderr() const;
  // Waits until stderr contains `needle`; false at the deadline or when stderr closed without it.
  // Thread-safe.
  bool WaitForStderr(std::string_view needle, Millis timeout = Millis(5000)) const;

 private:
  ServerProcess() = default;
  void ReadStderr(int fd);
  ExitStatus Reap(Millis timeout);

  pid_t pid_ = -1;
  uint16_t resp_port_ = 0;
  uint16_t http_port_ = 0;
  uint16_t resp_tls_port_ = 0;
  uint16_t http_tls_port_ = 0;
  std::string config_path_;
  std::optional<ExitStatus> exit_status_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string stderr_;        // guarded by mu_
  bool stderr_done_ = false;  // guarded by mu_: EOF on the pipe
  std::thread reader_;
};

// Result of RunProcess.
struct ProcessResult {
  ExitStatus status;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs argv[0] (searched in PATH) with `input` on stdin, collects stdout and stderr, and waits up
// to `timeout` (then SIGKILL, status.timed_out). If the program cannot be executed, the status is
// exit 127 and `err` says why.
ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view input = {},
                         Millis timeout = Millis(30000));

// True if `program` is an executable file in PATH.
bool InPath(std::string_view program);

// A raw TCP connection to 127.0.0.1 for sending arbitrary bytes and reading what comes back with
// deadlines. Bytes received accumulate in received(). Non-blocking underneath; never raises
// SIGPIPE.
class TcpClient {
 public:
  // nullptr if the connection is not established within `timeout`.
  static std::unique_ptr<TcpClient> Connect(uint16_t port, Millis timeout = Millis(5000));
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  // Sends all of `bytes`; false if the peer closed or reset, or not everything was taken by the
  // deadline (a peer that stopped reading). Data that arrives meanwhile is read into received()
  // so that both sides' buffers cannot deadlock. A failed send does not discard what the peer
  // sent before closing: it stays readable.
  bool Send(std::string_view bytes, Millis timeout = Millis(5000));
  // Reads until received() contains `needle`; false at the deadline or on close without it.
  bool ReadUntil(std::string_view needle, Millis timeout = Millis(5000));
  // Reads until received() holds at least `n` bytes; false at the deadline or on close.
  bool ReadAtLeast(size_t n, Millis timeout = Millis(5000));
  // Reads (keeping what arrives) until the peer closes; false if it is still open at the deadline.
  bool WaitForClose(Millis timeout = Millis(5000));
  // One poll+read round of at most `timeout`; returns the bytes read (0 on timeout or close).
  size_t ReadSome(Millis timeout);

  const std::string& received() const { return received_; }
  // Returns received() and empties it.
  std::string Take();
  // Drops the first `n` received bytes.
  void Consume(size_t n);
  // The read side has seen the end of the stream (EOF or a reset).
  bool peer_closed() const { return peer_closed_; }
  int fd() const { return fd_; }
  // Closes now; with `reset` the close sends an RST (SO_LINGER 0) instead of a FIN.
  void Close(bool reset = false);

 private:
  explicit TcpClient(int fd) : fd_(fd) {}
  // Reads whatever is available without waiting; false once the peer has closed.
  bool Drain();

  int fd_ = -1;
  std::string received_;
  bool peer_closed_ = false;
};

// A parsed HTTP/1.1 response.
struct HttpResponse {
  int status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // names lower-cased; a repeated name keeps the last
  std::string body;
  std::string Header(const std::string& lower_name) const;  // "" when absent
  bool Has(const std::string& lower_name) const { return headers.count(lower_name) > 0; }
};

// Parses one complete response at the front of conn's received bytes (reading more as needed,
// up to `timeout`) with Beast's response parser, and consumes it. The body is delimited by
// Content-Length, by chunked transfer coding, or, for a response with neither, by the peer
// closing (204/304 and 1xx have none). A response to HEAD cannot be read this way.
// nullopt on timeout, malformed input or a close mid-response; *error (if given) says which.
std::optional<HttpResponse> ReadHttpResponse(TcpClient& conn, Millis timeout = Millis(5000),
                                             std::string* error = nullptr);

// Formats a request: "METHOD target HTTP/1.1", Host, Content-Length when `body` is not empty or
// the method is PUT/POST, then `extra_headers` (each "Name: value"), then the body.
std::string FormatHttpRequest(std::string_view method, std::string_view target,
                              std::string_view body = {},
                              const std::vector<std::string>& extra_headers = {});

// One request on a fresh connection; nullopt if connecting, sending or reading failed.
std::optional<HttpResponse> HttpRequestOnce(uint16_t port, std::string_view method,
                                            std::string_view target, std::string_view body = {},
                                            const std::vector<std::string>& extra_headers = {},
                                            std::string* error = nullptr);

// hiredis with RAII.
struct RedisContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct RedisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisConnection = std::unique_ptr<redisContext, RedisContextDeleter>;
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

// redisConnectWithTimeout to 127.0.0.1:port, with `timeout` also as the read/write timeout.
// nullptr if the connection failed (*error says why).
RedisConnection ConnectRedis(uint16_t port, Millis timeout = Millis(5000),
                             std::string* error = nullptr);

// Sends one command, binary-safe (redisCommandArgv); nullptr on an I/O error (see c->errstr).
RedisReplyPtr RedisCmd(redisContext* c, const std::vector<std::string>& args);

// A reply as compact text for assertions: "+OK", "-ERR ...", ":3", "$hello", "(nil)",
// "[+a, :1, (nil)]"; a null pointer is "(io error)".
std::string ReplyText(const redisReply* r);

// Polls `condition` every `every` until it holds or `timeout` passes (it is tried once more at
// the deadline); returns whether it held. The one way the integration tests wait for a state.
bool WaitFor(const std::function<bool()>& condition, Millis timeout = Millis(5000),
             Millis every = Millis(5));

}  // namespace corral::integration

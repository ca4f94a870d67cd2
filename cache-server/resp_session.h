// One RESP client connection: reads, parses pipelined commands, executes them in order and
// writes the replies. I/O only; the commands live in resp_commands.h.
#pragma once

#include <boost/asio.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache-server/resp_commands.h"
#include "cache-server/tls.h"
#include "proto/resp_parser.h"

namespace corral::server {

// Lives on one io_context (one thread): every method but DeliverLater runs there. Keeps itself
// alive through the handlers it has outstanding. `Stream` is a TCP socket (RespSession) or a TLS
// stream over one (TlsRespSession); TLS reads and writes are always asynchronous, since
// OpenSSL may need to write while reading.
template <typename Stream>
class BasicRespSession final : public AsyncReplyTarget,
                               public PushTarget,
                               public Drainable,
                               public std::enable_shared_from_this<BasicRespSession<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsSocket>;

  // `tls`: the context a TLS stream was made with, kept alive with it (null for plain TCP).
  BasicRespSession(Stream stream, ServerState& state, RespCommands& commands,
                   std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~BasicRespSession() override;

  // Starts serving. Call on the socket's executor.
  void Start();
  // Thread-safe: posts to the session's executor.
  void DeliverLater(std::string reply) override;
  std::shared_ptr<AsyncReplyTarget> Self() override { return this->shared_from_this(); }
  std::shared_ptr<PushTarget> Pusher() override { return this->shared_from_this(); }
  // Thread-safe: posts to the session's executor. Closes a connection whose unsent output would
  // pass kMaxPushedOutput (Redis's client-output-buffer-limit for pub/sub: 32 MiB).
  void Push(std::string bytes) override;
  void PushFor(std::function<std::string(const RespClient&)> build) override;
  // Thread-safe: posts to the session's executor.
  void Visit(std::function<bool(const RespClient&)> visit) override;
  void DescribeBuffers(RespClient::Buffers& b) override;
  // Thread-safe: closes now if waiting for input, else once the commands in hand are answered.
  void Drain() override;

 private:
  // Waits for input: a connection with an input buffer reads straight into it (async_read_some);
  // one without (new, or idle after a big request) waits for readiness first (async_wait).
  void WaitReadable();
  void OnReadable(const boost::system::error_code& ec);
  void OnReceived(const boost::system::error_code& ec, size_t n);
  // Reads what the socket has; false when the connection is finished (EOF, error, over limit).
  bool ReadAvailable();
  // Frees or grows space after in_end_; false (peer_closed_ set) at max_query_buffer.
  bool MakeRoom();
  // Reallocates the input buffer to `capacity`, keeping the unparsed bytes (moved to the front).
  void ResizeInput(size_t capacity);
  // Parses and executes complete commands until input runs out, a command is pending, the
  // output is large enough to flush first, or the connection must close.
  void Process();
  // The command just run took `us` (CommandTimer::Lap): SLOWLOG and LATENCY record it if it ran
  // and reached their thresholds.
  void LogSlowCommand(int64_t us);
  // Writes the output without blocking; what the socket does not take goes out asynchronously.
  void Flush();
  void OnWriteDone(const boost::system::error_code& ec);
  // After a write, a delivery or a read: decide what to wait for next.
  void Continue();
  // True when `ec` is Drain()'s cancellation and the client has sent more: answer it first.
  bool DrainedWithInput(const boost::system::error_code& ec);
  void Close();
  // On the session's thread: appends pushed bytes now, or after the pending command's reply;
  // closes the connection instead when its unsent output would pass kMaxPushedOutput.
  void AppendPush(const std::string& bytes);
  // Redis's `timeout`: closes the connection after idle_timeout_s without a command. Armed only
  // when the option is set; it re-arms from the last command instead of on every request.
  void ArmIdleTimer(std::chrono::seconds after);
  // Serving begins: after the TLS handshake, at once on plain TCP.
  void Begin();

  std::shared_ptr<boost::asio::ssl::context> tls_;  // before socket_: it must outlive it
  Stream socket_;
  std::unique_ptr<boost::asio::steady_timer> handshake_timer_;  // TLS only
  std::unique_ptr<boost::asio::steady_timer> idle_timer_;
  ServerState& state_;
  RespCommands& commands_;
  proto::RespParser parser_;
  RespClient client_;

  std::unique_ptr<char[]> in_;  // [in_start_, in_end_) holds unparsed bytes; in_cap_ allocated
  size_t in_cap_ = 0;
  size_t in_peak_ = 0;  // the largest in_cap_ so far (CLIENT LIST's rbp)
  size_t in_start_ = 0, in_end_ = 0;
  std::string out_;          // replies not yet written
  std::string writing_buf_;  // the bytes an async write is sending

  bool reading_ = false;           // an async_wait or async_read_some is outstanding
  bool writing_ = false;           // an async_write is outstanding
  bool pending_ = false;           // a command awaits DeliverLater
  bool drop_reply_later_ = false;  // and its reply is dropped (CLIENT REPLY OFF or SKIP)
  // Pushes that came while a command was pending: sent right after its reply, so that a tracking
  // invalidation that happened while a read waited on its load follows the (older) value.
  std::string deferred_pushes_;
  bool peer_closed_ = false;
  bool close_after_write_ = false;
  bool closed_ = false;
  bool refused_ = false;  // by protected mode (users.h)
  size_t max_query_buffer_;
};

using RespSession = BasicRespSession<boost::asio::ip::tcp::socket>;
using TlsRespSession = BasicRespSession<TlsSocket>;

}  // namespace corral::server

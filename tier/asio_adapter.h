// Runs a hiredis async context on a Boost.Asio executor: hiredis's addRead/addWrite hooks become
// async_wait()s on a stream_descriptor over the context's socket. Internal to tier/.
#pragma once

#include <hiredis/async.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <optional>
#include <string>

namespace corral::tier {

// Attaches `ac` to `executor`. hiredis owns the socket: the adapter never closes it, and hiredis's
// cleanup hook (run when the context is freed) cancels the waits and lets go of the descriptor.
// Every redisAsyncHandleRead/Write call happens in a handler on `executor`, so all hiredis calls
// for the context must be made there too. Returns false if the descriptor cannot be registered.
bool AttachAsio(redisAsyncContext* ac, const boost::asio::any_io_executor& executor);

// "host:port" (the host may be an IPv6 literal: the port follows the last ':').
struct HostPort {
  std::string host;
  int port = 0;
};
std::optional<HostPort> ParseHostPort(const std::string& address);

}  // namespace corral::tier

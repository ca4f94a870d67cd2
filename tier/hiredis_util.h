// Small helpers shared by the Client and the Subscriber: copying hiredis replies, sending argv
// commands, AUTH, and running a function on the client's strand from any thread. Internal to tier/.
#pragma once

#include <hiredis/async.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <string>
#include <vector>

#include "tier/redis_client.h"

namespace corral::tier {

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

// A deep copy of `reply` (which hiredis frees after the callback returns).
Reply CopyReply(const redisReply* reply);

// redisAsyncCommandArgv for owned strings. Returns hiredis's REDIS_OK / REDIS_ERR.
int SendArgv(redisAsyncContext* ac, redisCallbackFn* fn, void* privdata,
             const std::vector<std::string>& args);

// AUTH [user] password per the options, or an empty vector when no password is configured.
std::vector<std::string> AuthArgs(const ClientOptions& options);

// Runs `fn` on `strand`: at once when called on the strand or when the io_context is stopped
// (nobody else can be running it then); posted, without waiting, when called from another handler
// of the same io_context (waiting there could deadlock the only thread running it); otherwise
// posts and waits until it ran. If the io_context is not serviced at all (neither stopped nor
// running the post within a few seconds), runs `fn` on the calling thread.
void RunOnStrand(boost::asio::io_context& io, Strand& strand, std::function<void()> fn);

}  // namespace corral::tier

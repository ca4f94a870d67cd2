// Helpers shared by the Client and the Subscriber (see hiredis_util.h).
#include "tier/hiredis_util.h"

#include <atomic>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>

namespace corral::tier {

Reply CopyReply(const redisReply* reply) {
  Reply out;
  switch (reply->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = reply->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(reply->elements);
      for (size_t i = 0; i < reply->elements; ++i)
        out.elements.push_back(CopyReply(reply->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

int SendArgv(redisAsyncContext* ac, redisCallbackFn* fn, void* privdata,
             const std::vector<std::string>& args) {
  constexpr size_t kInline = 16;
  const char* argv_inline[kInline];
  size_t lens_inline[kInline];
  std::vector<const char*> argv_heap;
  std::vector<size_t> lens_heap;
  const char** argv = argv_inline;
  size_t* lens = lens_inline;
  if (args.size() > kInline) {
    argv_heap.resize(args.size());
    lens_heap.resize(args.size());
    argv = argv_heap.data();
    lens = lens_heap.data();
  }
  for (size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }
  return redisAsyncCommandArgv(ac, fn, privdata, static_cast<int>(args.size()), argv, lens);
}

std::vector<std::string> AuthArgs(const ClientOptions& options) {
  if (!options.password) return {};
  if (options.user) return {"AUTH", *options.user, *options.password};
  return {"AUTH", *options.password};
}

void RunOnStrand(boost::asio::io_context& io, Strand& strand, std::function<void()> fn) {
  if (strand.running_in_this_thread() || io.stopped()) {
    fn();
    return;
  }
  if (io.get_executor().running_in_this_thread()) {
    // A handler of the same io_context outside the strand: waiting could deadlock (this may be the
    // only thread running it), so the work completes asynchronously, right after this handler.
    boost::asio::post(strand, std::move(fn));
    return;
  }
  // Whoever claims first runs fn: the posted handler, or this thread when nobody services io.
  auto claimed = std::make_shared<std::atomic<bool>>(false);
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> ran = done->get_future();
  auto shared_fn = std::make_shared<std::function<void()>>(std::move(fn));
  boost::asio::post(strand, [claimed, done, shared_fn] {
    if (!claimed->exchange(true)) (*shared_fn)();
    done->set_value();
  });
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (ran.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
    if (io.stopped() || std::chrono::steady_clock::now() > give_up) {
      if (!claimed->exchange(true)) (*shared_fn)();
      return;
    }
  }
}

}  // namespace corral::tier

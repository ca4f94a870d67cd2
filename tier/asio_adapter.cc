// hiredis <-> Boost.Asio: the event-library hooks hiredis expects (see hiredis/adapters/*.h for the
// ones it ships), written for a posix::stream_descriptor.
#include "tier/asio_adapter.h"

#include <sys/ioctl.h>

#include <boost/asio/post.hpp>
#include <charconv>

namespace corral::tier {
namespace {

namespace asio = boost::asio;

// One per context. Shared with the pending waits, so a wait that completes after hiredis freed the
// context finds context_ == nullptr and stops.
class AsioEvents : public std::enable_shared_from_this<AsioEvents> {
 public:
  AsioEvents(redisAsyncContext* ac, const asio::any_io_executor& executor)
      : context_(ac), socket_(executor) {}

  bool Assign() {
    boost::system::error_code ec;
    socket_.assign(context_->c.fd, ec);
    return !ec;
  }

  void AddRead() {
    want_read_ = true;
    WaitRead();
  }
  void DelRead() { want_read_ = false; }
  void AddWrite() {
    want_write_ = true;
    // Asio's reactor is edge-triggered and its waits do not try the socket first: an idle connected
    // socket is writable but yields no new edge, so a wait_write could sleep forever. Write at once
    // instead, and wait only while connecting or after a write found the socket full.
    if (in_write_ || context_ == nullptr || !(context_->c.flags & REDIS_CONNECTED)) {
      WaitWrite();
    } else if (!write_posted_) {
      write_posted_ = true;
      asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->write_posted_ = false;
        self->HandleWrite();
      });
    }
  }
  void DelWrite() { want_write_ = false; }

  // hiredis is about to close the socket and free the context.
  void Cleanup() {
    context_ = nullptr;
    want_read_ = want_write_ = false;
    if (socket_.is_open()) socket_.release();  // cancels the waits; the fd stays hiredis's
  }

 private:
  void HandleRead() {
    if (context_ == nullptr || !want_read_) return;
    redisAsyncHandleRead(context_);  // reads once (at most 16 KiB); may free the context
    if (context_ == nullptr || !want_read_) return;
    // A pipeline's replies may exceed one read; what is left raises no new edge, so read on.
    int unread = 0;
    if (::ioctl(context_->c.fd, FIONREAD, &unread) == 0 && unread > 0) {
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->HandleRead(); });
    } else {
      WaitRead();
    }
  }

  void HandleWrite() {
    if (context_ == nullptr || !want_write_) return;
    in_write_ = true;
    redisAsyncHandleWrite(context_);  // may free the context; calls AddWrite when not done
    in_write_ = false;
  }

  void WaitRead() {
    if (reading_ || context_ == nullptr) return;
    reading_ = true;
    socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->reading_ = false;
                         if (!ec) self->HandleRead();
                       });
  }

  void WaitWrite() {
    if (writing_ || context_ == nullptr) return;
    writing_ = true;
    socket_.async_wait(asio::posix::stream_descriptor::wait_write,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->writing_ = false;
                         if (!ec) self->HandleWrite();
                       });
  }

  redisAsyncContext* context_;
  asio::posix::stream_descriptor socket_;
  bool want_read_ = false;
  bool want_write_ = false;
  bool reading_ = false;  // a wait_read is outstanding
  bool writing_ = false;
  bool write_posted_ = false;  // an immediate HandleWrite is queued
  bool in_write_ = false;      // inside redisAsyncHandleWrite
};

using Holder = std::shared_ptr<AsioEvents>;

AsioEvents& Events(void* data) { return **static_cast<Holder*>(data); }

}  // namespace

bool AttachAsio(redisAsyncContext* ac, const asio::any_io_executor& executor) {
  if (ac->ev.data != nullptr) return false;
  auto* holder = new Holder(std::make_shared<AsioEvents>(ac, executor));
  if (!(*holder)->Assign()) {
    delete holder;
    return false;
  }
  ac->ev.data = holder;
  ac->ev.addRead = [](void* data) { Events(data).AddRead(); };
  ac->ev.delRead = [](void* data) { Events(data).DelRead(); };
  ac->ev.addWrite = [](void* data) { Events(data).AddWrite(); };
  ac->ev.delWrite = [](void* data) { Events(data).DelWrite(); };
  ac->ev.cleanup = [](void* data) {
    auto* holder = static_cast<Holder*>(data);
    (*holder)->Cleanup();
    delete holder;
  };
  // The non-blocking connect completes when the socket turns writable; commands written before
  // then wait in hiredis's output buffer.
  (*holder)->AddWrite();
  (*holder)->AddRead();
  return true;
}

std::optional<HostPort> ParseHostPort(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) return std::nullopt;
  HostPort out;
  out.host = address.substr(0, colon);
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  const char* begin = address.data() + colon + 1;
  const char* end = address.data() + address.size();
  auto [ptr, ec] = std::from_chars(begin, end, out.port);
  if (ec != std::errc() || ptr != end || out.port <= 0 || out.port > 65535) return std::nullopt;
  return out;
}

}  // namespace corral::tier

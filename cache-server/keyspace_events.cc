// See keyspace_events.h.
#include "cache-server/keyspace_events.h"

#include "cache-server/pubsub.h"

namespace corral::server {
void KeyspaceEvents::Publish(std::string_view event, std::string_view key) {
  // corral has one database: db 0.
  const uint32_t f = flags();
  if (f & kEventKeyspace) {
    std::string channel = "__keyspace@0__:";
    channel.append(key);
    pubsub_.Publish(channel, event);
  }
  if (f & kEventKeyevent) {
    std::string channel = "__keyevent@0__:";
    channel.append(event);
    pubsub_.Publish(channel, key);
  }
}

}  // namespace corral::server

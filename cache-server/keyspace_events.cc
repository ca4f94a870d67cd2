// See keyspace_events.h.
#include "cache-server/keyspace_events.h"

#include "cache-server/pubsub.h"

namespace corral::server {
namespace {

// The letters in the order Redis's keyspaceEventsFlagsToString writes the classes.
constexpr std::pair<char, uint32_t> kClassLetters[] = {
    {'g', kEventGeneric}, {'$', kEventString}, {'l', kEventList},    {'s', kEventSet},
    {'h', kEventHash},    {'z', kEventZset},   {'x', kEventExpired}, {'e', kEventEvicted},
    {'t', kEventStream},  {'d', kEventModule}, {'n', kEventNew}};

}  // namespace

std::optional<uint32_t> ParseKeyspaceEvents(std::string_view text) {
  uint32_t flags = 0;
  for (char c : text) {
    switch (c) {
      case 'A':
        flags |= kEventAll;
        break;
      case 'K':
        flags |= kEventKeyspace;
        break;
      case 'E':
        flags |= kEventKeyevent;
        break;
      case 'm':
        flags |= kEventKeyMiss;
        break;
      default: {
        bool known = false;
        for (const auto& [letter, bit] : kClassLetters) {
          if (c == letter) {
            flags |= bit;
            known = true;
          }
        }
        if (!known) return std::nullopt;
      }
    }
  }
  return flags;
}

std::string KeyspaceEventsText(uint32_t flags) {
  std::string text;
  if ((flags & kEventAll) == kEventAll) {
    text += 'A';
  } else {
    for (const auto& [letter, bit] : kClassLetters) {
      if (flags & bit) text += letter;
    }
  }
  if (flags & kEventKeyspace) text += 'K';
  if (flags & kEventKeyevent) text += 'E';
  if (flags & kEventKeyMiss) text += 'm';
  return text;
}

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

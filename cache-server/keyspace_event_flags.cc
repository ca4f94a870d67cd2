// See keyspace_events.h: the notify-keyspace-events letters, parsed and written back. In
// corral_cache with the config that reads them (resp.notify_keyspace_events); the rest of
// keyspace_events.h is the server's.
#include <string>

#include "cache-server/keyspace_events.h"

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

}  // namespace corral::server

// The Lua scripts the Redis tier runs (tier_backend.cc): each one step of the tier's protocol,
// atomic in Redis, every key of a call in one hash slot (the key's hash tag). Their KEYS, ARGV and
// replies are described in tier_scripts.cc, next to their text.
#pragma once

#include <string>

namespace corral::server::tier_scripts {

extern const std::string kLookup;
extern const std::string kFill;
extern const std::string kRelease;
extern const std::string kInvalidate;
extern const std::string kTakeover;
extern const std::string kHeartbeatScript;
extern const std::string kMembers;
extern const std::string kAlive;
extern const std::string kBumpEpoch;
extern const std::string kWalReader;
extern const std::string kWalReaderRelease;

}  // namespace corral::server::tier_scripts

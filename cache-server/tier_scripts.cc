// The tier's Lua scripts (tier_scripts.h).
#include "cache-server/tier_scripts.h"

#include <string_view>

namespace corral::server::tier_scripts {

namespace {
// Redis's clock decides every expiry, so the nodes' clocks never have to agree.
constexpr std::string_view kNow =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";
}  // namespace

// WAL positions travel as decimal numbers of bytes (exact in Lua's doubles up to 2^53, 8 PiB of
// WAL); a value written without one (by an older node) has none, read as 0.
//
// KEYS: value, lease, error. ARGV: owner, lease_ttl_ms, epoch, the position the value must have
// been read at (0: any).
// A fresh value written at this epoch or later, read at that position or later: {'hit', value,
// kind, fresh ms left, stale window ms, load ms, position}. A held-off error: {'error', text}.
// Another node's lease: {'wait', owner}. Else the lease is taken for ARGV[1]: {'won'}.
const std::string kLookup = std::string(kNow) + R"lua(
local h = redis.call('HMGET', KEYS[1], 'v', 'k', 'f', 's', 'e', 'm', 'p')
local p = h[7] or '0'
if h[2] and tonumber(h[5]) >= tonumber(ARGV[3]) and tonumber(h[3]) > now
   and tonumber(p) >= tonumber(ARGV[4]) then
  return {'hit', h[1], h[2], tostring(tonumber(h[3]) - now),
          tostring(tonumber(h[4]) - tonumber(h[3])), h[6], p}
end
local err = redis.call('GET', KEYS[3])
if err then return {'error', err} end
local holder = redis.call('GET', KEYS[2])
if holder then return {'wait', holder} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'won'}
)lua";

// KEYS: value, lease, fence. ARGV: owner, value, kind, fresh_ms, stale_ms, epoch, load_ms,
// channel, key, the position the load read at.
// The fill is a compare-and-set against the lease: 0 if an invalidation (or a takeover) took it;
// {2, fence position} if it was read before the key's last invalidation's position (the fence,
// kInvalidate): then the lease is given up and nothing is stored, and the waiting nodes load anew.
const std::string kFill = std::string(kNow) + R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local fence = redis.call('GET', KEYS[3])
if fence and tonumber(ARGV[10]) < tonumber(fence) then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[8], ARGV[9])
  return {2, fence}
end
redis.call('DEL', KEYS[2], KEYS[1])
local f = now + tonumber(ARGV[4])
local s = f + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'k', ARGV[3], 'f', f, 's', s, 'e', ARGV[6], 'm', ARGV[7],
           'p', ARGV[10])
redis.call('PEXPIREAT', KEYS[1], s + 1000)
redis.call('PUBLISH', ARGV[8], ARGV[9])
return 1
)lua";

// KEYS: lease, error. ARGV: owner, error text, hold-off ms, channel, key. The load failed: the
// error is held off fleet-wide, and the waiting nodes are woken to read it.
const std::string kRelease = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
)lua";

// KEYS: value, lease, error, fence. ARGV: channel ('' = no broadcast), message, the
// invalidation's position (0: none), fence_ms. {1 if L2 held an entry, the subscribers the
// broadcast reached (-1: none sent)}. The fence keeps the newest position for fence_ms, the time
// within which a usable replica may still be behind it.
const std::string kInvalidate = R"lua(
local held = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
local position = tonumber(ARGV[3])
if position > 0 then
  local fence = redis.call('GET', KEYS[4])
  if not fence or tonumber(fence) < position then
    redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
  end
end
local reached = -1
if ARGV[1] ~= '' then reached = redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return {held, reached}
)lua";

// KEYS: lease. ARGV: dead owner, new owner, lease_ttl_ms.
const std::string kTakeover = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
)lua";

// KEYS: nodes (a sorted set: node id -> its last heartbeat, Redis time). ARGV: node id,
// liveness ms. Marks this node alive and forgets nodes unheard of for the liveness time.
const std::string kHeartbeatScript = std::string(kNow) + R"lua(
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return 1
)lua";

// KEYS: nodes. ARGV: liveness ms. The nodes heard of within the liveness time.
const std::string kMembers = std::string(kNow) + R"lua(
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
)lua";

// KEYS: nodes. ARGV: node id, liveness ms. 1 if the node was heard of within the liveness time.
const std::string kAlive = std::string(kNow) + R"lua(
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if seen and tonumber(seen) > now - tonumber(ARGV[2]) then return 1 end
return 0
)lua";

// KEYS: epoch. ARGV: channel, the newest epoch the node knows. The new epoch is above both:
// a Redis that lost writes may have lost earlier bumps too.
const std::string kBumpEpoch = R"lua(
local e = redis.call('INCR', KEYS[1])
if e <= tonumber(ARGV[2]) then
  e = tonumber(ARGV[2]) + 1
  redis.call('SET', KEYS[1], e)
end
redis.call('PUBLISH', ARGV[1], e)
return e
)lua";

// KEYS: the WAL reader lease. ARGV: node id, ttl ms. Takes the lease when free, extends it when
// this node holds it; 1 if this node holds it now.
const std::string kWalReader = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
)lua";

// KEYS: the WAL reader lease. ARGV: node id. Gives it up if this node holds it.
const std::string kWalReaderRelease = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

}  // namespace corral::server::tier_scripts

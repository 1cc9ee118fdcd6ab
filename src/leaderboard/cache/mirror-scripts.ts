import { LUA_ABOVE } from '../ranking';

/** The mirror's Lua scripts (src/leaderboard/cache/mirror.ts), each one atomic in Redis. */

// KEYS = names hash, then (sorted set, version hash) per cycle. ARGV = n cycles, their expiry instants (unix
// seconds, 0 for none), the number of entries, then per entry: cycle index (0-based), user, score, version,
// active, display name; then per rank query: cycle index, score. Returns one rank per query.
// An entry applies only when its version is at least the one Redis holds for that user in that cycle, so
// mirrors that arrive late (another instance, a retry, the catch-up scan) never move a score backwards.
// Equal versions re-apply the same committed state, which lets a rebuild repair a half-flushed mirror.
// A closed cycle's keys expire on their own a grace period after its end. The ranks are counted after the
// entries applied, in the same atomic step: the rank a committed total has among everything Redis holds.
export const APPLY = `${LUA_ABOVE}
local n = tonumber(ARGV[1])
local e = tonumber(ARGV[2 + n])
local last = 2 + n + e * 6
for i = 3 + n, last, 6 do
  local p = tonumber(ARGV[i]) * 2
  local zset, versions, user = KEYS[2 + p], KEYS[3 + p], ARGV[i + 1]
  local held = tonumber(redis.call('HGET', versions, user) or '-1')
  if tonumber(ARGV[i + 3]) >= held then
    redis.call('HSET', versions, user, ARGV[i + 3])
    redis.call('HSET', KEYS[1], user, ARGV[i + 5])
    if ARGV[i + 4] == '1' then redis.call('ZADD', zset, ARGV[i + 2], user)
    else redis.call('ZREM', zset, user) end
  end
end
for p = 0, n - 1 do
  local at = tonumber(ARGV[2 + p])
  if at > 0 then
    redis.call('EXPIREAT', KEYS[2 + p * 2], at)
    redis.call('EXPIREAT', KEYS[3 + p * 2], at)
  end
end
local out = {}
for i = last + 1, #ARGV, 2 do
  out[#out + 1] = above(KEYS[2 + tonumber(ARGV[i]) * 2], ARGV[i + 1]) + 1
end
return out`;

// One user's score, the number of users above it, and the display name, in one round trip.
export const LOOKUP = `${LUA_ABOVE}
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return false end
return {s, above(KEYS[1], s), redis.call('HGET', KEYS[2], ARGV[1])}`;

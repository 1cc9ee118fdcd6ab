import { LUA_ABOVE } from '../ranking';

/** The mirror's Lua scripts (src/leaderboard/cache/mirror.ts), each one atomic in Redis. */

// KEYS = names hash, then (sorted set, version hash) per cycle. ARGV = n cycles, their expiry instants (unix
// seconds, 0 for none), then per entry: cycle index (0-based), user, score, version, active, display name.
// An entry applies only when its version is at least the one Redis holds for that user in that cycle, so
// mirrors that arrive late (another instance, a retry, the catch-up scan) never move a score backwards.
// Equal versions re-apply the same committed state, which lets a rebuild repair a half-flushed mirror.
// A closed cycle's keys expire on their own a grace period after its end.
export const APPLY = `
local n = tonumber(ARGV[1])
for i = 2 + n, #ARGV, 6 do
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
return 1`;

// Competition ranks against each cycle's sorted set (KEYS, one per group), with the pending batch's own users
// counted at their new scores. ARGV per group: n, n x (user, newScore, active), q, q x (user, score to rank).
export const RANKS = `${LUA_ABOVE}
local out, pos = {}, 1
for g = 1, #KEYS do
  local key = KEYS[g]
  local n = tonumber(ARGV[pos]); pos = pos + 1
  local users, old, new, active = {}, {}, {}, {}
  for i = 1, n do
    local u = ARGV[pos]
    local held = redis.call('ZSCORE', key, u)
    users[#users + 1] = u
    old[u] = held and tonumber(held) or false
    new[u] = tonumber(ARGV[pos + 1]); active[u] = ARGV[pos + 2] == '1'
    pos = pos + 3
  end
  local q = tonumber(ARGV[pos]); pos = pos + 1
  for j = 1, q do
    local self, s = ARGV[pos], tonumber(ARGV[pos + 1])
    local c = above(key, ARGV[pos + 1])
    for _, u in ipairs(users) do
      if old[u] and old[u] > s then c = c - 1 end
      if u ~= self and active[u] and new[u] > s then c = c + 1 end
    end
    out[#out + 1] = c + 1
    pos = pos + 2
  end
end
return out`;

// One user's score, the number of users above it, and the display name, in one round trip.
export const LOOKUP = `${LUA_ABOVE}
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return false end
return {s, above(KEYS[1], s), redis.call('HGET', KEYS[2], ARGV[1])}`;

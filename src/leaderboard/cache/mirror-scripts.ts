import { LUA_ABOVE } from '../ranking';

/** The mirror's Lua scripts (src/leaderboard/cache/mirror.ts), each one atomic in Redis. */

// Applies entries only when their version is at least the one Redis holds for that user, so mirrors that
// arrive late (another instance, a retry, the catch-up scan) can never move a score backwards.
// Equal versions re-apply the same committed state, which lets a rebuild repair a half-flushed mirror.
export const APPLY = `
for i = 1, #ARGV, 5 do
  local user = ARGV[i]
  local held = tonumber(redis.call('HGET', KEYS[2], user) or '-1')
  if tonumber(ARGV[i + 2]) >= held then
    redis.call('HSET', KEYS[2], user, ARGV[i + 2])
    redis.call('HSET', KEYS[3], user, ARGV[i + 4])
    if ARGV[i + 3] == '1' then redis.call('ZADD', KEYS[1], ARGV[i + 1], user)
    else redis.call('ZREM', KEYS[1], user) end
  end
end
return 1`;

// Competition rank of each queried score against the mirror, with the pending batch's own users counted at
// their new scores: ARGV = n, then n x (user, newScore, active), then pairs of (user, score) to rank.
export const RANKS = `${LUA_ABOVE}
local n = tonumber(ARGV[1])
local users, old, new, active = {}, {}, {}, {}
for i = 0, n - 1 do
  local u = ARGV[2 + i * 3]
  local held = redis.call('ZSCORE', KEYS[1], u)
  users[#users + 1] = u
  old[u] = held and tonumber(held) or false
  new[u] = tonumber(ARGV[3 + i * 3]); active[u] = ARGV[4 + i * 3] == '1'
end
local out = {}
for j = 2 + n * 3, #ARGV, 2 do
  local self, s = ARGV[j], tonumber(ARGV[j + 1])
  local c = above(KEYS[1], ARGV[j + 1])
  for _, u in ipairs(users) do
    if old[u] and old[u] > s then c = c - 1 end
    if u ~= self and active[u] and new[u] > s then c = c + 1 end
  end
  out[#out + 1] = c + 1
end
return out`;

// One user's score, the number of users above it, and the display name, in one round trip.
export const LOOKUP = `${LUA_ABOVE}
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return false end
return {s, above(KEYS[1], s), redis.call('HGET', KEYS[2], ARGV[1])}`;

import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { rawRows, type Db } from '../db';
import type { Metrics } from '../metrics';
import { markRedisFailure, redisReady } from '../redis';

export type FlagReason = 'points_rate' | 'rate_limited';

// Per-user points in the current and previous minute; the sliding estimate weighs the previous minute by the
// part of it still inside the window. A user is reported at most once per minute.
const POINTS = `
local prefix, minute, threshold, frac = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 2 do
  local u = ARGV[i]
  local key = prefix .. 'ppm:' .. u .. ':' .. minute
  local cur = redis.call('INCRBY', key, ARGV[i + 1])
  redis.call('EXPIRE', key, 150)
  local prev = tonumber(redis.call('GET', prefix .. 'ppm:' .. u .. ':' .. (minute - 1)) or '0')
  local rate = math.floor(cur + prev * (1 - frac))
  if rate > threshold and redis.call('SET', prefix .. 'ppm-flagged:' .. u .. ':' .. minute, '1', 'NX', 'EX', 150) then
    out[#out + 1] = u
    out[#out + 1] = tostring(rate)
  end
end
return out`;

// Counts a user's 429s in a ten-minute bucket and reports the one that reaches the threshold.
const HITS = `
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 900)
return n`;

type CheatRedis = Redis & {
  cheatPoints(...args: string[]): Promise<string[]>;
  cheatHits(key: string): Promise<number>;
};

/**
 * Cheat signals: too many points per minute, or hitting the write limit again and again. A signal is a
 * warning log, a metric and a flag admins can list and clear; it never blocks a write by itself.
 */
export function createCheatDetector(deps: {
  db: Db;
  redis: Redis;
  prefix: string;
  pointsPerMinute: number;
  flagAfterLimited: number;
  logger: Logger;
  metrics: Metrics;
}) {
  const redis = deps.redis as CheatRedis;
  redis.defineCommand('cheatPoints', { numberOfKeys: 0, lua: POINTS });
  redis.defineCommand('cheatHits', { numberOfKeys: 1, lua: HITS });

  async function flag(userId: string, reason: FlagReason, detail: string): Promise<void> {
    deps.metrics.cheatFlags.inc({ reason });
    deps.logger.warn({ userId, reason, detail, signal: 'cheat' }, 'suspicious activity flagged');
    await deps.db.raw(
      `INSERT INTO cheat_flags (user_id, reason, detail) VALUES (?, ?, ?)
       ON DUPLICATE KEY UPDATE count = count + 1, detail = ?, last_at = CURRENT_TIMESTAMP(3)`,
      [userId, reason, detail, detail],
    );
  }

  function report(err: unknown): void {
    markRedisFailure(redis);
    deps.metrics.redisErrors.inc();
    deps.logger.debug({ err: (err as Error).message }, 'cheat signal skipped');
  }

  return {
    /** Points a player gave themselves in a committed batch (admin corrections are not counted). */
    async recordPoints(points: Array<{ userId: string; delta: number }>): Promise<void> {
      if (points.length === 0 || !redisReady(redis)) return;
      const now = Date.now() / 60_000;
      const minute = Math.floor(now);
      try {
        const flagged = await redis.cheatPoints(
          deps.prefix,
          String(minute),
          String(deps.pointsPerMinute),
          String(now - minute),
          ...points.flatMap((p) => [p.userId, String(p.delta)]),
        );
        for (let i = 0; i < flagged.length; i += 2) {
          await flag(flagged[i], 'points_rate', `${flagged[i + 1]} points in the last minute`);
        }
      } catch (err) {
        report(err);
      }
    },
    async recordRateLimited(userId: string): Promise<void> {
      if (!redisReady(redis)) return;
      try {
        const bucket = Math.floor(Date.now() / 600_000);
        const hits = await redis.cheatHits(`${deps.prefix}rl-hits:${userId}:${bucket}`);
        if (hits === deps.flagAfterLimited)
          await flag(userId, 'rate_limited', `${hits} rate-limited writes in 10 minutes`);
      } catch (err) {
        report(err);
      }
    },
    async list(limit = 200) {
      const rows = await rawRows<{
        user_id: string;
        reason: FlagReason;
        count: number;
        detail: string;
        first_at: Date;
        last_at: Date;
      }>(
        deps.db,
        'SELECT user_id, reason, count, detail, first_at, last_at FROM cheat_flags ORDER BY last_at DESC LIMIT ?',
        [limit],
      );
      return rows.map((r) => ({
        userId: r.user_id,
        reason: r.reason,
        count: Number(r.count),
        detail: r.detail,
        firstAt: r.first_at.toISOString(),
        lastAt: r.last_at.toISOString(),
      }));
    },
    async clear(userId: string): Promise<number> {
      const [res] = await deps.db.raw('DELETE FROM cheat_flags WHERE user_id = ?', [userId]);
      return (res as { affectedRows: number }).affectedRows;
    },
  };
}

export type CheatDetector = ReturnType<typeof createCheatDetector>;

import type { Logger } from 'pino';
import { rawRows, type Db } from '../platform/db';
import type { Metrics } from '../platform/metrics';
import { markRedisFailure, redisReady, type RedisClient } from '../platform/redis';
import type { EventMap } from '../events';
import { redisKeys } from '../leaderboard/ranking';

export type FlagReason = 'points_rate' | 'rate_limited';

const ER_NO_REFERENCED_ROW = 1452; // a foreign key failed: cheat_flags.user_id names no users row

// One user's points in the current and previous minute; the sliding estimate weighs the previous minute by the
// part of it still inside the window. A user is reported at most once per minute. KEYS: this minute's count,
// the previous minute's, this minute's flag (one slot: redisKeys() tags them by user). ARGV: points,
// threshold, the fraction of this minute gone. Returns the rate when it newly crosses the threshold, else 0.
const POINTS = `
local cur = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 150)
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local rate = math.floor(cur + prev * (1 - tonumber(ARGV[3])))
if rate > tonumber(ARGV[2]) and redis.call('SET', KEYS[3], '1', 'NX', 'EX', 150) then return rate end
return 0`;

// Counts a user's 429s in a ten-minute bucket and reports the one that reaches the threshold.
const HITS = `
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 900)
return n`;

type CheatRedis = RedisClient & {
  cheatPoints(
    cur: string,
    prev: string,
    flagged: string,
    points: string,
    threshold: string,
    frac: string,
  ): Promise<number>;
  cheatHits(key: string): Promise<number>;
};

/**
 * Cheat signals: too many points per minute, or hitting the write limit again and again. A signal is a
 * warning log, a metric and a flag admins can list and clear; it never blocks a write by itself.
 */
export function createCheatDetector(deps: {
  db: Db;
  redis: RedisClient;
  prefix: string;
  pointsPerMinute: number;
  flagAfterLimited: number;
  logger: Logger;
  metrics: Metrics;
  /** Flags waiting for MySQL; past this the oldest is given up (logged at error, counted). */
  queueMax: number;
  /** Retries of a flag MySQL refused, the first after `retryBaseMs`, doubling up to 30 s. */
  maxAttempts?: number;
  retryBaseMs?: number;
}) {
  const redis = deps.redis as CheatRedis;
  const keys = redisKeys(deps.prefix);
  redis.defineCommand('cheatPoints', { numberOfKeys: 3, lua: POINTS });
  redis.defineCommand('cheatHits', { numberOfKeys: 1, lua: HITS });
  const maxAttempts = deps.maxAttempts ?? 6;
  const retryBaseMs = deps.retryBaseMs ?? 1000;

  interface PendingFlag {
    userId: string;
    reason: FlagReason;
    detail: string;
    attempts: number;
    dueAt: number;
  }
  // Flags MySQL could not save yet (down, or the user's row not committed yet), oldest first.
  const queue: PendingFlag[] = [];
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function flag(userId: string, reason: FlagReason, detail: string): Promise<void> {
    deps.metrics.cheatFlags.inc({ reason });
    deps.logger.warn({ userId, reason, detail, signal: 'cheat' }, 'suspicious activity flagged');
    await save({ userId, reason, detail, attempts: 0, dueAt: 0 });
  }

  /**
   * One attempt to store a flag. A MySQL failure is MySQL's, never Redis's: it leaves Redis in use, and the
   * flag waits in a bounded queue for a retry instead of being dropped.
   */
  async function save(f: PendingFlag): Promise<boolean> {
    try {
      await deps.db.raw(
        `INSERT INTO cheat_flags (user_id, reason, detail) VALUES (?, ?, ?)
         ON DUPLICATE KEY UPDATE count = count + 1, detail = ?, last_at = CURRENT_TIMESTAMP(3)`,
        [f.userId, f.reason, f.detail, f.detail],
      );
      return true;
    } catch (err) {
      // A user without a row: the token was valid but the user was never provisioned (a malformed first
      // write, AUTO_PROVISION_USERS=false) or provisioning has not committed yet. Retrying covers the race.
      const cause = (err as { errno?: number }).errno === ER_NO_REFERENCED_ROW ? 'unknown_user' : 'mysql';
      deps.metrics.cheatFlagSaveFailures.inc({ cause });
      f.attempts++;
      if (f.attempts >= maxAttempts || stopped) {
        lose(f, cause, (err as Error).message);
        return false;
      }
      f.dueAt = Date.now() + Math.min(30_000, retryBaseMs * 2 ** (f.attempts - 1));
      if (queue.length >= deps.queueMax) lose(queue.shift()!, 'queue_full', 'retry queue full');
      queue.push(f);
      deps.logger.warn(
        { userId: f.userId, reason: f.reason, cause, attempts: f.attempts, err: (err as Error).message },
        'cheat flag not saved yet; will retry',
      );
      schedule();
      return false;
    }
  }

  function lose(f: PendingFlag, cause: string, err: string): void {
    deps.metrics.cheatFlagsLost.inc({ reason: f.reason, cause });
    deps.logger.error(
      {
        userId: f.userId,
        reason: f.reason,
        detail: f.detail,
        cause,
        attempts: f.attempts,
        err,
        signal: 'cheat',
      },
      'cheat flag could not be saved',
    );
  }

  function schedule(): void {
    if (timer || stopped || queue.length === 0) return;
    const wait = Math.max(0, Math.min(...queue.map((f) => f.dueAt)) - Date.now());
    timer = setTimeout(() => {
      timer = undefined;
      void retryDue().finally(schedule);
    }, wait);
    timer.unref();
  }

  async function retryDue(): Promise<void> {
    const now = Date.now();
    const due = queue.filter((f) => f.dueAt <= now);
    for (const f of due) queue.splice(queue.indexOf(f), 1);
    for (const f of due) await save(f);
  }

  /** A Redis command of the detector failed: only then is Redis marked as failing. */
  function redisFailed(err: unknown): void {
    markRedisFailure(redis);
    deps.metrics.redisErrors.inc();
    deps.logger.debug({ err: (err as Error).message }, 'cheat signal skipped: redis failed');
  }

  /** Points a player gave themselves in a committed batch (admin corrections are not counted). */
  async function recordPoints(points: Array<{ userId: string; delta: number }>): Promise<void> {
    if (points.length === 0 || !redisReady(redis)) return;
    const now = Date.now() / 60_000;
    const minute = Math.floor(now);
    const perUser = new Map<string, number>();
    for (const p of points) perUser.set(p.userId, (perUser.get(p.userId) ?? 0) + p.delta);
    let rates: number[];
    try {
      // One call per user (its keys share a slot), issued in one tick: one round trip, auto-pipelined.
      rates = await Promise.all(
        [...perUser].map(([u, delta]) =>
          redis.cheatPoints(
            keys.pointsPerMinute(u, minute),
            keys.pointsPerMinute(u, minute - 1),
            keys.pointsFlagged(u, minute),
            String(delta),
            String(deps.pointsPerMinute),
            String(now - minute),
          ),
        ),
      );
    } catch (err) {
      return redisFailed(err);
    }
    const users = [...perUser.keys()];
    for (const [i, rate] of rates.entries())
      if (Number(rate) > 0) await flag(users[i], 'points_rate', `${rate} points in the last minute`);
  }

  return {
    recordPoints,
    /** The cheat rule over a committed batch: points players applied to themselves. */
    observeBatch({ requests, outcomes }: EventMap['batchCommitted']): void {
      const selfScored = requests
        .filter((r, i) => outcomes[i].kind === 'applied' && r.actorId === r.userId)
        .map((r) => ({ userId: r.userId, delta: r.delta }));
      void recordPoints(selfScored);
    },
    async recordRateLimited(userId: string): Promise<void> {
      if (!redisReady(redis)) return;
      let hits: number;
      try {
        const bucket = Math.floor(Date.now() / 600_000);
        hits = await redis.cheatHits(keys.rateLimitedHits(userId, bucket));
      } catch (err) {
        return redisFailed(err);
      }
      if (hits === deps.flagAfterLimited)
        await flag(userId, 'rate_limited', `${hits} rate-limited writes in 10 minutes`);
    },
    /** Flags waiting for a retry (for tests and the shutdown log). */
    pending: () => queue.length,
    /** Stops retrying; whatever still waits is logged as lost. */
    stop(): void {
      stopped = true;
      clearTimeout(timer);
      for (const f of queue.splice(0)) lose(f, 'shutdown', 'the process stopped before MySQL took it');
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

import type { Logger } from 'pino';
import { markRedisFailure, redisReady, type RedisClient } from '../../platform/redis';

// One user's write budget: a sliding log of admitted requests (a sorted set of instants in milliseconds,
// Redis's own clock, so instances with skewed clocks agree), as koa-ratelimit's Redis driver keeps it. A
// request is admitted while fewer than `max` lie inside the window, and then recorded; a refused one is not.
// ARGV: window (ms), max, a member name unique to this request. Returns {admitted 0/1, remaining after it,
// the instant (ms) the oldest admitted request leaves the window}.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, max = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local first = oldest[2] and tonumber(oldest[2]) or now
if count >= max then return {0, 0, first + window, now} end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, max - count - 1, first + window, now}`;

type LimitRedis = RedisClient & {
  writeLimitTake(key: string, windowMs: string, max: string, member: string): Promise<number[]>;
};

/** A write limit decision, with what the RateLimit-* headers say. */
export interface LimitDecision {
  admitted: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the budget grows again (Retry-After when refused). */
  resetS: number;
}

/** What this instance last learned of a user's budget: used counts and when the oldest leaves the window. */
interface Bucket {
  used: number;
  resetAt: number;
}

/** Buckets kept in memory at most (expired ones are swept every minute); past it the oldest go first. */
const MAX_BUCKETS = 100_000;

/**
 * The per-user write limit, decided for a whole batch in one Redis round trip (one atomic script call per
 * request, pipelined, so each user's key stays in its own hash slot). It holds exactly across instances.
 *
 * When Redis is unreachable or slow, the batch is decided from memory (per instance) for at least a second,
 * starting from the counts Redis last gave this instance, so a blip is no fresh budget. A user Redis said is
 * out of budget until T is refused until T without asking again (`known`): nothing but time frees the log.
 */
export function createWriteLimiter(deps: {
  redis: RedisClient;
  /** Key prefix (redisKeys().writeLimit); a user's key is `<namespace>:<user>`. */
  namespace: string;
  max: number;
  windowMs: number;
  logger: Logger;
}) {
  const redis = deps.redis as LimitRedis;
  redis.defineCommand('writeLimitTake', { numberOfKeys: 1, lua: TAKE });
  const buckets = new Map<string, Bucket>();
  let seq = 0;
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  const decision = (admitted: boolean, remaining: number, resetAt: number, now: number): LimitDecision => ({
    admitted,
    limit: deps.max,
    remaining: Math.max(0, remaining),
    resetS: Math.max(admitted ? 0 : 1, Math.ceil((resetAt - now) / 1000)),
  });

  function remember(id: string, bucket: Bucket): void {
    buckets.delete(id); // re-insert at the end: the Map's order is oldest-first
    if (buckets.size >= MAX_BUCKETS) buckets.delete(buckets.keys().next().value!);
    buckets.set(id, bucket);
  }

  /** A refusal this instance already knows of (the budget was spent, per Redis or memory), else undefined. */
  function known(id: string): LimitDecision | undefined {
    const b = buckets.get(id);
    const now = Date.now();
    if (!b || b.used < deps.max || b.resetAt <= now) return undefined;
    return decision(false, 0, b.resetAt, now);
  }

  function fromMemory(id: string): LimitDecision {
    const now = Date.now();
    let b = buckets.get(id);
    if (!b || b.resetAt <= now) b = { used: 0, resetAt: now + deps.windowMs };
    if (b.used >= deps.max) return decision(false, 0, b.resetAt, now);
    b.used++;
    remember(id, b);
    return decision(true, deps.max - b.used, b.resetAt, now);
  }

  async function fromRedis(ids: string[]): Promise<LimitDecision[]> {
    // Issued in one tick: ioredis's auto-pipelining sends them in one write per node (a cluster's shards too).
    const replies = await Promise.all(
      ids.map((id) =>
        redis.writeLimitTake(
          `${deps.namespace}:${id}`,
          String(deps.windowMs),
          String(deps.max),
          `${tag}-${seq++}`,
        ),
      ),
    );
    return replies.map((reply, i) => {
      const [admitted, remaining, resetAt, now] = reply.map(Number);
      // Keep the count in Redis's terms, shifted onto this instance's clock.
      remember(ids[i], { used: deps.max - remaining, resetAt: Date.now() + (resetAt - now) });
      return decision(admitted === 1, remaining, resetAt, now);
    });
  }

  return {
    known,
    /** One decision per id, in order (an id may appear several times: each is one request). */
    async take(ids: string[]): Promise<LimitDecision[]> {
      if (ids.length === 0) return [];
      if (redisReady(redis)) {
        try {
          return await fromRedis(ids);
        } catch (err) {
          // Everyone skips Redis for a second after this (see redisReady), then tries it again.
          deps.logger.warn(
            { limit: 'writes', err: (err as Error).message },
            'rate limiter falling back to memory',
          );
          markRedisFailure(redis);
        }
      }
      return ids.map(fromMemory);
    },
    /** Drops buckets whose window has passed. */
    sweep(): void {
      const now = Date.now();
      for (const [k, b] of buckets) if (b.resetAt <= now) buckets.delete(k);
    },
  };
}

export type WriteLimiter = ReturnType<typeof createWriteLimiter>;

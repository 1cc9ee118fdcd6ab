import type { Context, Middleware, Next } from 'koa';
import ratelimit from 'koa-ratelimit';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { HttpError } from '../errors';
import { markRedisFailure, redisReady } from '../../platform/redis';

const HEADERS = { remaining: 'RateLimit-Remaining', reset: 'RateLimit-Reset', total: 'RateLimit-Limit' };

export interface LimitOptions {
  name: string;
  max: number;
  durationMs: number;
  id: (ctx: Context) => string | false;
  /** Shared across instances through Redis (falls back to memory); else per instance, in memory. */
  redis?: { client: Redis; namespace: string };
  logger: Logger;
  onLimited?: (ctx: Context) => void;
}

/**
 * A koa-ratelimit limiter that answers 429 as a problem with Retry-After and RateLimit-* headers.
 * With Redis it holds across instances; when Redis is unreachable or slow it switches to a per-instance
 * in-memory limit at once (for at least a second, then tries Redis again) and says so in the log,
 * so the limiter never hangs or fails a request. The in-memory limit starts from the counts Redis last gave
 * this instance, so a blip is no fresh budget.
 */
export function createLimiter(opts: LimitOptions): Middleware & { sweep(): void } {
  const common = {
    max: opts.max,
    duration: opts.durationMs,
    id: opts.id,
    headers: HEADERS,
    throw: true,
  };
  const memoryDb = new Map();
  const inMemory = ratelimit({ ...common, driver: 'memory', db: memoryDb, namespace: opts.name });
  const shared = opts.redis
    ? ratelimit({ ...common, driver: 'redis', db: opts.redis.client, namespace: opts.redis.namespace })
    : undefined;

  /**
   * Copies a Redis-backed decision into the in-memory bucket, so that when Redis blips the fallback starts
   * from the count the caller had (a user over the limit stays over it) instead of from a fresh bucket.
   * `remaining` is what the caller may still send (-1: already refused); the entry is in the memory driver's
   * own shape (its `remaining` counts the request it is about to see).
   */
  function remember(ctx: Context, remaining: number, reset: string | number | undefined): void {
    const id = opts.id(ctx);
    let resetS = Number(reset);
    if (id === false || !Number.isFinite(remaining) || !Number.isFinite(resetS)) return;
    if (resetS > 1e11) resetS /= 1000; // milliseconds since the epoch
    if (resetS < Date.now() / 1000) resetS = Date.now() / 1000 + opts.durationMs / 1000;
    memoryDb.set(`${opts.name}:${id}`, {
      id,
      reset: resetS,
      remaining: Math.max(0, remaining + 1),
      total: opts.max,
    });
  }

  async function limit(ctx: Context, downstream: Next): Promise<void> {
    // koa-ratelimit sends the reset as an epoch time; the RateLimit-Reset header means seconds from now.
    const next = () => {
      const reset = Number(ctx.response.get('RateLimit-Reset'));
      if (reset > 1e9) ctx.set('RateLimit-Reset', String(Math.max(0, Math.ceil(reset - Date.now() / 1000))));
      return downstream();
    };
    if (!shared || !opts.redis || !redisReady(opts.redis.client)) {
      return inMemory(ctx, next);
    }
    let passed = false;
    try {
      await shared(ctx, () => {
        passed = true;
        remember(ctx, Number(ctx.response.get('RateLimit-Remaining')), ctx.response.get('RateLimit-Reset'));
        return next();
      });
    } catch (err) {
      const e = err as { status?: number; headers?: Record<string, string | number> };
      if (!passed && e.status === 429) remember(ctx, -1, e.headers?.['RateLimit-Reset']);
      if (passed || e.status === 429) throw err;
      // Everyone skips Redis for a second after this (see redisReady), then tries it again.
      opts.logger.warn(
        { limit: opts.name, err: (err as Error).message },
        'rate limiter falling back to memory',
      );
      markRedisFailure(opts.redis.client);
      return inMemory(ctx, next);
    }
  }

  const middleware = async (ctx: Context, next: Next) => {
    try {
      await limit(ctx, next);
    } catch (err) {
      const e = err as { status?: number; headers?: Record<string, string | number> };
      if (e.status !== 429 || err instanceof HttpError) throw err;
      const retryAfter = Math.max(1, Number(e.headers?.['Retry-After'] ?? 1));
      opts.onLimited?.(ctx);
      throw new HttpError(
        429,
        'Too Many Requests',
        `Rate limit "${opts.name}" exceeded; retry in ${retryAfter} s.`,
        {},
        {
          'Retry-After': String(retryAfter),
          'RateLimit-Limit': String(opts.max),
          'RateLimit-Remaining': '0',
          'RateLimit-Reset': String(retryAfter),
        },
      );
    }
  };
  /** Drops expired in-memory entries (koa-ratelimit's memory driver never deletes them itself). */
  middleware.sweep = () => {
    const now = Date.now() / 1000;
    for (const [k, v] of memoryDb) if ((v as { reset: number }).reset < now) memoryDb.delete(k);
  };
  return middleware;
}

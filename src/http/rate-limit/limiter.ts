import type { Context, Middleware, Next } from 'koa';
import ratelimit from 'koa-ratelimit';
import { HttpError } from '../errors';

const HEADERS = { remaining: 'RateLimit-Remaining', reset: 'RateLimit-Reset', total: 'RateLimit-Limit' };

export interface LimitOptions {
  name: string;
  max: number;
  durationMs: number;
  id: (ctx: Context) => string | false;
  onLimited?: (ctx: Context) => void;
}

/**
 * A per-instance, in-memory koa-ratelimit limiter (reads: a poll touches neither MySQL nor Redis) that
 * answers 429 as a problem with Retry-After and RateLimit-* headers. The per-user write limit, shared through
 * Redis and decided per batch, is src/leaderboard/write/write-limit.ts.
 */
export function createLimiter(opts: LimitOptions): Middleware & { sweep(): void } {
  const memoryDb = new Map();
  const inMemory = ratelimit({
    max: opts.max,
    duration: opts.durationMs,
    id: opts.id,
    headers: HEADERS,
    throw: true,
    driver: 'memory',
    db: memoryDb,
    namespace: opts.name,
  });

  function limit(ctx: Context, downstream: Next): Promise<void> {
    // koa-ratelimit sends the reset as an epoch time; the RateLimit-Reset header means seconds from now.
    return inMemory(ctx, () => {
      const reset = Number(ctx.response.get('RateLimit-Reset'));
      if (reset > 1e9) ctx.set('RateLimit-Reset', String(Math.max(0, Math.ceil(reset - Date.now() / 1000))));
      return downstream();
    });
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

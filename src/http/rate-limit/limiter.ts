import type { Context, Middleware, Next } from 'koa';
import { HttpError } from '../errors';

export interface LimitOptions {
  name: string;
  max: number;
  durationMs: number;
  id: (ctx: Context) => string | false;
  onLimited?: (ctx: Context) => void;
}

/**
 * A per-instance, in-memory fixed-window limit (reads: a poll touches neither MySQL nor Redis), the same
 * windows koa-ratelimit's memory driver kept, at the cost of one Map lookup and an increment per request:
 * koa-ratelimit builds a limiter object and a promise chain and sets three headers on every request, which
 * on the poll path cost more than answering the poll (BENCHMARKS.md). The per-user write limit, shared
 * through Redis and decided per batch, is src/leaderboard/write/write-limit.ts.
 *
 * RateLimit-Limit, -Remaining and -Reset are the fields of draft-ietf-httpapi-ratelimit-headers-06 (the form
 * the write path also sends). That draft does not ask for them on every response and names leaving them out
 * until a quota runs low as the way to spare their cost; so they go out once at most half the window's
 * budget is left, and on every 429 (with Retry-After).
 */
export function createLimiter(opts: LimitOptions): Middleware & { sweep(): void } {
  const windows = new Map<string, { count: number; resetAt: number }>();
  const limit = String(opts.max);
  const headersFrom = Math.floor(opts.max / 2);

  const middleware = (ctx: Context, next: Next) => {
    const id = opts.id(ctx);
    if (id === false) return next();
    const now = Date.now();
    let w = windows.get(id);
    if (!w) windows.set(id, (w = { count: 0, resetAt: now + opts.durationMs }));
    else if (w.resetAt <= now) {
      w.count = 0;
      w.resetAt = now + opts.durationMs;
    }
    const remaining = opts.max - ++w.count;
    const resetS = Math.max(0, Math.ceil((w.resetAt - now) / 1000));
    if (remaining < 0) {
      w.count = opts.max + 1; // a client that keeps knocking does not count up for ever
      opts.onLimited?.(ctx);
      const retryAfter = String(Math.max(1, resetS));
      throw new HttpError(
        429,
        'Too Many Requests',
        `Rate limit "${opts.name}" exceeded; retry in ${retryAfter} s.`,
        {},
        {
          'Retry-After': retryAfter,
          'RateLimit-Limit': limit,
          'RateLimit-Remaining': '0',
          'RateLimit-Reset': retryAfter,
        },
      );
    }
    if (remaining <= headersFrom) {
      ctx.set('RateLimit-Limit', limit);
      ctx.set('RateLimit-Remaining', String(remaining));
      ctx.set('RateLimit-Reset', String(resetS));
    }
    return next();
  };
  /** Drops the windows that have ended (their clients start a new one on their next request). */
  middleware.sweep = () => {
    const now = Date.now();
    for (const [k, w] of windows) if (w.resetAt <= now) windows.delete(k);
  };
  return middleware;
}

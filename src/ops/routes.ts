import { createHash, timingSafeEqual } from 'node:crypto';
import Koa from 'koa';
import Router from '@koa/router';
import type { Db } from '../platform/db';
import { problemMiddleware, unauthorized } from '../http/errors';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { redisReady, type RedisClient } from '../platform/redis';
import { requestContext } from '../http/request-context';
import { ROUTER_OPTIONS } from '../http/routing';

export interface MetricsDeps {
  metrics: Metrics;
  collect: () => void;
  /** When set, /metrics answers only `Authorization: Bearer <token>`. */
  token?: string;
}

/**
 * Operator endpoints, outside /api: liveness (the process answers), readiness (MySQL reachable and not
 * shutting down; Redis only degrades it) and, unless they have a port of their own, Prometheus metrics.
 */
export function opsRoutes(deps: {
  db: Db;
  redis: RedisClient;
  isShuttingDown: () => boolean;
  /** Token verification: false while an identity provider's keys could never be loaded. */
  authStatus?: () => { loaded: boolean };
  /** The message broker, when configured: reported, never a reason to be unready (HTTP still works). */
  brokerStatus?: () => object | undefined;
  timeoutMs: number;
  readyzCacheMs: number;
  /** Undefined when metrics are served on METRICS_PORT instead (src/main.ts). */
  metrics?: MetricsDeps;
}): Router {
  const router = new Router(ROUTER_OPTIONS);
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  const mysqlUp = cachedPing(deps.db, deps.timeoutMs, deps.readyzCacheMs);
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const redis = redisReady(deps.redis) ? 'up' : 'degraded';
    if (deps.isShuttingDown()) {
      ctx.status = 503;
      ctx.body = { status: 'shutting-down', mysql: 'unknown', redis };
      return;
    }
    const mysql = await mysqlUp();
    // Without the provider's keys no token verifies: not ready, though reads could still be served.
    const keys = deps.authStatus?.().loaded ?? true;
    ctx.status = mysql && keys ? 200 : 503;
    ctx.body = {
      status: mysql && keys ? (redis === 'up' ? 'ready' : 'degraded') : 'unavailable',
      mysql: mysql ? 'up' : 'down',
      redis,
      ...(deps.authStatus ? { jwks: keys ? 'loaded' : 'unavailable' } : {}),
      ...(deps.brokerStatus?.() ? { broker: deps.brokerStatus() } : {}),
    };
  });
  if (deps.metrics) metricsRoutes(router, deps.metrics);
  return router;
}

/** GET /metrics, behind the operator's bearer token when one is configured. */
export function metricsRoutes(router: Router, deps: MetricsDeps): void {
  const expected = deps.token === undefined ? undefined : digest(deps.token);
  router.get('/metrics', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (expected) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'));
      // Compare digests: equal lengths for timingSafeEqual, and no timing hint about the token's length.
      if (!match || !timingSafeEqual(digest(match[1]), expected))
        throw unauthorized('/metrics needs the operator bearer token (METRICS_TOKEN).');
    }
    deps.collect();
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
}

/** The app METRICS_PORT serves: /metrics only, problem answers for everything else. */
export function createMetricsApp(deps: MetricsDeps & { logger: Logger; retryAfterS: number }): Koa {
  const app = new Koa();
  app.silent = true;
  app.use(requestContext(deps.logger));
  app.use(problemMiddleware({ logger: deps.logger, retryAfterS: deps.retryAfterS }));
  const router = new Router(ROUTER_OPTIONS);
  metricsRoutes(router, deps);
  app.use(router.routes()).use(router.allowedMethods({ throw: true }));
  return app;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * MySQL's reachability, asked at most once per `cacheMs` however many probes arrive (they share the ping in
 * flight and then its answer), so probes never take more than one pooled connection from writes.
 */
function cachedPing(db: Db, timeoutMs: number, cacheMs: number): () => Promise<boolean> {
  let last: { at: number; answer: Promise<boolean> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= cacheMs) {
      const answer = pingDatabase(db, timeoutMs);
      const entry = { at: now, answer };
      last = entry;
      // The answer counts from when it arrived, so a slow ping is not followed by another at once.
      void answer.then(() => {
        if (last === entry) entry.at = Date.now();
      });
    }
    return last.answer;
  };
}

async function pingDatabase(db: Db, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      db.raw('SELECT 1'),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), timeoutMs))),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

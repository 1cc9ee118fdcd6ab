import Router from '@koa/router';
import type { Redis } from 'ioredis';
import type { Db } from '../db';
import type { Metrics } from '../metrics';
import { redisReady } from '../redis';
import { ROUTER_OPTIONS } from '../routing';

/**
 * Operator endpoints, outside /api: liveness (the process answers), readiness (MySQL reachable and not
 * shutting down; Redis only degrades it) and Prometheus metrics.
 */
export function opsRoutes(deps: {
  db: Db;
  redis: Redis;
  metrics: Metrics;
  isShuttingDown: () => boolean;
  timeoutMs: number;
  collect: () => void;
}): Router {
  const router = new Router(ROUTER_OPTIONS);
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const redis = redisReady(deps.redis) ? 'up' : 'degraded';
    if (deps.isShuttingDown()) {
      ctx.status = 503;
      ctx.body = { status: 'shutting-down', mysql: 'unknown', redis };
      return;
    }
    const mysql = await pingDatabase(deps.db, deps.timeoutMs);
    ctx.status = mysql ? 200 : 503;
    ctx.body = {
      status: mysql ? (redis === 'up' ? 'ready' : 'degraded') : 'unavailable',
      mysql: mysql ? 'up' : 'down',
      redis,
    };
  });
  router.get('/metrics', async (ctx) => {
    deps.collect();
    ctx.set('Cache-Control', 'no-store');
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
  return router;
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

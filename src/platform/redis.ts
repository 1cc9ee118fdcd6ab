import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config';

/**
 * Redis is a cache and a message bus here, never the truth: commands fail fast while it is unreachable
 * (no offline queue, short command timeout) and every caller has a MySQL path to fall back on.
 */
export function createRedis(config: Pick<Config, 'redisUrl' | 'redisTimeoutMs'>, logger?: Logger): Redis {
  const redis = new Redis(config.redisUrl, {
    enableOfflineQueue: false,
    commandTimeout: config.redisTimeoutMs,
    connectTimeout: Math.max(config.redisTimeoutMs, 1000),
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(100 * times, 2000),
    lazyConnect: false,
  });
  let down = false;
  redis.on('error', (err) => {
    if (!down) logger?.warn({ err: err.message }, 'redis unavailable; serving from MySQL and memory');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger?.info('redis is back');
    down = false;
  });
  return redis;
}

const degradedUntil = new WeakMap<Redis, number>();
const DEGRADED_FOR_MS = 1000;

/**
 * True when the client can take commands right now: connected, and no command timed out or failed in the
 * last second. A black-holed connection still looks connected; without this every caller on a request would
 * wait out its own timeout, one after another.
 */
export const redisReady = (redis: Redis) =>
  redis.status === 'ready' && Date.now() >= (degradedUntil.get(redis) ?? 0);

/** Called by whoever saw a Redis command fail: everyone skips Redis for a second, then tries again. */
export function markRedisFailure(redis: Redis): void {
  degradedUntil.set(redis, Date.now() + DEGRADED_FOR_MS);
}

import fs from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config';

/**
 * Redis is a cache and a message bus here, never the truth: commands fail fast while it is unreachable
 * (no offline queue, short command timeout) and every caller has a MySQL path to fall back on.
 *
 * One server (REDIS_URL) or a Sentinel-managed primary (REDIS_SENTINELS): ioredis's own Sentinel client asks
 * the sentinels for the primary, reconnects to the new one after a failover (and, with the failover detector,
 * as soon as the sentinels announce it), so there is no failover logic of ours.
 */
export function createRedis(
  config: Pick<Config, 'redisUrl' | 'redisTimeoutMs' | 'redis'>,
  logger?: Logger,
): Redis {
  const { redis: r } = config;
  const tls =
    r.tls || r.tlsCaFile ? { ...(r.tlsCaFile ? { ca: fs.readFileSync(r.tlsCaFile) } : {}) } : undefined;
  const options: RedisOptions = {
    enableOfflineQueue: false,
    commandTimeout: config.redisTimeoutMs,
    connectTimeout: Math.max(config.redisTimeoutMs, 1000),
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(100 * times, 2000),
    lazyConnect: false,
    // Only what is set: an undefined password would override the one a REDIS_URL carries.
    ...(r.username !== undefined ? { username: r.username } : {}),
    ...(r.password !== undefined ? { password: r.password } : {}),
    ...(tls ? { tls } : {}),
  };
  const redis = r.sentinels
    ? new Redis({
        ...options,
        sentinels: r.sentinels,
        name: r.sentinelName,
        ...(r.sentinelPassword !== undefined ? { sentinelPassword: r.sentinelPassword } : {}),
        ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
        sentinelRetryStrategy: (times) => Math.min(100 * times, 2000),
        // Not ioredis's failover detector: its reconnect, when it lands during a connect in progress, ends the
        // client for good ("Connection is closed.", seen under load in test/redis-sentinel.test.ts). A primary
        // that was demoted rather than killed answers writes with READONLY: reconnect then, through the
        // sentinels, to the new one.
        reconnectOnError: (err) => err.message.startsWith('READONLY'),
      })
    : new Redis(config.redisUrl, options);
  // A client that gave up (status `end`) without being closed by us comes back: Redis is never required.
  redis.on('end', () => {
    if (closed.has(redis)) return;
    setTimeout(() => {
      if (!closed.has(redis) && redis.status === 'end') redis.connect().catch(() => {});
    }, 1000).unref();
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

const closed = new WeakSet<Redis>();

/** Closes a client for good (a client that ends any other way reconnects by itself). */
export function closeRedis(redis: Redis): void {
  closed.add(redis);
  redis.disconnect();
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

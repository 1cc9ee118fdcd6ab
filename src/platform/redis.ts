import fs from 'node:fs';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config';

/**
 * Redis is a cache and a message bus here, never the truth: commands fail fast while it is unreachable
 * (no offline queue, short command timeout) and every caller has a MySQL path to fall back on.
 *
 * One server (REDIS_URL), a Sentinel-managed primary (REDIS_SENTINELS) or a Redis Cluster
 * (REDIS_CLUSTER_NODES): ioredis's own Sentinel client asks the sentinels for the primary and reconnects to the
 * new one after a failover; its Cluster client learns the slots, follows MOVED/ASK and refreshes the slots
 * after a failover. There is no failover logic of ours. Every script and multi-key command touches keys of
 * one hash slot (src/leaderboard/ranking.ts), so all three modes run the same code.
 */
export type RedisClient = Redis | Cluster;

/**
 * Scripts whose number of keys varies (their first argument is the count, not a key): ioredis's auto-pipelining
 * would pick a cluster node by that count, so they are sent on their own (still in the same tick).
 */
const VARIABLE_KEY_COMMANDS = ['mirrorApply'];

export function createRedis(
  config: Pick<Config, 'redisUrl' | 'redisTimeoutMs' | 'redis'>,
  logger?: Logger,
  /** The connection that subscribes: in a cluster it keeps one subscriber per primary for shard channels. */
  role: 'commands' | 'subscriber' = 'commands',
): RedisClient {
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
    // Commands issued in one tick go out in one write (per node in a cluster): a batch's per-user script
    // calls and a commit's mirror and cheat calls cost one round trip without hand-built pipelines, which a
    // cluster could only take per node.
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: VARIABLE_KEY_COMMANDS,
    // Only what is set: an undefined password would override the one a REDIS_URL carries.
    ...(r.username !== undefined ? { username: r.username } : {}),
    ...(r.password !== undefined ? { password: r.password } : {}),
    ...(tls ? { tls } : {}),
  };
  const redis: RedisClient = r.clusterNodes
    ? new Cluster(r.clusterNodes, {
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        autoPipeliningIgnoredCommands: VARIABLE_KEY_COMMANDS,
        // Slots are learned at connect and after MOVED; a failover is followed within a refresh.
        slotsRefreshTimeout: Math.max(config.redisTimeoutMs, 1000),
        clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        redisOptions: options, // TLS and credentials included: every node gets them
        shardedSubscribers: role === 'subscriber' && r.shardedPubsub !== 'off',
        ...(tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
      })
    : r.sentinels
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

/**
 * Whether the server takes sharded pub/sub (SPUBLISH and SSUBSCRIBE: Redis 7 and later, Valkey), unless
 * REDIS_SHARDED_PUBSUB=off. In a cluster any node answers; the nodes of one cluster run one version.
 */
export async function shardedPubsubAvailable(
  redis: RedisClient,
  setting: Config['redis']['shardedPubsub'],
): Promise<boolean> {
  if (setting === 'off') return false;
  const info = await redis.info('server');
  return Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0) >= 7;
}

const closed = new WeakSet<RedisClient>();

/** Closes a client for good (a client that ends any other way reconnects by itself). */
export function closeRedis(redis: RedisClient): void {
  closed.add(redis);
  redis.disconnect();
}

const degradedUntil = new WeakMap<RedisClient, number>();
const DEGRADED_FOR_MS = 1000;

/**
 * True when the client can take commands right now: connected, and no command timed out or failed in the
 * last second. A black-holed connection still looks connected; without this every caller on a request would
 * wait out its own timeout, one after another.
 */
export const redisReady = (redis: RedisClient) =>
  redis.status === 'ready' && Date.now() >= (degradedUntil.get(redis) ?? 0);

/** Called by whoever saw a Redis command fail: everyone skips Redis for a second, then tries again. */
export function markRedisFailure(redis: RedisClient): void {
  degradedUntil.set(redis, Date.now() + DEGRADED_FOR_MS);
}

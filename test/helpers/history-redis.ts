import { Cluster, Redis } from 'ioredis';
import type { RedisClient } from '../../src/platform/redis';
import { redisKeys } from '../../src/leaderboard/ranking';
import { deleteKeysWithPrefix } from '../../tools/lib/redis-keys';
import { TEST_REDIS_URL } from './env';
import { eventually } from './instance';
import { startCluster, startSentinelGroup } from './redis-servers';
import { startTcpProxy } from './tcp-proxy';

export const REDIS_MODES = ['single', 'sentinel', 'cluster'] as const;
export type RedisMode = (typeof REDIS_MODES)[number];

/**
 * The Redis a history check runs against, with the faults that make sense for it:
 * - single: the shared server through a TCP proxy per instance (cut, blackhole, reset, latency), and the run's
 *   keys deleted (a restart that lost everything);
 * - sentinel and cluster: servers of the test's own; a primary SIGKILLed (the replica promoted, the killed
 *   node restarted empty and rejoining as a replica), and the run's keys deleted on the primaries (a
 *   promoted replica that lost recent writes, the worst case).
 * `inject` breaks something and returns the function that heals it and waits until it has healed.
 */
export interface RedisUnderTest {
  mode: RedisMode;
  /** The Redis settings for instance `i`. */
  env(i: number): Record<string, string | undefined>;
  /** A client of the test's own, to compare the mirror with MySQL. */
  direct: RedisClient;
  faults: readonly string[];
  inject(
    kind: string,
    instance: number,
    rnd: { int(lo: number, hi: number): number },
  ): Promise<() => Promise<void>>;
  /** Heals whatever is still broken, at once. */
  healAll(): void;
  close(): Promise<void>;
}

/**
 * SIGKILLs the primary on `primary`; the returned heal waits until another node is primary in its place,
 * restarts the killed one (empty: it rejoins as a replica) and waits until every node is in order again.
 */
function failover(
  servers: { kill(port: number): void; restart(port: number): Promise<void>; healthy(): Promise<boolean> },
  primary: number,
  currentPrimary: () => Promise<number>,
): () => Promise<void> {
  servers.kill(primary);
  return async () => {
    await eventually(async () => (await currentPrimary().catch(() => primary)) !== primary, 30_000, 200);
    await servers.restart(primary);
    await eventually(() => servers.healthy(), 30_000, 200);
  };
}

const quiet = <T extends { on(e: 'error', f: () => void): unknown }>(c: T): T => (c.on('error', () => {}), c);

export async function redisUnderTest(mode: RedisMode, prefix: string): Promise<RedisUnderTest> {
  if (mode === 'single') return single(prefix);
  return mode === 'sentinel' ? sentinel(prefix) : cluster(prefix);
}

async function single(prefix: string): Promise<RedisUnderTest> {
  const r = new URL(TEST_REDIS_URL);
  const proxies = await Promise.all(
    [0, 1].map(() => startTcpProxy({ host: r.hostname, port: Number(r.port || 6379) })),
  );
  const direct = quiet(new Redis(TEST_REDIS_URL));
  return {
    mode: 'single',
    env(i) {
      const u = new URL(TEST_REDIS_URL);
      u.hostname = '127.0.0.1';
      u.port = String(proxies[i].port);
      return { REDIS_URL: u.toString() };
    },
    direct,
    faults: ['cut', 'blackhole', 'reset', 'latency', 'flush'],
    async inject(kind, i, rnd) {
      const proxy = proxies[i];
      if (kind === 'flush') await deleteKeysWithPrefix(TEST_REDIS_URL, prefix);
      else if (kind === 'cut') proxy.cut();
      else if (kind === 'blackhole') proxy.blackhole();
      else if (kind === 'reset') proxy.resetOpen();
      else proxy.setLatency(rnd.int(20, 150));
      return async () => proxy.heal();
    },
    healAll: () => proxies.forEach((p) => p.heal()),
    async close() {
      direct.disconnect();
      await Promise.all(proxies.map((p) => p.close()));
    },
  };
}

async function sentinel(prefix: string): Promise<RedisUnderTest> {
  const group = await startSentinelGroup('sbhistory');
  const sentinels = group.sentinels
    .split(',')
    .map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) }));
  const direct = quiet(new Redis({ sentinels, name: group.name, maxRetriesPerRequest: 1 }));
  return {
    mode: 'sentinel',
    env: () => ({ REDIS_URL: undefined, REDIS_SENTINELS: group.sentinels, REDIS_SENTINEL_NAME: group.name }),
    direct,
    faults: ['failover', 'flush'],
    async inject(kind) {
      const primary = await group.currentPrimary();
      if (kind === 'flush') {
        await deleteKeysWithPrefix(`redis://127.0.0.1:${primary}`, prefix);
        return async () => {};
      }
      return failover(group, primary, () => group.currentPrimary());
    },
    healAll: () => {},
    async close() {
      direct.disconnect();
      await group.close();
    },
  };
}

async function cluster(prefix: string): Promise<RedisUnderTest> {
  const c = await startCluster();
  const nodes = c.nodes.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) }));
  const direct = quiet(new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } }));
  return {
    mode: 'cluster',
    env: () => ({ REDIS_URL: undefined, REDIS_CLUSTER_NODES: c.nodes }),
    direct,
    faults: ['failover', 'flush'],
    async inject(kind) {
      if (kind === 'flush') {
        for (const port of await c.primaries())
          await deleteKeysWithPrefix(`redis://127.0.0.1:${port}`, prefix);
        return async () => {};
      }
      // The primary of the board the workload writes to, so the failover is in its path.
      const board = redisKeys(prefix).scores;
      const primary = await c.primaryOf(board);
      return failover(c, primary, () => c.primaryOf(board));
    },
    healAll: () => {},
    async close() {
      direct.disconnect();
      await c.close();
    },
  };
}

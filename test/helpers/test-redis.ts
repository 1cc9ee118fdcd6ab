import { Cluster, Redis } from 'ioredis';
import type { RedisClient } from '../../src/platform/redis';
import { deleteKeysWithPrefix } from '../../tools/lib/redis-keys';
import { baseEnv, TEST_REDIS_URL } from './env';

/**
 * Which Redis the suites' instances use by default. `TEST_REDIS_MODE=cluster` runs them against a Redis
 * Cluster of the run's own (test/setup.ts starts it: three primaries, three replicas); otherwise the shared
 * server at TEST_REDIS_URL. A test that names its own Redis (a proxy, a sentinel group) keeps it either way.
 */
export const TEST_REDIS_MODE = process.env.TEST_REDIS_MODE === 'cluster' ? 'cluster' : 'single';

let clusterNodes: string | undefined;

/** Points every instance started from now on at the cluster (`host:port,...`). */
export function useCluster(nodes: string): void {
  clusterNodes = nodes;
  delete baseEnv.REDIS_URL;
  baseEnv.REDIS_CLUSTER_NODES = nodes;
}

const nodeList = (nodes: string) =>
  nodes.split(',').map((hp) => ({ host: hp.split(':')[0], port: Number(hp.split(':')[1]) }));

/** A client of the test's own on the Redis the instances use by default (close it with `disconnect`). */
export function directRedis(): RedisClient {
  if (!clusterNodes) return new Redis(TEST_REDIS_URL);
  const cluster = new Cluster(nodeList(clusterNodes), { redisOptions: { maxRetriesPerRequest: 1 } });
  cluster.on('error', () => {});
  return cluster;
}

/** Deletes the keys under `prefix` on the shared server and, in cluster mode, on every primary. */
export async function deleteKeysEverywhere(prefix: string): Promise<void> {
  await deleteKeysWithPrefix(TEST_REDIS_URL, prefix);
  if (!clusterNodes) return;
  const cluster = directRedis() as Cluster;
  try {
    await new Promise((resolve) => cluster.once('ready', resolve));
    for (const node of cluster.nodes('master'))
      await deleteKeysWithPrefix(`redis://${node.options.host}:${node.options.port}`, prefix);
  } finally {
    cluster.disconnect();
  }
}

import { Redis } from 'ioredis';

/**
 * Deletes every key under a prefix, SCAN by SCAN (never FLUSHALL: the server may be shared). Used by tests,
 * the benchmark and the soak to clean up after themselves. One key per UNLINK (pipelined), so it also works
 * on a cluster primary, where one command may only name keys of one hash slot.
 */
export async function deleteKeysWithPrefix(redisUrl: string, prefix: string): Promise<number> {
  if (prefix.length < 4) throw new Error(`refusing to delete keys under the prefix "${prefix}"`);
  const redis = new Redis(redisUrl);
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) {
        const pipeline = redis.pipeline();
        for (const key of keys) pipeline.unlink(key);
        for (const [err, n] of (await pipeline.exec()) ?? []) {
          if (err) throw err;
          deleted += Number(n);
        }
      }
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

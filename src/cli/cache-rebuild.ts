import pino from 'pino';
import { loadDatabaseConfig, loadSettings } from '../config';
import { createDb } from '../platform/db';
import { createRedis } from '../platform/redis';
import { createMirror } from '../leaderboard/cache/mirror';
import { createSnapshotEngine } from '../leaderboard/snapshot/engine';

/**
 * `npm run cache:rebuild`: copies every user's committed score from MySQL into the Redis mirror and publishes
 * a fresh snapshot. Safe while the service runs: the mirror only accepts entries at least as new as its own.
 */
async function main(): Promise<void> {
  const dbConfig = loadDatabaseConfig();
  const s = loadSettings(['REDIS_URL', 'REDIS_PREFIX', 'REDIS_TIMEOUT_MS', 'SCOREBOARD_SIZE']);
  const logger = pino({ level: 'info' });
  const db = createDb(dbConfig);
  const redisConfig = {
    redisUrl: s.REDIS_URL as string,
    redisTimeoutMs: Math.max(5000, s.REDIS_TIMEOUT_MS as number),
  };
  const redis = createRedis(redisConfig, logger);
  const subscriber = createRedis(redisConfig);
  try {
    await new Promise<void>((resolve, reject) => {
      redis.once('ready', resolve);
      setTimeout(() => reject(new Error(`Redis at ${redisConfig.redisUrl} did not answer`)), 5000).unref();
    });
    const prefix = s.REDIS_PREFIX as string;
    const mirror = createMirror({ db, redis, prefix, logger, syncIntervalMs: 60_000, syncWindowMs: 10_000 });
    const started = Date.now();
    const users = await mirror.rebuild();
    const engine = createSnapshotEngine({
      db,
      redis,
      subscriber,
      prefix,
      size: s.SCOREBOARD_SIZE as number,
      tickMs: 1000,
      logger,
    });
    await engine.rebuild();
    logger.info(
      { users, ms: Date.now() - started, etag: engine.current().etag },
      'mirror and snapshot rebuilt',
    );
  } finally {
    redis.disconnect();
    subscriber.disconnect();
    await db.destroy();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

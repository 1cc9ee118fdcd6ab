import pino from 'pino';
import { loadDatabaseConfig, loadRedisConfig, loadSettings } from '../config';
import { createDb } from '../platform/db';
import { closeRedis, createRedis, shardedPubsubAvailable } from '../platform/redis';
import { createMirror } from '../leaderboard/cache/mirror';
import { createSnapshotEngine } from '../leaderboard/snapshot/engine';
import { createBoardRegistry } from '../leaderboard/boards/registry';

/**
 * `npm run cache:rebuild`: copies every live cycle's committed scores from MySQL into the Redis mirror and
 * publishes a fresh snapshot of every board window. Safe while the service runs: the mirror only accepts
 * entries at least as new as its own, and a snapshot only replaces an older one.
 */
async function main(): Promise<void> {
  const dbConfig = loadDatabaseConfig();
  const s = loadSettings(['REDIS_PREFIX', 'REDIS_TIMEOUT_MS', 'SCOREBOARD_SIZE', 'CLOSED_CYCLE_GRACE_MS']);
  const { redisUrl, redis: redisMode } = loadRedisConfig();
  const logger = pino({ level: 'info' });
  const db = createDb(dbConfig);
  const redisConfig = {
    redisUrl,
    redis: redisMode,
    redisTimeoutMs: Math.max(5000, s.REDIS_TIMEOUT_MS as number),
  };
  const redis = createRedis(redisConfig, logger);
  try {
    await new Promise<void>((resolve, reject) => {
      redis.once('ready', resolve);
      setTimeout(() => reject(new Error('Redis did not answer within 5 s')), 5000).unref();
    });
    const prefix = s.REDIS_PREFIX as string;
    const boards = createBoardRegistry({ db, logger, refreshMs: 3_600_000, missReloadMs: 0 });
    await boards.start();
    boards.stop();
    const mirror = createMirror({
      db,
      redis,
      prefix,
      logger,
      syncIntervalMs: 60_000,
      syncWindowMs: 10_000,
      boards,
      graceMs: s.CLOSED_CYCLE_GRACE_MS as number,
    });
    const started = Date.now();
    const sharded = await shardedPubsubAvailable(redis, redisMode.shardedPubsub);
    const rows = await mirror.rebuild();
    let windows = 0;
    for (const board of boards.list())
      for (const w of board.windows) {
        const engine = createSnapshotEngine({
          db,
          redis,
          prefix,
          board: board.id,
          window: w.name,
          reset: w.reset,
          size: s.SCOREBOARD_SIZE as number,
          tickMs: 1000,
          logger,
          listening: () => false,
          sharded: () => sharded,
        });
        await engine.rebuild();
        windows++;
      }
    logger.info({ rows, windows, ms: Date.now() - started }, 'mirror and snapshots rebuilt');
  } finally {
    closeRedis(redis);
    await db.destroy();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

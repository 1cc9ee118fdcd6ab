import { createBoardRegistry } from '../../src/leaderboard/boards/registry';
import pino from 'pino';
import { Redis } from 'ioredis';
import { createMirror } from '../../src/leaderboard/cache/mirror';
import { benchDb, createBenchDatabase, deleteKeys, seedUsers, tokensFor, userId } from '../lib/data';
import { mb, round, type BenchContext, type Row, type ScenarioResult } from '../lib/context';
import { interleaved, type Measured } from '../lib/load';
import { treeRss } from '../lib/proc';
import { startService, type RunningService } from '../lib/service';
import { poll } from './polls';
import { postWrites } from './writes';

const WRITERS = 10_000;

/**
 * scale: the same writes and polls against a database of 1,000,000 users and one of 10,000, run back to
 * back; plus the time to rebuild the Redis mirror from the million. Writers are 10,000 users either way
 * (in the big database, picked at random among the million), so only the size of the tables differs.
 */
export async function scaleScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const big = ctx.quick ? 50_000 : 1_000_000;
  const url = ctx.database('scale');
  ctx.log(`scale: seeding ${big.toLocaleString('en')} users`);
  await createBenchDatabase(url);
  const seeder = benchDb(url, 4);
  const seedStarted = Date.now();
  try {
    await seedUsers(
      seeder,
      big,
      (n) => n % 200_000 === 0 && ctx.log(`scale: ${n.toLocaleString('en')} users`),
    );
  } finally {
    await seeder.destroy();
  }
  const seedMs = Date.now() - seedStarted;

  ctx.log('scale: rebuilding the Redis mirror from MySQL');
  const rebuildMs = await timeRebuild(ctx, url, `${ctx.prefix}rebuild:`);
  await deleteKeys(ctx.redisUrl, `${ctx.prefix}rebuild:`); // a million entries we no longer need

  const picked = new Set<number>();
  while (picked.size < Math.min(WRITERS, big)) picked.add(1 + Math.floor(Math.random() * big));
  const bigUsers = { tokens: tokensFor(ctx.jwtSecret, [...picked].map(userId)) };

  ctx.log('scale: starting a service on each database');
  const small = await startService({
    databaseUrl: ctx.main.url,
    redisUrl: ctx.redisUrl,
    redisPrefix: `${ctx.prefix}scale-10k:`,
    jwtSecret: ctx.jwtSecret,
    workers: ctx.workers,
    profileDir: ctx.profileDir,
  });
  let large: RunningService | undefined;
  let m;
  let rss: { small: number; big: number };
  try {
    large = await startService({
      databaseUrl: url,
      redisUrl: ctx.redisUrl,
      redisPrefix: `${ctx.prefix}scale-big:`,
      jwtSecret: ctx.jwtSecret,
      workers: ctx.workers,
      profileDir: ctx.profileDir,
    });
    const bigService = large;
    let tag = 0;
    m = await interleaved(
      ctx.rounds,
      {
        writesSmall: () => postWrites(ctx, small.url, ctx.main, `scale${tag++}`),
        writesBig: () => postWrites(ctx, bigService.url, bigUsers, `scale${tag++}`),
        polls200Small: () => poll(ctx, small.url, false),
        polls200Big: () => poll(ctx, bigService.url, false),
        polls304Small: () => poll(ctx, small.url, true),
        polls304Big: () => poll(ctx, bigService.url, true),
      },
      ctx.log,
    );
    rss = { small: treeRss(small.pid), big: treeRss(bigService.pid) };
  } finally {
    await large?.stop();
    await small.stop();
  }

  const bigLabel = ctx.quick ? `${big / 1000}k users (quick)` : '1M users';
  const rows: Row[] = [];
  const kinds = [
    ['writes', m.writesSmall, m.writesBig],
    ['polls 200', m.polls200Small, m.polls200Big],
    ['polls 304', m.polls304Small, m.polls304Big],
  ] as const;
  for (const [kind, a, b] of kinds) {
    rows.push({
      scenario: 'scale',
      variant: `${kind}, 10k users`,
      unit: 'req/s',
      ...a,
      rssMb: mb(rss.small),
      note: 'baseline',
    });
    rows.push({
      scenario: 'scale',
      variant: `${kind}, ${bigLabel}`,
      unit: 'req/s',
      ...b,
      rssMb: mb(rss.big),
      ratio: round(b.throughput / a.throughput),
    });
  }
  rows.push({
    scenario: 'scale',
    variant: `mirror rebuild, ${bigLabel}`,
    unit: 'users/s',
    throughput: round(big / (rebuildMs / 1000), 0),
    operations: big,
    durationS: round(rebuildMs / 1000),
    errors: 0,
    note: `${round(rebuildMs / 1000, 1)} s`,
  });
  const ratio = (a: Measured, b: Measured) => round(b.throughput / a.throughput);
  return {
    rows,
    targets: [
      {
        scenario: 'scale',
        target: `writes and polls at ${bigLabel} within 10% of 10k users`,
        measured: kinds.map(([kind, a, b]) => `${kind} ${ratio(a, b)}×`).join(', '),
        met: kinds.every(([, a, b]) => Math.abs(ratio(a, b) - 1) <= 0.1),
      },
      {
        scenario: 'scale',
        target: `mirror rebuild from ${bigLabel} < 30 s`,
        measured: `${round(rebuildMs / 1000, 1)} s`,
        met: rebuildMs < 30_000,
      },
    ],
    details: {
      users: big,
      seedMs,
      rebuildMs,
      serviceStartMs: { small: small.startMs, big: large?.startMs },
      rounds: m,
    },
  };
}

/** Times the mirror's own rebuild (the code `cache:rebuild` and a flushed Redis run) into a scratch prefix. */
async function timeRebuild(ctx: BenchContext, url: string, prefix: string): Promise<number> {
  const db = benchDb(url, 2);
  const redis = new Redis(ctx.redisUrl);
  const boards = createBoardRegistry({
    db,
    logger: pino({ level: 'warn' }),
    refreshMs: 3_600_000,
    missReloadMs: 0,
  });
  try {
    await boards.start();
    boards.stop();
    const mirror = createMirror({
      db,
      redis,
      prefix,
      logger: pino({ level: 'warn' }),
      syncIntervalMs: 60_000,
      syncWindowMs: 10_000,
      boards,
      graceMs: 3_600_000,
    });
    const started = Date.now();
    await mirror.rebuild();
    return Date.now() - started;
  } finally {
    redis.disconnect();
    await db.destroy();
  }
}

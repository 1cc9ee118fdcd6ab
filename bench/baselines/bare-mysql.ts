import mysql from 'mysql2/promise';
import { parseDatabaseUrl } from '../../knexfile';
import { percentiles, type Measured } from '../lib/load';

/**
 * The writes baseline: no HTTP, no auth, no batching, no Redis. Each of `concurrency` connections loops over
 * one score transaction per delta (insert the event, upsert the total, read the total back, commit), the
 * shortest correct way to do one durable delta with mysql2, with the service's session settings. `pick` chooses
 * each delta's user by index (default: uniformly over all of them).
 */
export async function bareMysqlLoop(opts: {
  databaseUrl: string;
  userIds: string[];
  concurrency: number;
  durationS: number;
  runId: string;
  pick?: (users: number) => number;
}): Promise<Measured> {
  const pick = opts.pick ?? ((n: number) => Math.floor(Math.random() * n));
  const { host, port, user, password, database } = parseDatabaseUrl(opts.databaseUrl);
  const conns = await Promise.all(
    Array.from({ length: opts.concurrency }, () =>
      mysql.createConnection({ host, port, user, password, database, supportBigNumbers: true }),
    ),
  );
  for (const c of conns) {
    await c.query("SET time_zone = '+00:00', innodb_lock_wait_timeout = 5");
    await c.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
  }
  const latencies: number[] = [];
  let errors = 0;
  let seq = 0;
  const started = performance.now();
  const deadline = started + opts.durationS * 1000;
  await Promise.all(
    conns.map(async (c) => {
      while (performance.now() < deadline) {
        const userId = opts.userIds[pick(opts.userIds.length)];
        const t0 = performance.now();
        try {
          await c.beginTransaction();
          await c.query(
            'INSERT INTO score_events (user_id, delta, score_after, actor_id, action_id) VALUES (?, 1, 0, ?, ?)',
            [userId, userId, `${opts.runId}-bare${opts.concurrency}-${seq++}`],
          );
          await c.query(
            `INSERT INTO board_scores (board_id, window_name, cycle_start, user_id, score, reached_at, version)
             VALUES ('global', 'all', '1970-01-01', ?, 1, CURRENT_TIMESTAMP(6), 1)
             ON DUPLICATE KEY UPDATE score = score + 1, reached_at = CURRENT_TIMESTAMP(6), version = version + 1`,
            [userId],
          );
          await c.query(
            "SELECT score FROM board_scores WHERE board_id = 'global' AND window_name = 'all' AND cycle_start = '1970-01-01' AND user_id = ?",
            [userId],
          );
          await c.commit();
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
          await c.rollback().catch(() => {});
        }
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  await Promise.all(conns.map((c) => c.end()));
  const [p50, p99] = percentiles(latencies, [50, 99]);
  return {
    throughput: latencies.length / elapsedS,
    p50Ms: p50,
    p99Ms: p99,
    errors,
    operations: latencies.length,
    durationS: elapsedS,
  };
}

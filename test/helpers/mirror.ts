import { GLOBAL_SCORES } from './database';
import type { Knex } from 'knex';
import type { RedisClient as Redis } from '../../src/platform/redis';
import { eventually } from './instance';
import { redisKeys } from '../../src/leaderboard/ranking';

/** Every active user's committed total, exactly as the mirror's sorted set should hold it. */
export async function mysqlTotals(db: Knex): Promise<Map<string, string>> {
  const [rows] = await db.raw(
    `SELECT s.user_id, CAST(s.score AS CHAR) AS score FROM ${GLOBAL_SCORES} s JOIN users u ON u.id = s.user_id
     WHERE u.status = 'active'`,
  );
  return new Map((rows as Array<{ user_id: string; score: string }>).map((r) => [r.user_id, r.score]));
}

export async function redisTotals(redis: Redis, zset: string): Promise<Map<string, string>> {
  const flat = await redis.zrange(zset, '0', '-1', 'WITHSCORES');
  const out = new Map<string, string>();
  for (let i = 0; i < flat.length; i += 2) out.set(flat[i], flat[i + 1]);
  return out;
}

/** The users whose mirrored score differs from MySQL (empty when the mirror under `prefix` is exact). */
export async function mirrorDifferences(db: Knex, redis: Redis, prefix: string): Promise<string[]> {
  const [m, r] = await Promise.all([mysqlTotals(db), redisTotals(redis, redisKeys(prefix).scores)]);
  const diff = [...m]
    .filter(([user, score]) => r.get(user) !== score)
    .map(([u, s]) => `${u}: ${s} vs ${r.get(u)}`);
  for (const u of r.keys()) if (!m.has(u)) diff.push(`${u}: only in redis`);
  return diff;
}

/** Waits until Redis equals MySQL for every user; on timeout the error lists the first differences. */
export async function waitForMirror(
  db: Knex,
  redis: Redis,
  prefix: string,
  timeoutMs = 10_000,
  context = '',
): Promise<void> {
  await eventually(
    async () => (await mirrorDifferences(db, redis, prefix)).length === 0,
    timeoutMs,
    100,
  ).catch(async (err: Error) => {
    const diffs = (await mirrorDifferences(db, redis, prefix)).slice(0, 5).join('; ');
    throw new Error(`${err.message}: ${diffs}${context ? `; ${context}` : ''}`);
  });
}

/**
 * The top N body every instance must converge to, worked out here from the raw rows rather than by the
 * production snapshot query, so a ranking bug there cannot hide: active users only, score descending, then
 * the earlier time the score was reached, then user id; competition ranks ("1224"); the /top JSON format.
 */
export async function expectedTop(db: Knex, size = 10): Promise<string> {
  const [rows] = await db.raw(
    `SELECT s.user_id, u.display_name, CAST(s.score AS CHAR) AS score,
            DATE_FORMAT(s.reached_at, '%Y-%m-%d %H:%i:%s.%f') AS reached
     FROM ${GLOBAL_SCORES} s JOIN users u ON u.id = s.user_id WHERE u.status = 'active'`,
  );
  const all = rows as Array<{ user_id: string; display_name: string; score: string; reached: string }>;
  const byCode = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0); // ids are ASCII: as utf8mb4_bin
  all.sort(
    (a, b) =>
      Math.sign(Number(BigInt(b.score) - BigInt(a.score))) ||
      byCode(a.reached, b.reached) ||
      byCode(a.user_id, b.user_id),
  );
  const top: Array<{ rank: number; userId: string; displayName: string; score: number }> = [];
  for (const r of all.slice(0, size)) {
    const score = Number(r.score);
    const prev = top[top.length - 1];
    top.push({
      rank: prev && prev.score === score ? prev.rank : top.length + 1,
      userId: r.user_id,
      displayName: r.display_name,
      score,
    });
  }
  return JSON.stringify(top);
}

/** Per user: score equals the sum of its events, and each event's score_after chains from the previous one. */
export async function ledgerProblems(db: Knex, users: string[]): Promise<string[]> {
  if (users.length === 0) return [];
  const problems: string[] = [];
  const [scoreRows] = await db.raw(
    `SELECT user_id, CAST(score AS CHAR) AS score FROM ${GLOBAL_SCORES} g WHERE user_id IN (${users.map(() => '?').join(',')})`,
    users,
  );
  const totals = new Map(
    (scoreRows as Array<{ user_id: string; score: string }>).map((r) => [r.user_id, BigInt(r.score)]),
  );
  const [eventRows] = await db.raw(
    `SELECT user_id, CAST(delta AS CHAR) AS delta, CAST(score_after AS CHAR) AS score_after FROM score_events
     WHERE user_id IN (${users.map(() => '?').join(',')}) ORDER BY id`,
    users,
  );
  const running = new Map<string, bigint>();
  for (const e of eventRows as Array<{ user_id: string; delta: string; score_after: string }>) {
    const next = (running.get(e.user_id) ?? 0n) + BigInt(e.delta);
    if (next !== BigInt(e.score_after))
      problems.push(`${e.user_id}: score_after ${e.score_after}, expected ${next}`);
    running.set(e.user_id, next);
  }
  for (const u of users) {
    const total = totals.get(u) ?? 0n;
    if ((running.get(u) ?? 0n) !== total)
      problems.push(`${u}: total ${total}, events sum ${running.get(u) ?? 0n}`);
  }
  return problems;
}

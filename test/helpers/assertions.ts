import { GLOBAL_SCORES } from './database';
import { expect } from 'chai';
import type { Knex } from 'knex';
import type { Response } from 'supertest';

/** Every error is RFC 9457 problem+json with the request id, and never leaks a stack trace. */
export function expectProblem(res: Response, status: number): void {
  expect(res.status, res.text).to.equal(status);
  expect(res.headers['content-type']).to.match(/^application\/problem\+json\b/);
  expect(res.body).to.include({ status, type: 'about:blank' });
  expect(res.body.title).to.be.a('string').and.match(/\S/);
  expect(res.body.requestId).to.be.a('string').and.match(/\S/);
  expect(res.body.requestId).to.equal(res.headers['x-request-id']);
  expect(res.text).to.not.match(/stack|\bat .+\(.*:\d+:\d+\)|node_modules|\.ts:\d+/i);
}

/** The user's committed total, exactly (as a string, so values near 2^53 compare without rounding). */
export async function mysqlScore(db: Knex, userId: string): Promise<string | undefined> {
  const [rows] = await db.raw(
    `SELECT CAST(score AS CHAR) AS score FROM ${GLOBAL_SCORES} g WHERE user_id = ?`,
    [userId],
  );
  return (rows as Array<{ score: string }>)[0]?.score;
}

export interface EventRow {
  id: number;
  delta: number;
  score_after: number;
  actor_id: string;
  action_id: string | null;
}

/**
 * The user's score history, oldest first. Not the stored ranks: they are written after the answer (ranks.ts)
 * and may land at any moment after a 201, so a before/after comparison that held them would race.
 */
export async function mysqlEvents(db: Knex, userId: string): Promise<EventRow[]> {
  const [rows] = await db.raw(
    'SELECT id, delta, score_after, actor_id, action_id FROM score_events WHERE user_id = ? ORDER BY id',
    [userId],
  );
  return (rows as EventRow[]).map((r) => ({
    ...r,
    id: Number(r.id),
    delta: Number(r.delta),
    score_after: Number(r.score_after),
  }));
}

/** Competition rank of `score` among active users, as MySQL sees it. */
export async function mysqlRank(db: Knex, score: number): Promise<number> {
  const [rows] = await db.raw(
    `SELECT COUNT(*) AS above FROM ${GLOBAL_SCORES} s JOIN users u ON u.id = s.user_id
     WHERE u.status = 'active' AND s.score > ?`,
    [score],
  );
  return Number((rows as Array<{ above: number }>)[0].above) + 1;
}

export async function mysqlUser(
  db: Knex,
  userId: string,
): Promise<{ id: string; display_name: string; role: string; status: string } | undefined> {
  const [rows] = await db.raw('SELECT id, display_name, role, status FROM users WHERE id = ?', [userId]);
  return (rows as Array<{ id: string; display_name: string; role: string; status: string }>)[0];
}

/** Makes a user an active admin, creating it if needed: admins exist only through the database. */
export async function ensureAdmin(db: Knex, userId: string, displayName = userId): Promise<void> {
  await db.raw(
    `INSERT INTO users (id, display_name, role, status) VALUES (?, ?, 'admin', 'active')
     ON DUPLICATE KEY UPDATE role = 'admin', status = 'active'`,
    [userId, displayName],
  );
}

/** Creates a user row directly (role and status decided by the test, not by a token). */
export async function insertUser(
  db: Knex,
  userId: string,
  opts: { role?: 'player' | 'admin'; status?: 'active' | 'banned' } = {},
): Promise<void> {
  await db.raw('INSERT INTO users (id, display_name, role, status) VALUES (?, ?, ?, ?)', [
    userId,
    userId,
    opts.role ?? 'player',
    opts.status ?? 'active',
  ]);
}

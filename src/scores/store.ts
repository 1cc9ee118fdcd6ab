import type { Knex } from 'knex';
import { rawRows, type Db } from '../db';
import { forbidden, notFound, unprocessable, type HttpError } from '../errors';
import type { MirrorEntry, RankQuery } from './mirror';

export interface DeltaRequest {
  userId: string;
  delta: number;
  actionId?: string;
  actorId: string;
  actorIsAdmin: boolean;
}

export interface UpdateResult {
  userId: string;
  score: number;
  rank: number | null;
  scoreIncrement: number;
  eventId: number;
}

export type DeltaOutcome =
  | { kind: 'applied'; result: UpdateResult }
  | { kind: 'replayed'; result: UpdateResult }
  | { kind: 'rejected'; error: HttpError };

/** Ranks for new scores, given the batch's own pending states; null when the caller must ask MySQL. */
export type RankSource = (queries: RankQuery[], pending: MirrorEntry[]) => Promise<number[] | null>;

const DEADLOCK = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);
const MAX_ATTEMPTS = 5;

/**
 * Applies a batch of deltas in one transaction and returns one outcome per request, in order.
 * Users are locked in id order (so concurrent batches cannot deadlock on each other's rows), the idempotency
 * check runs under those locks, and a deadlock retries the whole transaction: nothing is applied twice
 * because nothing of a rolled-back attempt survives it.
 */
export async function applyBatch(
  db: Db,
  requests: DeltaRequest[],
  rankSource: RankSource,
): Promise<{ outcomes: DeltaOutcome[]; mirror: MirrorEntry[] }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction((trx) => applyInTransaction(trx, requests, rankSource));
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (!DEADLOCK.has(code) || attempt >= MAX_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
    }
  }
}

interface UserRow {
  id: string;
  role: string;
  status: string;
  display_name: string;
  score: number | null;
  version: number | null;
}
interface EventRow {
  id: number;
  user_id: string;
  action_id: string;
  delta: number;
  score_after: number;
  rank_after: number | null;
}

async function applyInTransaction(
  trx: Knex.Transaction,
  requests: DeltaRequest[],
  rankSource: RankSource,
): Promise<{ outcomes: DeltaOutcome[]; mirror: MirrorEntry[] }> {
  const userIds = [...new Set(requests.map((r) => r.userId))].sort();
  const users = new Map(
    (
      await rawRows<UserRow>(
        trx,
        `SELECT u.id, u.role, u.status, u.display_name, s.score, s.version FROM users u LEFT JOIN scores s ON s.user_id = u.id
         WHERE u.id IN (${placeholders(userIds.length)}) ORDER BY u.id FOR UPDATE`,
        userIds,
      )
    ).map((u) => [u.id, u]),
  );
  const missing = [...users.values()].filter((u) => u.score === null);
  if (missing.length) {
    await trx.raw(
      `INSERT INTO scores (user_id, score, reached_at, version) VALUES ${missing.map(() => '(?, 0, CURRENT_TIMESTAMP(6), 0)').join(', ')}`,
      missing.map((u) => u.id),
    );
    for (const u of missing) Object.assign(u, { score: 0, version: 0 });
  }

  // Admin rights come from a cached row (src/auth/caller.ts): re-check them here, so a ban or a demotion
  // stops an admin's writes at once on every instance. A player acts only on their own, already locked, row.
  const actors = new Map<string, Pick<UserRow, 'role' | 'status'>>(users);
  const unseen = [...new Set(requests.filter((r) => r.actorIsAdmin).map((r) => r.actorId))].filter(
    (id) => !actors.has(id),
  );
  if (unseen.length) {
    const rows = await rawRows<UserRow>(
      trx,
      `SELECT id, role, status FROM users WHERE id IN (${placeholders(unseen.length)})`,
      unseen,
    );
    for (const a of rows) actors.set(a.id, a);
  }

  const keyed = requests.filter((r) => r.actionId !== undefined);
  const existing = new Map<string, EventRow>();
  if (keyed.length) {
    const rows = await rawRows<EventRow>(
      trx,
      `SELECT id, user_id, action_id, delta, score_after, rank_after FROM score_events
       WHERE (user_id, action_id) IN (${keyed.map(() => '(?, ?)').join(', ')})`,
      keyed.flatMap((r) => [r.userId, r.actionId]),
    );
    for (const e of rows) existing.set(key(e.user_id, e.action_id), e);
  }

  // Decide every request against the running totals; only accepted ones become events.
  const outcomes: Array<DeltaOutcome | { kind: 'pending'; index: number } | { kind: 'follow'; of: number }> =
    [];
  const accepted: Array<{ req: DeltaRequest; scoreAfter: number }> = [];
  const firstInBatch = new Map<string, number>(); // actionKey -> request index that applies it
  const running = new Map<string, number>();
  for (const [i, req] of requests.entries()) {
    const user = users.get(req.userId);
    const decision = decide(req, user);
    if (decision) {
      outcomes.push(decision);
      continue;
    }
    const current = running.get(req.userId) ?? Number(user!.score);
    const scoreAfter = current + req.delta;
    if (!Number.isSafeInteger(scoreAfter)) {
      outcomes.push(rejected(unprocessable('The new total would leave the supported score range.')));
      continue;
    }
    running.set(req.userId, scoreAfter);
    if (req.actionId !== undefined) firstInBatch.set(key(req.userId, req.actionId), i);
    outcomes.push({ kind: 'pending', index: accepted.length });
    accepted.push({ req, scoreAfter });
  }

  /** Rejections and replays, decided before any arithmetic. */
  function decide(req: DeltaRequest, user: UserRow | undefined) {
    if (req.actorIsAdmin) {
      const actor = actors.get(req.actorId);
      if (actor?.status !== 'active') return rejected(forbidden('This account is banned.'));
      if (actor.role !== 'admin') return rejected(forbidden('This account is no longer an admin.'));
    }
    if (!user) return rejected(notFound(`User "${req.userId}" does not exist.`));
    if (user.status !== 'active' && !req.actorIsAdmin)
      return rejected(forbidden('This account is banned from scoring.'));
    if (req.actionId === undefined) return undefined;
    const k = key(req.userId, req.actionId);
    const prior = existing.get(k);
    if (prior) {
      return Number(prior.delta) === req.delta
        ? { kind: 'replayed' as const, result: fromEvent(prior) }
        : rejected(conflictingReplay());
    }
    const leader = firstInBatch.get(k);
    if (leader === undefined) return undefined;
    return requests[leader].delta === req.delta
      ? { kind: 'follow' as const, of: leader }
      : rejected(conflictingReplay());
  }

  const mirror: MirrorEntry[] = [...running].map(([userId, score]) => {
    const u = users.get(userId)!;
    return {
      userId,
      score,
      version: Number(u.version) + 1,
      active: u.status === 'active',
      displayName: u.display_name,
    };
  });
  let eventIds: number[] = [];
  let ranks: Array<number | null> = [];
  if (accepted.length) {
    const active = new Set(mirror.filter((m) => m.active).map((m) => m.userId));
    const queries = accepted.map((a) => ({ userId: a.req.userId, score: a.scoreAfter }));
    const fromMirror = await rankSource(queries, mirror);
    ranks = (fromMirror ?? (await ranksFromDatabase(trx, queries, mirror))).map((r, i) =>
      active.has(queries[i].userId) ? r : null,
    );
    eventIds = await writeEvents(trx, accepted, ranks, mirror);
  }

  const resolved: DeltaOutcome[] = [];
  outcomes.forEach((o) => {
    if (o.kind === 'pending') {
      const { req, scoreAfter } = accepted[o.index];
      resolved.push({
        kind: 'applied',
        result: {
          userId: req.userId,
          score: scoreAfter,
          rank: ranks[o.index],
          scoreIncrement: req.delta,
          eventId: eventIds[o.index],
        },
      });
    } else if (o.kind === 'follow')
      resolved.push({ kind: 'replayed', result: (resolved[o.of] as { result: UpdateResult }).result });
    else resolved.push(o);
  });
  return { outcomes: resolved, mirror };
}

/** Inserts the events (one statement each, to learn every id) and the new totals, in one round trip. */
async function writeEvents(
  trx: Knex.Transaction,
  accepted: Array<{ req: DeltaRequest; scoreAfter: number }>,
  ranks: Array<number | null>,
  mirror: MirrorEntry[],
): Promise<number[]> {
  const sql: string[] = [];
  const bindings: unknown[] = [];
  accepted.forEach(({ req, scoreAfter }, i) => {
    sql.push(
      'INSERT INTO score_events (user_id, delta, score_after, rank_after, actor_id, action_id) VALUES (?, ?, ?, ?, ?, ?)',
    );
    bindings.push(req.userId, req.delta, scoreAfter, ranks[i], req.actorId, req.actionId ?? null);
  });
  const [results] = await trx.raw(sql.join(';\n'), bindings as Knex.RawBinding[]);
  const ids: number[] = (accepted.length === 1 ? [results] : results).map(
    (r: { insertId: number }) => r.insertId,
  );

  const lastEvent = new Map<string, number>();
  accepted.forEach(({ req }, i) => lastEvent.set(req.userId, ids[i]));
  const updates: string[] = [];
  const updateBindings: unknown[] = [];
  for (const m of mirror) {
    updates.push(
      'UPDATE scores SET score = ?, reached_at = CURRENT_TIMESTAMP(6), version = ?, last_event_id = ? WHERE user_id = ?',
    );
    updateBindings.push(m.score, m.version, lastEvent.get(m.userId), m.userId);
  }
  await trx.raw(updates.join(';\n'), updateBindings as Knex.RawBinding[]);
  return ids;
}

/** The MySQL answer to "how many active users are above this score", used while Redis cannot answer. */
async function ranksFromDatabase(
  trx: Knex.Transaction,
  queries: RankQuery[],
  pending: MirrorEntry[],
): Promise<number[]> {
  const batchUsers = pending.map((p) => p.userId);
  const out: number[] = [];
  for (const q of queries) {
    const [{ above }] = await rawRows<{ above: number }>(
      trx,
      `SELECT COUNT(*) AS above FROM scores s JOIN users u ON u.id = s.user_id
       WHERE s.score > ? AND u.status = 'active' AND s.user_id NOT IN (${placeholders(batchUsers.length)})`,
      [q.score, ...batchUsers],
    );
    const fromBatch = pending.filter((p) => p.userId !== q.userId && p.active && p.score > q.score).length;
    out.push(Number(above) + fromBatch + 1);
  }
  return out;
}

function fromEvent(e: EventRow): UpdateResult {
  return {
    userId: e.user_id,
    score: Number(e.score_after),
    rank: e.rank_after === null ? null : Number(e.rank_after),
    scoreIncrement: Number(e.delta),
    eventId: Number(e.id),
  };
}

const key = (userId: string, actionId: string) => `${userId}\u0000${actionId}`;
const placeholders = (n: number) => new Array(n).fill('?').join(', ');
const rejected = (error: HttpError): DeltaOutcome => ({ kind: 'rejected', error });
const conflictingReplay = () =>
  unprocessable('This actionId was already used for this user with a different scoreIncrement.');

import type { Db } from '../../platform/db';
import { ABOVE_SQL, rankFromAbove } from '../ranking';
import { inTransaction, type Statement, type Tx } from '../../platform/pipelined-tx';
import type { MirrorEntry, RankQuery } from '../cache/mirror';
import { actionKey, decideBatch, type DeltaOutcome, type DeltaRequest, type UpdateResult } from './rules';

export type { DeltaOutcome, DeltaRequest, RejectReason, UpdateResult } from './rules';

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
      return await inTransaction(db, (tx) => applyInTransaction(tx, requests, rankSource));
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
  actor_id: string;
  action_id: string;
  delta: number;
  score_after: number;
  rank_after: number | null;
}

async function applyInTransaction(
  tx: Tx,
  requests: DeltaRequest[],
  rankSource: RankSource,
): Promise<{ outcomes: DeltaOutcome[]; mirror: MirrorEntry[] }> {
  const userIds = [...new Set(requests.map((r) => r.userId))].sort();
  // Admin rights come from a cached row (src/auth/caller.ts): re-check them here, so a ban or a demotion
  // stops an admin's writes at once on every instance. A player acts only on their own row, locked below.
  const targets = new Set(userIds);
  const otherActors = [...new Set(requests.filter((r) => r.actorIsAdmin).map((r) => r.actorId))].filter(
    (id) => !targets.has(id),
  );
  const keyed = requests.filter((r) => r.actionId !== undefined);

  // One round trip: lock the users (in id order), then, under those locks, look up their actionIds.
  const first: Statement[] = [
    {
      sql: `SELECT u.id, u.role, u.status, u.display_name, s.score, s.version FROM users u LEFT JOIN scores s ON s.user_id = u.id
            WHERE u.id IN (${placeholders(userIds.length)}) ORDER BY u.id FOR UPDATE`,
      values: userIds,
    },
  ];
  if (keyed.length) {
    first.push({
      sql: `SELECT id, user_id, actor_id, action_id, delta, score_after, rank_after FROM score_events
            WHERE (user_id, actor_id, action_id) IN (${keyed.map(() => '(?, ?, ?)').join(', ')})`,
      values: keyed.flatMap((r) => [r.userId, r.actorId, r.actionId]),
    });
  }
  if (otherActors.length) {
    first.push({
      sql: `SELECT id, role, status FROM users WHERE id IN (${placeholders(otherActors.length)})`,
      values: otherActors,
    });
  }
  const [userRows, ...rest] = (await tx.run(first)) as Array<Array<UserRow | EventRow>>;
  const users = new Map((userRows as UserRow[]).map((u) => [u.id, u]));
  const existing = new Map<string, EventRow>();
  if (keyed.length)
    for (const e of rest.shift() as EventRow[])
      existing.set(actionKey(e.user_id, e.actor_id, e.action_id), e);
  const actors = new Map<string, Pick<UserRow, 'role' | 'status'>>(users);
  if (otherActors.length) for (const a of rest.shift() as UserRow[]) actors.set(a.id, a);

  const missing = [...users.values()].filter((u) => u.score === null);
  if (missing.length) {
    await tx.run([
      {
        sql: `INSERT INTO scores (user_id, score, reached_at, version) VALUES ${missing.map(() => '(?, 0, CURRENT_TIMESTAMP(6), 0)').join(', ')}`,
        values: missing.map((u) => u.id),
      },
    ]);
    for (const u of missing) Object.assign(u, { score: 0, version: 0 });
  }

  // Decide every request against the running totals (src/leaderboard/write/rules.ts).
  const prior = new Map([...existing].map(([k, e]) => [k, { delta: Number(e.delta), result: fromEvent(e) }]));
  const { decisions: outcomes, accepted, running } = decideBatch(requests, users, actors, prior);

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
    ranks = (fromMirror ?? (await ranksFromDatabase(tx, queries, mirror))).map((r, i) =>
      active.has(queries[i].userId) ? r : null,
    );
    eventIds = await writeAndCommit(tx, accepted, ranks, mirror);
  } else {
    await tx.commit([]); // the scores rows inserted above, if any
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

/**
 * Inserts the events and the new totals and commits, in one round trip. Events are inserted one statement
 * each (to learn every id; multi-row INSERTs only promise consecutive ids under some auto-increment lock
 * modes), grouped by user in request order, each user's group followed by the update of its total, which
 * takes the group's last id from LAST_INSERT_ID().
 */
async function writeAndCommit(
  tx: Tx,
  accepted: Array<{ req: DeltaRequest; scoreAfter: number }>,
  ranks: Array<number | null>,
  mirror: MirrorEntry[],
): Promise<number[]> {
  const byUser = new Map<string, number[]>(mirror.map((m) => [m.userId, []]));
  accepted.forEach(({ req }, i) => byUser.get(req.userId)!.push(i));
  const statements: Statement[] = [];
  const eventAt: number[] = []; // accepted index -> statement index
  for (const m of mirror) {
    for (const i of byUser.get(m.userId)!) {
      const { req, scoreAfter } = accepted[i];
      eventAt[i] = statements.length;
      statements.push({
        sql: 'INSERT INTO score_events (user_id, delta, score_after, rank_after, actor_id, action_id) VALUES (?, ?, ?, ?, ?, ?)',
        values: [req.userId, req.delta, scoreAfter, ranks[i], req.actorId, req.actionId ?? null],
      });
    }
    statements.push({
      sql: 'UPDATE scores SET score = ?, reached_at = CURRENT_TIMESTAMP(6), version = ?, last_event_id = LAST_INSERT_ID() WHERE user_id = ?',
      values: [m.score, m.version, m.userId],
    });
  }
  const results = (await tx.commit(statements)) as Array<{ insertId: number }>;
  return eventAt.map((s) => Number(results[s].insertId));
}

/** The MySQL answer to "how many active users are above this score", used while Redis cannot answer. */
async function ranksFromDatabase(tx: Tx, queries: RankQuery[], pending: MirrorEntry[]): Promise<number[]> {
  const batchUsers = pending.map((p) => p.userId);
  const counts = (await tx.run(
    queries.map((q) => ({
      sql: `${ABOVE_SQL} AND s.user_id NOT IN (${placeholders(batchUsers.length)})`,
      values: [q.score, ...batchUsers],
    })),
  )) as Array<Array<{ above: number }>>;
  return queries.map((q, i) => {
    const fromBatch = pending.filter((p) => p.userId !== q.userId && p.active && p.score > q.score).length;
    return rankFromAbove(Number(counts[i][0].above) + fromBatch);
  });
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

const placeholders = (n: number) => new Array(n).fill('?').join(', ');

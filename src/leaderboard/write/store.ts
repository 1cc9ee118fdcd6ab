import type { Db } from '../../platform/db';
import { ABOVE_SQL, rankFromAbove } from '../ranking';
import type { MirrorEntry, RankQuery } from '../cache/mirror';

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
  | { kind: 'rejected'; reason: RejectReason };

/**
 * Why the store refused a delta, decided under the users' locks. Domain reasons, not HTTP: the route (or any
 * other intake) decides what each one means to its caller (src/leaderboard/write/routes.ts).
 */
export type RejectReason =
  | 'actor_banned'
  | 'actor_not_admin'
  | 'unknown_user'
  | 'target_banned'
  | 'out_of_range'
  | 'conflicting_replay';

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

interface Statement {
  sql: string;
  values: unknown[];
}

/**
 * One transaction on a pooled connection, driven by hand instead of through knex's transaction helper: the
 * opening START TRANSACTION rides along with the first statements and the COMMIT with the last ones, so a
 * batch costs two round trips to MySQL instead of six. That matters on a small machine, where every round
 * trip waits for the MySQL thread to be scheduled. A caller is answered only once `commit` has returned, so
 * only after its COMMIT succeeded; any failure rolls back (or drops the connection if it cannot).
 */
interface Tx {
  /** Sends statements in one round trip, opening the transaction first if it is not open yet. */
  run(statements: Statement[]): Promise<unknown[]>;
  /** Sends the statements and COMMIT in one round trip. */
  commit(statements: Statement[]): Promise<unknown[]>;
}

interface RawConnection {
  query(sql: string, values: unknown[], cb: (err: Error | null, results: unknown) => void): void;
  destroy(): void;
}

async function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const conn = (await db.client.acquireConnection()) as RawConnection;
  let open = false;
  let done = false;
  const send = (statements: Statement[]) =>
    new Promise<unknown[]>((resolve, reject) => {
      const sql = statements.map((s) => s.sql).join(';\n');
      const values = statements.flatMap((s) => s.values);
      // mysql2 answers one result for one statement and an array of them for several.
      conn.query(sql, values, (err, results) =>
        err ? reject(err) : resolve(statements.length === 1 ? [results] : (results as unknown[])),
      );
    });
  const tx: Tx = {
    async run(statements) {
      if (open) return send(statements);
      open = true;
      return (await send([{ sql: 'START TRANSACTION', values: [] }, ...statements])).slice(1);
    },
    async commit(statements) {
      const all = [...(open ? [] : [{ sql: 'START TRANSACTION', values: [] }]), ...statements];
      const results = await send([...all, { sql: 'COMMIT', values: [] }]);
      done = true;
      return results.slice(all.length - statements.length, -1);
    },
  };
  try {
    const result = await fn(tx);
    if (!done) throw new Error('applyInTransaction returned without committing');
    return result;
  } catch (err) {
    if (open && !done) {
      await send([{ sql: 'ROLLBACK', values: [] }]).catch(() => conn.destroy()); // the pool drops it
    }
    throw err;
  } finally {
    await db.client.releaseConnection(conn);
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
    for (const e of rest.shift() as EventRow[]) existing.set(key(e.user_id, e.actor_id, e.action_id), e);
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
      outcomes.push(rejected('out_of_range'));
      continue;
    }
    running.set(req.userId, scoreAfter);
    if (req.actionId !== undefined) firstInBatch.set(key(req.userId, req.actorId, req.actionId), i);
    outcomes.push({ kind: 'pending', index: accepted.length });
    accepted.push({ req, scoreAfter });
  }

  /** Rejections and replays, decided before any arithmetic. */
  function decide(req: DeltaRequest, user: UserRow | undefined) {
    if (req.actorIsAdmin) {
      const actor = actors.get(req.actorId);
      if (actor?.status !== 'active') return rejected('actor_banned');
      if (actor.role !== 'admin') return rejected('actor_not_admin');
    }
    if (!user) return rejected('unknown_user');
    if (user.status !== 'active' && !req.actorIsAdmin) return rejected('target_banned');
    if (req.actionId === undefined) return undefined;
    const k = key(req.userId, req.actorId, req.actionId);
    const prior = existing.get(k);
    if (prior) {
      return Number(prior.delta) === req.delta
        ? { kind: 'replayed' as const, result: fromEvent(prior) }
        : rejected('conflicting_replay');
    }
    const leader = firstInBatch.get(k);
    if (leader === undefined) return undefined;
    return requests[leader].delta === req.delta
      ? { kind: 'follow' as const, of: leader }
      : rejected('conflicting_replay');
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

/** Idempotency keys belong to their author: one per (target, actor, actionId), as the unique key says. */
const key = (userId: string, actorId: string, actionId: string) =>
  `${userId}\u0000${actorId}\u0000${actionId}`;
const placeholders = (n: number) => new Array(n).fill('?').join(', ');
const rejected = (reason: RejectReason): DeltaOutcome => ({ kind: 'rejected', reason });

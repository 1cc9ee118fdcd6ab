import { retryOnDeadlock, type Db } from '../../platform/db';
import { IN_CYCLE_SQL } from '../ranking';
import { inTransaction, type Statement, type Tx } from '../../platform/pipelined-tx';
import type { MirrorEntry } from '../cache/mirror';
import { cycleAt, cycleNamed, type Cycle } from '../boards/cycles';
import type { BoardWindow } from '../boards/store';
import {
  actionKey,
  decideBatch,
  userBoardKey,
  type DeltaOutcome,
  type DeltaRequest,
  type UpdateResult,
  type WindowResult,
} from './rules';

export type { DeltaOutcome, DeltaRequest, RejectReason, UpdateResult } from './rules';

/**
 * A committed total to rank after commit: `result.windows[window].rank` (and `result.rank` for the board's
 * first window) are filled in once it is known. Inactive users have no rank.
 */
export interface PendingRank {
  result: UpdateResult;
  window: string;
  start: Date;
  active: boolean;
  first: boolean;
}

export interface BatchResult {
  outcomes: DeltaOutcome[];
  /** Every changed row, for the Redis mirror. */
  mirror: MirrorEntry[];
  toRank: PendingRank[];
}

/** A board's windows, or undefined for a board that does not exist. */
export type WindowsOf = (boardId: string) => BoardWindow[] | undefined;

/**
 * Applies a batch of deltas in one transaction and returns one outcome per request, in order.
 * Users are locked in id order (so concurrent batches cannot deadlock on each other's rows), the idempotency
 * check runs under those locks, and a deadlock retries the whole transaction: nothing is applied twice
 * because nothing of a rolled-back attempt survives it.
 */
export async function applyBatch(
  db: Db,
  requests: DeltaRequest[],
  windowsOf: WindowsOf,
): Promise<BatchResult> {
  return retryOnDeadlock(() => inTransaction(db, (tx) => applyInTransaction(tx, requests, windowsOf)));
}

interface UserRow {
  id: string;
  role: string;
  status: string;
  display_name: string;
}
interface EventRow {
  id: number;
  user_id: string;
  board_id: string;
  actor_id: string;
  action_id: string;
  delta: number;
  score_after: number;
  rank_after: number | null;
  windows_after: string | null;
}
interface ScoreRow {
  board_id: string;
  window_name: string;
  cycle_start: Date;
  user_id: string;
  score: number;
  version: number;
}

/** One (user, board) of the batch: its windows, the cycle each delta lands in, and the rows held there. */
interface Target {
  userId: string;
  boardId: string;
  windows: BoardWindow[];
  cycles: Cycle[];
  held: Array<{ score: number; version: number }>;
}

const rowKey = (board: string, window: string, start: Date, user: string) =>
  `${board}\u0000${window}\u0000${start.getTime()}\u0000${user}`;

async function applyInTransaction(
  tx: Tx,
  requests: DeltaRequest[],
  windowsOf: WindowsOf,
): Promise<BatchResult> {
  const userIds = [...new Set(requests.map((r) => r.userId))].sort();
  // Callers are authorized here, against their rows: a ban or a demotion stops their writes at once on every
  // instance. A player acts only on their own row, locked below; an admin's row is read beside it.
  const targetIds = new Set(userIds);
  const otherActors = [
    ...new Set(requests.filter((r) => r.authority === 'caller').map((r) => r.actorId)),
  ].filter((id) => !targetIds.has(id));
  const keyed = requests.filter((r) => r.actionId !== undefined);
  const targets = new Map<string, Target>();
  for (const r of requests) {
    const k = userBoardKey(r.userId, r.boardId);
    const windows = windowsOf(r.boardId);
    if (windows && !targets.has(k))
      targets.set(k, { userId: r.userId, boardId: r.boardId, windows, cycles: [], held: [] });
  }

  // One round trip: lock the users (in id order); under those locks read the database clock, which alone
  // decides the cycle every delta lands in; look up the actionIds; and read the score rows of the cycles this
  // instance's clock expects (read again below in the rare case the database clock says otherwise).
  const guess = new Date();
  const first: Statement[] = [
    {
      sql: `SELECT id, role, status, display_name FROM users WHERE id IN (${placeholders(userIds.length)}) ORDER BY id FOR UPDATE`,
      values: userIds,
    },
    { sql: 'SELECT UTC_TIMESTAMP(6) AS now', values: [] },
    scoreRowsStatement([...targets.values()], guess),
  ];
  if (keyed.length) {
    first.push({
      sql: `SELECT id, user_id, board_id, actor_id, action_id, delta, score_after, rank_after, windows_after FROM score_events
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
  const [userRows, [{ now }], guessedRows, ...rest] = (await tx.run(first)) as [
    UserRow[],
    Array<{ now: Date }>,
    ScoreRow[],
    ...Array<Array<UserRow | EventRow>>,
  ];
  const users = new Map(userRows.map((u) => [u.id, u]));
  const existing = new Map<string, EventRow>();
  if (keyed.length)
    for (const e of rest.shift() as EventRow[])
      existing.set(actionKey(e.user_id, e.actor_id, e.action_id), e);
  const actors = new Map<string, Pick<UserRow, 'role' | 'status'>>(users);
  if (otherActors.length) for (const a of rest.shift() as UserRow[]) actors.set(a.id, a);

  let rows = guessedRows;
  const list = [...targets.values()];
  const guessed = list.map((t) => t.windows.map((w) => cycleAt(w.reset, guess).name).join());
  for (const t of list) t.cycles = t.windows.map((w) => cycleAt(w.reset, now));
  if (list.some((t, i) => t.cycles.map((c) => c.name).join() !== guessed[i])) {
    [rows] = (await tx.run([scoreRowsStatement(list, now)])) as [ScoreRow[]];
  }
  const held = new Map(rows.map((r) => [rowKey(r.board_id, r.window_name, r.cycle_start, r.user_id), r]));
  for (const t of list)
    t.held = t.windows.map((w, i) => {
      const r = held.get(rowKey(t.boardId, w.name, t.cycles[i].start, t.userId));
      return { score: r ? Number(r.score) : 0, version: r ? Number(r.version) : 0 };
    });

  // Decide every request against the running totals (src/leaderboard/write/rules.ts).
  const unranked = new Set<UpdateResult>();
  const prior = new Map(
    [...existing].map(([k, e]) => {
      const result = fromEvent(e, unranked);
      return [k, { delta: Number(e.delta), boardId: e.board_id, result }];
    }),
  );
  const { decisions, accepted, running } = decideBatch(requests, users, actors, prior, (u, b) =>
    targets.get(userBoardKey(u, b))?.held.map((h) => h.score),
  );

  // The changed (user, board)s, each with its new totals: one mirror entry per window row.
  const changed = [...running].map(([k, scores]) => ({ target: targets.get(k)!, scores }));
  const mirror: MirrorEntry[] = changed.flatMap(({ target: t, scores }) =>
    t.windows.map((w, i) => ({
      board: t.boardId,
      window: w.name,
      cycle: t.cycles[i].name,
      cycleEnd: t.cycles[i].end,
      userId: t.userId,
      score: scores[i],
      version: t.held[i].version + 1,
      active: users.get(t.userId)!.status === 'active',
      displayName: users.get(t.userId)!.display_name,
    })),
  );
  let eventIds: number[] = [];
  if (accepted.length) eventIds = await writeAndCommit(tx, accepted, changed, now);
  else await tx.commit([]);

  // Ranks are not known yet: they come after commit (src/leaderboard/write/ranks.ts), so that nothing
  // that talks to Redis runs while these row locks are held. Each applied result lists the totals to rank.
  const toRank: PendingRank[] = [];
  const resolved: DeltaOutcome[] = [];
  decisions.forEach((o) => {
    if (o.kind === 'pending') {
      const { req, scoresAfter } = accepted[o.index];
      const t = targets.get(userBoardKey(req.userId, req.boardId))!;
      const active = users.get(req.userId)!.status === 'active';
      const windows = Object.fromEntries(
        t.windows.map((w, i) => [w.name, { cycle: t.cycles[i].name, score: scoresAfter[i], rank: null }]),
      );
      const result: UpdateResult = {
        userId: req.userId,
        score: scoresAfter[0],
        rank: null,
        scoreIncrement: req.delta,
        eventId: eventIds[o.index],
        boardId: req.boardId,
        windows,
      };
      t.windows.forEach((w, i) =>
        toRank.push({ result, window: w.name, start: t.cycles[i].start, active, first: i === 0 }),
      );
      resolved.push({ kind: 'applied', result });
    } else if (o.kind === 'follow')
      resolved.push({ kind: 'replayed', result: (resolved[o.of] as { result: UpdateResult }).result });
    else {
      // A replay whose first answer's ranks were never stored (it committed moments ago, or its instance
      // stopped before storing them) is ranked now, like a new write.
      if (o.kind === 'replayed' && unranked.has(o.result)) {
        const active = users.get(o.result.userId)?.status === 'active';
        for (const [name, w] of Object.entries(o.result.windows)) {
          const window = windowsOf(o.result.boardId)?.find((x) => x.name === name);
          const cycle = window && cycleNamed(window.reset, w.cycle);
          if (cycle)
            toRank.push({
              result: o.result,
              window: name,
              start: cycle.start,
              active,
              first: w === firstOf(o.result),
            });
        }
      }
      resolved.push(o);
    }
  });
  return { outcomes: resolved, mirror, toRank };
}

const firstOf = (r: UpdateResult) => Object.values(r.windows)[0];

/** Reads the batch's score rows in the cycles that contain `at`, by primary key. */
function scoreRowsStatement(targets: Target[], at: Date): Statement {
  const groups = new Map<string, { board: string; window: string; start: Date; users: string[] }>();
  for (const t of targets)
    for (const w of t.windows) {
      const start = cycleAt(w.reset, at).start;
      const k = `${t.boardId}\u0000${w.name}\u0000${start.getTime()}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { board: t.boardId, window: w.name, start, users: [] }));
      g.users.push(t.userId);
    }
  if (groups.size === 0) return { sql: 'SELECT NULL AS board_id FROM DUAL WHERE FALSE', values: [] };
  const list = [...groups.values()];
  return {
    sql: `SELECT s.board_id, s.window_name, s.cycle_start, s.user_id, s.score, s.version FROM board_scores s WHERE ${list
      .map((g) => `(${IN_CYCLE_SQL} AND s.user_id IN (${placeholders(g.users.length)}))`)
      .join(' OR ')}`,
    values: list.flatMap((g) => [g.board, g.window, g.start, ...g.users]),
  };
}

/**
 * Inserts the events and the new totals and commits, in one round trip. Events are inserted one statement
 * each (to learn every id; multi-row INSERTs only promise consecutive ids under some auto-increment lock
 * modes), grouped by (user, board) in request order; each group is followed by one upsert of its window rows
 * (each row written once, however many deltas the batch holds for it), which takes the group's last event id
 * from LAST_INSERT_ID(). The reach time is the database clock the cycle was decided by.
 */
async function writeAndCommit(
  tx: Tx,
  accepted: Array<{ req: DeltaRequest; scoresAfter: number[] }>,
  changed: Array<{ target: Target; scores: number[] }>,
  now: Date,
): Promise<number[]> {
  const byTarget = new Map<string, number[]>(
    changed.map((c) => [userBoardKey(c.target.userId, c.target.boardId), []]),
  );
  accepted.forEach(({ req }, i) => byTarget.get(userBoardKey(req.userId, req.boardId))!.push(i));
  const statements: Statement[] = [];
  const eventAt: number[] = []; // accepted index -> statement index
  for (const { target: t, scores } of changed) {
    for (const i of byTarget.get(userBoardKey(t.userId, t.boardId))!) {
      const { req, scoresAfter } = accepted[i];
      // Ranks are stored after commit (src/leaderboard/write/ranks.ts); until then the windows carry no `rank` key.
      const windows = Object.fromEntries(
        t.windows.map((w, j) => [w.name, { cycle: t.cycles[j].name, score: scoresAfter[j] }]),
      );
      eventAt[i] = statements.length;
      statements.push({
        sql: `INSERT INTO score_events (user_id, board_id, delta, score_after, rank_after, windows_after, actor_id, action_id)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        values: [
          req.userId,
          req.boardId,
          req.delta,
          scoresAfter[0],
          null,
          JSON.stringify(windows),
          req.actorId,
          req.actionId ?? null,
        ],
      });
    }
    statements.push({
      sql: `INSERT INTO board_scores (board_id, window_name, cycle_start, user_id, score, reached_at, version, last_event_id)
            VALUES ${t.windows.map(() => '(?, ?, ?, ?, ?, ?, ?, LAST_INSERT_ID())').join(', ')}
            ON DUPLICATE KEY UPDATE score = VALUES(score), reached_at = VALUES(reached_at),
              version = VALUES(version), last_event_id = VALUES(last_event_id)`,
      values: t.windows.flatMap((w, i) => [
        t.boardId,
        w.name,
        t.cycles[i].start,
        t.userId,
        scores[i],
        now,
        t.held[i].version + 1,
      ]),
    });
  }
  const out = (await tx.commit(statements)) as Array<{ insertId: number }>;
  return eventAt.map((s) => Number(out[s].insertId));
}

/** A committed event as its first answer; added to `unranked` when its ranks were never stored. */
function fromEvent(e: EventRow, unranked: Set<UpdateResult>): UpdateResult {
  const rank = e.rank_after === null ? null : Number(e.rank_after);
  const windows = e.windows_after
    ? (JSON.parse(e.windows_after) as Record<string, WindowResult>)
    : { all: { cycle: 'all', score: Number(e.score_after), rank } }; // events from before boards: global/all
  const ranked = Object.values(windows).every((w) => 'rank' in w);
  for (const w of Object.values(windows)) w.rank ??= null;
  const result = {
    userId: e.user_id,
    score: Number(e.score_after),
    rank,
    scoreIncrement: Number(e.delta),
    eventId: Number(e.id),
    boardId: e.board_id,
    windows,
  };
  if (!ranked) unranked.add(result);
  return result;
}

const placeholders = (n: number) => new Array(n).fill('?').join(', ');

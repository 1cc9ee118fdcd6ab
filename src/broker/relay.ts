import type { Logger } from 'pino';
import { rawRows, type Db } from '../platform/db';
import type { EventSink } from './ports';

interface EventRow {
  id: number;
  board_id: string;
  user_id: string;
  delta: number;
  windows_after: string | null;
  score_after: number;
  actor_id: string;
  action_id: string | null;
  created_at: Date;
}

/**
 * The relay's MySQL named lock: whoever holds it is the one relay across every instance of this deployment.
 * Named locks are server-wide, so the name covers the database and the relay target (hashed: at most 64).
 */
const LOCK = "CONCAT('sb-relay-', SHA1(CONCAT(DATABASE(), '/', ?)))";

/**
 * The outbound half of the transactional outbox: `score_events` already holds every committed delta in id
 * order, so the relay publishes them from a watermark kept in MySQL (`event_relay`), with publisher confirms,
 * and advances the watermark only after the broker confirmed. Delivery is at least once (a crash between the
 * confirm and the watermark update publishes those events again) and in id order, so in order per board;
 * consumers deduplicate by event id (the message id).
 *
 * One relay runs at a time across all instances: each instance tries to take a MySQL named lock (GET_LOCK) on
 * a connection of its own and relays only while it holds it. MySQL releases the lock when that connection
 * ends, so when the relaying instance dies another one takes over within `intervalMs`.
 */
export function createRelay(deps: {
  db: Db;
  sink: EventSink;
  name: string;
  intervalMs: number;
  batch: number;
  /** How long a gap in event ids may be an uncommitted transaction before it counts as rolled back. */
  gapTimeoutMs: number;
  logger: Logger;
  onPublished?: (n: number) => void;
}) {
  const { db, logger } = deps;
  let conn: RawConnection | undefined; // holds the lock while we are the relay
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const state = { leader: false, lastEventId: 0, headEventId: 0, lastRoundAt: 0 };
  let waitingAtGap = false;

  async function takeLock(): Promise<boolean> {
    if (conn) return true;
    const c = (await db.client.acquireConnection()) as RawConnection;
    const [row] = (await query(c, `SELECT GET_LOCK(${LOCK}, 0) AS got`, [deps.name])) as Array<{
      got: number | null;
    }>;
    if (row?.got === 1) {
      conn = c;
      logger.info('this instance is now the event relay');
      return true;
    }
    await db.client.releaseConnection(c);
    return false;
  }

  async function dropLock(): Promise<void> {
    const c = conn;
    conn = undefined;
    state.leader = false;
    if (!c) return;
    await query(c, `SELECT RELEASE_LOCK(${LOCK})`, [deps.name]).catch(() => undefined);
    await db.client.releaseConnection(c).catch(() => undefined);
  }

  async function round(): Promise<void> {
    if (!(await takeLock())) {
      state.leader = false;
      return;
    }
    state.leader = true;
    // Still ours? (A connection MySQL dropped has lost the lock, and another instance may hold it now.)
    const [mine] = (await query(conn!, `SELECT IS_USED_LOCK(${LOCK}) = CONNECTION_ID() AS mine`, [
      deps.name,
    ])) as Array<{
      mine: number | null;
    }>;
    if (mine?.mine !== 1) return dropLock();
    await db.raw(
      'INSERT INTO event_relay (name, last_event_id) VALUES (?, 0) ON DUPLICATE KEY UPDATE name = name',
      [deps.name],
    );
    const [{ last_event_id: from }] = await rawRows<{ last_event_id: number }>(
      db,
      'SELECT last_event_id FROM event_relay WHERE name = ?',
      [deps.name],
    );
    const rows = await rawRows<EventRow>(
      db,
      `SELECT id, board_id, user_id, delta, windows_after, score_after, actor_id, action_id, created_at
       FROM score_events WHERE id > ? ORDER BY id LIMIT ?`,
      [from, deps.batch],
    );
    const [{ head, now }] = await rawRows<{ head: number; now: Date }>(
      db,
      'SELECT COALESCE(MAX(id), 0) AS head, UTC_TIMESTAMP(3) AS now FROM score_events',
    );
    state.headEventId = Number(head);
    state.lastEventId = Number(from);
    const ready = contiguous(rows, Number(from), now.getTime(), deps.gapTimeoutMs);
    waitingAtGap = ready.length < rows.length;
    if (ready.length === 0) return;
    await deps.sink.publish(ready.map(toEvent));
    const last = Number(ready[ready.length - 1].id);
    await db.raw('UPDATE event_relay SET last_event_id = ? WHERE name = ? AND last_event_id < ?', [
      last,
      deps.name,
      last,
    ]);
    state.lastEventId = last;
    deps.onPublished?.(ready.length);
  }

  function loop(): void {
    if (stopped) return;
    running = round()
      .catch(async (err) => {
        logger.warn({ err: (err as Error).message }, 'event relay round failed; will retry');
        if (conn && (err as { fatal?: boolean }).fatal) await dropLock();
      })
      .finally(() => {
        state.lastRoundAt = Date.now();
        running = undefined;
        // At once while there is more to publish; a round that stopped at a gap waits the interval.
        const more = state.headEventId > state.lastEventId && !waitingAtGap;
        if (!stopped) timer = setTimeout(loop, more ? 0 : deps.intervalMs);
      });
  }

  return {
    /** Is this instance the relay, the last event the broker confirmed, and the newest committed one. */
    status: () => ({ ...state }),
    start(): void {
      loop();
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
      await dropLock();
    },
  };
}

export type Relay = ReturnType<typeof createRelay>;

/**
 * The events that may be published now: ids are taken at INSERT, not at COMMIT, so with transactions in
 * parallel a later id can be visible while an earlier one is still uncommitted. The relay publishes only up
 * to the first gap, and waits there, until the gap fills or has lasted `gapTimeoutMs` (measured from the
 * insert of the row after it, which came after the missing one's): ids of rolled-back transactions (a
 * deadlock retry, a failed batch) never fill. No transaction of ours stays open that long (statement
 * deadlines and the lock wait timeout bound it), so a gap that old is a rollback, not a late commit.
 */
export function contiguous<T extends { id: number; created_at: Date }>(
  rows: T[],
  from: number,
  nowMs: number,
  gapTimeoutMs: number,
): T[] {
  const out: T[] = [];
  let expected = from + 1;
  for (const r of rows) {
    const id = Number(r.id);
    if (id !== expected && nowMs - r.created_at.getTime() < gapTimeoutMs) break;
    out.push(r);
    expected = id + 1;
  }
  return out;
}

interface RawConnection {
  query(sql: string, values: unknown[], cb: (err: Error | null, rows: unknown) => void): void;
}

const query = (c: RawConnection, sql: string, values: unknown[]) =>
  new Promise<unknown>((resolve, reject) =>
    c.query(sql, values, (err, rows) => (err ? reject(err) : resolve(rows))),
  );

/** A committed score event as published: routing key `score.<boardId>`, message id the event id. */
function toEvent(r: EventRow) {
  const windows = r.windows_after
    ? (JSON.parse(r.windows_after) as Record<string, { cycle: string; score: number }>)
    : { all: { cycle: 'all', score: Number(r.score_after) } };
  return {
    routingKey: `score.${r.board_id}`,
    messageId: String(r.id),
    body: {
      eventId: Number(r.id),
      boardId: r.board_id,
      userId: r.user_id,
      delta: Number(r.delta),
      windows: Object.fromEntries(
        Object.entries(windows).map(([name, w]) => [name, { cycle: w.cycle, score: w.score }]),
      ),
      actorId: r.actor_id,
      actionId: r.action_id,
      committedAt: r.created_at.toISOString(),
    },
  };
}

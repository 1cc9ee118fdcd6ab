import type { Logger } from 'pino';
import { rawRows, type Db } from '../../platform/db';
import { IN_CYCLE_SQL, redisKeys } from '../ranking';
import { ALL_CYCLE, ALL_CYCLE_START, cycleAt, cycleName } from '../boards/cycles';
import { USER_LIVE_ROWS } from '../../users/store';
import type { BoardRegistry } from '../boards/registry';
import { APPLY, LOOKUP } from './mirror-scripts';
import { markRedisFailure, redisReady, type RedisClient } from '../../platform/redis';

/**
 * One user's state in one cycle of a board window, as MySQL committed it. `version` grows with every change of
 * that scores row. `cycleEnd` is when the cycle closes (null for `all`): its keys leave Redis a grace period
 * after.
 */
export interface MirrorEntry {
  board: string;
  window: string;
  cycle: string;
  cycleEnd: Date | null;
  userId: string;
  score: number;
  version: number;
  active: boolean;
  displayName: string;
}

/** Users copied per MySQL page and Redis script call while rebuilding. */
const REBUILD_CHUNK = 5000;

type MirrorRedis = RedisClient & {
  mirrorApply(...keysAndArgs: string[]): Promise<number[]>;
  mirrorLookup(zset: string, names: string, userId: string): Promise<[string, number, string | null] | null>;
};

export interface Standing {
  displayName: string;
  score: number;
  rank: number;
}

export type Lookup = { kind: 'found'; standing: Standing } | { kind: 'absent' } | { kind: 'unknown' };

/** A cycle by name, as the mirror's keys name it. */
export interface CycleName {
  board: string;
  window: string;
  cycle: string;
}

/** A committed total to rank in one cycle: one plus the active users Redis holds strictly above it. */
export interface RankQuery extends CycleName {
  score: number;
}

export function createMirror(deps: {
  db: Db;
  redis: RedisClient;
  prefix: string;
  logger: Logger;
  syncIntervalMs: number;
  syncWindowMs: number;
  /** Which cycles Redis holds (current ones, and closed ones within the grace period) and each window's reset. */
  boards: Pick<BoardRegistry, 'liveCycles' | 'window'>;
  /** How long a closed cycle stays in Redis (MIRROR_CLOSED_CYCLE_GRACE_MS). */
  graceMs: number;
}) {
  const { db, logger, prefix } = deps;
  const redis = deps.redis as MirrorRedis;
  // The script names its keys through ARGV counts: ioredis takes the number of keys as the first argument.
  redis.defineCommand('mirrorApply', { lua: APPLY });
  redis.defineCommand('mirrorLookup', { numberOfKeys: 2, lua: LOOKUP });
  const named = redisKeys(prefix);
  const cycleKeys = (c: CycleName) => named.cycle(c.board, c.window, c.cycle);

  let ready = false; // the mirror is complete: ranks may be answered from it
  let failures = 0; // bumped whenever a mirror write is lost, so the catch-up scan does not skip it
  let failuresAtLastCleanSync = 0; // equal to `failures`: nothing this instance wrote since then was lost
  let syncFrom: Date | null = null; // DB time from which the next catch-up scan must look
  let cleanAt = Date.now(); // when the mirror last completed a clean sync (rebuild or catch-up)
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  /**
   * Writes committed rows into Redis and, in the same script call, ranks committed totals there. Answers
   * the ranks (in query order), `[]` without queries; null when the rows could not be written (catch-up
   * repairs them) or the ranks cannot be trusted (the mirror is not complete yet): ask MySQL then.
   */
  async function applyAndRank(entries: MirrorEntry[], queries: RankQuery[]): Promise<number[] | null> {
    const complete = ready; // ranks count only against a complete mirror
    const ranks = await send(entries, queries);
    return ranks && complete ? ranks : null;
  }

  /** Writes committed rows into Redis; false when they could not be written (catch-up repairs them). */
  const apply = async (entries: MirrorEntry[]) => (await send(entries, [])) !== undefined;

  /** One board's script call: its rows applied, then its queries ranked. */
  async function applyBoard(board: string, entries: MirrorEntry[], queries: RankQuery[]): Promise<number[]> {
    const now = Date.now();
    const cycles = new Map<string, { index: number; keys: string[]; expireAt: number }>();
    const cycleOf = (c: CycleName, expireAt: number) => {
      const k = cycleKeys(c);
      let found = cycles.get(k.scores);
      if (!found)
        cycles.set(k.scores, (found = { index: cycles.size, keys: [k.scores, k.versions], expireAt }));
      found.expireAt = Math.max(found.expireAt, expireAt);
      return found.index;
    };
    const args: string[] = [];
    for (const e of entries) {
      const expireAt = e.cycleEnd ? Math.ceil((e.cycleEnd.getTime() + deps.graceMs) / 1000) : 0;
      if (expireAt > 0 && expireAt * 1000 <= now) continue; // a closed cycle Redis no longer holds
      args.push(
        String(cycleOf(e, expireAt)),
        e.userId,
        String(e.score),
        String(e.version),
        e.active ? '1' : '0',
        e.displayName,
      );
    }
    const entryCount = args.length / 6;
    for (const q of queries) args.push(String(cycleOf(q, 0)), String(q.score));
    if (cycles.size === 0) return [];
    const list = [...cycles.values()];
    const ranks = await redis.mirrorApply(
      String(1 + list.length * 2),
      named.names(board),
      ...list.flatMap((c) => c.keys),
      String(list.length),
      ...list.map((c) => String(c.expireAt)),
      String(entryCount),
      ...args,
    );
    return ranks.map(Number);
  }

  /** The script calls: the ranks, or undefined when one failed (then the rows count as lost). */
  async function send(entries: MirrorEntry[], queries: RankQuery[]): Promise<number[] | undefined> {
    if (entries.length === 0 && queries.length === 0) return [];
    if (!redisReady(redis)) {
      failures++; // the catch-up scan will copy these rows once Redis answers again
      return undefined;
    }
    try {
      // One script call per board (its keys share one hash slot), all issued in one tick: auto-pipelined.
      const boards = new Map<string, { entries: MirrorEntry[]; queries: number[] }>();
      const of = (board: string) => {
        let b = boards.get(board);
        if (!b) boards.set(board, (b = { entries: [], queries: [] }));
        return b;
      };
      for (const e of entries) of(e.board).entries.push(e);
      queries.forEach((q, i) => of(q.board).queries.push(i));
      const ranks: number[] = new Array(queries.length);
      await Promise.all(
        [...boards].map(async ([board, b]) => {
          const got = await applyBoard(
            board,
            b.entries,
            b.queries.map((i) => queries[i]),
          );
          b.queries.forEach((qi, j) => (ranks[qi] = got[j]));
        }),
      );
      return ranks;
    } catch (err) {
      failures++;
      markRedisFailure(redis);
      logger.warn(
        { err: (err as Error).message, users: entries.length },
        'redis mirror write failed; catch-up will repair',
      );
      return undefined;
    }
  }

  /** A row as a mirror entry; its cycle's end from the window's reset (the window is looked up by name). */
  function toEntry(r: MirrorRow): MirrorEntry | undefined {
    const window = deps.boards.window(r.board_id, r.window_name);
    if (!window) return undefined; // a board created on another instance that this one has not loaded yet
    return {
      board: r.board_id,
      window: r.window_name,
      cycle: cycleNameOf(r.cycle_start, window.reset),
      cycleEnd: cycleAt(window.reset, r.cycle_start).end,
      userId: r.user_id,
      score: Number(r.score),
      version: Number(r.version),
      active: r.status === 'active',
      displayName: r.display_name,
    };
  }

  /**
   * A user's standing from Redis. `absent` is an answer: the mirror is complete (built from MySQL and nothing
   * since lost), so a user it does not hold has no score or is banned. `unknown` means Redis cannot answer
   * right now (down, rebuilding, a mirror write lost since the last clean sync): only then ask MySQL.
   */
  async function lookup(cycle: CycleName, userId: string): Promise<Lookup> {
    if (!ready || !redisReady(redis)) return { kind: 'unknown' };
    const complete = failures === failuresAtLastCleanSync;
    try {
      const found = await redis.mirrorLookup(cycleKeys(cycle).scores, named.names(cycle.board), userId);
      if (!found) return complete ? { kind: 'absent' } : { kind: 'unknown' };
      if (found[2] === null) return { kind: 'unknown' };
      return {
        kind: 'found',
        standing: { displayName: found[2], score: Number(found[0]), rank: Number(found[1]) + 1 },
      };
    } catch {
      markRedisFailure(redis);
      return { kind: 'unknown' };
    }
  }

  /**
   * Copies every live cycle's committed rows from MySQL (each window's current cycle, and closed ones within
   * the grace period), cycle by cycle in key order and in chunks, without blocking anyone.
   */
  async function rebuild(): Promise<number> {
    const chunk = REBUILD_CHUNK;
    let total = 0;
    const failuresBefore = failures;
    const [{ now }] = await rawRows<{ now: Date }>(db, 'SELECT UTC_TIMESTAMP(3) AS now');
    for (const live of deps.boards.liveCycles(now, deps.graceMs)) {
      let after = '';
      for (;;) {
        const rows = await rawRows<MirrorRow>(
          db,
          `SELECT ${MIRROR_COLUMNS} FROM board_scores s JOIN users u ON u.id = s.user_id
           WHERE ${IN_CYCLE_SQL} AND s.user_id > ? ORDER BY s.user_id LIMIT ?`,
          [live.board, live.window, live.cycle.start, after, chunk],
        );
        if (rows.length === 0) break;
        if (!(await apply(rows.map((r) => toEntry(r)!)))) throw new Error('redis unavailable during rebuild');
        total += rows.length;
        after = rows[rows.length - 1].user_id;
      }
    }
    if (failures === failuresBefore) {
      await redis.set(named.mirrorReady, new Date().toISOString());
      ready = true;
      failuresAtLastCleanSync = failures;
      cleanAt = Date.now();
    }
    return total;
  }

  /** Applies every row changed since the last clean scan (minus a window for slow commits). */
  async function catchUp(): Promise<number> {
    const failuresBefore = failures;
    const [{ now }] = await rawRows<{ now: Date }>(db, 'SELECT UTC_TIMESTAMP(3) AS now');
    const from = new Date((syncFrom ?? now).getTime() - deps.syncWindowMs);
    let applied = 0;
    let afterTime = from;
    let after: unknown[] = ['', '', new Date(0), ''];
    for (;;) {
      // The scan orders by (updated_at, the primary key), so a page boundary inside one instant resumes exactly.
      const rows = await rawRows<MirrorRow & { updated_at: Date }>(
        db,
        `SELECT ${MIRROR_COLUMNS}, s.updated_at FROM board_scores s JOIN users u ON u.id = s.user_id
         WHERE s.updated_at > ? OR (s.updated_at = ? AND (s.board_id, s.window_name, s.cycle_start, s.user_id) > (?, ?, ?, ?))
         ORDER BY s.updated_at, s.board_id, s.window_name, s.cycle_start, s.user_id LIMIT 5000`,
        [afterTime, afterTime, ...after],
      );
      if (rows.length === 0) break;
      const entries = rows.map(toEntry).filter((e) => e !== undefined);
      if (entries.length < rows.length) failures++; // scan these again once the board is loaded here
      if (!(await apply(entries))) return applied;
      applied += rows.length;
      const last = rows[rows.length - 1];
      afterTime = last.updated_at;
      after = [last.board_id, last.window_name, last.cycle_start, last.user_id];
    }
    if (failures === failuresBefore) {
      syncFrom = now;
      cleanAt = Date.now();
      // Every write lost before this scan started is repaired: the mirror is complete again.
      failuresAtLastCleanSync = failuresBefore;
    }
    return applied;
  }

  /**
   * Copies one user's committed rows in live cycles (`all`, and cycles from `since`) after a ban, unban or
   * rename committed; the rows' bumped versions order this against concurrent score writes.
   */
  async function syncUser(userId: string, since: Date): Promise<boolean> {
    const rows = await rawRows<MirrorRow>(
      db,
      `SELECT ${MIRROR_COLUMNS} FROM board_scores s JOIN users u ON u.id = s.user_id
       WHERE s.${USER_LIVE_ROWS.replace(/cycle_start/g, 's.cycle_start')}`,
      [userId, ALL_CYCLE_START, since],
    );
    return apply(rows.map(toEntry).filter((e) => e !== undefined));
  }

  /** One pass of the self-healing loop: rebuild when the mirror was flushed or never built, else catch up. */
  async function sync(): Promise<void> {
    if (!redisReady(redis)) {
      ready = false;
      return;
    }
    const present = await redis.exists(named.mirrorReady);
    if (!present || !ready) {
      ready = false;
      const started = Date.now();
      const n = await rebuild();
      logger.info({ users: n, ms: Date.now() - started }, 'redis mirror rebuilt from MySQL');
      return;
    }
    await catchUp();
  }

  function syncOnce(): Promise<void> {
    running ??= sync()
      .catch((err) => logger.warn({ err: (err as Error).message }, 'mirror sync failed; will retry'))
      .finally(() => (running = undefined));
    return running;
  }

  return {
    apply,
    applyAndRank,
    syncUser,
    lookup,
    rebuild,
    syncOnce,
    isReady: () => ready && redisReady(redis),
    /** Milliseconds since the last clean sync: how far behind MySQL the mirror may be, at most. */
    syncAge: () => Date.now() - cleanAt,
    start() {
      redis.on('ready', () => void syncOnce());
      void syncOnce();
      timer = setInterval(() => void syncOnce(), deps.syncIntervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

export type Mirror = ReturnType<typeof createMirror>;

const MIRROR_COLUMNS =
  's.board_id, s.window_name, s.cycle_start, s.user_id, s.score, s.version, u.status, u.display_name';

interface MirrorRow {
  board_id: string;
  window_name: string;
  cycle_start: Date;
  user_id: string;
  score: number;
  version: number;
  status: string;
  display_name: string;
}

/** The name of the cycle a row belongs to: `all` for a window that never resets, else its start. */
const cycleNameOf = (start: Date, reset: string | null) => (reset === null ? ALL_CYCLE : cycleName(start));

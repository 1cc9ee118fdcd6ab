import type { Logger } from 'pino';
import { rawRows, type Db } from '../../platform/db';
import { competitionRanks, IN_CYCLE_SQL, rankOrderSql, redisKeys } from '../ranking';
import { ALL_CYCLE, cycleAt, type Cycle } from '../boards/cycles';
import { markRedisFailure, redisReady, type RedisClient } from '../../platform/redis';
import { etagFor } from '../../http/etag';

export interface ScoreboardEntry {
  rank: number;
  userId: string;
  displayName: string;
  score: number;
}

/**
 * A board window's top N as every client sees it: the exact bytes of the /top body and its ETag, for one
 * cycle. Snapshots are ordered by (cycle start, maxEventId, readAtUs): a later cycle is always newer; within a
 * cycle, a later read (readAtUs is the database clock) sees every commit an earlier one saw, so
 * (maxEventId, readAtUs) never decreases, and a snapshot that is not newer is never adopted.
 */
export interface Snapshot {
  cycle: string;
  cycleStartMs: number;
  body: Buffer;
  etag: string;
  maxEventId: number;
  readAtUs: number;
}

interface SharedSnapshot extends Omit<Snapshot, 'body'> {
  board: string;
  window: string;
  body: string;
}

/**
 * The version of a cycle's top N. `all` keeps the content hash it always had (so /scores/top is unchanged);
 * a resetting window's includes the cycle, so a rollover to an empty top is a new version even when the last
 * cycle's top was empty too.
 */
export const snapshotEtag = (cycle: string, body: Buffer) =>
  cycle === ALL_CYCLE ? etagFor(body) : etagFor(Buffer.concat([Buffer.from(`${cycle}\n`), body]));

// Stores the snapshot and announces it on the board's channel only if it is newer than the stored one. The
// channel is KEYS[2], in the board's slot like KEYS[1]: a shard channel hashes like a key (ARGV[5] is
// SPUBLISH for sharded pub/sub, else PUBLISH).
const PUBLISH_IF_NEWER = `
local held = redis.call('GET', KEYS[1])
if held then
  local h = cjson.decode(held)
  local c, id, at = tonumber(ARGV[4]), tonumber(ARGV[2]), tonumber(ARGV[3])
  local hc = h.cycleStartMs or 0
  if hc > c or (hc == c and (h.maxEventId > id or (h.maxEventId == id and h.readAtUs >= at))) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call(ARGV[5], KEYS[2], ARGV[1])
return 1`;

type SnapshotRedis = RedisClient & {
  snapshotPublish(key: string, channel: string, ...args: string[]): Promise<number>;
};

/** A committed change of one user's total in a board window (what the snapshot needs of a mirror entry). */
export interface ChangeHint {
  userId: string;
  score: number;
  active: boolean;
  cycle: string;
}

/** The longest a commit judged unable to change the top N waits for a rebuild anyway. */
const SAFETY_REBUILD_MS = 1000;

type Order = Pick<Snapshot, 'cycleStartMs' | 'maxEventId' | 'readAtUs'>;
export const isNewer = (a: Order, b: Order) =>
  a.cycleStartMs > b.cycleStartMs ||
  (a.cycleStartMs === b.cycleStartMs &&
    (a.maxEventId > b.maxEventId || (a.maxEventId === b.maxEventId && a.readAtUs > b.readAtUs)));

/** The top N of one cycle from the ranking index, in one statement so the content and its version agree. */
export async function readSnapshot(
  db: Db,
  size: number,
  at: { board: string; window: string; cycle: Cycle },
): Promise<Snapshot> {
  const rows = await rawRows<{
    max_id: number;
    now_us: number;
    user_id: string | null;
    display_name: string;
    score: number;
  }>(
    db,
    `SELECT m.max_id, m.now_us, t.user_id, t.display_name, t.score
     FROM (SELECT COALESCE(MAX(id), 0) AS max_id,
                  CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(6)) * 1000000 AS UNSIGNED) AS now_us
           FROM score_events) m
     LEFT JOIN (SELECT s.user_id, u.display_name, s.score, s.reached_at
                FROM board_scores s JOIN users u ON u.id = s.user_id
                WHERE ${IN_CYCLE_SQL} AND u.status = 'active'
                ORDER BY ${rankOrderSql('s')} LIMIT ?) t ON 1 = 1
     ORDER BY ${rankOrderSql('t')}`,
    [at.board, at.window, at.cycle.start, size],
  );
  const ranked = rows.filter((r) => r.user_id !== null);
  const ranks = competitionRanks(ranked.map((r) => Number(r.score)));
  const entries: ScoreboardEntry[] = ranked.map((r, i) => ({
    rank: ranks[i],
    userId: r.user_id!,
    displayName: r.display_name,
    score: Number(r.score),
  }));
  const body = Buffer.from(JSON.stringify(entries));
  return {
    cycle: at.cycle.name,
    cycleStartMs: at.cycle.start.getTime(),
    body,
    etag: snapshotEtag(at.cycle.name, body),
    maxEventId: Number(rows[0].max_id),
    readAtUs: Number(rows[0].now_us),
  };
}

/** A new cycle's top before anything was read of it: empty, older than any real read of that cycle. */
export function emptySnapshot(cycle: Cycle): Snapshot {
  const body = Buffer.from('[]');
  return {
    cycle: cycle.name,
    cycleStartMs: cycle.start.getTime(),
    body,
    etag: snapshotEtag(cycle.name, body),
    maxEventId: -1,
    readAtUs: 0,
  };
}

/**
 * Keeps this instance's snapshot of one board window current. After local writes it is rebuilt at most once
 * per tick, and shared through Redis (a key plus a notice on the one snapshot channel, which the board
 * windows registry listens to) so every instance adopts a change within one tick. While Redis is unreachable
 * each instance instead asks MySQL once per tick whether anything changed. When this instance's clock passes
 * the window's next reset it switches to the new cycle at once: an empty top, then what MySQL holds for it.
 */
export function createSnapshotEngine(deps: {
  db: Db;
  redis: RedisClient;
  prefix: string;
  board: string;
  window: string;
  /** The window's reset (null for `all`). */
  reset: string | null;
  size: number;
  tickMs: number;
  logger: Logger;
  /** Whether changes are being announced to this instance (the registry's subscription is up). */
  listening: () => boolean;
  /** Whether the board's channel is a shard channel; undefined while not known (nothing is shared then). */
  sharded: () => boolean | undefined;
  /** Told of every adopted snapshot with new content (metrics). */
  onChanged?: (s: Snapshot) => void;
  /** Told when this instance's snapshot became the shared one (once per version across instances). */
  onShared?: (s: Snapshot) => void;
}) {
  const { db, logger, board, window } = deps;
  const redis = deps.redis as SnapshotRedis;
  redis.defineCommand('snapshotPublish', { numberOfKeys: 2, lua: PUBLISH_IF_NEWER });
  const keys = redisKeys(deps.prefix);
  const key = keys.snapshotOf(board, window);
  let cycle = cycleAt(deps.reset, new Date());
  let current: Snapshot = emptySnapshot(cycle);
  let built = false; // a snapshot was read or adopted at least once: `current` is an answer
  let adoptedAt = Date.now();
  let dirty = true;
  let lastSeen = { maxId: -1, usersAt: '' };
  let building: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let soon: NodeJS.Timeout | undefined; // a rebuild deferred to the end of the current tick
  let lastBuildAt = 0;
  const listeners = new Set<(s: Snapshot) => void>();
  // What the current top N holds, to tell which commits cannot change it (see markChanged).
  let top = { users: new Set<string>(), floor: 0, full: false };
  let skippedAt = 0; // when a commit was judged unable to change the top N (0: none since the last rebuild)
  // This instance's snapshot is newer than what it could store in Redis (changedHere: its content is new).
  let unshared: { snapshot: Snapshot; changedHere: boolean } | undefined;

  function learnTop(s: Snapshot): void {
    try {
      const entries = JSON.parse(s.body.toString()) as Array<{ userId: string; score: number }>;
      top = {
        users: new Set(entries.map((e) => e.userId)),
        floor: entries.length ? entries[entries.length - 1].score : 0,
        full: entries.length >= deps.size,
      };
    } catch {
      top = { users: new Set(), floor: 0, full: false }; // unreadable: every commit counts
    }
  }

  /** Adopts a snapshot only if it is newer; tells listeners only when the content changed. */
  function offer(next: Snapshot): boolean {
    if (!isNewer(next, current)) return false;
    if (next.cycleStartMs > cycle.start.getTime()) cycle = cycleAt(deps.reset, new Date(next.cycleStartMs));
    // The first snapshot is news even when its content equals the placeholder's: transports waiting for a
    // board window's first snapshot send it on this change.
    const changed = !built || next.etag !== current.etag;
    current = next;
    built = true;
    if (changed) learnTop(current);
    adoptedAt = Date.now();
    if (changed) {
      deps.onChanged?.(current);
      for (const l of listeners) l(current);
    }
    return true;
  }

  function offerShared(s: SharedSnapshot): void {
    if (offer({ ...s, body: Buffer.from(s.body) })) unshared = undefined; // a newer one is shared already
  }

  /** This instance's clock passed the reset: the new cycle starts empty, and is read from MySQL next tick. */
  function rollOver(): void {
    const now = cycleAt(deps.reset, new Date());
    if (now.start.getTime() <= cycle.start.getTime()) return;
    cycle = now;
    unshared = undefined; // the last cycle's top is history; the new cycle's first read is shared
    if (built) offer(emptySnapshot(now));
    dirty = true;
  }

  async function rebuild(): Promise<void> {
    const next = await readSnapshot(db, deps.size, { board, window, cycle });
    const before = current.etag;
    if (!offer(next)) return;
    unshared = { snapshot: next, changedHere: next.etag !== before || unshared?.changedHere === true };
    await share();
  }

  /**
   * Stores and announces in Redis the last snapshot this instance read from MySQL (only what it read: a
   * snapshot adopted from elsewhere is shared already). While Redis is unreachable, or the pub/sub mode is not
   * known yet, it waits, and goes out on the first tick that can send it: other instances listen for
   * announcements rather than ask MySQL, so a snapshot built during a blip and never shared would leave them
   * on the older one until the next commit.
   */
  async function share(): Promise<void> {
    const sharded = deps.sharded();
    if (!unshared || !redisReady(redis) || sharded === undefined) return;
    const { snapshot: next, changedHere } = unshared;
    const shared: SharedSnapshot = { ...next, board, window, body: next.body.toString() };
    try {
      const published = await redis.snapshotPublish(
        key,
        keys.boardChannel(board),
        JSON.stringify(shared),
        String(next.maxEventId),
        String(next.readAtUs),
        String(next.cycleStartMs),
        sharded ? 'SPUBLISH' : 'PUBLISH',
      );
      if (unshared?.snapshot === next) unshared = undefined;
      if (published === 1 && changedHere) deps.onShared?.(next);
    } catch (err) {
      markRedisFailure(redis);
      logger.warn(
        { err: (err as Error).message, board, window },
        'could not share the snapshot through redis',
      );
    }
  }

  /** While Redis is down nobody announces changes: look for new events (or user changes) in MySQL. */
  async function changedInDatabase(): Promise<boolean> {
    const [row] = await rawRows<{ max_id: number; users_at: Date | null }>(
      db,
      `SELECT (SELECT COALESCE(MAX(id), 0) FROM score_events) AS max_id, (SELECT MAX(updated_at) FROM users) AS users_at`,
    );
    const seen = { maxId: Number(row.max_id), usersAt: row.users_at ? row.users_at.toISOString() : '' };
    const changed = seen.maxId !== lastSeen.maxId || seen.usersAt !== lastSeen.usersAt;
    lastSeen = seen;
    return changed;
  }

  async function tick(): Promise<void> {
    if (cycle.end && Date.now() >= cycle.end.getTime()) rollOver();
    // Commits judged unable to change the top N still get a rebuild within SAFETY_REBUILD_MS: the judgement
    // used this instance's snapshot, which a concurrent change elsewhere (a correction, a ban) may have
    // made outdated.
    if (skippedAt && Date.now() - skippedAt >= SAFETY_REBUILD_MS) dirty = true;
    if (unshared && !dirty) await share();
    const sharing = deps.listening() && redisReady(redis);
    if (!dirty && sharing) return;
    if (!dirty && !(await changedInDatabase())) return;
    const wait = lastBuildAt + deps.tickMs - Date.now();
    if (wait > 0) {
      // At most one rebuild per tick: come back when this tick is over.
      dirty = true;
      soon ??= setTimeout(() => ((soon = undefined), runTick()), wait).unref();
      return;
    }
    dirty = false;
    skippedAt = 0;
    lastBuildAt = Date.now();
    await rebuild();
  }

  function runTick(): void {
    if (building) return;
    building = tick()
      .catch((err) => {
        dirty = true; // try again next tick
        logger.warn(
          { err: (err as Error).message, board, window },
          'snapshot rebuild failed; serving the last one',
        );
      })
      .finally(() => {
        building = undefined;
        // A commit arrived while building: rebuild (or defer to the tick's end). Not when a deferred rebuild is
        // already set: a deferring tick leaves `dirty` set, and re-running it at once spun the event loop in
        // microtasks until the tick ended (found by the soak; test/attacks.test.ts holds it).
        if (dirty && !soon) runTick();
      });
  }

  /**
   * A local commit (or user change) happened. Rebuild right away when the last rebuild is a tick old (low
   * latency when writes are rare); otherwise at the end of the current tick, so there is still at most one.
   */
  function markDirty(): void {
    dirty = true;
    if (!building) runTick();
  }

  let started: Promise<void> | undefined;
  return {
    board,
    window,
    current: () => current,
    /** False until a first snapshot was read or adopted (MySQL and Redis down since this engine started). */
    hasData: () => built,
    /** Milliseconds since this instance adopted its current snapshot. */
    age: () => Date.now() - adoptedAt,
    /** How many transports follow this board window here (the registry keeps it while any do). */
    listeners: () => listeners.size,
    markDirty,
    /**
     * Commits to this board window, each a user's new total. Most cannot change the top N: a user outside
     * it whose total is still at or below its last entry's (a later reach loses the tie), or who is banned.
     * Those do not rebuild the snapshot now (under write load most commits are such, and each rebuild is a
     * MySQL query per board window per tick); any other does, as does any commit while a rebuild runs.
     */
    markChanged(changes: ChangeHint[]): void {
      const relevant =
        !built ||
        building !== undefined ||
        changes.some(
          (c) =>
            c.cycle !== current.cycle ||
            top.users.has(c.userId) ||
            (c.active && (!top.full || c.score > top.floor)),
        );
      if (relevant) markDirty();
      else skippedAt ||= Date.now();
    },
    onChange(listener: (s: Snapshot) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    offer,
    offerShared,
    rebuild,
    /** After a Redis outage, changes may have gone unannounced: adopt the shared one and rebuild once. */
    resync(): void {
      dirty = true;
      redis.get(key).then(
        (json) => json && offerShared(JSON.parse(json) as SharedSnapshot),
        () => {},
      );
    },
    /** Reads the first snapshot (the shared one, then MySQL) and starts the tick; resolves when it has one. */
    start(): Promise<void> {
      started ??= (async () => {
        try {
          const shared = redisReady(redis) ? await redis.get(key) : null;
          if (shared) offerShared(JSON.parse(shared) as SharedSnapshot);
        } catch {
          // fall through to MySQL
        }
        dirty = true;
        await tick().catch((err) =>
          logger.warn({ err: (err as Error).message, board, window }, 'initial snapshot failed; will retry'),
        );
        timer = setInterval(runTick, deps.tickMs);
        timer.unref();
      })();
      return started;
    },
    async stop(): Promise<void> {
      clearInterval(timer);
      clearTimeout(soon);
      await building;
      listeners.clear();
    },
  };
}

export type SnapshotEngine = ReturnType<typeof createSnapshotEngine>;
export type { SharedSnapshot };

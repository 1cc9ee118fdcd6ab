import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { rawRows, type Db } from '../../platform/db';
import { competitionRanks, rankOrderSql, redisKeys } from '../ranking';
import { markRedisFailure, redisReady } from '../../platform/redis';
import { etagFor } from '../../http/etag';

export interface ScoreboardEntry {
  rank: number;
  userId: string;
  displayName: string;
  score: number;
}

/**
 * The top N as every client sees it: the exact bytes of the /top body and its ETag. `maxEventId` and
 * `readAtUs` (the database clock when it was read) order snapshots: a later read sees every commit an earlier
 * one saw, so (maxEventId, readAtUs) never decreases, and a snapshot that is not newer is never adopted.
 */
export interface Snapshot {
  body: Buffer;
  etag: string;
  maxEventId: number;
  readAtUs: number;
}

interface SharedSnapshot {
  body: string;
  etag: string;
  maxEventId: number;
  readAtUs: number;
}

// Stores the snapshot and announces it only if it is newer than the stored one.
const PUBLISH_IF_NEWER = `
local held = redis.call('GET', KEYS[1])
if held then
  local h = cjson.decode(held)
  local id, at = tonumber(ARGV[2]), tonumber(ARGV[3])
  if h.maxEventId > id or (h.maxEventId == id and h.readAtUs >= at) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1`;

type SnapshotRedis = Redis & {
  snapshotPublish(key: string, channel: string, ...args: string[]): Promise<number>;
};

export const isNewer = (
  a: Pick<Snapshot, 'maxEventId' | 'readAtUs'>,
  b: Pick<Snapshot, 'maxEventId' | 'readAtUs'>,
) => a.maxEventId > b.maxEventId || (a.maxEventId === b.maxEventId && a.readAtUs > b.readAtUs);

/** Builds the top N from the ranking index, in one statement so the content and its version agree. */
export async function readSnapshot(db: Db, size: number): Promise<Snapshot> {
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
                FROM scores s JOIN users u ON u.id = s.user_id
                WHERE u.status = 'active'
                ORDER BY ${rankOrderSql('s')} LIMIT ?) t ON 1 = 1
     ORDER BY ${rankOrderSql('t')}`,
    [size],
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
  return { body, etag: etagFor(body), maxEventId: Number(rows[0].max_id), readAtUs: Number(rows[0].now_us) };
}

/**
 * Keeps this instance's snapshot current. After local writes it is rebuilt at most once per tick, and shared
 * through Redis (a key plus a pub/sub notice) so every instance adopts a change within one tick. While Redis
 * is unreachable each instance instead asks MySQL once per tick whether anything changed.
 */
export function createSnapshotEngine(deps: {
  db: Db;
  redis: Redis;
  /** A dedicated connection: a subscribed Redis client can do nothing else. */
  subscriber: Redis;
  prefix: string;
  size: number;
  tickMs: number;
  logger: Logger;
}) {
  const { db, logger } = deps;
  const redis = deps.redis as SnapshotRedis;
  redis.defineCommand('snapshotPublish', { numberOfKeys: 2, lua: PUBLISH_IF_NEWER });
  const { snapshot: key, snapshotChannel: channel } = redisKeys(deps.prefix);
  const empty = Buffer.from('[]');
  let current: Snapshot = { body: empty, etag: etagFor(empty), maxEventId: -1, readAtUs: 0 };
  let adoptedAt = Date.now();
  let dirty = true;
  let subscribed = false; // while false, nobody can tell us about changes: ask MySQL each tick
  let lastSeen = { maxId: -1, usersAt: '' };
  let building: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let soon: NodeJS.Timeout | undefined; // a rebuild deferred to the end of the current tick
  let lastBuildAt = 0;
  const listeners = new Set<(s: Snapshot) => void>();

  /** Adopts a snapshot only if it is newer; tells listeners only when the content changed. */
  function offer(next: Snapshot): boolean {
    if (!isNewer(next, current)) return false;
    const changed = next.etag !== current.etag;
    current = next;
    adoptedAt = Date.now();
    if (changed) for (const l of listeners) l(current);
    return true;
  }

  function offerShared(json: string): void {
    try {
      const s = JSON.parse(json) as SharedSnapshot;
      offer({ body: Buffer.from(s.body), etag: s.etag, maxEventId: s.maxEventId, readAtUs: s.readAtUs });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'ignoring an unreadable shared snapshot');
    }
  }

  async function rebuild(): Promise<void> {
    const next = await readSnapshot(db, deps.size);
    if (!offer(next) || !redisReady(redis)) return;
    const shared: SharedSnapshot = { ...next, body: next.body.toString() };
    try {
      await redis.snapshotPublish(
        key,
        channel,
        JSON.stringify(shared),
        String(next.maxEventId),
        String(next.readAtUs),
      );
    } catch (err) {
      markRedisFailure(redis);
      logger.warn({ err: (err as Error).message }, 'could not share the snapshot through redis');
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
    const sharing = subscribed && redisReady(redis) && redisReady(deps.subscriber);
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
    lastBuildAt = Date.now();
    await rebuild();
  }

  function runTick(): void {
    if (building) return;
    building = tick()
      .catch((err) => {
        dirty = true; // try again next tick
        logger.warn({ err: (err as Error).message }, 'snapshot rebuild failed; serving the last one');
      })
      .finally(() => {
        building = undefined;
        // A commit arrived while building: rebuild (or defer to the tick's end). Not when a deferred rebuild is
        // already set: a deferring tick leaves `dirty` set, and re-running it at once spun the event loop in
        // microtasks until the tick ended (found by the soak; test/attacks.test.ts holds it).
        if (dirty && !soon) runTick();
      });
  }

  return {
    current: () => current,
    /** Milliseconds since this instance adopted its current snapshot. */
    age: () => Date.now() - adoptedAt,
    /**
     * A local commit happened. Rebuild right away when the last rebuild is a tick old (low latency when
     * writes are rare); otherwise at the end of the current tick, so there is still at most one per tick.
     */
    markDirty() {
      dirty = true;
      if (!building) runTick();
    },
    onChange(listener: (s: Snapshot) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    offer,
    rebuild,
    async start(): Promise<void> {
      deps.subscriber.on('message', (ch: string, msg: string) => ch === channel && offerShared(msg));
      // (Re)subscribe on every connect: with no offline queue a subscribe sent while connecting is lost.
      // After an outage, changes may have gone unannounced: adopt the shared one and rebuild once.
      const onReady = () => {
        deps.subscriber
          .subscribe(channel)
          .then(() => (subscribed = true))
          .catch((err) => logger.warn({ err: err.message }, 'subscribe failed'));
        dirty = true;
        redis.get(key).then(
          (s) => s && offerShared(s),
          () => {},
        );
      };
      deps.subscriber.on('ready', onReady);
      deps.subscriber.on('close', () => (subscribed = false));
      if (redisReady(deps.subscriber)) onReady();
      try {
        const shared = redisReady(redis) ? await redis.get(key) : null;
        if (shared) offerShared(shared);
      } catch {
        // fall through to MySQL
      }
      dirty = true;
      await tick().catch((err) =>
        logger.warn({ err: (err as Error).message }, 'initial snapshot failed; will retry'),
      );
      timer = setInterval(runTick, deps.tickMs);
      timer.unref();
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

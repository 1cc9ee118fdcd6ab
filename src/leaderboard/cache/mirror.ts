import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { rawRows, type Db } from '../../platform/db';
import { redisKeys } from '../ranking';
import { APPLY, LOOKUP, RANKS } from './mirror-scripts';
import { markRedisFailure, redisReady } from '../../platform/redis';

/** One user's state as MySQL committed it. `version` grows with every change of the user's scores row. */
export interface MirrorEntry {
  userId: string;
  score: number;
  version: number;
  active: boolean;
  displayName: string;
}

/** Users copied per MySQL page and Redis script call while rebuilding. */
const REBUILD_CHUNK = 5000;

type MirrorRedis = Redis & {
  mirrorApply(zset: string, versions: string, names: string, ...args: string[]): Promise<number>;
  mirrorRanks(zset: string, ...args: string[]): Promise<number[]>;
  mirrorLookup(zset: string, names: string, userId: string): Promise<[string, number, string | null] | null>;
};

export interface Standing {
  displayName: string;
  score: number;
  rank: number;
}

export type Lookup = { kind: 'found'; standing: Standing } | { kind: 'absent' } | { kind: 'unknown' };

export interface RankQuery {
  userId: string;
  score: number;
}

export function createMirror(deps: {
  db: Db;
  redis: Redis;
  prefix: string;
  logger: Logger;
  syncIntervalMs: number;
  syncWindowMs: number;
}) {
  const { db, logger, prefix } = deps;
  const redis = deps.redis as MirrorRedis;
  redis.defineCommand('mirrorApply', { numberOfKeys: 3, lua: APPLY });
  redis.defineCommand('mirrorRanks', { numberOfKeys: 1, lua: RANKS });
  redis.defineCommand('mirrorLookup', { numberOfKeys: 2, lua: LOOKUP });
  const named = redisKeys(prefix);
  const keys = { zset: named.scores, versions: named.versions, names: named.names, ready: named.mirrorReady };

  let ready = false; // the mirror is complete: ranks may be answered from it
  let failures = 0; // bumped whenever a mirror write is lost, so the catch-up scan does not skip it
  let failuresAtLastCleanSync = 0; // equal to `failures`: nothing this instance wrote since then was lost
  let syncFrom: Date | null = null; // DB time from which the next catch-up scan must look
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function apply(entries: MirrorEntry[]): Promise<boolean> {
    if (entries.length === 0) return true;
    if (!redisReady(redis)) {
      failures++; // the catch-up scan will copy these rows once Redis answers again
      return false;
    }
    try {
      const args = entries.flatMap((e) => [
        e.userId,
        String(e.score),
        String(e.version),
        e.active ? '1' : '0',
        e.displayName,
      ]);
      await redis.mirrorApply(keys.zset, keys.versions, keys.names, ...args);
      return true;
    } catch (err) {
      failures++;
      markRedisFailure(redis);
      logger.warn(
        { err: (err as Error).message, users: entries.length },
        'redis mirror write failed; catch-up will repair',
      );
      return false;
    }
  }

  /** Competition ranks from Redis, or null when the mirror cannot be trusted right now. */
  async function ranks(queries: RankQuery[], pending: MirrorEntry[]): Promise<number[] | null> {
    if (!ready || !redisReady(redis) || queries.length === 0) return null;
    try {
      const args = [String(pending.length)];
      for (const p of pending) args.push(p.userId, String(p.score), p.active ? '1' : '0');
      for (const q of queries) args.push(q.userId, String(q.score));
      return (await redis.mirrorRanks(keys.zset, ...args)).map(Number);
    } catch {
      markRedisFailure(redis);
      return null;
    }
  }

  /**
   * A user's standing from Redis. `absent` is an answer: the mirror is complete (built from MySQL and nothing
   * since lost), so a user it does not hold has no score or is banned. `unknown` means Redis cannot answer
   * right now (down, rebuilding, a mirror write lost since the last clean sync): only then ask MySQL.
   */
  async function lookup(userId: string): Promise<Lookup> {
    if (!ready || !redisReady(redis)) return { kind: 'unknown' };
    const complete = failures === failuresAtLastCleanSync;
    try {
      const found = await redis.mirrorLookup(keys.zset, keys.names, userId);
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

  /** Copies every user's committed state from MySQL, in key order and in chunks, without blocking anyone. */
  async function rebuild(): Promise<number> {
    const chunk = REBUILD_CHUNK;
    let after = '';
    let total = 0;
    const failuresBefore = failures;
    for (;;) {
      const rows = await rawRows<MirrorRow>(
        db,
        `SELECT s.user_id, s.score, s.version, u.status, u.display_name FROM scores s JOIN users u ON u.id = s.user_id
         WHERE s.user_id > ? ORDER BY s.user_id LIMIT ?`,
        [after, chunk],
      );
      if (rows.length === 0) break;
      if (!(await apply(rows.map(toEntry)))) throw new Error('redis unavailable during rebuild');
      total += rows.length;
      after = rows[rows.length - 1].user_id;
    }
    if (failures === failuresBefore) {
      await redis.set(keys.ready, new Date().toISOString());
      ready = true;
      failuresAtLastCleanSync = failures;
    }
    return total;
  }

  /** Applies every row changed since the last clean scan (minus a window for slow commits). */
  async function catchUp(): Promise<number> {
    const failuresBefore = failures;
    const [{ now }] = await rawRows<{ now: Date }>(db, 'SELECT CURRENT_TIMESTAMP(3) AS now');
    const from = new Date((syncFrom ?? now).getTime() - deps.syncWindowMs);
    let applied = 0;
    let afterTime = from;
    let afterUser = '';
    for (;;) {
      const rows = await rawRows<MirrorRow & { updated_at: Date }>(
        db,
        `SELECT s.user_id, s.score, s.version, u.status, u.display_name, s.updated_at FROM scores s JOIN users u ON u.id = s.user_id
         WHERE (s.updated_at > ? OR (s.updated_at = ? AND s.user_id > ?))
         ORDER BY s.updated_at, s.user_id LIMIT 5000`,
        [afterTime, afterTime, afterUser],
      );
      if (rows.length === 0) break;
      if (!(await apply(rows.map(toEntry)))) return applied;
      applied += rows.length;
      afterTime = rows[rows.length - 1].updated_at;
      afterUser = rows[rows.length - 1].user_id;
    }
    if (failures === failuresBefore) {
      syncFrom = now;
      // Every write lost before this scan started is repaired: the mirror is complete again.
      failuresAtLastCleanSync = failuresBefore;
    }
    return applied;
  }

  /** One pass of the self-healing loop: rebuild when the mirror was flushed or never built, else catch up. */
  async function sync(): Promise<void> {
    if (!redisReady(redis)) {
      ready = false;
      return;
    }
    const present = await redis.exists(keys.ready);
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
    ranks,
    lookup,
    rebuild,
    syncOnce,
    isReady: () => ready && redisReady(redis),
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

interface MirrorRow {
  user_id: string;
  score: number;
  version: number;
  status: string;
  display_name: string;
}

function toEntry(r: MirrorRow): MirrorEntry {
  return {
    userId: r.user_id,
    score: Number(r.score),
    version: Number(r.version),
    active: r.status === 'active',
    displayName: r.display_name,
  };
}

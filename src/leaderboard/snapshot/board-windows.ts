import type { Logger } from 'pino';
import type { Db } from '../../platform/db';
import { redisReady, type RedisClient } from '../../platform/redis';
import { redisKeys } from '../ranking';
import type { BoardRegistry } from '../boards/registry';
import {
  createSnapshotEngine,
  type ChangeHint,
  type SharedSnapshot,
  type Snapshot,
  type SnapshotEngine,
} from './engine';

/** Where a poll or a push transport finds the live snapshot of a board window. */
export interface BoardWindowFeed {
  board: string;
  window: string;
  snapshot: SnapshotEngine;
}

const key = (board: string, window: string) => `${board}/${window}`;

/**
 * On the snapshot channel beside shared snapshots: commits to these windows of a board (per window: user,
 * new total, active, cycle), for the instances that hold them to judge whether to rebuild.
 */
interface DirtyNotice {
  dirty: string;
  windows: Array<{ w: string; c: Array<[string, number, boolean, string]> }>;
}

/**
 * The live snapshots of the board windows this instance serves. A board window gets its snapshot engine on
 * first read and keeps it while it is polled or followed by a stream; one that nobody read for `idleMs` is
 * dropped, so a thousand boards cost nothing until they are read. `global`/`all` is always kept. One Redis
 * subscription carries every board window's announcements; each goes to its engine, if this instance has one.
 */
export function createBoardWindows(deps: {
  db: Db;
  redis: RedisClient;
  /** A dedicated connection: a subscribed Redis client can do nothing else. */
  subscriber: RedisClient;
  boards: Pick<BoardRegistry, 'window'>;
  prefix: string;
  size: number;
  tickMs: number;
  idleMs: number;
  logger: Logger;
  /** Told of every snapshot with new content that any board window here adopts. */
  onChanged?: (feed: { board: string; window: string }, s: Snapshot) => void;
  /** Told when a snapshot this instance built became the shared one (once per version across instances). */
  onShared?: (feed: { board: string; window: string }, s: Snapshot) => void;
}) {
  const { logger } = deps;
  const channel = redisKeys(deps.prefix).snapshotChannel;
  const live = new Map<string, { feed: BoardWindowFeed; usedAt: number }>();
  let subscribed = false; // while false, nobody can tell us about changes: each engine asks MySQL each tick
  let sweeper: NodeJS.Timeout | undefined;
  const listening = () => subscribed && redisReady(deps.subscriber);

  function open(board: string, window: string): BoardWindowFeed | undefined {
    const k = key(board, window);
    const held = live.get(k);
    if (held) {
      held.usedAt = Date.now();
      return held.feed;
    }
    const w = deps.boards.window(board, window);
    if (!w) return undefined;
    const snapshot = createSnapshotEngine({
      db: deps.db,
      redis: deps.redis,
      prefix: deps.prefix,
      board,
      window,
      reset: w.reset,
      size: deps.size,
      tickMs: deps.tickMs,
      logger,
      listening,
      onChanged: (s) => deps.onChanged?.({ board, window }, s),
      onShared: (s) => deps.onShared?.({ board, window }, s),
    });
    const feed = { board, window, snapshot };
    live.set(k, { feed, usedAt: Date.now() });
    void snapshot.start();
    return feed;
  }

  function onMessage(ch: string, message: string): void {
    if (ch !== channel) return;
    try {
      const s = JSON.parse(message) as SharedSnapshot | DirtyNotice;
      if ('dirty' in s) {
        for (const { w, c } of s.windows)
          live
            .get(key(s.dirty, w))
            ?.feed.snapshot.markChanged(
              c.map(([userId, score, active, cycle]) => ({ userId, score, active, cycle })),
            );
        return;
      }
      live.get(key(s.board ?? 'global', s.window ?? 'all'))?.feed.snapshot.offerShared(s);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'ignoring an unreadable shared snapshot');
    }
  }

  function sweep(): void {
    const cutoff = Date.now() - deps.idleMs;
    for (const [k, { feed, usedAt }] of live) {
      if (k === key('global', 'all') || feed.snapshot.listeners() > 0 || usedAt > cutoff) continue;
      live.delete(k);
      void feed.snapshot.stop();
    }
  }

  return {
    /** The feed of a board window (its engine started on first use), or undefined for one that does not exist. */
    resolve: open,
    /** `global`/`all`, the one the unversioned routes serve. */
    global: () => open('global', 'all')!,
    /** Board windows with a live snapshot here. */
    size: () => live.size,
    feeds: () => [...live.values()].map((l) => l.feed),
    /**
     * Commits landed here: each board window live here judges whether they can change its top N (and if so
     * rebuilds within a tick and shares the result); the windows this instance does not keep are told to
     * the instances that do, with the changes, to judge for themselves.
     */
    markChanged(entries: Array<ChangeHint & { board: string; window: string }>): void {
      const byBoard = new Map<string, Map<string, ChangeHint[]>>();
      for (const e of entries) {
        let windows = byBoard.get(e.board);
        if (!windows) byBoard.set(e.board, (windows = new Map()));
        let list = windows.get(e.window);
        if (!list) windows.set(e.window, (list = []));
        list.push(e);
      }
      for (const [board, windows] of byBoard) {
        const elsewhere: DirtyNotice['windows'] = [];
        for (const [w, changes] of windows) {
          const held = live.get(key(board, w));
          if (held) held.feed.snapshot.markChanged(changes);
          else elsewhere.push({ w, c: changes.map((c) => [c.userId, c.score, c.active, c.cycle]) });
        }
        if (elsewhere.length === 0 || !redisReady(deps.redis)) continue; // (without Redis each asks MySQL)
        const notice: DirtyNotice = { dirty: board, windows: elsewhere };
        deps.redis.publish(channel, JSON.stringify(notice)).catch(() => undefined);
      }
    },
    /** A user changed (ban, rename): every live window may show them. */
    markAllDirty(): void {
      for (const { feed } of live.values()) feed.snapshot.markDirty();
    },
    async start(): Promise<void> {
      deps.subscriber.on('message', onMessage);
      // (Re)subscribe on every connect: with no offline queue a subscribe sent while connecting is lost.
      const onReady = () => {
        deps.subscriber
          .subscribe(channel)
          .then(() => (subscribed = true))
          .catch((err) => logger.warn({ err: err.message }, 'subscribe failed'));
        for (const { feed } of live.values()) feed.snapshot.resync();
      };
      deps.subscriber.on('ready', onReady);
      deps.subscriber.on('close', () => (subscribed = false));
      if (redisReady(deps.subscriber)) onReady();
      await open('global', 'all')!.snapshot.start();
      sweeper = setInterval(sweep, Math.max(1000, Math.floor(deps.idleMs / 2)));
      sweeper.unref();
    },
    async stop(): Promise<void> {
      clearInterval(sweeper);
      await Promise.all([...live.values()].map((l) => l.feed.snapshot.stop()));
    },
  };
}

export type BoardWindows = ReturnType<typeof createBoardWindows>;

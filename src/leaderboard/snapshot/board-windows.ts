import type { Logger } from 'pino';
import type { Db } from '../../platform/db';
import { redisReady, shardedPubsubAvailable, type RedisClient } from '../../platform/redis';
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
 * On a board's channel beside shared snapshots: commits to these windows of a board (per window: user,
 * new total, active, cycle), for the instances that hold them to judge whether to rebuild.
 */
interface DirtyNotice {
  dirty: string;
  windows: Array<{ w: string; c: Array<[string, number, boolean, string]> }>;
}

/**
 * The live snapshots of the board windows this instance serves. A board window gets its snapshot engine on
 * first read and keeps it while it is polled or followed by a stream; one that nobody read for `idleMs` is
 * dropped, so a thousand boards cost nothing until they are read. `global`/`all` is always kept.
 *
 * Each board has a channel (`boardChannel`, in the board's hash slot), and an instance subscribes to the
 * channels of the boards it holds windows of. Sharded pub/sub (SSUBSCRIBE/SPUBLISH) when the server has it:
 * a cluster then carries a notice on the board's shard only, instead of broadcasting every notice to every
 * node; classic pub/sub otherwise. Until this instance knows which (Redis unreachable since start-up), its
 * engines ask MySQL each tick and its notices go out both ways.
 */
export function createBoardWindows(deps: {
  db: Db;
  redis: RedisClient;
  /** A dedicated connection: a subscribed Redis client can do nothing else. */
  subscriber: RedisClient;
  boards: Pick<BoardRegistry, 'window'>;
  prefix: string;
  /** REDIS_SHARDED_PUBSUB. */
  shardedPubsub: 'auto' | 'off';
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
  const keys = redisKeys(deps.prefix);
  const live = new Map<string, { feed: BoardWindowFeed; usedAt: number }>();
  let sharded: boolean | undefined; // which pub/sub the server takes; undefined until asked
  const channels = new Map<string, string>(); // channel -> board, for every board held here
  // Boards whose channel this connection is subscribed to. Until then nobody can tell their windows about
  // changes, so each of their engines asks MySQL each tick.
  const subscribed = new Set<string>();
  let sweeper: NodeJS.Timeout | undefined;
  const listeningTo = (board: string) => subscribed.has(board) && redisReady(deps.subscriber);

  async function subscribe(board: string): Promise<void> {
    if (sharded === undefined || !redisReady(deps.subscriber) || subscribed.has(board)) return;
    const channel = keys.boardChannel(board);
    try {
      await (sharded ? deps.subscriber.ssubscribe(channel) : deps.subscriber.subscribe(channel));
      if (channels.has(channel)) subscribed.add(board);
      else await unsubscribe(board); // dropped meanwhile
    } catch (err) {
      logger.warn({ err: (err as Error).message, board }, 'subscribe failed');
    }
  }

  async function unsubscribe(board: string): Promise<void> {
    subscribed.delete(board);
    if (sharded === undefined || !redisReady(deps.subscriber)) return;
    const channel = keys.boardChannel(board);
    await (sharded ? deps.subscriber.sunsubscribe(channel) : deps.subscriber.unsubscribe(channel)).catch(
      () => undefined, // a lost connection forgets its subscriptions anyway
    );
  }

  /** Publishes on a board's channel the way this server takes it (both ways while that is not known yet). */
  function publish(board: string, message: string): void {
    const channel = keys.boardChannel(board);
    if (sharded !== false) deps.redis.spublish(channel, message).catch(() => undefined);
    if (sharded !== true) deps.redis.publish(channel, message).catch(() => undefined);
  }

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
      listening: () => listeningTo(board),
      sharded: () => sharded,
      onChanged: (s) => deps.onChanged?.({ board, window }, s),
      onShared: (s) => deps.onShared?.({ board, window }, s),
    });
    const feed = { board, window, snapshot };
    live.set(k, { feed, usedAt: Date.now() });
    if (!channels.has(keys.boardChannel(board))) {
      channels.set(keys.boardChannel(board), board);
      void subscribe(board);
    }
    void snapshot.start();
    return feed;
  }

  function onMessage(ch: string, message: string): void {
    if (!channels.has(ch)) return;
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
      if (![...live.values()].some((l) => l.feed.board === feed.board)) {
        channels.delete(keys.boardChannel(feed.board));
        void unsubscribe(feed.board);
      }
    }
  }

  return {
    /** The feed of a board window (its engine started on first use), or undefined for one that does not exist. */
    resolve: open,
    /** `global`/`all`, the one the unversioned routes serve. */
    global: () => open('global', 'all')!,
    /** Which pub/sub the notices use: unknown until this instance has asked the server (then both ways). */
    pubsub: (): 'sharded' | 'classic' | 'unknown' =>
      sharded === undefined ? 'unknown' : sharded ? 'sharded' : 'classic',
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
        publish(board, JSON.stringify(notice));
      }
    },
    /** A user changed (ban, rename): every live window may show them. */
    markAllDirty(): void {
      for (const { feed } of live.values()) feed.snapshot.markDirty();
    },
    async start(): Promise<void> {
      deps.subscriber.on('message', onMessage);
      deps.subscriber.on('smessage', onMessage);
      // (Re)subscribe on every connect: with no offline queue a subscribe sent while connecting is lost.
      const onReady = async () => {
        subscribed.clear();
        try {
          sharded ??= await shardedPubsubAvailable(deps.redis, deps.shardedPubsub);
        } catch (err) {
          logger.warn({ err: (err as Error).message }, 'could not ask redis for its version; will retry');
          // Meanwhile the engines ask MySQL each tick.
          setTimeout(() => redisReady(deps.subscriber) && void onReady(), 1000).unref();
          return;
        }
        await Promise.all([...channels.values()].map(subscribe));
        for (const { feed } of live.values()) feed.snapshot.resync();
      };
      deps.subscriber.on('ready', () => void onReady());
      // The version is asked on the command connection: when it comes up after the subscriber, ask then.
      deps.redis.on('ready', () => sharded === undefined && redisReady(deps.subscriber) && void onReady());
      deps.subscriber.on('close', () => subscribed.clear());
      if (redisReady(deps.subscriber)) void onReady();
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

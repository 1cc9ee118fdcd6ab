import Router from '@koa/router';
import type { Context } from 'koa';
import Joi from 'joi';
import { badRequest, notFound, unavailable } from '../../http/errors';
import { validate } from '../../http/validation';
import type { Db } from '../../platform/db';
import { userIdParam } from '../../users/routes';
import { cycleAt, cycleNamed } from '../boards/cycles';
import type { BoardRegistry, CycleRef } from '../boards/registry';
import { boardIdParam, windowName } from '../boards/schemas';
import type { Board } from '../boards/store';
import type { Mirror, Standing } from '../cache/mirror';
import type { BoardWindows } from '../snapshot/board-windows';
import { readSnapshot } from '../snapshot/engine';
import { sendSnapshot, type PollCaching } from '../snapshot/routes';
import { openStream, type StreamDeps } from '../../transports/sse/routes';
import type { DbFallback } from './db-fallback';
import { entriesPage, standingAround, standingInCycle, type PageEnd } from './board-queries';

const windowQuery = { window: windowName.default('all'), at: Joi.date().iso() };

/** An opaque /entries cursor: where the last page ended, bound to its board window and cycle. */
const cursorSchema = Joi.object({
  b: Joi.string().required(),
  w: Joi.string().required(),
  c: Joi.string().required(),
  s: Joi.number().integer().required(),
  r: Joi.string()
    .pattern(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/)
    .required(),
  u: userIdParam,
  p: Joi.number().integer().min(1).required(),
  k: Joi.number().integer().min(1).required(),
}).unknown(false);

const encodeCursor = (c: CycleRef, e: PageEnd) =>
  Buffer.from(
    JSON.stringify({
      b: c.board,
      w: c.window,
      c: c.cycle.name,
      s: e.score,
      r: e.reached,
      u: e.userId,
      p: e.position,
      k: e.rank,
    }),
  ).toString('base64url');

function decodeCursor(raw: string, c: CycleRef): PageEnd {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw badRequest('The cursor is not one this service gave out.');
  }
  const { error, value: v } = cursorSchema.validate(value);
  if (error) throw badRequest('The cursor is not one this service gave out.');
  if (v.b !== c.board || v.w !== c.window || v.c !== c.cycle.name)
    throw badRequest(
      'The cursor belongs to another board window or to a cycle that has ended; start again without it.',
    );
  return { score: v.s, reached: v.r, userId: v.u, position: v.p, rank: v.k };
}

/**
 * Reads of a board window: its top N (the live cycle from memory; `at=` a closed cycle from MySQL through the
 * archive gate), its SSE stream, a user's standing with neighbours, and the whole board in pages.
 */
export function boardReadRoutes(
  router: Router,
  deps: {
    db: Db;
    boards: BoardRegistry;
    windows: BoardWindows;
    mirror: Mirror;
    /** MySQL reads of the live cycle (DB_FALLBACK_*), and of closed cycles (ARCHIVE_CACHE_MS). */
    liveGate: DbFallback<unknown>;
    archiveGate: DbFallback<unknown>;
    stream: StreamDeps;
    size: number;
    caching: PollCaching;
    maxAround: number;
    maxPage: number;
    retryAfterS: number;
  },
) {
  async function boardOf(ctx: Context): Promise<Board> {
    const id = validate(boardIdParam, ctx.params.boardId, 'path');
    const board = await deps.boards.find(id);
    if (!board) throw notFound(`No board "${id}".`);
    return board;
  }

  /** The cycle a request reads: the window's current one, or the one containing `at`; and whether it is live. */
  function cycleOf(board: Board, q: { window: string; at?: Date }): { ref: CycleRef; live: boolean } {
    const w = board.windows.find((x) => x.name === q.window);
    if (!w) throw notFound(`Board "${board.id}" has no window "${q.window}".`);
    const now = new Date();
    const current = cycleAt(w.reset, now);
    if (!q.at) return { ref: { board: board.id, window: w.name, cycle: current }, live: true };
    const first = cycleAt(w.reset, board.createdAt);
    if (q.at.getTime() > now.getTime() || q.at.getTime() < first.start.getTime())
      throw notFound(`Board "${board.id}" has no ${q.window} cycle at ${q.at.toISOString()}.`);
    const cycle = cycleNamed(w.reset, cycleAt(w.reset, q.at).name)!;
    return { ref: { board: board.id, window: w.name, cycle }, live: cycle.name === current.name };
  }

  async function gated<T>(gate: DbFallback<unknown>, key: string, query: () => Promise<T>): Promise<T> {
    const answer = await gate.run(key, query);
    if (answer.kind === 'busy')
      throw unavailable('This instance is busy reading from the database; retry shortly.', deps.retryAfterS);
    return answer.value as T;
  }
  const refKey = (r: CycleRef) => `${r.board}/${r.window}/${r.cycle.name}`;

  // Built once: a joi schema costs more to build than to run (a profile of polls showed it).
  const topQuery = Joi.object(windowQuery);
  const streamQuery = Joi.object({ window: windowQuery.window });
  const standingQuery = Joi.object({
    ...windowQuery,
    around: Joi.number().integer().min(0).max(deps.maxAround).default(0),
  });
  const entriesQuery = Joi.object({
    ...windowQuery,
    limit: Joi.number().integer().min(1).max(deps.maxPage).default(Math.min(50, deps.maxPage)),
    cursor: Joi.string().max(1024),
  });

  router.get('/boards/:boardId/top', async (ctx) => {
    const board = await boardOf(ctx);
    const q = validate(topQuery, ctx.query, 'query', true);
    const { ref, live } = cycleOf(board, q);
    if (live) {
      const feed = deps.windows.resolve(board.id, ref.window)!;
      await feed.snapshot.start(); // at once when warm; a cold board window reads its first snapshot here
      if (!feed.snapshot.hasData())
        throw unavailable('This board window is not loaded yet.', deps.retryAfterS);
      return sendSnapshot(ctx, feed.snapshot.current(), deps.caching);
    }
    const snap = await gated(deps.archiveGate, `top:${refKey(ref)}`, () =>
      readSnapshot(deps.db, deps.size, ref),
    );
    ctx.set('X-Cycle', ref.cycle.name);
    sendSnapshot(ctx, snap, deps.caching);
  });

  router.get('/boards/:boardId/stream', async (ctx) => {
    const board = await boardOf(ctx);
    const q = validate(streamQuery, ctx.query, 'query', true);
    const { ref } = cycleOf(board, q);
    const feed = deps.windows.resolve(board.id, ref.window)!;
    await feed.snapshot.start();
    openStream(ctx, deps.stream, feed);
  });

  router.get('/boards/:boardId/users/:userId', async (ctx) => {
    const board = await boardOf(ctx);
    const userId = validate(userIdParam, ctx.params.userId, 'path');
    const q = validate(standingQuery, ctx.query, 'query', true);
    const { ref, live } = cycleOf(board, q);
    let standing: (Standing & { above?: unknown[]; below?: unknown[] }) | undefined;
    if (q.around > 0) {
      standing = await gated(
        live ? deps.liveGate : deps.archiveGate,
        `around:${refKey(ref)}:${userId}:${q.around}`,
        () => standingAround(deps.db, ref, userId, q.around),
      );
    } else {
      const found = live
        ? await deps.mirror.lookup({ ...ref, cycle: ref.cycle.name }, userId)
        : { kind: 'unknown' as const };
      if (found.kind === 'found') standing = found.standing;
      else if (found.kind === 'unknown')
        standing = await gated(
          live ? deps.liveGate : deps.archiveGate,
          `standing:${refKey(ref)}:${userId}`,
          () => standingInCycle(deps.db, ref, userId),
        );
    }
    if (!standing)
      throw notFound(`No ranked user "${userId}" in ${board.id}/${ref.window} cycle ${ref.cycle.name}.`);
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = {
      userId,
      displayName: standing.displayName,
      score: standing.score,
      rank: standing.rank,
      boardId: board.id,
      window: ref.window,
      cycle: ref.cycle.name,
      ...(q.around > 0 ? { above: standing.above, below: standing.below } : {}),
    };
  });

  router.get('/boards/:boardId/entries', async (ctx) => {
    const board = await boardOf(ctx);
    const q = validate(entriesQuery, ctx.query, 'query', true);
    const { ref, live } = cycleOf(board, q);
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, ref);
    const page = await gated(
      live ? deps.liveGate : deps.archiveGate,
      `entries:${refKey(ref)}:${q.limit}:${q.cursor ?? ''}`,
      () => entriesPage(deps.db, ref, q.limit, after),
    );
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = {
      boardId: board.id,
      window: ref.window,
      cycle: ref.cycle.name,
      entries: page.entries,
      nextCursor: page.end ? encodeCursor(ref, page.end) : null,
    };
  });
}

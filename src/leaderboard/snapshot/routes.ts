import Router from '@koa/router';
import type { Context } from 'koa';
import type { Snapshot } from './engine';
import type { BoardWindows } from './board-windows';
import { ifNoneMatchHits } from '../../http/etag';

/** Answers a top-N read with a snapshot: its bytes, strong ETag, 304 on a match, the poll interval. */
export function sendSnapshot(
  ctx: Context,
  snap: Pick<Snapshot, 'body' | 'etag'>,
  pollIntervalS: number,
): void {
  ctx.set('ETag', snap.etag);
  ctx.set('Cache-Control', 'no-cache');
  ctx.set('X-Poll-Interval', String(pollIntervalS));
  if (ifNoneMatchHits(ctx.get('if-none-match'), snap.etag)) {
    ctx.status = 304;
    return;
  }
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = snap.body;
}

/** GET (and HEAD) /scores/top: `global`/`all`, answered from memory, never from MySQL or Redis. */
export function snapshotRoutes(
  router: Router,
  deps: { boards: Pick<BoardWindows, 'global'>; pollIntervalS: number },
) {
  router.get('/scores/top', (ctx) =>
    sendSnapshot(ctx, deps.boards.global().snapshot.current(), deps.pollIntervalS),
  );
}

import Router from '@koa/router';
import type { Context } from 'koa';
import { HttpError, unavailable } from '../../http/errors';
import type { BoardWindowFeed, BoardWindows } from '../../leaderboard/snapshot/board-windows';
import type { StreamHub } from './hub';

export interface StreamDeps {
  hub: StreamHub;
  retryAfterS: number;
  /** The key stream slots are counted under (the read limit's key too). */
  clientKey: (ip: string) => string;
}

/**
 * Answers a request with a Server-Sent Events stream of one board window: the same snapshot and version as
 * its /top, on connect (unless Last-Event-ID is the current version) and on every change.
 */
export function openStream(ctx: Context, deps: StreamDeps, feed: BoardWindowFeed): void {
  const client = deps.clientKey(ctx.ip);
  if (!deps.hub.hasRoom()) {
    throw unavailable('This instance has no room for another stream; poll instead.', deps.retryAfterS);
  }
  if (!deps.hub.ipHasRoom(client)) {
    throw new HttpError(
      429,
      'Too Many Requests',
      'Too many open streams from this address.',
      {},
      { 'Retry-After': String(deps.retryAfterS) },
    );
  }
  const { req, res } = ctx;
  req.socket.setTimeout(0);
  req.socket.setNoDelay(true);
  req.socket.setKeepAlive(true);
  ctx.respond = false; // the hub owns the response from here on
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
    Connection: 'keep-alive',
  });
  ctx.status = 200; // for the access log
  deps.hub.attach(res, feed, ctx.get('last-event-id') || undefined, client);
}

/** GET /scores/stream: `global`/`all` as Server-Sent Events. */
export function streamRoutes(router: Router, deps: StreamDeps & { boards: Pick<BoardWindows, 'global'> }) {
  router.get('/scores/stream', (ctx) => openStream(ctx, deps, deps.boards.global()));
}

import Router from '@koa/router';
import { HttpError, unavailable } from '../../http/errors';
import type { StreamHub } from './hub';

/** GET /scores/stream: Server-Sent Events carrying the same snapshot and version as /scores/top. */
export function streamRoutes(
  router: Router,
  deps: {
    hub: StreamHub;
    retryAfterS: number;
    /** The key stream slots are counted under (the read limit's key too). */
    clientKey: (ip: string) => string;
  },
) {
  router.get('/scores/stream', (ctx) => {
    const client = deps.clientKey(ctx.ip);
    if (!deps.hub.hasRoom()) {
      throw unavailable(
        'This instance has no room for another stream; poll /scores/top instead.',
        deps.retryAfterS,
      );
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
    deps.hub.attach(res, ctx.get('last-event-id') || undefined, client);
  });
}

import Router from '@koa/router';
import type { SnapshotEngine } from './engine';
import { ifNoneMatchHits } from '../../http/etag';

/** GET (and HEAD) /scores/top: answered from memory, never from MySQL or Redis. */
export function snapshotRoutes(router: Router, deps: { snapshot: SnapshotEngine; pollIntervalS: number }) {
  const pollInterval = String(deps.pollIntervalS);
  router.get('/scores/top', (ctx) => {
    const snap = deps.snapshot.current();
    ctx.set('ETag', snap.etag);
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('X-Poll-Interval', pollInterval);
    if (ifNoneMatchHits(ctx.get('if-none-match'), snap.etag)) {
      ctx.status = 304;
      return;
    }
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = snap.body;
  });
}

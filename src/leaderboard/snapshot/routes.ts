import Router from '@koa/router';
import type { Context } from 'koa';
import type { Snapshot } from './engine';
import type { BoardWindows } from './board-windows';
import { ifNoneMatchHits } from '../../http/etag';

/** How a poll answer may be cached: by shared caches for `sharedMaxAgeS`, never by browsers without asking. */
export interface PollCaching {
  pollIntervalS: number;
  sharedMaxAgeS: number;
}

/**
 * The Cache-Control of a public poll answer (200 and 304 alike). Browsers get max-age=0, so they revalidate
 * every poll with If-None-Match; a CDN or nginx may serve it for s-maxage seconds, and as long again stale
 * while it revalidates in the background. What a viewer behind such a cache sees is at most s-maxage plus
 * one snapshot tick old (plus the stale window while the origin is slow to answer).
 */
export const pollCacheControl = (sharedMaxAgeS: number) =>
  sharedMaxAgeS > 0
    ? `public, max-age=0, s-maxage=${sharedMaxAgeS}, stale-while-revalidate=${sharedMaxAgeS}`
    : 'no-cache';

// The header values of each caching setting, built once (polls are the hottest request), not per answer.
const built = new WeakMap<PollCaching, { cacheControl: string; pollInterval: string }>();
function headersOf(caching: PollCaching) {
  let headers = built.get(caching);
  if (!headers) {
    headers = {
      cacheControl: pollCacheControl(caching.sharedMaxAgeS),
      pollInterval: String(caching.pollIntervalS),
    };
    built.set(caching, headers);
  }
  return headers;
}

/** Answers a top-N read with a snapshot: its bytes, strong ETag, 304 on a match, the poll interval. */
export function sendSnapshot(
  ctx: Context,
  snap: Pick<Snapshot, 'body' | 'etag'>,
  caching: PollCaching,
): void {
  ctx.set('ETag', snap.etag);
  const headers = headersOf(caching);
  ctx.set('Cache-Control', headers.cacheControl);
  ctx.set('X-Poll-Interval', headers.pollInterval);
  if (ifNoneMatchHits(ctx.get('if-none-match'), snap.etag)) {
    ctx.status = 304;
    return;
  }
  ctx.set('Content-Type', 'application/json; charset=utf-8'); // (not ctx.type: no MIME lookup per poll)
  ctx.body = snap.body;
}

/** GET (and HEAD) /scores/top: `global`/`all`, answered from memory, never from MySQL or Redis. */
export function snapshotRoutes(
  router: Router,
  deps: { boards: Pick<BoardWindows, 'global'>; caching: PollCaching },
) {
  router.get('/scores/top', (ctx) =>
    sendSnapshot(ctx, deps.boards.global().snapshot.current(), deps.caching),
  );
}

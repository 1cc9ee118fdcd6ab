import Router from '@koa/router';
/**
 * One spelling per route. Every router in the app is strict (no trailing slash) and case-sensitive, so
 * `/API/v1/scores/top`, `/api/V1/...` or `/api/v1/scores/top/` are 404 instead of a second, unlimited way in
 * (@koa/router matches case-insensitively and allows a trailing slash by default). Percent-encoded letters and
 * doubled slashes never match a route either: the router compares the raw path.
 */
export const ROUTER_OPTIONS = { strict: true, sensitive: true } as const;

const MAX_REMEMBERED_MATCHES = 10_000;
const MAX_REMEMBERED_KEY = 256;

/**
 * The app's one route table (src/app.ts mounts every feature's routes into it), matched once per request
 * instead of router after router. @koa/router tests every route's pattern in turn; the answer depends only on
 * the method and the path, and the routes are fixed once the app is built, so it is remembered per method and
 * path (polls ask for the same few paths over and over), and forgotten if a route is added. The memory is
 * bounded: full, it starts over.
 */
export class RouteTable extends Router {
  private readonly matches = new Map<string, ReturnType<Router['match']>>();
  private matchesFor = 0; // the number of routes the remembered matches were made with

  constructor() {
    super(ROUTER_OPTIONS);
  }

  override match(path: string, method: string): ReturnType<Router['match']> {
    if (this.stack.length !== this.matchesFor) {
      this.matches.clear(); // a route was added: what was remembered may be wrong
      this.matchesFor = this.stack.length;
    }
    const key = `${method} ${path}`;
    let found = this.matches.get(key);
    if (!found) {
      found = super.match(path, method);
      if (this.matches.size >= MAX_REMEMBERED_MATCHES) this.matches.clear();
      if (key.length <= MAX_REMEMBERED_KEY) this.matches.set(key, found); // (the bound holds for long paths too)
    }
    // The router keeps `path` as ctx.matched (and would append to it): each request gets its own array.
    return { ...found, path: [...found.path] };
  }
}

/**
 * The path as a lenient server or proxy would read it: percent-decoded, slashes collapsed, lower-cased.
 * Middleware that decides by path (the read limit) looks at this, so a spelling that would slip past a
 * prefix check is still counted, even though the router then answers it 404.
 */
export function lenientPath(path: string): string {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // A malformed escape stays as it is; the router 404s it anyway.
  }
  return decoded.replace(/\/{2,}/g, '/').toLowerCase();
}

/** Whether any spelling of the path is under /api (the read limit's test; the canonical one without decoding). */
export const underApi = (path: string) => path.startsWith('/api') || lenientPath(path).startsWith('/api');

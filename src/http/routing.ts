/**
 * One spelling per route. Every router in the app is strict (no trailing slash) and case-sensitive, so
 * `/API/v1/scores/top`, `/api/V1/...` or `/api/v1/scores/top/` are 404 instead of a second, unlimited way in
 * (@koa/router matches case-insensitively and allows a trailing slash by default). Percent-encoded letters and
 * doubled slashes never match a route either: the router compares the raw path.
 */
export const ROUTER_OPTIONS = { strict: true, sensitive: true } as const;

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

import type { Context, Next } from 'koa';

/**
 * Headers suited to a JSON API: nothing may be sniffed, framed or loaded from our responses. Routes that serve
 * HTML (the live page, /docs) set their own Content-Security-Policy.
 */
export function securityHeaders(opts: { tls: boolean }) {
  // Few and short: these go out with every poll. The CSP's frame-ancestors does X-Frame-Options' job.
  const headers: Array<[string, string]> = [
    ['X-Content-Type-Options', 'nosniff'],
    ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
    ['Referrer-Policy', 'no-referrer'],
  ];
  if (opts.tls) headers.push(['Strict-Transport-Security', 'max-age=31536000; includeSubDomains']);
  // Not async: it only sets headers before passing on, so it adds no promise of its own to every request.
  return (ctx: Context, next: Next) => {
    for (const [name, value] of headers) ctx.res.setHeader(name, value);
    return next();
  };
}

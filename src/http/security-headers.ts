import type { Context, Next } from 'koa';

/**
 * Headers suited to a JSON API: nothing may be sniffed, framed or loaded from our responses. Routes that serve
 * HTML (the live page, /docs) set their own Content-Security-Policy.
 */
export function securityHeaders(opts: { tls: boolean }) {
  return async (ctx: Context, next: Next) => {
    // Few and short: these go out with every poll. The CSP's frame-ancestors does X-Frame-Options' job.
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    ctx.set('Referrer-Policy', 'no-referrer');
    if (opts.tls) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
  };
}

import type { Context } from 'koa';

const csp = (directives: Record<string, string>) =>
  Object.entries(directives)
    .map(([name, value]) => `${name} ${value}`)
    .join('; ');

/**
 * The live page loads only its own script, style and icon, and talks only to its own origin (the stream and
 * /top). No inline script or style, no eval, no frames, no plugins.
 */
export const PAGE_CSP = csp({
  'default-src': "'none'",
  'script-src': "'self'",
  'style-src': "'self'",
  'img-src': "'self'",
  'connect-src': "'self'",
  'base-uri': "'none'",
  'form-action': "'none'",
  'frame-ancestors': "'none'",
});

/**
 * The API reference: the renderer is served from our origin, but it injects its styles at run time
 * (styled-components) and runs its search index in a blob: worker, so those two are allowed here and only
 * here. Scripts stay 'self' only.
 */
export const DOCS_CSP = csp({
  'default-src': "'none'",
  'script-src': "'self'",
  'style-src': "'self' 'unsafe-inline'",
  'img-src': "'self' data:",
  'font-src': "'self' data:",
  'connect-src': "'self'",
  'worker-src': "'self' blob:",
  'base-uri': "'none'",
  'form-action': "'none'",
  'frame-ancestors': "'none'",
});

/** Headers every HTML document we serve carries. */
export function setDocumentHeaders(ctx: Context, policy: string): void {
  ctx.set('Content-Security-Policy', policy);
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Frame-Options', 'DENY'); // for browsers that predate frame-ancestors
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()');
}

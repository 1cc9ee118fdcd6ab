import type { Context, Next } from 'koa';
import type { Logger } from 'pino';

/** An error that knows its HTTP status; the problem middleware turns it into RFC 9457 JSON. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? title);
  }
}

export const badRequest = (detail: string, extra?: Record<string, unknown>) =>
  new HttpError(400, 'Bad Request', detail, extra);
export const unauthorized = (detail = 'A valid bearer token is required.') =>
  new HttpError(401, 'Unauthorized', detail, {}, { 'WWW-Authenticate': 'Bearer realm="scoreboard"' });
export const forbidden = (detail: string) => new HttpError(403, 'Forbidden', detail);
export const notFound = (detail: string) => new HttpError(404, 'Not Found', detail);
export const conflict = (detail: string) => new HttpError(409, 'Conflict', detail);
export const unprocessable = (detail: string) => new HttpError(422, 'Unprocessable Content', detail);
export const unavailable = (detail: string, retryAfterS: number) =>
  new HttpError(503, 'Service Unavailable', detail, {}, { 'Retry-After': String(retryAfterS) });

const MYSQL_UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_LOCK_WAIT_TIMEOUT',
]);

/** True when an error means "the database cannot be reached right now" rather than a bug. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; name?: string; fatal?: boolean };
  return (
    MYSQL_UNREACHABLE.has(e?.code ?? '') ||
    e?.name === 'KnexTimeoutError' ||
    e?.fatal === true ||
    e?.code === 'DB_TIMEOUT'
  );
}

/**
 * The one place where errors become responses: RFC 9457 problem+json with the request id, never a stack trace.
 * Unknown errors are logged with their stack and answered as a bare 500.
 */
export function problemMiddleware(opts: {
  logger: Logger;
  retryAfterS: number;
  onDatabaseError?: () => void;
}) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined)
        throw notFound(`No route for ${ctx.method} ${ctx.path}.`);
    } catch (err) {
      let httpErr: HttpError;
      const expose = err as {
        status?: number;
        expose?: boolean;
        message?: string;
        headers?: Record<string, string>;
      };
      if (err instanceof HttpError) httpErr = err;
      else if (
        expose?.expose &&
        typeof expose.status === 'number' &&
        expose.status >= 400 &&
        expose.status < 500
      ) {
        // Errors raised by Koa and the router (405 with its Allow header, 501, ...).
        httpErr = new HttpError(
          expose.status,
          expose.message ?? 'Client Error',
          undefined,
          {},
          expose.headers ?? {},
        );
      } else if (expose?.status === 501 && (err as Error).name === 'NotImplementedError') {
        // @koa/router throws 501 (not exposed) for a method it does not know at all (TRACE, PROPFIND, ...), which
        // landed below as a 500. To a client that is bad input like any other wrong method (found by
        // test/fuzz.test.ts): 405 with Allow (filled in below) where the path exists, 404 where it does not.
        const layers = (ctx as { matched?: Array<{ methods?: string[] }> }).matched ?? [];
        httpErr = layers.some((l) => l.methods?.length)
          ? new HttpError(405, 'Method Not Allowed')
          : notFound(`No route for ${ctx.method} ${ctx.path}.`);
      } else if (isDatabaseUnavailable(err)) {
        ctx.state.log?.warn({ err }, 'database unavailable');
        opts.onDatabaseError?.();
        httpErr = unavailable('The score database is unreachable; try again shortly.', opts.retryAfterS);
      } else {
        (ctx.state.log ?? opts.logger).error({ err }, 'unhandled error');
        httpErr = new HttpError(500, 'Internal Server Error', 'Something went wrong on our side.');
      }
      ctx.status = httpErr.status;
      for (const [k, v] of Object.entries(httpErr.headers)) ctx.set(k, v);
      if (httpErr.status === 405 && !ctx.response.get('Allow')) {
        // The router's thrown 405 carries no Allow header (RFC 9110 requires one): list the path's methods.
        const matched = (ctx as { matched?: Array<{ methods?: string[] }> }).matched ?? [];
        const allowed = [...new Set(matched.flatMap((layer) => layer.methods ?? []))];
        if (allowed.length) ctx.set('Allow', allowed.join(', '));
      }
      ctx.type = 'application/problem+json';
      ctx.body = {
        type: 'about:blank',
        title: httpErr.title,
        status: httpErr.status,
        detail: httpErr.detail,
        instance: ctx.path,
        requestId: ctx.state.requestId,
        ...httpErr.extra,
      };
    }
  };
}

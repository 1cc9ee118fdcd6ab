import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { Metrics } from '../platform/metrics';

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * What every request carries on `ctx.state` from the start: its id, and a child logger made on first use
 * (most polls log nothing of their own). A class, so the lazy logger is one getter on its prototype rather
 * than a property defined on every request's object.
 */
class RequestState {
  private child: Logger | undefined;
  constructor(
    private readonly logger: Logger,
    readonly requestId: string,
  ) {}
  get log(): Logger {
    return (this.child ??= this.logger.child({ requestId: this.requestId }));
  }
}

/**
 * The outermost middleware, one frame for what every request needs: an id (the caller's X-Request-Id when it
 * is sane, else a new one), returned in the answer; its duration in the http_request_duration_seconds
 * histogram (by method, route pattern and status, never the raw path: ids would explode the labels; absent
 * for the metrics-only app); and one JSON log line when the
 * response is done (method, route, status, latency, user). Never the Authorization header, never a body.
 */
export function requestContext(logger: Logger, metrics?: Pick<Metrics, 'httpDuration'>) {
  return async (ctx: Context, next: Next) => {
    const started = process.hrtime.bigint();
    const incoming = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state = new RequestState(logger, requestId) as unknown as Context['state'];
    ctx.set('X-Request-Id', requestId);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = ctx._matchedRoute ? String(ctx._matchedRoute) : null;
      metrics?.httpDuration.observe(
        { method: ctx.method, route: route ?? 'unmatched', status: ctx.status },
        seconds,
      );
      if (ctx.status >= 500 || logger.isLevelEnabled('info')) {
        const line = {
          requestId,
          method: ctx.method,
          route,
          path: ctx.path,
          status: ctx.status,
          ms: Math.round(seconds * 1e5) / 100,
          userId: ctx.state.userId,
        };
        if (ctx.status >= 500) logger.error(line, 'request');
        else logger.info(line, 'request');
      }
    }
  };
}

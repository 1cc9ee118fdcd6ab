import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import cors from '@koa/cors';
import { cheatRoutes } from './cheat/routes';
import { problemMiddleware } from './http/errors';
import { opsRoutes } from './ops/routes';
import { clientKey } from './http/rate-limit/client-key';
import { createLimiter } from './http/rate-limit/limiter';
import { requestContext } from './http/request-context';
import { ROUTER_OPTIONS, RouteTable, underApi } from './http/routing';
import { scoreReadRoutes } from './leaderboard/read/routes';
import { scoreWriteRoutes } from './leaderboard/write/routes';
import { securityHeaders } from './http/security-headers';
import type { Container } from './container';
import { snapshotRoutes } from './leaderboard/snapshot/routes';
import { streamRoutes } from './transports/sse/routes';
import { wsRoutes } from './transports/ws/routes';
import { userRoutes } from './users/routes';
import { boardRoutes } from './leaderboard/boards/routes';
import { boardReadRoutes } from './leaderboard/read/board-routes';
import { webRoutes } from './web/routes';

/** What the HTTP app uses of an instance's container: its parts, never its lifecycle. */
export type AppDeps = Pick<
  Container,
  | 'config'
  | 'logger'
  | 'db'
  | 'redis'
  | 'events'
  | 'metrics'
  | 'mirror'
  | 'standingFallback'
  | 'archiveFallback'
  | 'boardRegistry'
  | 'boards'
  | 'scores'
  | 'hub'
  | 'cheat'
  | 'verifyToken'
  | 'loadCaller'
  | 'isShuttingDown'
  | 'authStatus'
  | 'brokerStatus'
  | 'collect'
>;

const EXPOSED = [
  'ETag',
  'X-Poll-Interval',
  'Retry-After',
  'X-Request-Id',
  'Idempotent-Replayed',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
];

/** Builds the Koa app from its dependencies. It never listens: src/main.ts does. */
export function createApp(deps: AppDeps): Koa {
  const { config, logger } = deps;
  const app = new Koa();
  app.silent = true; // errors are logged by the problem middleware, once, with the request id
  // Believe X-Forwarded-For only as far as our own proxies append to it: the client cannot pick its bucket.
  app.proxy = config.trustProxyHops > 0;
  app.maxIpsCount = config.trustProxyHops;

  // Reads are limited per instance, in memory: a poll must touch neither MySQL nor Redis (see README).
  const readLimit = createLimiter({
    name: 'reads',
    max: config.rateLimit.readsPerMin,
    durationMs: 60_000,
    // The same key the stream slots use (src/http/rate-limit/client-key.ts): IPv6 by network, IPv4 by address.
    id: (ctx) => clientKey(ctx.ip, config.rateLimit.ipv6Prefix),
    onLimited: () => deps.events.emit('rateLimited', { limit: 'reads' }),
  });
  setInterval(() => readLimit.sweep(), 60_000).unref();

  app.use(requestContext(logger, deps.metrics));
  app.use(securityHeaders({ tls: Boolean(config.tls) }));
  app.use(
    problemMiddleware({
      logger,
      retryAfterS: config.retryAfterS,
      onDatabaseError: () => deps.metrics.mysqlErrors.inc(),
    }),
  );
  app.use(corsFor(config.corsOrigins));

  // Reads under /api are counted before routing: every GET/HEAD that any spelling would put under /api, the
  // 404s of non-canonical spellings too, so no spelling gets a budget of its own (the route table only routes
  // the canonical one).
  app.use((ctx, next) =>
    (ctx.method === 'GET' || ctx.method === 'HEAD') && underApi(ctx.path) ? readLimit(ctx, next) : next(),
  );

  // One route table for the whole app, matched once per request (src/http/routing.ts).
  const routes = new RouteTable();
  routes.use(
    opsRoutes({
      db: deps.db,
      redis: deps.redis,
      isShuttingDown: deps.isShuttingDown,
      authStatus: config.jwt.mode === 'oidc' || config.jwt.mode === 'jwks' ? deps.authStatus : undefined,
      brokerStatus: deps.brokerStatus,
      timeoutMs: config.databaseTimeoutMs,
      readyzCacheMs: config.readyzCacheMs,
      // With METRICS_PORT, src/main.ts serves /metrics on that port and the main port does not know it.
      metrics:
        config.metricsPort === undefined
          ? { metrics: deps.metrics, collect: deps.collect, token: config.metricsToken }
          : undefined,
    }).routes(),
  );
  webRoutes(routes, { config }); // the live page, its assets, /openapi.json and /docs
  routes.use(wsRoutes().routes()); // GET without an upgrade: 426 (the upgrade itself is the server's, see src/main.ts)
  // The unversioned /api is the current version, as the original specification wrote it.
  const api = apiRoutes(deps);
  routes.use('/api/v1', api.routes());
  routes.use('/api', api.routes());
  app.use(routes.routes()).use(routes.allowedMethods({ throw: true }));
  return app;
}

/** Every route under /api, relative to it: src/app.ts mounts them at /api/v1 and at /api. */
function apiRoutes(deps: AppDeps): Router {
  const { config } = deps;
  const caching = { pollIntervalS: config.pollIntervalS, sharedMaxAgeS: config.pollSharedMaxAgeS };
  const stream = {
    hub: deps.hub,
    retryAfterS: config.retryAfterS,
    clientKey: (ip: string) => clientKey(ip, config.rateLimit.ipv6Prefix),
  };
  const api = new Router(ROUTER_OPTIONS);
  snapshotRoutes(api, { boards: deps.boards, caching });
  streamRoutes(api, { ...stream, boards: deps.boards });
  boardRoutes(api, {
    db: deps.db,
    boards: deps.boardRegistry,
    loadCaller: deps.loadCaller,
    verifyToken: deps.verifyToken,
    maxBoards: config.boards.max,
    maxWindows: config.boards.maxWindows,
    maxBodyBytes: config.maxBodyBytes,
  });
  boardReadRoutes(api, {
    db: deps.db,
    boards: deps.boardRegistry,
    windows: deps.boards,
    mirror: deps.mirror,
    liveGate: deps.standingFallback,
    archiveGate: deps.archiveFallback,
    stream,
    size: config.scoreboardSize,
    caching,
    maxAround: config.boards.maxAround,
    maxPage: config.boards.maxPage,
    retryAfterS: config.retryAfterS,
  });
  scoreWriteRoutes(api, {
    loadCaller: deps.loadCaller,
    verifyToken: deps.verifyToken,
    scores: deps.scores,
    findBoard: deps.boardRegistry.find,
    autoProvision: config.autoProvisionUsers,
    maxScoreIncrement: config.maxScoreIncrement,
    maxBodyBytes: config.maxBodyBytes,
    retryAfterS: config.retryAfterS,
  });
  scoreReadRoutes(api, {
    db: deps.db,
    mirror: deps.mirror,
    fallback: deps.standingFallback,
    retryAfterS: config.retryAfterS,
    loadCaller: deps.loadCaller,
    verifyToken: deps.verifyToken,
  });
  userRoutes(api, {
    db: deps.db,
    loadCaller: deps.loadCaller,
    verifyToken: deps.verifyToken,
    mirror: deps.mirror,
    liveSince: () => deps.boardRegistry.liveSince(new Date(), config.boards.closedCycleGraceMs),
    onChanged: deps.boards.markAllDirty,
    maxBodyBytes: config.maxBodyBytes,
  });
  cheatRoutes(api, { loadCaller: deps.loadCaller, verifyToken: deps.verifyToken, cheat: deps.cheat });
  return api;
}

/** Strict allow-list CORS: only listed origins (or `*`) get CORS headers; credentials are never allowed. */
function corsFor(origins: string[]) {
  const any = origins.includes('*');
  const corsMiddleware = cors({
    origin: (ctx) => {
      const origin = ctx.get('origin');
      return any || origins.includes(origin) ? origin : '';
    },
    exposeHeaders: EXPOSED,
    allowHeaders: [
      'Authorization',
      'Content-Type',
      'If-None-Match',
      'Idempotency-Key',
      'Last-Event-ID',
      'X-Request-Id',
    ],
    allowMethods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    maxAge: 600,
  });
  // A request without Origin is not a CORS request: it only needs the Vary (so a shared cache keeps answers
  // per origin apart). Most polls are such, and skip the CORS middleware's two awaits.
  return (ctx: Context, next: Next) => {
    if (ctx.get('origin')) return corsMiddleware(ctx, next);
    ctx.vary('Origin');
    return next();
  };
}

import Koa from 'koa';
import Router from '@koa/router';
import cors from '@koa/cors';
import type { Redis } from 'ioredis';
import type { CallerLoader } from './auth/caller';
import type { Config } from './config';
import type { Db } from './db';
import { problemMiddleware } from './errors';
import type { Logger } from './logger';
import { requestContext } from './request-context';
import type { Mirror } from './scores/mirror';
import { scoreReadRoutes } from './scores/read-routes';
import { scoreWriteRoutes } from './scores/routes';
import type { ScoreService } from './scores/service';
import type { SnapshotEngine } from './snapshot/engine';
import { snapshotRoutes } from './snapshot/routes';
import type { StreamHub } from './stream/hub';
import { streamRoutes } from './stream/routes';
import { userRoutes } from './users/routes';

export interface AppDeps {
  config: Config;
  logger: Logger;
  db: Db;
  redis: Redis;
  loadCaller: CallerLoader;
  scores: ScoreService;
  mirror: Mirror;
  snapshot: SnapshotEngine;
  hub: StreamHub;
}

const EXPOSED = ['ETag', 'X-Poll-Interval', 'Retry-After', 'X-Request-Id', 'Idempotent-Replayed'];

/** Builds the Koa app from its dependencies. It never listens: src/server.ts does. */
export function createApp(deps: AppDeps): Koa {
  const { config } = deps;
  const app = new Koa();
  app.silent = true; // errors are logged by the problem middleware, once, with the request id
  app.use(requestContext(deps.logger));
  app.use(problemMiddleware({ logger: deps.logger, retryAfterS: config.retryAfterS }));
  app.use(corsFor(config.corsOrigins));

  // The unversioned /api is the current version, as the original specification wrote it.
  for (const prefix of ['/api/v1', '/api']) {
    const api = new Router({ prefix });
    snapshotRoutes(api, { snapshot: deps.snapshot, pollIntervalS: config.pollIntervalS });
    streamRoutes(api, { hub: deps.hub, retryAfterS: config.retryAfterS });
    scoreWriteRoutes(api, {
      loadCaller: deps.loadCaller,
      scores: deps.scores,
      maxScoreIncrement: config.maxScoreIncrement,
      maxBodyBytes: config.maxBodyBytes,
    });
    scoreReadRoutes(api, { db: deps.db, mirror: deps.mirror, loadCaller: deps.loadCaller });
    userRoutes(api, {
      db: deps.db,
      loadCaller: deps.loadCaller,
      mirror: deps.mirror,
      onChanged: deps.snapshot.markDirty,
      maxBodyBytes: config.maxBodyBytes,
    });
    app.use(api.routes()).use(api.allowedMethods({ throw: true }));
  }
  return app;
}

/** Strict allow-list CORS: only listed origins (or `*`) get CORS headers; credentials are never allowed. */
function corsFor(origins: string[]) {
  const any = origins.includes('*');
  return cors({
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
    allowMethods: ['GET', 'HEAD', 'POST', 'PATCH', 'OPTIONS'],
    maxAge: 600,
  });
}

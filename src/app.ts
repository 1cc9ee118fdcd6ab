import Koa from 'koa';
import Router from '@koa/router';
import type { Redis } from 'ioredis';
import type { CallerLoader } from './auth/caller';
import type { Config } from './config';
import type { Db } from './db';
import { problemMiddleware } from './errors';
import type { Logger } from './logger';
import { requestContext } from './request-context';
import { scoreWriteRoutes } from './scores/routes';
import type { ScoreService } from './scores/service';

export interface AppDeps {
  config: Config;
  logger: Logger;
  db: Db;
  redis: Redis;
  loadCaller: CallerLoader;
  scores: ScoreService;
}

/** Builds the Koa app from its dependencies. It never listens: src/server.ts does. */
export function createApp(deps: AppDeps): Koa {
  const { config } = deps;
  const app = new Koa();
  app.silent = true; // errors are logged by the problem middleware, once, with the request id
  app.use(requestContext(deps.logger));
  app.use(problemMiddleware({ logger: deps.logger, retryAfterS: config.retryAfterS }));

  // The unversioned /api is the current version, as the original specification wrote it.
  for (const prefix of ['/api/v1', '/api']) {
    const api = new Router({ prefix });
    scoreWriteRoutes(api, {
      loadCaller: deps.loadCaller,
      scores: deps.scores,
      maxScoreIncrement: config.maxScoreIncrement,
      maxBodyBytes: config.maxBodyBytes,
    });
    app.use(api.routes()).use(api.allowedMethods({ throw: true }));
  }
  return app;
}

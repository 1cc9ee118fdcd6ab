import type { Redis } from 'ioredis';
import { createCallerLoader } from './auth/caller';
import { createTokenVerifier } from './auth/tokens';
import type { Config } from './config';
import type { Db } from './db';
import type { Logger } from './logger';
import { createMirror } from './scores/mirror';
import { createScoreService } from './scores/service';

export interface ServiceHooks {
  afterCommit?: () => Promise<void> | void;
}

/** Wires the long-lived parts of one instance around its connections. */
export function createServices(
  deps: { config: Config; db: Db; redis: Redis; logger: Logger },
  hooks: ServiceHooks = {},
) {
  const { config, db, redis, logger } = deps;
  const mirror = createMirror({
    db,
    redis,
    prefix: config.redisPrefix,
    logger,
    syncIntervalMs: config.mirrorSyncIntervalMs,
    syncWindowMs: config.mirrorSyncWindowMs,
  });
  const scores = createScoreService({
    db,
    mirror,
    logger,
    batching: config.writeBatching,
    onCommitted: () => {},
    afterCommit: hooks.afterCommit,
  });
  const loadCaller = createCallerLoader({
    db,
    verifyToken: createTokenVerifier(config.jwt),
    autoProvision: config.autoProvisionUsers,
  });
  return {
    mirror,
    scores,
    loadCaller,
    start() {
      mirror.start();
    },
    async stop() {
      await scores.drain();
      await mirror.stop();
    },
  };
}

export type Services = ReturnType<typeof createServices>;

import type { Redis } from 'ioredis';
import { createCallerLoader } from './auth/caller';
import { createTokenVerifier } from './auth/tokens';
import type { Config } from './config';
import type { Db } from './db';
import type { Logger } from './logger';
import { createMirror } from './scores/mirror';
import { createScoreService } from './scores/service';
import { createSnapshotEngine } from './snapshot/engine';
import { createStreamHub } from './stream/hub';

export interface ServiceHooks {
  afterCommit?: () => Promise<void> | void;
}

/** Wires the long-lived parts of one instance around its connections. */
export function createServices(
  deps: { config: Config; db: Db; redis: Redis; subscriber: Redis; logger: Logger },
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
  const snapshot = createSnapshotEngine({
    db,
    redis,
    subscriber: deps.subscriber,
    prefix: config.redisPrefix,
    size: config.scoreboardSize,
    tickMs: config.snapshotTickMs,
    logger,
  });
  const scores = createScoreService({
    db,
    mirror,
    logger,
    batching: config.writeBatching,
    onCommitted: snapshot.markDirty,
    afterCommit: hooks.afterCommit,
  });
  const hub = createStreamHub({ snapshot, options: config.sse, logger });
  const loadCaller = createCallerLoader({
    db,
    verifyToken: createTokenVerifier(config.jwt),
    autoProvision: config.autoProvisionUsers,
  });
  return {
    mirror,
    snapshot,
    scores,
    hub,
    loadCaller,
    async start() {
      mirror.start();
      await snapshot.start();
    },
    /** Ends streams first (they would hold the HTTP server open), then drains writes and stops loops. */
    async stop() {
      hub.close();
      await scores.drain();
      await snapshot.stop();
      await mirror.stop();
    },
  };
}

export type Services = ReturnType<typeof createServices>;

import type { Redis } from 'ioredis';
import { createCallerLoader } from './auth/caller';
import { createTokenVerifier } from './auth/tokens';
import { createCheatDetector } from './cheat/detector';
import type { Config } from './config';
import type { Db } from './platform/db';
import type { Logger } from './platform/logger';
import { createMetrics } from './platform/metrics';
import { createDbFallback } from './leaderboard/read/db-fallback';
import { createMirror, type Standing } from './leaderboard/cache/mirror';
import { createScoreService } from './leaderboard/write/service';
import type { DeltaOutcome, DeltaRequest } from './leaderboard/write/store';
import { createSnapshotEngine } from './leaderboard/snapshot/engine';
import { createStreamHub } from './transports/sse/hub';

export interface ServiceHooks {
  afterCommit?: () => Promise<void> | void;
}

/** Wires the long-lived parts of one instance around its connections. */
export function createServices(
  deps: { config: Config; db: Db; redis: Redis; subscriber: Redis; logger: Logger },
  hooks: ServiceHooks = {},
) {
  const { config, db, redis, logger } = deps;
  const metrics = createMetrics();
  redis.on('error', () => metrics.redisErrors.inc());
  const mirror = createMirror({
    db,
    redis,
    prefix: config.redisPrefix,
    logger,
    syncIntervalMs: config.mirrorSyncIntervalMs,
    syncWindowMs: config.mirrorSyncWindowMs,
  });
  // The one gate public reads pass through to reach MySQL (DB_FALLBACK_CONCURRENCY, DB_FALLBACK_CACHE_MS).
  const standingFallback = createDbFallback<Standing | undefined>(config.dbFallback);
  const snapshot = createSnapshotEngine({
    db,
    redis,
    subscriber: deps.subscriber,
    prefix: config.redisPrefix,
    size: config.scoreboardSize,
    tickMs: config.snapshotTickMs,
    logger,
  });
  snapshot.onChange(() => metrics.snapshotChanges.inc());
  const cheat = createCheatDetector({
    db,
    redis,
    prefix: config.redisPrefix,
    pointsPerMinute: config.suspiciousPointsPerMin,
    flagAfterLimited: config.rateLimit.flagAfter,
    logger,
    metrics,
    queueMax: config.cheatFlagQueueMax,
  });

  function observe(requests: DeltaRequest[], outcomes: DeltaOutcome[]): void {
    metrics.writeBatchSize.observe(requests.length);
    const selfScored: Array<{ userId: string; delta: number }> = [];
    outcomes.forEach((o, i) => {
      metrics.scoreUpdates.inc({ outcome: o.kind });
      const r = requests[i];
      if (o.kind === 'applied' && r.actorId === r.userId)
        selfScored.push({ userId: r.userId, delta: r.delta });
    });
    void cheat.recordPoints(selfScored);
  }

  const scores = createScoreService({
    db,
    mirror,
    logger,
    batching: config.writeBatching,
    onCommitted: snapshot.markDirty,
    onOutcomes: observe,
    afterCommit: hooks.afterCommit,
  });
  const hub = createStreamHub({ snapshot, options: config.sse, logger });
  const verifyToken = createTokenVerifier(config.jwt);
  const loadCaller = createCallerLoader({
    db,
    verifyToken,
    autoProvision: config.autoProvisionUsers,
    cacheTtlMs: config.authCacheTtlMs,
  });
  let shuttingDown = false;

  return {
    metrics,
    mirror,
    standingFallback,
    snapshot,
    scores,
    hub,
    cheat,
    verifyToken,
    loadCaller,
    isShuttingDown: () => shuttingDown,
    /** Refreshes the gauges that are read rather than counted. */
    collect() {
      metrics.snapshotAge.set(snapshot.age() / 1000);
      metrics.sseSubscribers.set(hub.size());
    },
    async start() {
      mirror.start();
      await snapshot.start();
    },
    /** From now on /readyz fails, so load balancers stop sending new requests. */
    beginShutdown() {
      shuttingDown = true;
    },
    /** Streams end (they would hold the HTTP server open), queued writes drain, loops stop. */
    async stop() {
      shuttingDown = true;
      hub.close();
      await scores.drain();
      cheat.stop();
      await snapshot.stop();
      await mirror.stop();
    },
  };
}

export type Services = ReturnType<typeof createServices>;

import { createCallerLoader } from './auth/caller';
import { createJwksKeys } from './auth/jwks';
import { createTokenVerifier } from './auth/tokens';
import { createCheatDetector } from './cheat/detector';
import type { Config } from './config';
import { createEvents } from './events';
import { createMirror } from './leaderboard/cache/mirror';
import { createDbFallback } from './leaderboard/read/db-fallback';
import { createBoardRegistry } from './leaderboard/boards/registry';
import { createScoreService } from './leaderboard/write/service';
import { createWriteLimiter } from './leaderboard/write/write-limit';
import { redisKeys } from './leaderboard/ranking';
import { createDb } from './platform/db';
import { createLogger } from './platform/logger';
import { createMetrics } from './platform/metrics';
import { closeRedis, createRedis } from './platform/redis';
import { createStreamHub } from './transports/sse/hub';
import { createWsHub } from './transports/ws/hub';
import { createUpgradeHandler } from './transports/ws/upgrade';
import { createBoardWindows } from './leaderboard/snapshot/board-windows';
import { clientKey } from './http/rate-limit/client-key';
import { createSlots } from './transports/slots';
import { createHash } from 'node:crypto';
import { createRabbit } from './broker/rabbitmq';
import { createIntake } from './broker/intake';
import { createRelay } from './broker/relay';

export interface ContainerHooks {
  /** Test hook: runs after a batch commits, before the Redis mirror (the fault tests' SIGKILL goes here). */
  afterCommit?: () => Promise<void> | void;
}

/**
 * The only wiring: connects to MySQL and Redis and builds every long-lived part of one instance, then says
 * who hears which event. No rules live here; each is in its feature. Used by src/main.ts (and so by the test
 * instances, which start the server the same way) and by the admin commands.
 */
export function createContainer(config: Config, hooks: ContainerHooks = {}) {
  const logger = createLogger(config.logLevel);
  const db = createDb(config);
  const redis = createRedis(config, logger);
  const subscriber = createRedis(config, undefined, 'subscriber');
  const events = createEvents(logger);
  const metrics = createMetrics();
  redis.on('error', () => metrics.redisErrors.inc());

  const boardRegistry = createBoardRegistry({
    db,
    logger,
    refreshMs: config.boards.refreshMs,
    missReloadMs: config.boards.missReloadMs,
  });
  const mirror = createMirror({
    db,
    redis,
    prefix: config.redisPrefix,
    logger,
    syncIntervalMs: config.mirrorSyncIntervalMs,
    syncWindowMs: config.mirrorSyncWindowMs,
    boards: boardRegistry,
    graceMs: config.boards.closedCycleGraceMs,
  });
  // The one gate public reads pass through to reach MySQL (DB_FALLBACK_CONCURRENCY, DB_FALLBACK_CACHE_MS).
  const standingFallback = createDbFallback<unknown>(config.dbFallback);
  // Archive reads (`at=` a closed cycle, /entries, around-me) reach MySQL through the same kind of gate.
  const archiveFallback = createDbFallback<unknown>({
    concurrency: config.dbFallback.concurrency,
    cacheMs: config.boards.archiveCacheMs,
  });
  const boards = createBoardWindows({
    db,
    redis,
    subscriber,
    boards: boardRegistry,
    prefix: config.redisPrefix,
    shardedPubsub: config.redis.shardedPubsub,
    size: config.scoreboardSize,
    tickMs: config.snapshotTickMs,
    idleMs: config.boards.idleMs,
    logger,
    onChanged: (feed, s) => events.emit('snapshotChanged', { ...feed, snapshot: s }),
    onShared: (feed, s) => events.emit('snapshotShared', { ...feed, snapshot: s }),
  });
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
  // The per-user write limit, decided per batch (src/leaderboard/write/write-limit.ts).
  const writeLimiter = createWriteLimiter({
    redis,
    namespace: redisKeys(config.redisPrefix).writeLimit,
    max: config.rateLimit.writesPerMin,
    windowMs: 60_000,
    logger,
  });
  const limiterSweep = setInterval(() => writeLimiter.sweep(), 60_000);
  limiterSweep.unref();
  const scores = createScoreService({
    db,
    mirror,
    limiter: writeLimiter,
    windowsOf: (id) => boardRegistry.get(id)?.windows,
    logger,
    batching: config.writeBatching,
    events,
    afterCommit: hooks.afterCommit,
  });
  // One set of connection slots for both push transports (SSE_MAX_CLIENTS, RATE_LIMIT_STREAMS_PER_IP).
  const slots = createSlots(config.streams);
  const hub = createStreamHub({
    slots,
    options: config.sse,
    logger,
    onAttach: () => metrics.sseConnections.inc(),
  });
  const ws = createWsHub({
    boards,
    findBoard: boardRegistry.find,
    slots,
    options: { ...config.ws, maxBufferBytes: config.sse.maxBufferBytes },
    metrics,
    logger,
  });
  const onUpgrade = createUpgradeHandler({
    hub: ws,
    boards,
    findBoard: boardRegistry.find,
    slots,
    clientKey: (ip) => clientKey(ip, config.rateLimit.ipv6Prefix),
    trustProxyHops: config.trustProxyHops,
    corsOrigins: config.corsOrigins,
    retryAfterS: config.retryAfterS,
    metrics,
  });
  // An identity provider's keys (OIDC_ISSUER, JWT_JWKS_URL), fetched and cached; none with a configured key.
  const keys =
    config.jwt.mode === 'oidc' || config.jwt.mode === 'jwks'
      ? createJwksKeys({
          issuer: config.jwt.oidcIssuer,
          jwksUrl: config.jwt.jwksUrl,
          ...config.jwt.jwks,
          metrics,
          logger,
        })
      : undefined;
  const verifyToken = createTokenVerifier(config.jwt, {
    keys,
    onRejected: (reason) => metrics.tokenRejections.inc({ reason }),
  });
  const loadCaller = createCallerLoader({
    db,
    autoProvision: config.autoProvisionUsers,
    cacheTtlMs: config.authCacheTtlMs,
  });

  // RabbitMQ (AMQP_URL): deltas in through the same group commit, committed events out through the outbox.
  const rabbit = config.amqp.url ? createRabbit({ url: config.amqp.url, logger }) : undefined;
  const intake =
    rabbit &&
    createIntake({
      source: rabbit.deltaSource({
        queue: config.amqp.deltasQueue,
        deadLetterQueue: config.amqp.deadLetterQueue ?? `${config.amqp.deltasQueue}.dead`,
        prefetch:
          config.amqp.prefetch || config.writeBatching.maxBatch * (config.writeBatching.concurrency + 1),
      }),
      scores,
      db,
      findBoard: boardRegistry.find,
      actorId: config.amqp.actorId,
      autoProvision: config.autoProvisionUsers,
      retryMaxMs: config.amqp.retryMaxMs,
      logger,
      onOutcome: (outcome) => metrics.brokerDeltas.inc({ outcome }),
    });
  const sink =
    rabbit && config.amqp.eventsExchange
      ? rabbit.eventSink({ exchange: config.amqp.eventsExchange })
      : undefined;
  const relay =
    sink &&
    createRelay({
      db,
      sink,
      name: relayName(config.amqp.eventsExchange!),
      intervalMs: config.amqp.relayIntervalMs,
      batch: config.amqp.relayBatch,
      gapTimeoutMs: config.amqp.relayGapTimeoutMs,
      logger,
      onPublished: (n) => metrics.relayPublished.inc(n),
    });
  // Top-N changes go out too, best effort (not through the outbox): one message per version, from the
  // instance whose snapshot became the shared one.
  if (sink)
    events.on(
      'snapshotShared',
      ({ board, window, snapshot }) =>
        void sink
          .publish([
            {
              routingKey: `top.${board}.${window}`,
              messageId: `${board}/${window}/${snapshot.etag}`,
              body: {
                board,
                window,
                cycle: snapshot.cycle,
                version: snapshot.etag,
                top: JSON.parse(snapshot.body.toString()),
              },
            },
          ])
          .catch((err) => logger.warn({ err: (err as Error).message }, 'could not publish a top change')),
    );
  let depthTimer: NodeJS.Timeout | undefined;

  events.on('snapshotChanged', () => metrics.snapshotChanges.inc());
  events.on('batchCommitted', (e) => e.changed && boards.markChanged(e.mirror));
  events.on('batchCommitted', (e) => metrics.observeBatch(e.outcomes.map((o) => o.kind)));
  events.on('batchCommitted', cheat.observeBatch);
  events.on('rateLimited', (e) => metrics.rateLimited.inc({ limit: e.limit }));
  events.on('rateLimited', (e) => e.userId !== undefined && void cheat.recordRateLimited(e.userId));

  let shuttingDown = false;
  return {
    config,
    logger,
    db,
    redis,
    events,
    metrics,
    mirror,
    standingFallback,
    archiveFallback,
    boardRegistry,
    boards,
    scores,
    hub,
    ws,
    /** The HTTP server's `upgrade` listener: WebSocket on /ws/scores and /api/v1/ws. */
    onUpgrade,
    cheat,
    verifyToken,
    loadCaller,
    isShuttingDown: () => shuttingDown,
    /** Readiness of token verification: an identity provider's keys that could never be loaded fail it. */
    authStatus: () => (keys ? keys.status() : { loaded: true, error: undefined }),
    /** The broker's side, for /readyz: undefined when AMQP_URL is not set. */
    brokerStatus: () =>
      rabbit && {
        connected: rabbit.connected(),
        ...(intake ? { consumed: intake.counts() } : {}),
        ...(relay ? { relay: relay.status() } : {}),
      },
    /** Refreshes the gauges that are read rather than counted. */
    collect() {
      metrics.mirrorSyncAge.set(mirror.syncAge() / 1000);
      if (intake)
        metrics.brokerConnected.set({ queue: config.amqp.deltasQueue }, rabbit!.connected() ? 1 : 0);
      if (relay) {
        const r = relay.status();
        const exchange = config.amqp.eventsExchange!;
        metrics.relayLeader.set({ exchange }, r.leader ? 1 : 0);
        metrics.relayLagEvents.set({ exchange }, r.leader ? Math.max(0, r.headEventId - r.lastEventId) : 0);
      }
      metrics.snapshotAge.set(boards.global().snapshot.age() / 1000);
      metrics.sseSubscribers.set(hub.size());
      metrics.wsSubscribers.set(ws.size());
    },
    async start() {
      await keys?.start(); // bounded by JWKS_TIMEOUT_MS; a provider that is down leaves the instance unready
      await boardRegistry.start();
      mirror.start();
      await boards.start();
      await intake?.start();
      relay?.start();
      if (intake) {
        const refresh = () =>
          void rabbit!.deltaDepth().then((d) => d !== undefined && metrics.brokerQueueDepth.set(d));
        depthTimer = setInterval(refresh, 5000);
        depthTimer.unref();
      }
    },
    /** From now on /readyz fails, so load balancers stop sending new requests. */
    beginShutdown() {
      shuttingDown = true;
    },
    /** Streams end (they would hold the HTTP server open), queued writes drain, loops stop. */
    async stop() {
      shuttingDown = true;
      hub.close();
      ws.close();
      clearInterval(depthTimer);
      clearInterval(limiterSweep);
      // Stop taking broker messages first; the ones in hand finish (commit) and are acknowledged.
      await intake?.stop();
      await scores.drain();
      await relay?.stop();
      await sink?.close();
      cheat.stop();
      keys?.stop();
      await boards.stop();
      await mirror.stop();
      boardRegistry.stop();
    },
    /** Last, once no request is in flight: the connections go. */
    async disconnect() {
      closeRedis(redis);
      closeRedis(subscriber);
      await rabbit?.close();
      await db.destroy();
    },
  };
}

export type Container = ReturnType<typeof createContainer>;

/** The relay's row in event_relay (64 characters at most; an exchange name may be longer). */
const relayName = (exchange: string) =>
  `amqp:${exchange}`.length <= 64
    ? `amqp:${exchange}`
    : `amqp:sha1:${createHash('sha1').update(exchange).digest('hex')}`;

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics for one instance, in a registry of its own (no module-level state, so several app
 * instances in one process — tests, workers — never mix their numbers).
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    scoreUpdates: new Counter({
      name: 'score_updates_total',
      help: 'Score deltas by outcome (applied, replayed, rejected)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    writeBatchSize: new Histogram({
      name: 'score_write_batch_size',
      help: 'Deltas per group-committed MySQL transaction',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200],
      registers: [registry],
    }),
    snapshotChanges: new Counter({
      name: 'snapshot_changes_total',
      help: 'Times this instance adopted a top-N snapshot with new content',
      registers: [registry],
    }),
    snapshotAge: new Gauge({
      name: 'snapshot_age_seconds',
      help: 'Seconds since this instance adopted its current snapshot',
      registers: [registry],
    }),
    sseSubscribers: new Gauge({
      name: 'sse_subscribers',
      help: 'Open Server-Sent Events streams on this instance',
      registers: [registry],
    }),
    wsConnections: new Counter({
      name: 'ws_connections_total',
      help: 'WebSocket connections accepted',
      registers: [registry],
    }),
    wsSubscribers: new Gauge({
      name: 'ws_subscribers',
      help: 'Open WebSocket connections on this instance',
      registers: [registry],
    }),
    wsMessagesSent: new Counter({
      name: 'ws_messages_sent_total',
      help: 'Scoreboard messages handed to WebSocket clients',
      registers: [registry],
    }),
    wsMessagesReceived: new Counter({
      name: 'ws_messages_received_total',
      help: 'Messages received from WebSocket clients',
      registers: [registry],
    }),
    wsRejected: new Counter({
      name: 'ws_upgrades_rejected_total',
      help: 'WebSocket upgrades refused, by reason (path, protocol, origin, query, unknown, full, client)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    sseConnections: new Counter({
      name: 'sse_connections_total',
      help: 'Server-Sent Events streams opened',
      registers: [registry],
    }),
    jwksFetches: new Counter({
      name: 'jwks_fetches_total',
      help: "Fetches of the identity provider's signing keys (discovery included), by result",
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    jwksCooldownHits: new Counter({
      name: 'jwks_cooldown_hits_total',
      help: 'Tokens with an unknown key refused without a fetch, because one ran less than JWKS_COOLDOWN_MS ago',
      registers: [registry],
    }),
    tokenRejections: new Counter({
      name: 'token_rejections_total',
      help: 'Bearer tokens refused (401), by reason (never the token itself)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'redis_errors_total',
      help: 'Redis commands or connections that failed',
      registers: [registry],
    }),
    mysqlErrors: new Counter({
      name: 'mysql_errors_total',
      help: 'Requests that failed because MySQL was unreachable',
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'rate_limit_rejections_total',
      help: 'Requests refused with 429, by limit',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    cheatFlagSaveFailures: new Counter({
      name: 'cheat_flag_save_failures_total',
      help: 'Attempts to store a cheat flag in MySQL that failed (unknown_user: no users row yet; mysql: other)',
      labelNames: ['cause'] as const,
      registers: [registry],
    }),
    cheatFlagsLost: new Counter({
      name: 'cheat_flags_lost_total',
      help: 'Cheat flags given up after every retry, by reason and cause (each also logged at error)',
      labelNames: ['reason', 'cause'] as const,
      registers: [registry],
    }),
    // Labelled by queue or exchange, so they exist only where the broker features are configured (an unset
    // unlabelled gauge would read 0 and page everyone who runs without a broker).
    brokerConnected: new Gauge({
      name: 'broker_connected',
      help: '1 while connected to the message broker, else 0 (only with AMQP_URL)',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    brokerDeltas: new Counter({
      name: 'broker_deltas_total',
      help: 'Delta messages from the broker, by outcome (applied, replayed, dead, retried)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    brokerQueueDepth: new Gauge({
      name: 'broker_queue_depth',
      help: 'Delta messages waiting in the queue, as the broker last said (the intake lag)',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    relayLeader: new Gauge({
      name: 'relay_leader',
      help: '1 on the instance that holds the event relay lock, else 0 (only with AMQP_EVENTS_EXCHANGE)',
      labelNames: ['exchange'] as const,
      registers: [registry],
    }),
    relayPublished: new Counter({
      name: 'relay_published_total',
      help: 'Score events the broker confirmed',
      registers: [registry],
    }),
    relayLagEvents: new Gauge({
      name: 'relay_lag_events',
      help: 'Committed score events not yet confirmed by the broker (on the relaying instance; 0 elsewhere)',
      labelNames: ['exchange'] as const,
      registers: [registry],
    }),
    mirrorSyncAge: new Gauge({
      name: 'mirror_sync_age_seconds',
      help: 'Seconds since the Redis mirror last completed a clean sync with MySQL (rebuild or catch-up)',
      registers: [registry],
    }),
    cheatFlags: new Counter({
      name: 'cheat_flags_total',
      help: 'Cheat signals raised, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
  return {
    ...m,
    /** One group-committed batch: its size, and each request's outcome kind. */
    observeBatch(kinds: string[]) {
      m.writeBatchSize.observe(kinds.length);
      for (const outcome of kinds) m.scoreUpdates.inc({ outcome });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

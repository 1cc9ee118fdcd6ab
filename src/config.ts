import { availableParallelism } from 'node:os';
import Joi from 'joi';
import { derived, optional, readTable, rulesOf, value, type Resolve } from './config/table';

/**
 * Every setting the service reads, validated once at start-up. A bad or missing value stops the process with
 * one message that names every problem (abortEarly: false), so an operator fixes them all in one go.
 *
 * One row per variable: its name, its joi rule and where its value goes in `Config` (the type is derived from
 * this table). Rules between variables (one JWT key, TLS files in pairs, production's demands) are below it.
 * Document a new variable in the README's configuration table too.
 */
const int = () => Joi.number().integer();
const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'ES256'] as const;
/** What an identity provider's keys (OIDC_ISSUER, JWT_JWKS_URL) may sign with. */
const PROVIDER_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384'] as const;
type ProviderAlgorithm = (typeof PROVIDER_ALGORITHMS)[number];

/**
 * The well-known secret `npm run dev` and `npm run token` fall back to when no key is configured. Public on
 * purpose, so anyone can try the API locally; production refuses it by value.
 */
export const DEV_JWT_SECRET = 'dev-only-insecure-secret-never-use-in-production!!';

/** A `host:port,...` list (sentinels, cluster seed nodes). */
const HOST_PORTS = Joi.string().pattern(/^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/, 'host:port,...');
const hostPorts = (list: unknown) =>
  (list as string | undefined)?.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
  });

const table = {
  nodeEnv: value<string>(
    'NODE_ENV',
    Joi.string().valid('development', 'production', 'test').default('production'),
  ),
  port: value<number>('PORT', int().min(0).max(65535).default(3000)),
  host: value<string>('HOST', Joi.string().default('0.0.0.0')),
  databaseUrl: value<string>(
    'DATABASE_URL',
    Joi.string()
      .uri({ scheme: ['mysql', 'mysql2'] })
      .default('mysql://root@127.0.0.1:3306/scoreboard'),
  ),
  databasePoolMax: value<number>('DATABASE_POOL_MAX', int().min(1).max(500).default(10)),
  databaseTimeoutMs: value<number>('DATABASE_TIMEOUT_MS', int().min(100).default(2000)),
  // One Redis mode at a time: REDIS_URL (one server; rediss:// for TLS), REDIS_SENTINELS (ioredis asks the
  // sentinels for the primary of REDIS_SENTINEL_NAME and follows failovers), or REDIS_CLUSTER_NODES (ioredis's
  // cluster client discovers the slots from any of these nodes and follows MOVED, ASK and failovers).
  redisUrl: derived<string>(
    { REDIS_URL: Joi.string().uri({ scheme: ['redis', 'rediss'] }) },
    (v) => (v.REDIS_URL as string | undefined) ?? 'redis://127.0.0.1:6379/0',
  ),
  redis: {
    sentinels: derived<Array<{ host: string; port: number }> | undefined>(
      { REDIS_SENTINELS: HOST_PORTS },
      (v) => hostPorts(v.REDIS_SENTINELS),
    ),
    clusterNodes: derived<Array<{ host: string; port: number }> | undefined>(
      { REDIS_CLUSTER_NODES: HOST_PORTS },
      (v) => hostPorts(v.REDIS_CLUSTER_NODES),
    ),
    sentinelName: value<string>('REDIS_SENTINEL_NAME', Joi.string().max(200).default('mymaster')),
    sentinelPassword: optional<string>('REDIS_SENTINEL_PASSWORD', Joi.string().max(512)),
    // AUTH / ACL for the data nodes in either mode (a REDIS_URL may carry them too).
    username: optional<string>('REDIS_USERNAME', Joi.string().max(200)),
    password: optional<string>('REDIS_PASSWORD', Joi.string().max(512)),
    // TLS to the data nodes and the sentinels in sentinel mode (REDIS_URL says rediss:// instead), with an
    // optional CA bundle for a private CA (either mode).
    tls: value<boolean>('REDIS_TLS', Joi.boolean().default(false)),
    tlsCaFile: optional<string>('REDIS_TLS_CA_FILE', Joi.string()),
    // Snapshot notices go out on one channel per board: sharded pub/sub (SPUBLISH, Redis 7+) when the server
    // has it, so a cluster sends each to its board's shard only; `off` keeps classic pub/sub (for a proxy in
    // front of Redis that does not know SSUBSCRIBE).
    shardedPubsub: value<'auto' | 'off'>(
      'REDIS_SHARDED_PUBSUB',
      Joi.string().valid('auto', 'off').default('auto'),
    ),
  },
  redisPrefix: value<string>('REDIS_PREFIX', Joi.string().min(1).max(64).default('scoreboard:')),
  redisTimeoutMs: value<number>('REDIS_TIMEOUT_MS', int().min(10).default(500)),
  jwt: {
    // Exactly one way to get keys (see the rules below the table): a shared secret, one PEM public key, or an
    // identity provider's published key set, found by OIDC discovery or given as a URL.
    mode: derived<'secret' | 'public-key' | 'oidc' | 'jwks'>({}, (v) =>
      v.JWT_SECRET ? 'secret' : v.JWT_PUBLIC_KEY ? 'public-key' : v.OIDC_ISSUER ? 'oidc' : 'jwks',
    ),
    oidcIssuer: optional<string>('OIDC_ISSUER', Joi.string().uri({ scheme: ['https', 'http'] })),
    jwksUrl: optional<string>('JWT_JWKS_URL', Joi.string().uri({ scheme: ['https', 'http'] })),
    // The algorithms a provider's tokens may use (comma-separated); a token's `alg` outside them is refused.
    algorithms: derived<ProviderAlgorithm[]>(
      {
        JWT_ALGORITHMS: Joi.string()
          .pattern(new RegExp(`^(${PROVIDER_ALGORITHMS.join('|')})(,(${PROVIDER_ALGORITHMS.join('|')}))*$`))
          .default('RS256')
          .messages({
            'string.pattern.base': `"JWT_ALGORITHMS" lists some of ${PROVIDER_ALGORITHMS.join(', ')}`,
          }),
      },
      (v) => [...new Set((v.JWT_ALGORITHMS as string).split(','))] as ProviderAlgorithm[],
    ),
    // The claim that carries a display name, then `preferred_username` (Keycloak, Entra ID), then none.
    nameClaim: value<string>(
      'JWT_NAME_CLAIM',
      Joi.string()
        .pattern(/^[\w.:-]{1,64}$/)
        .default('name'),
    ),
    jwks: {
      // Every fetch of discovery or keys gives up after this long: a slow provider never holds a request.
      timeoutMs: value<number>('JWKS_TIMEOUT_MS', int().min(100).max(60_000).default(2000)),
      // A token with an unknown key refetches the keys at most once per this long (failures count too).
      cooldownMs: value<number>('JWKS_COOLDOWN_MS', int().min(0).max(3_600_000).default(30_000)),
      // Keys are refreshed this often in the background (so a removed key stops verifying within it).
      refreshMs: value<number>('JWKS_REFRESH_MS', int().min(1000).max(86_400_000).default(600_000)),
    },
    // For JWT_SECRET and JWT_PUBLIC_KEY: the one algorithm accepted.
    algorithm: value<(typeof JWT_ALGORITHMS)[number]>(
      'JWT_ALGORITHM',
      Joi.string()
        .valid(...JWT_ALGORITHMS)
        .default((parent: Record<string, unknown>) => (parent.JWT_PUBLIC_KEY ? 'RS256' : 'HS256')),
    ),
    key: derived<string | undefined>(
      {
        JWT_SECRET: Joi.string().min(32).messages({
          'string.min': '"JWT_SECRET" must be at least 32 bytes long (HS256 needs a key as long as its hash)',
        }),
        JWT_PUBLIC_KEY: Joi.string().pattern(/-----BEGIN [A-Z ]*PUBLIC KEY-----/, 'PEM public key'),
      },
      (v) => (v.JWT_SECRET ?? v.JWT_PUBLIC_KEY) as string | undefined,
    ),
    // In production a token must name us: without iss/aud checks, a token the same identity provider issued
    // for another application would be accepted here. With OIDC_ISSUER the issuer is that, exactly.
    issuer: derived<string | undefined>(
      {
        JWT_ISSUER: Joi.string()
          .when('NODE_ENV', {
            is: 'production',
            then: Joi.when('OIDC_ISSUER', { is: Joi.exist(), otherwise: Joi.required() }),
          })
          .messages({
            'any.required':
              '"JWT_ISSUER" is required when NODE_ENV is production (tokens must name their issuer)',
          }),
      },
      (v) => (v.JWT_ISSUER ?? v.OIDC_ISSUER) as string | undefined,
    ),
    audience: optional<string>(
      'JWT_AUDIENCE',
      Joi.string()
        .when('NODE_ENV', { is: 'production', then: Joi.required() })
        .when('OIDC_ISSUER', { is: Joi.exist(), then: Joi.required() })
        .when('JWT_JWKS_URL', { is: Joi.exist(), then: Joi.required() })
        .messages({
          'any.required':
            '"JWT_AUDIENCE" is required in production and with an identity provider (tokens must be meant for us)',
        }),
    ),
    clockToleranceS: value<number>('JWT_CLOCK_TOLERANCE_S', int().min(0).max(300).default(30)),
    /** Tokens issued (`iat`) longer ago than this are refused, and so are tokens without `iat`. */
    maxAgeS: optional<number>('JWT_MAX_AGE_S', int().min(1).max(31_536_000)),
    /** The JOSE `typ` header every token must carry (e.g. `at+jwt`), when set. */
    typ: optional<string>(
      'JWT_TYP',
      Joi.string().pattern(/^[\x21-\x7e]{1,64}$/, 'a media type such as at+jwt'),
    ),
  },
  autoProvisionUsers: value<boolean>('AUTO_PROVISION_USERS', Joi.boolean().default(true)),
  // How long an instance may reuse a user's role and status without asking MySQL (0: ask on every request).
  // Bans still stop writes at once (the write transaction re-checks under lock); role changes made on another
  // instance take up to this long to reach this one's non-write admin routes.
  authCacheTtlMs: value<number>('AUTH_CACHE_TTL_MS', int().min(0).max(60_000).default(1000)),
  maxScoreIncrement: value<number>(
    'MAX_SCORE_INCREMENT',
    int().min(1).max(Number.MAX_SAFE_INTEGER).default(1000),
  ),
  maxBodyBytes: value<number>('MAX_BODY_BYTES', int().min(64).max(1_048_576).default(4096)),
  retryAfterS: value<number>('RETRY_AFTER_S', int().min(1).max(3600).default(5)),
  logLevel: value<string>(
    'LOG_LEVEL',
    Joi.string().valid('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent').default('info'),
  ),
  shutdownTimeoutMs: value<number>('SHUTDOWN_TIMEOUT_MS', int().min(100).default(10_000)),
  shutdownDelayMs: value<number>('SHUTDOWN_DELAY_MS', int().min(0).max(60_000).default(0)),
  scoreboardSize: value<number>('SCOREBOARD_SIZE', int().min(1).max(100).default(10)),
  snapshotTickMs: value<number>('SNAPSHOT_TICK_MS', int().min(10).max(60_000).default(100)),
  pollIntervalS: value<number>('POLL_INTERVAL_S', int().min(1).max(3600).default(5)),
  // A CDN or nginx may keep a public poll answer this long (Cache-Control s-maxage, and as long again stale
  // while it revalidates); browsers still revalidate every poll. 0: no-cache for every cache.
  pollSharedMaxAgeS: value<number>('POLL_SHARED_MAX_AGE_S', int().min(0).max(60).default(1)),
  corsOrigins: derived<string[]>({ CORS_ORIGINS: Joi.string().allow('').default('') }, (v) =>
    (v.CORS_ORIGINS as string)
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
  ),
  mirrorSyncIntervalMs: value<number>('MIRROR_SYNC_INTERVAL_MS', int().min(100).default(2000)),
  mirrorSyncWindowMs: value<number>('MIRROR_SYNC_WINDOW_MS', int().min(1000).default(10_000)),
  boards: {
    // Boards an admin may create, in all (global included), and windows per board.
    max: value<number>('MAX_BOARDS', int().min(1).max(100_000).default(1000)),
    maxWindows: value<number>('MAX_WINDOWS_PER_BOARD', int().min(1).max(32).default(8)),
    // Other instances' new boards are known here within BOARDS_REFRESH_MS, or at the first request for one
    // (at most one reload per BOARDS_MISS_RELOAD_MS, so unknown ids cannot make MySQL work harder).
    refreshMs: value<number>('BOARDS_REFRESH_MS', int().min(100).max(3_600_000).default(10_000)),
    missReloadMs: value<number>('BOARDS_MISS_RELOAD_MS', int().min(0).max(60_000).default(1000)),
    // A board window's live snapshot is dropped when nobody polled or followed it for this long.
    idleMs: value<number>('BOARD_SNAPSHOT_IDLE_MS', int().min(1000).max(86_400_000).default(300_000)),
    // A closed cycle leaves Redis this long after its end (it stays in MySQL for `at=` reads).
    closedCycleGraceMs: value<number>(
      'CLOSED_CYCLE_GRACE_MS',
      int()
        .min(0)
        .max(31 * 86_400_000)
        .default(3_600_000),
    ),
    // Archive reads (`at=` in a closed cycle) are cached this long; at most DB_FALLBACK_CONCURRENCY at once.
    archiveCacheMs: value<number>('ARCHIVE_CACHE_MS', int().min(0).max(3_600_000).default(10_000)),
    // `around=` neighbours per side, and the page size of /entries.
    maxAround: value<number>('MAX_AROUND', int().min(0).max(25).default(25)),
    maxPage: value<number>('MAX_ENTRIES_PAGE', int().min(1).max(100).default(100)),
  },
  writeBatching: {
    maxBatch: value<number>('WRITE_BATCH_MAX', int().min(1).max(500).default(50)),
    // Group commit (src/leaderboard/write/write-queue.ts): a partial batch waits up to WRITE_BATCH_WAIT_MS for
    // the running transaction before starting beside it; full batches start at once, up to WRITE_CONCURRENCY
    // in flight. 5 ms and 2 gave the biggest batches and the best throughput on 2 cores (BENCHMARKS.md).
    maxWaitMs: value<number>('WRITE_BATCH_WAIT_MS', int().min(0).max(1000).default(5)),
    concurrency: value<number>('WRITE_CONCURRENCY', int().min(1).max(64).default(2)),
    // Writes waiting for a transaction; past it a write is 503 + Retry-After at once (load shedding).
    maxQueued: value<number>('WRITE_QUEUE_MAX', int().min(1).max(1_000_000).default(5000)),
  },
  // Open TCP connections per process (server.maxConnections); unset means Node's default, no limit.
  maxConnections: optional<number>('MAX_CONNECTIONS', int().min(1).max(1_000_000)),
  rateLimit: {
    writesPerMin: value<number>('RATE_LIMIT_WRITES_PER_MIN', int().min(1).default(120)),
    readsPerMin: value<number>('RATE_LIMIT_READS_PER_MIN', int().min(1).default(600)),
    flagAfter: value<number>('RATE_LIMIT_FLAG_AFTER', int().min(1).default(5)),
    // Read and stream limits key IPv6 clients by their /64 (what one subscriber is usually given), so one
    // party cannot take a fresh budget per address; IPv4 and IPv4-mapped IPv6 are keyed by the address.
    ipv6Prefix: value<number>('RATE_LIMIT_IPV6_PREFIX', int().min(8).max(128).default(64)),
  },
  // The public user read falls back to MySQL only when the Redis mirror cannot answer (not ready, Redis down):
  // at most DB_FALLBACK_CONCURRENCY such reads at once (503 past it), each answer reused for DB_FALLBACK_CACHE_MS.
  dbFallback: {
    concurrency: value<number>('DB_FALLBACK_CONCURRENCY', int().min(1).max(64).default(4)),
    cacheMs: value<number>('DB_FALLBACK_CACHE_MS', int().min(0).max(60_000).default(1000)),
  },
  // RabbitMQ (src/broker/): deltas in from a queue (when AMQP_URL is set), committed events out to a topic
  // exchange (when AMQP_EVENTS_EXCHANGE is set too).
  amqp: {
    url: optional<string>('AMQP_URL', Joi.string().uri({ scheme: ['amqp', 'amqps'] })),
    deltasQueue: value<string>('AMQP_DELTAS_QUEUE', Joi.string().max(200).default('scoreboard.deltas')),
    // Messages that can never apply go here, with the reason in the x-scoreboard-reason header.
    deadLetterQueue: optional<string>('AMQP_DEAD_LETTER_QUEUE', Joi.string().max(200)),
    // The user recorded as the author of broker deltas (its actionIds are its own); created at start.
    actorId: value<string>(
      'AMQP_ACTOR_ID',
      Joi.string()
        .pattern(/^[A-Za-z0-9._@:|+=-]{1,64}$/)
        .default('broker'),
    ),
    // Messages in flight per instance: each joins the group commit; 0 means WRITE_BATCH_MAX x (WRITE_CONCURRENCY
    // + 1), enough to fill every batch in flight and the next one.
    prefetch: value<number>('AMQP_PREFETCH', int().min(0).max(1000).default(0)),
    // Backoff while MySQL cannot take deltas: from 200 ms, doubling, up to this.
    retryMaxMs: value<number>('AMQP_RETRY_MAX_MS', int().min(100).max(600_000).default(30_000)),
    eventsExchange: optional<string>('AMQP_EVENTS_EXCHANGE', Joi.string().max(200)),
    // The outbox relay: how often it looks for new events, and how many it publishes per round.
    relayIntervalMs: value<number>('RELAY_INTERVAL_MS', int().min(10).max(60_000).default(200)),
    relayBatch: value<number>('RELAY_BATCH', int().min(1).max(10_000).default(500)),
    // A gap in event ids older than this is a rolled-back transaction (see src/broker/relay.ts), not a late one.
    relayGapTimeoutMs: value<number>('RELAY_GAP_TIMEOUT_MS', int().min(100).max(600_000).default(15_000)),
  },
  // When set, /metrics answers only "Authorization: Bearer <METRICS_TOKEN>" (compared in constant time).
  metricsToken: optional<string>('METRICS_TOKEN', Joi.string().min(16).max(512)),
  // When set, /metrics is served on this port only (an operator network), not on PORT.
  metricsPort: optional<number>('METRICS_PORT', int().min(1).max(65535)),
  // /readyz pings MySQL at most once per READYZ_CACHE_MS, whatever the number of probes (0: every probe).
  readyzCacheMs: value<number>('READYZ_CACHE_MS', int().min(0).max(60_000).default(1000)),
  // Cheat flags waiting for MySQL (it was down when they were raised); past this the oldest is dropped, loudly.
  cheatFlagQueueMax: value<number>('CHEAT_FLAG_QUEUE_MAX', int().min(1).max(100_000).default(1000)),
  suspiciousPointsPerMin: value<number>('SUSPICIOUS_POINTS_PER_MIN', int().min(1).default(5000)),
  // true means one proxy hop; a number says how many proxies append to X-Forwarded-For.
  trustProxyHops: derived<number>(
    { TRUST_PROXY: Joi.alternatives(int().min(0).max(10), Joi.boolean()).default(0) },
    (v) => (v.TRUST_PROXY === true ? 1 : v.TRUST_PROXY === false ? 0 : (v.TRUST_PROXY as number)),
  ),
  requestTimeoutMs: value<number>('REQUEST_TIMEOUT_MS', int().min(1000).default(10_000)),
  // In production one process per CPU (the write path's JSON, JWT and joi work is CPU-bound per request);
  // elsewhere one, so a dev server, tests and the bench decide for themselves.
  workers: value<number>(
    'WORKERS',
    int()
      .min(1)
      .max(64)
      .default((env: Record<string, unknown>) =>
        (env.NODE_ENV ?? 'production') === 'production' ? Math.min(64, availableParallelism()) : 1,
      ),
  ),
  tls: derived<{ certFile: string; keyFile: string } | undefined>(
    { TLS_CERT_FILE: Joi.string(), TLS_KEY_FILE: Joi.string() },
    (v) =>
      v.TLS_CERT_FILE
        ? { certFile: v.TLS_CERT_FILE as string, keyFile: v.TLS_KEY_FILE as string }
        : undefined,
  ),
  sse: {
    heartbeatMs: value<number>('SSE_HEARTBEAT_MS', int().min(100).default(15_000)),
    maxBufferBytes: value<number>('SSE_MAX_BUFFER_BYTES', int().min(1024).default(65_536)),
    retryMs: value<number>('SSE_RETRY_MS', int().min(100).default(3000)),
  },
  // Push connections (SSE and WebSocket together) per instance, and per client key (IPv4 address, IPv6 /64).
  streams: {
    maxClients: value<number>('SSE_MAX_CLIENTS', int().min(0).default(10_000)),
    perClient: value<number>('RATE_LIMIT_STREAMS_PER_IP', int().min(1).default(20)),
  },
  ws: {
    // Largest message a client may send (subscribe/unsubscribe are tiny); past it the socket is closed 1009.
    maxPayloadBytes: value<number>('WS_MAX_PAYLOAD_BYTES', int().min(64).max(65_536).default(1024)),
    // Server pings this often; a peer that has not answered the previous ping by then is terminated.
    pingIntervalMs: value<number>('WS_PING_INTERVAL_MS', int().min(100).default(30_000)),
    // Board windows one socket may follow at once.
    maxSubscriptions: value<number>('WS_MAX_SUBSCRIPTIONS', int().min(1).max(100).default(10)),
    // Messages a client may send per 10 s; past it the socket is closed 1008 (policy violation).
    maxMessagesPer10s: value<number>('WS_MAX_MESSAGES_PER_10S', int().min(1).max(10_000).default(50)),
  },
};

export type Config = Resolve<typeof table>;

const HMAC = ['HS256', 'HS384', 'HS512'];

const KEY_MODES = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'OIDC_ISSUER', 'JWT_JWKS_URL'];
const REDIS_MODES = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'];
const ONE_REDIS_MODE =
  'set only one of "REDIS_URL", "REDIS_SENTINELS" and "REDIS_CLUSTER_NODES" (one Redis mode at a time)';

const schema = Joi.object(rulesOf(table))
  .oxor(...KEY_MODES)
  .and('TLS_CERT_FILE', 'TLS_KEY_FILE')
  .messages({
    'object.oxor': 'set only one of "JWT_SECRET", "JWT_PUBLIC_KEY", "OIDC_ISSUER" and "JWT_JWKS_URL"',
    'object.and': 'set both "TLS_CERT_FILE" and "TLS_KEY_FILE", or neither',
  })
  .custom((env: Record<string, unknown>, helpers) => {
    if (REDIS_MODES.filter((k) => env[k] !== undefined).length > 1)
      return helpers.message({ custom: ONE_REDIS_MODE });
    if (!KEY_MODES.some((k) => env[k] !== undefined))
      return helpers.message({
        custom:
          'one of "JWT_SECRET" (HS256), "JWT_PUBLIC_KEY" (RS256/ES256), "OIDC_ISSUER" or "JWT_JWKS_URL" ' +
          '(an identity provider) must be set',
      });
    if (env.NODE_ENV === 'production' && env.JWT_SECRET === DEV_JWT_SECRET)
      return helpers.message({
        custom: '"JWT_SECRET" is the public development secret of `npm run dev`; production needs its own',
      });
    if (env.OIDC_ISSUER !== undefined && env.JWT_ISSUER !== undefined && env.JWT_ISSUER !== env.OIDC_ISSUER)
      return helpers.message({ custom: '"JWT_ISSUER" must equal "OIDC_ISSUER", or be left unset' });
    if (env.OIDC_ISSUER !== undefined || env.JWT_JWKS_URL !== undefined) return env; // JWT_ALGORITHMS applies
    const hmac = HMAC.includes(env.JWT_ALGORITHM as string);
    if (hmac && !env.JWT_SECRET)
      return helpers.message({ custom: `"JWT_ALGORITHM" ${env.JWT_ALGORITHM} needs "JWT_SECRET"` });
    if (!hmac && !env.JWT_PUBLIC_KEY)
      return helpers.message({ custom: `"JWT_ALGORITHM" ${env.JWT_ALGORITHM} needs "JWT_PUBLIC_KEY"` });
    return env;
  })
  .unknown(true);

export class ConfigError extends Error {}

/** Validates just some settings, for admin commands that need no JWT key (migrate, seed, cache:rebuild). */
export function loadSettings(keys: string[], env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const subset = Joi.object(Object.fromEntries(keys.map((k) => [k, schema.extract(k)])));
  const { error, value } = subset.validate(Object.fromEntries(keys.map((k) => [k, env[k]])), {
    abortEarly: false,
  });
  if (error)
    throw new ConfigError(
      `Invalid configuration:\n${error.details.map((d) => `  - ${d.message}`).join('\n')}`,
    );
  return value;
}

/** The Redis connection settings alone (for the admin commands): the same rows as the service reads. */
export function loadRedisConfig(env: NodeJS.ProcessEnv = process.env): Pick<Config, 'redisUrl' | 'redis'> {
  const names = Object.keys(schema.describe().keys ?? {}).filter((k) => k.startsWith('REDIS_'));
  const v = loadSettings(names, env);
  const { redisUrl, redis } = readTable({ redisUrl: table.redisUrl, redis: table.redis }, v);
  if (REDIS_MODES.filter((k) => v[k] !== undefined).length > 1)
    throw new ConfigError(`Invalid configuration:\n  - ${ONE_REDIS_MODE}`);
  return { redisUrl, redis };
}

export function loadDatabaseConfig(env: NodeJS.ProcessEnv = process.env) {
  const v = loadSettings(['DATABASE_URL', 'DATABASE_POOL_MAX', 'DATABASE_TIMEOUT_MS'], env);
  return {
    databaseUrl: v.DATABASE_URL as string,
    databasePoolMax: v.DATABASE_POOL_MAX as number,
    databaseTimeoutMs: v.DATABASE_TIMEOUT_MS as number,
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const { error, value: v } = schema.validate(env, { abortEarly: false, convert: true });
  if (error) {
    const problems = error.details.map((d) => `  - ${d.message}`).join('\n');
    throw new ConfigError(`Invalid configuration:\n${problems}`);
  }
  return readTable(table, v);
}

/** For entry points: the configuration, or the list of problems on stderr and exit code 1. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}

/** Every environment variable the schema knows (for checks that deployment files name only these). */
export function configKeys(): string[] {
  return Object.keys(schema.describe().keys ?? {});
}

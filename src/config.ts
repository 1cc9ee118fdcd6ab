import Joi from 'joi';

/**
 * Every setting the service reads, validated once at start-up. A bad or missing value stops the process with
 * one message that names every problem (abortEarly: false), so an operator fixes them all in one go.
 */
export interface Config {
  nodeEnv: string;
  port: number;
  host: string;
  databaseUrl: string;
  databasePoolMax: number;
  databaseTimeoutMs: number;
  redisUrl: string;
  redisPrefix: string;
  redisTimeoutMs: number;
  jwt: {
    algorithm: 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'ES256';
    key: string;
    issuer?: string;
    audience?: string;
    clockToleranceS: number;
    /** Tokens issued (`iat`) longer ago than this are refused, and so are tokens without `iat`. */
    maxAgeS?: number;
    /** The JOSE `typ` header every token must carry (e.g. `at+jwt`), when set. */
    typ?: string;
  };
  autoProvisionUsers: boolean;
  authCacheTtlMs: number;
  maxScoreIncrement: number;
  maxBodyBytes: number;
  retryAfterS: number;
  logLevel: string;
  shutdownTimeoutMs: number;
  shutdownDelayMs: number;
  scoreboardSize: number;
  snapshotTickMs: number;
  pollIntervalS: number;
  corsOrigins: string[];
  mirrorSyncIntervalMs: number;
  mirrorSyncWindowMs: number;
  writeBatching: { maxBatch: number; maxWaitMs: number; concurrency: number; maxQueued: number };
  maxConnections?: number;
  sse: { heartbeatMs: number; maxBufferBytes: number; maxClients: number; retryMs: number; perIp: number };
  rateLimit: {
    writesPerMin: number;
    readsPerMin: number;
    flagAfter: number;
    /** IPv6 clients are grouped by this prefix length for read and stream limits (IPv4: by address). */
    ipv6Prefix: number;
  };
  /** Public reads the Redis mirror cannot answer: at most this many MySQL queries at once, answers cached. */
  dbFallback: { concurrency: number; cacheMs: number };
  /** Bearer token /metrics asks for; unset: /metrics is open (keep it off the public network then). */
  metricsToken?: string;
  /** Serve /metrics on a port of its own (and not on the main port); unset: on the main port. */
  metricsPort?: number;
  readyzCacheMs: number;
  /** Cheat flags MySQL could not save yet, kept for retries. */
  cheatFlagQueueMax: number;
  suspiciousPointsPerMin: number;
  trustProxyHops: number;
  requestTimeoutMs: number;
  workers: number;
  tls?: { certFile: string; keyFile: string };
}

const HMAC = ['HS256', 'HS384', 'HS512'];

/**
 * The well-known secret `npm run dev` and `npm run token` fall back to when no key is configured. Public on
 * purpose, so anyone can try the API locally; production refuses it by value.
 */
export const DEV_JWT_SECRET = 'dev-only-insecure-secret-never-use-in-production!!';

const schema = Joi.object({
  NODE_ENV: Joi.string().valid('development', 'production', 'test').default('production'),
  PORT: Joi.number().integer().min(0).max(65535).default(3000),
  HOST: Joi.string().default('0.0.0.0'),
  DATABASE_URL: Joi.string()
    .uri({ scheme: ['mysql', 'mysql2'] })
    .default('mysql://root@127.0.0.1:3306/scoreboard'),
  DATABASE_POOL_MAX: Joi.number().integer().min(1).max(500).default(10),
  DATABASE_TIMEOUT_MS: Joi.number().integer().min(100).default(2000),
  REDIS_URL: Joi.string()
    .uri({ scheme: ['redis', 'rediss'] })
    .default('redis://127.0.0.1:6379/0'),
  REDIS_PREFIX: Joi.string().min(1).max(64).default('scoreboard:'),
  REDIS_TIMEOUT_MS: Joi.number().integer().min(10).default(500),
  JWT_SECRET: Joi.string().min(32).messages({
    'string.min': '"JWT_SECRET" must be at least 32 bytes long (HS256 needs a key as long as its hash)',
  }),
  JWT_PUBLIC_KEY: Joi.string().pattern(/-----BEGIN [A-Z ]*PUBLIC KEY-----/, 'PEM public key'),
  JWT_ALGORITHM: Joi.string()
    .valid('HS256', 'HS384', 'HS512', 'RS256', 'ES256')
    .default((parent: Record<string, unknown>) => (parent.JWT_PUBLIC_KEY ? 'RS256' : 'HS256')),
  // In production a token must name us: without iss/aud checks, a token the same identity provider issued for
  // another application would be accepted here.
  JWT_ISSUER: Joi.string().when('NODE_ENV', { is: 'production', then: Joi.required() }).messages({
    'any.required': '"JWT_ISSUER" is required when NODE_ENV is production (tokens must name their issuer)',
  }),
  JWT_AUDIENCE: Joi.string().when('NODE_ENV', { is: 'production', then: Joi.required() }).messages({
    'any.required': '"JWT_AUDIENCE" is required when NODE_ENV is production (tokens must be meant for us)',
  }),
  JWT_CLOCK_TOLERANCE_S: Joi.number().integer().min(0).max(300).default(30),
  JWT_MAX_AGE_S: Joi.number().integer().min(1).max(31_536_000),
  JWT_TYP: Joi.string().pattern(/^[\x21-\x7e]{1,64}$/, 'a media type such as at+jwt'),
  AUTO_PROVISION_USERS: Joi.boolean().default(true),
  // How long an instance may reuse a user's role and status without asking MySQL (0: ask on every request).
  // Bans still stop writes at once (the write transaction re-checks under lock); role changes made on another
  // instance take up to this long to reach this one's non-write admin routes.
  AUTH_CACHE_TTL_MS: Joi.number().integer().min(0).max(60_000).default(1000),
  MAX_SCORE_INCREMENT: Joi.number().integer().min(1).max(Number.MAX_SAFE_INTEGER).default(1000),
  MAX_BODY_BYTES: Joi.number().integer().min(64).max(1_048_576).default(4096),
  RETRY_AFTER_S: Joi.number().integer().min(1).max(3600).default(5),
  LOG_LEVEL: Joi.string().valid('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent').default('info'),
  SHUTDOWN_TIMEOUT_MS: Joi.number().integer().min(100).default(10_000),
  SHUTDOWN_DELAY_MS: Joi.number().integer().min(0).max(60_000).default(0),
  SCOREBOARD_SIZE: Joi.number().integer().min(1).max(100).default(10),
  SNAPSHOT_TICK_MS: Joi.number().integer().min(10).max(60_000).default(100),
  POLL_INTERVAL_S: Joi.number().integer().min(1).max(3600).default(5),
  CORS_ORIGINS: Joi.string().allow('').default(''),
  MIRROR_SYNC_INTERVAL_MS: Joi.number().integer().min(100).default(2000),
  MIRROR_SYNC_WINDOW_MS: Joi.number().integer().min(1000).default(10_000),
  WRITE_BATCH_MAX: Joi.number().integer().min(1).max(500).default(50),
  // Group commit (src/leaderboard/write/write-queue.ts): a partial batch waits up to WRITE_BATCH_WAIT_MS for the running
  // transaction before starting beside it; full batches start at once, up to WRITE_CONCURRENCY in flight.
  // 5 ms and 2 gave the biggest batches and the best throughput on 2 cores (BENCHMARKS.md).
  WRITE_BATCH_WAIT_MS: Joi.number().integer().min(0).max(1000).default(5),
  WRITE_CONCURRENCY: Joi.number().integer().min(1).max(64).default(2),
  // Writes waiting for a transaction; past it a write is 503 + Retry-After at once (load shedding).
  WRITE_QUEUE_MAX: Joi.number().integer().min(1).max(1_000_000).default(5000),
  // Open TCP connections per process (server.maxConnections); unset means Node's default, no limit.
  MAX_CONNECTIONS: Joi.number().integer().min(1).max(1_000_000),
  RATE_LIMIT_WRITES_PER_MIN: Joi.number().integer().min(1).default(120),
  RATE_LIMIT_READS_PER_MIN: Joi.number().integer().min(1).default(600),
  RATE_LIMIT_STREAMS_PER_IP: Joi.number().integer().min(1).default(20),
  RATE_LIMIT_FLAG_AFTER: Joi.number().integer().min(1).default(5),
  // Read and stream limits key IPv6 clients by their /64 (what one subscriber is usually given), so one party
  // cannot take a fresh budget per address; IPv4 and IPv4-mapped IPv6 are keyed by the address.
  RATE_LIMIT_IPV6_PREFIX: Joi.number().integer().min(8).max(128).default(64),
  // The public user read falls back to MySQL only when the Redis mirror cannot answer (not ready, Redis down):
  // at most DB_FALLBACK_CONCURRENCY such reads at once (503 past it), each answer reused for DB_FALLBACK_CACHE_MS.
  DB_FALLBACK_CONCURRENCY: Joi.number().integer().min(1).max(64).default(4),
  DB_FALLBACK_CACHE_MS: Joi.number().integer().min(0).max(60_000).default(1000),
  // When set, /metrics answers only "Authorization: Bearer <METRICS_TOKEN>" (compared in constant time).
  METRICS_TOKEN: Joi.string().min(16).max(512),
  // When set, /metrics is served on this port only (an operator network), not on PORT.
  METRICS_PORT: Joi.number().integer().min(1).max(65535),
  // /readyz pings MySQL at most once per READYZ_CACHE_MS, whatever the number of probes (0: every probe).
  READYZ_CACHE_MS: Joi.number().integer().min(0).max(60_000).default(1000),
  // Cheat flags waiting for MySQL (it was down when they were raised); past this the oldest is dropped, loudly.
  CHEAT_FLAG_QUEUE_MAX: Joi.number().integer().min(1).max(100_000).default(1000),
  SUSPICIOUS_POINTS_PER_MIN: Joi.number().integer().min(1).default(5000),
  TRUST_PROXY: Joi.alternatives(Joi.number().integer().min(0).max(10), Joi.boolean()).default(0),
  REQUEST_TIMEOUT_MS: Joi.number().integer().min(1000).default(10_000),
  WORKERS: Joi.number().integer().min(1).max(64).default(1),
  TLS_CERT_FILE: Joi.string(),
  TLS_KEY_FILE: Joi.string(),
  SSE_HEARTBEAT_MS: Joi.number().integer().min(100).default(15_000),
  SSE_MAX_BUFFER_BYTES: Joi.number().integer().min(1024).default(65_536),
  SSE_MAX_CLIENTS: Joi.number().integer().min(0).default(10_000),
  SSE_RETRY_MS: Joi.number().integer().min(100).default(3000),
})
  .xor('JWT_SECRET', 'JWT_PUBLIC_KEY')
  .and('TLS_CERT_FILE', 'TLS_KEY_FILE')
  .messages({
    'object.missing': 'one of "JWT_SECRET" (HS256) or "JWT_PUBLIC_KEY" (RS256/ES256) must be set',
    'object.xor': 'set only one of "JWT_SECRET" and "JWT_PUBLIC_KEY"',
    'object.and': 'set both "TLS_CERT_FILE" and "TLS_KEY_FILE", or neither',
  })
  .custom((env: Record<string, unknown>, helpers) => {
    if (env.NODE_ENV === 'production' && env.JWT_SECRET === DEV_JWT_SECRET)
      return helpers.message({
        custom: '"JWT_SECRET" is the public development secret of `npm run dev`; production needs its own',
      });
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
  return {
    nodeEnv: v.NODE_ENV,
    port: v.PORT,
    host: v.HOST,
    databaseUrl: v.DATABASE_URL,
    databasePoolMax: v.DATABASE_POOL_MAX,
    databaseTimeoutMs: v.DATABASE_TIMEOUT_MS,
    redisUrl: v.REDIS_URL,
    redisPrefix: v.REDIS_PREFIX,
    redisTimeoutMs: v.REDIS_TIMEOUT_MS,
    jwt: {
      algorithm: v.JWT_ALGORITHM,
      key: v.JWT_SECRET ?? v.JWT_PUBLIC_KEY,
      issuer: v.JWT_ISSUER,
      audience: v.JWT_AUDIENCE,
      clockToleranceS: v.JWT_CLOCK_TOLERANCE_S,
      maxAgeS: v.JWT_MAX_AGE_S,
      typ: v.JWT_TYP,
    },
    autoProvisionUsers: v.AUTO_PROVISION_USERS,
    authCacheTtlMs: v.AUTH_CACHE_TTL_MS,
    maxScoreIncrement: v.MAX_SCORE_INCREMENT,
    maxBodyBytes: v.MAX_BODY_BYTES,
    retryAfterS: v.RETRY_AFTER_S,
    logLevel: v.LOG_LEVEL,
    shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
    shutdownDelayMs: v.SHUTDOWN_DELAY_MS,
    scoreboardSize: v.SCOREBOARD_SIZE,
    snapshotTickMs: v.SNAPSHOT_TICK_MS,
    pollIntervalS: v.POLL_INTERVAL_S,
    corsOrigins: (v.CORS_ORIGINS as string)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    mirrorSyncIntervalMs: v.MIRROR_SYNC_INTERVAL_MS,
    mirrorSyncWindowMs: v.MIRROR_SYNC_WINDOW_MS,
    writeBatching: {
      maxBatch: v.WRITE_BATCH_MAX,
      maxWaitMs: v.WRITE_BATCH_WAIT_MS,
      concurrency: v.WRITE_CONCURRENCY,
      maxQueued: v.WRITE_QUEUE_MAX,
    },
    maxConnections: v.MAX_CONNECTIONS,
    rateLimit: {
      writesPerMin: v.RATE_LIMIT_WRITES_PER_MIN,
      readsPerMin: v.RATE_LIMIT_READS_PER_MIN,
      flagAfter: v.RATE_LIMIT_FLAG_AFTER,
      ipv6Prefix: v.RATE_LIMIT_IPV6_PREFIX,
    },
    dbFallback: { concurrency: v.DB_FALLBACK_CONCURRENCY, cacheMs: v.DB_FALLBACK_CACHE_MS },
    metricsToken: v.METRICS_TOKEN,
    metricsPort: v.METRICS_PORT,
    readyzCacheMs: v.READYZ_CACHE_MS,
    cheatFlagQueueMax: v.CHEAT_FLAG_QUEUE_MAX,
    suspiciousPointsPerMin: v.SUSPICIOUS_POINTS_PER_MIN,
    // true means one proxy hop; a number says how many proxies append to X-Forwarded-For.
    trustProxyHops: v.TRUST_PROXY === true ? 1 : v.TRUST_PROXY === false ? 0 : v.TRUST_PROXY,
    requestTimeoutMs: v.REQUEST_TIMEOUT_MS,
    workers: v.WORKERS,
    tls: v.TLS_CERT_FILE ? { certFile: v.TLS_CERT_FILE, keyFile: v.TLS_KEY_FILE } : undefined,
    sse: {
      heartbeatMs: v.SSE_HEARTBEAT_MS,
      maxBufferBytes: v.SSE_MAX_BUFFER_BYTES,
      maxClients: v.SSE_MAX_CLIENTS,
      retryMs: v.SSE_RETRY_MS,
      perIp: v.RATE_LIMIT_STREAMS_PER_IP,
    },
  };
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

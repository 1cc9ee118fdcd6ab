import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, ROOT, spawnNode, waitFor, type NodeChild } from './proc';
import { redisKeys } from '../../src/leaderboard/ranking';
import { BENCH_JWT } from './data';

export interface ServiceOptions {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  jwtSecret: string;
  workers: number;
  /** Extra environment (batching knobs, ...); wins over the bench defaults. */
  env?: Record<string, string>;
  /** Directory for `node --cpu-prof` output, when profiling. */
  profileDir?: string;
}

export interface RunningService extends NodeChild {
  url: string;
  /** Milliseconds from spawn until it answered /top and its Redis mirror was built. */
  startMs: number;
}

/**
 * Starts the real entry point (`node --import tsx src/main.ts`) as a child, the way production runs it,
 * with limits raised so the bench measures the service and not its abuse protection: rate limits, the SSE
 * client cap and the cheat flagging threshold. Access logs are off (LOG_LEVEL=warn); BENCHMARKS.md says
 * what they cost.
 */
export async function startService(opts: ServiceOptions): Promise<RunningService> {
  const port = await freePort();
  const started = Date.now();
  const redis = new Redis(opts.redisUrl);
  try {
    // The mirror sets this key once it has been rebuilt from MySQL: a fresh one tells us the service is ready.
    await redis.del(redisKeys(opts.redisPrefix).mirrorReady);
    const child = spawnNode(path.join(ROOT, 'src/main.ts'), {
      nodeArgs: opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : [],
      env: {
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATABASE_URL: opts.databaseUrl,
        REDIS_URL: opts.redisUrl,
        REDIS_PREFIX: opts.redisPrefix,
        // With JWT_JWKS_URL in opts.env the service trusts that key set instead: exactly one key mode.
        ...(opts.env?.JWT_JWKS_URL ? {} : { JWT_SECRET: opts.jwtSecret }),
        JWT_ISSUER: BENCH_JWT.issuer,
        JWT_AUDIENCE: BENCH_JWT.audience,
        WORKERS: String(opts.workers),
        LOG_LEVEL: 'warn',
        RATE_LIMIT_WRITES_PER_MIN: '1000000000',
        RATE_LIMIT_READS_PER_MIN: '1000000000',
        RATE_LIMIT_STREAMS_PER_IP: '1000000',
        SUSPICIOUS_POINTS_PER_MIN: '1000000000000',
        SSE_MAX_CLIENTS: '50000',
        SHUTDOWN_DELAY_MS: '0',
        ...opts.env,
      },
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      'the service to start',
      async () =>
        (await fetch(`${url}/api/v1/scores/top`)).status === 200 &&
        (await redis.exists(redisKeys(opts.redisPrefix).mirrorReady)) === 1,
      180_000,
      child,
    );
    return { ...child, url, startMs: Date.now() - started };
  } finally {
    redis.disconnect();
  }
}

import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config';
import { signToken } from '../../src/auth/tokens';

/**
 * Tests run against their own database and their own Redis key prefix on the shared servers. Each run gets a
 * fresh database (dropped at the end; TEST_DATABASE_URL names a fixed one instead, which is kept), so no run
 * sees another's rows, and runs side by side (two worktrees, CI and a developer) do not collide.
 */
const RUN_ID = `${process.pid}_${randomBytes(3).toString('hex')}`;
export const OWN_TEST_DATABASE = process.env.TEST_DATABASE_URL === undefined;
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? `mysql://root@127.0.0.1:3306/scoreboard_test_${RUN_ID}`;
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256!!';
export const RUN_PREFIX = `sbtest:${RUN_ID.replace('_', ':')}:`;

export const baseEnv: Record<string, string> = {
  NODE_ENV: 'test',
  PORT: '0',
  HOST: '127.0.0.1',
  DATABASE_URL: TEST_DATABASE_URL,
  REDIS_URL: TEST_REDIS_URL,
  REDIS_PREFIX: RUN_PREFIX,
  JWT_SECRET: TEST_SECRET,
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  // Limits are raised for tests that are not about them; the rate-limit tests set their own.
  RATE_LIMIT_WRITES_PER_MIN: '1000000',
  RATE_LIMIT_READS_PER_MIN: '1000000',
  RATE_LIMIT_STREAMS_PER_IP: '1000000',
};

export function testConfig(overrides: Record<string, string | undefined> = {}): Config {
  const env: Record<string, string | undefined> = { ...baseEnv, ...overrides };
  // A test that names its own Redis (a proxy, a sentinel group) gets it, whatever the default mode is.
  if (overrides.REDIS_URL !== undefined || overrides.REDIS_SENTINELS !== undefined)
    env.REDIS_CLUSTER_NODES = overrides.REDIS_CLUSTER_NODES;
  return loadConfig(env as NodeJS.ProcessEnv);
}

/** A unique user id, so tests never collide with each other's rows. */
let counter = 0;
export const uniqueUser = (label = 'u') =>
  `${label}-${process.pid}-${++counter}-${randomBytes(2).toString('hex')}`;

export function tokenFor(
  userId: string,
  /** `claims` adds any other claims, e.g. `{ role: 'admin' }`, which the service must ignore. */
  opts: { name?: string; ttl?: string | number; secret?: string; claims?: Record<string, unknown> } = {},
): string {
  return signToken(
    { algorithm: 'HS256', signingKey: opts.secret ?? TEST_SECRET },
    { ...opts.claims, sub: userId, name: opts.name },
    opts.ttl ?? '1h',
  );
}

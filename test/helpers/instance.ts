import http from 'node:http';
import type { AddressInfo } from 'node:net';
import supertest from 'supertest';
import { createApp } from '../../src/app';
import { createDb, type Db } from '../../src/platform/db';
import { createLogger } from '../../src/platform/logger';
import { createRedis } from '../../src/platform/redis';
import { applyServerLimits } from '../../src/http/server-limits';
import { createServices, type ServiceHooks } from '../../src/services';
import { testConfig } from './env';

export type Instance = Awaited<ReturnType<typeof startInstance>>;

/**
 * One running instance of the service (its own pools, loops and HTTP server on an ephemeral port) wired
 * exactly as src/main.ts wires it. Several can run side by side on the same MySQL and Redis.
 */
export async function startInstance(env: Record<string, string | undefined> = {}, hooks: ServiceHooks = {}) {
  const config = testConfig(env);
  const logger = createLogger(config.logLevel);
  const db = createDb(config);
  const redis = createRedis(config);
  const subscriber = createRedis(config);
  const services = createServices({ config, db, redis, subscriber, logger }, hooks);
  const app = createApp({ config, logger, db, redis, ...services });
  const server = http.createServer(app.callback());
  applyServerLimits(server, config);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await services.start();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closed = false;
  return {
    config,
    db,
    redis,
    services,
    server,
    url,
    request: supertest(url),
    async close() {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await services.stop();
      redis.disconnect();
      subscriber.disconnect();
      await db.destroy();
    },
  };
}

/** Counts the SQL statements a knex instance sends while `fn` runs. */
export async function countQueries(db: Db, fn: () => Promise<void>): Promise<number> {
  let n = 0;
  const onQuery = () => n++;
  db.on('query', onQuery);
  try {
    await fn();
  } finally {
    db.off('query', onQuery);
  }
  return n;
}

/** Polls `check` until it returns true or the deadline passes. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 5000,
  stepMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

import supertest from 'supertest';
import type { ContainerHooks } from '../../src/container';
import { startServer } from '../../src/main';
import type { Db } from '../../src/platform/db';
import { testConfig } from './env';

export type Instance = Awaited<ReturnType<typeof startInstance>>;

/**
 * One running instance of the service (its own pools, loops and HTTP server on an ephemeral port), started
 * by the entry point's own startServer, so it is wired exactly as production is. Several can run side by
 * side on the same MySQL and Redis.
 */
export async function startInstance(
  env: Record<string, string | undefined> = {},
  hooks: ContainerHooks = {},
) {
  const config = testConfig(env);
  const instance = await startServer(config, hooks);
  const { services, server } = instance;
  const url = `http://127.0.0.1:${instance.port}`;
  let closed = false;
  return {
    config,
    db: services.db,
    redis: services.redis,
    services,
    server,
    url,
    request: supertest(url),
    /** Shuts down as SIGTERM would, without waiting for clients that keep connections open. */
    async close() {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await instance.close();
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

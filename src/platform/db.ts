import knex, { type Knex } from 'knex';
import { knexConfig } from '../../knexfile';
import type { Config } from '../config';

export type Db = Knex;

export function createDb(config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'databaseTimeoutMs'>): Db {
  const base = knexConfig(config.databaseUrl, {
    poolMax: config.databasePoolMax,
    timeoutMs: config.databaseTimeoutMs,
  });
  const afterCreate = base.pool!.afterCreate as (conn: RawConnection, done: unknown) => void;
  return knex({
    ...base,
    pool: {
      ...base.pool,
      afterCreate(conn: RawConnection, done: unknown) {
        withQueryDeadline(conn, config.databaseTimeoutMs);
        afterCreate(conn, done);
      },
    },
  });
}

/** The part of a mysql2 connection the deadline needs. */
interface RawConnection {
  query: (sql: unknown, values?: unknown, cb?: unknown) => unknown;
  destroy: () => void;
  stream?: { destroy: () => void };
}

type Callback = (err: ({ code?: string; fatal?: boolean } & Error) | null, ...rest: unknown[]) => void;

/**
 * Gives every statement of the service's pool a deadline of DATABASE_TIMEOUT_MS (mysql2's per-query `timeout`).
 * Without it a MySQL that accepts packets but never answers (a network partition, a hung server) hangs a write,
 * the snapshot loop and shutdown forever; with it the request gets a 503 in bounded time. It is set here, on the
 * connection, rather than per query with knex's `.options()`, because knex sends a transaction's BEGIN and
 * COMMIT itself and those must not hang either.
 *
 * mysql2 (3.x) leaves a timed-out query's connection in the pool's hands as if nothing happened, with the
 * unanswered command still at the head of its queue: every later statement on it would wait forever. So a
 * timeout destroys the connection (marked fatal, so it maps to 503 and knex's pool drops and replaces it).
 * The migration CLI builds its own knex without this: a long migration must not be cut off.
 */
function withQueryDeadline(conn: RawConnection, timeoutMs: number): void {
  const query = conn.query.bind(conn);
  conn.query = (sql: unknown, values?: unknown, cb?: unknown) => {
    const options = typeof sql === 'string' ? { sql } : { ...(sql as object) };
    if ((options as { timeout?: number }).timeout === undefined)
      Object.assign(options, { timeout: timeoutMs });
    const [bindings, callback] = typeof values === 'function' ? [undefined, values] : [values, cb];
    if (typeof callback !== 'function') return query(options, bindings);
    return query(options, bindings, ((err, ...rest) => {
      if (err?.code === 'PROTOCOL_SEQUENCE_TIMEOUT') {
        err.fatal = true;
        conn.destroy();
        conn.stream?.destroy();
      }
      (callback as Callback)(err, ...rest);
    }) as Callback);
  };
}

/** Rows from `db.raw` with mysql2: the first element is the rows (or the result header). */
export async function rawRows<T>(
  db: Knex | Knex.Transaction,
  sql: string,
  bindings: readonly unknown[] = [],
): Promise<T[]> {
  const [rows] = await db.raw(sql, bindings as Knex.RawBinding[]);
  return rows as T[];
}

const DEADLOCK = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);
const MAX_ATTEMPTS = 5;

/**
 * Runs `fn` again (after a short random pause) when MySQL chose it as a deadlock's victim or its lock wait
 * timed out, up to five times. Only for work that leaves nothing behind when it fails: one transaction, or one
 * autocommit statement.
 */
export async function retryOnDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (!DEADLOCK.has(code) || attempt >= MAX_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
    }
  }
}

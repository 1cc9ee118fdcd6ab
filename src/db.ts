import knex, { type Knex } from 'knex';
import { knexConfig } from '../knexfile';
import type { Config } from './config';

export type Db = Knex;

export function createDb(config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'databaseTimeoutMs'>): Db {
  return knex(
    knexConfig(config.databaseUrl, { poolMax: config.databasePoolMax, timeoutMs: config.databaseTimeoutMs }),
  );
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

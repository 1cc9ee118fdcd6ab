import knex, { type Knex } from 'knex';
import { knexConfig, parseDatabaseUrl } from '../../knexfile';
import { createDatabase, migrateLatest } from '../../src/cli/db';
import { TEST_ADMIN } from './api';
import { ensureAdmin } from './assertions';
import { RUN_PREFIX, TEST_DATABASE_URL, TEST_REDIS_URL } from './env';
import { deleteKeysWithPrefix } from '../../src/redis';

/** A plain knex handle on the test database, for assertions. */
export const testDb = () => knex(knexConfig(TEST_DATABASE_URL, { poolMax: 4 }));

export async function prepareTestDatabase(): Promise<void> {
  await createDatabase(TEST_DATABASE_URL);
  await migrateLatest(TEST_DATABASE_URL);
  const db = testDb();
  try {
    await ensureAdmin(db, TEST_ADMIN, 'Test Admin');
  } finally {
    await db.destroy();
  }
}

/** Empties our tables (never the schema, never another database). */
export async function resetTables(): Promise<void> {
  const db = testDb();
  try {
    await db.raw('DELETE FROM score_events');
    await db.raw('DELETE FROM scores');
    await db.raw('DELETE FROM users');
    await ensureAdmin(db, TEST_ADMIN, 'Test Admin');
  } finally {
    await db.destroy();
  }
}

/** Deletes only this run's keys on the shared Redis (never FLUSHALL). */
export async function deleteRunKeys(prefix = RUN_PREFIX): Promise<void> {
  await deleteKeysWithPrefix(TEST_REDIS_URL, prefix);
}

/**
 * A migrated database of the test's own beside the shared test database, dropped afterwards: for checks
 * that need a table to themselves (the last admin, migrations going down and up).
 */
export async function withScratchDatabase<T>(
  label: string,
  fn: (databaseUrl: string, db: Knex) => Promise<T>,
): Promise<T> {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `${url.pathname.slice(1)}_${label}_${process.pid}`.slice(0, 64);
  const databaseUrl = url.toString();
  await createDatabase(databaseUrl);
  await migrateLatest(databaseUrl);
  const db = knex(knexConfig(databaseUrl, { poolMax: 4 }));
  try {
    return await fn(databaseUrl, db);
  } finally {
    await db.raw(`DROP DATABASE IF EXISTS \`${parseDatabaseUrl(databaseUrl).database}\``);
    await db.destroy();
  }
}

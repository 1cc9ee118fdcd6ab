import knex from 'knex';
import { knexConfig } from '../../knexfile';
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

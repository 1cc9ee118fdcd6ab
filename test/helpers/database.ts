import knex, { type Knex } from 'knex';
import { knexConfig, parseDatabaseUrl } from '../../knexfile';
import { createDatabase, migrateLatest } from '../../src/cli/db';
import { TEST_ADMIN } from './api';
import { ensureAdmin } from './assertions';
import { OWN_TEST_DATABASE, RUN_PREFIX, TEST_DATABASE_URL } from './env';
import { deleteKeysEverywhere } from './test-redis';

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

/** Drops the run's own test database (never one named by TEST_DATABASE_URL). */
export async function dropTestDatabase(): Promise<void> {
  if (!OWN_TEST_DATABASE) return;
  const db = testDb();
  try {
    await dropDatabase(db, TEST_DATABASE_URL);
  } finally {
    await db.destroy();
  }
}

/** Deletes only this run's keys on the shared Redis and the run's cluster, if any (never FLUSHALL). */
export async function deleteRunKeys(prefix = RUN_PREFIX): Promise<void> {
  await deleteKeysEverywhere(prefix);
}

/** A database name of the suite's own beside the shared test database (MySQL allows 64 characters). */
function ownDatabaseUrl(label: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `${url.pathname.slice(1)}_${label.replace(/\W/g, '_')}_${process.pid}`.slice(0, 64);
  return url.toString();
}

async function dropDatabase(db: Knex, databaseUrl: string): Promise<void> {
  await db.raw(`DROP DATABASE IF EXISTS \`${parseDatabaseUrl(databaseUrl).database}\``);
}

/**
 * A migrated database of the test's own beside the shared test database, dropped afterwards: for checks
 * that need a table to themselves (the last admin, migrations going down and up).
 */
export async function withScratchDatabase<T>(
  label: string,
  fn: (databaseUrl: string, db: Knex) => Promise<T>,
): Promise<T> {
  const databaseUrl = ownDatabaseUrl(label);
  await createDatabase(databaseUrl);
  await migrateLatest(databaseUrl);
  const db = knex(knexConfig(databaseUrl, { poolMax: 4 }));
  try {
    return await fn(databaseUrl, db);
  } finally {
    await dropDatabase(db, databaseUrl);
    await db.destroy();
  }
}

export interface IsolatedStore {
  /** DATABASE_URL and REDIS_PREFIX for startInstance: the suite's own tables and keys. */
  env: { DATABASE_URL: string; REDIS_PREFIX: string };
  databaseUrl: string;
  prefix: string;
  db: Knex;
  /** Empties the suite's tables (keeping TEST_ADMIN) and deletes its Redis keys. */
  reset(): Promise<void>;
}

/**
 * Registers mocha hooks that give the calling suite a database and a Redis prefix of its own, created and
 * migrated before it and dropped after it. A suite that needs an empty board uses this instead of emptying
 * the shared tables, so suites pass alone and in any order and never see each other's rows.
 */
/**
 * `global`/`all` as a derived table with the columns the one-board `scores` table had: for oracles that read
 * the all-time totals straight from MySQL (`FROM ${GLOBAL_SCORES} s`).
 */
export const GLOBAL_SCORES =
  "(SELECT * FROM board_scores WHERE board_id = 'global' AND window_name = 'all' AND cycle_start = '1970-01-01')";

export function isolatedStore(label: string): IsolatedStore {
  const databaseUrl = ownDatabaseUrl(label);
  const prefix = `${RUN_PREFIX}${label}:`;
  const store = {
    env: { DATABASE_URL: databaseUrl, REDIS_PREFIX: prefix },
    databaseUrl,
    prefix,
    db: undefined as unknown as Knex,
    async reset() {
      for (const table of ['cheat_flags', 'score_events', 'board_scores', 'users'])
        await store.db.raw(`DELETE FROM ${table}`);
      await ensureAdmin(store.db, TEST_ADMIN, 'Test Admin');
      await deleteRunKeys(prefix);
    },
  };
  before(async function () {
    this.timeout(60_000);
    await createDatabase(databaseUrl);
    await migrateLatest(databaseUrl);
    store.db = knex(knexConfig(databaseUrl, { poolMax: 4 }));
    await store.reset();
  });
  after(async () => {
    await deleteRunKeys(prefix);
    await dropDatabase(store.db, databaseUrl);
    await store.db.destroy();
  });
  return store;
}

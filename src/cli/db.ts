import knex from 'knex';
import { knexConfig, parseDatabaseUrl } from '../../knexfile';
import { loadDatabaseConfig } from '../config';

/** Admin database commands: create | migrate | rollback [--all] | seed | setup (create + migrate + seed). */
export async function createDatabase(databaseUrl: string): Promise<void> {
  const { database } = parseDatabaseUrl(databaseUrl);
  if (!/^[\w$]{1,64}$/.test(database)) throw new Error(`Refusing to create a database named "${database}"`);
  const server = knex(knexConfig(databaseUrl, { noDatabase: true, poolMax: 1 }));
  try {
    await server.raw(
      `CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
    );
  } finally {
    await server.destroy();
  }
}

export async function migrateLatest(databaseUrl: string): Promise<string[]> {
  const db = knex(knexConfig(databaseUrl, { poolMax: 2 }));
  try {
    const [, applied] = await db.migrate.latest();
    return applied;
  } finally {
    await db.destroy();
  }
}

/** Runs every seed file (they are idempotent); returns the files run. */
export async function runSeeds(databaseUrl: string): Promise<string[]> {
  const db = knex(knexConfig(databaseUrl, { poolMax: 2 }));
  try {
    const [files] = await db.seed.run();
    return files;
  } finally {
    await db.destroy();
  }
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const { databaseUrl } = loadDatabaseConfig();
  const { database } = parseDatabaseUrl(databaseUrl);
  if (command === 'create' || command === 'setup') {
    await createDatabase(databaseUrl);
    console.log(`database "${database}" is ready`);
  }
  if (command === 'migrate' || command === 'setup') {
    const applied = await migrateLatest(databaseUrl);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'already up to date');
  }
  if (command === 'rollback') {
    const db = knex(knexConfig(databaseUrl, { poolMax: 2 }));
    try {
      const [, undone] = await db.migrate.rollback(undefined, args.includes('--all'));
      console.log(undone.length ? `rolled back: ${undone.join(', ')}` : 'nothing to roll back');
    } finally {
      await db.destroy();
    }
  }
  if (command === 'seed' || command === 'setup') {
    const files = await runSeeds(databaseUrl);
    console.log(`seeded: ${files.length} file(s)`);
  }
  if (!['create', 'migrate', 'rollback', 'seed', 'setup'].includes(command ?? '')) {
    console.error('usage: db <create|migrate|rollback [--all]|seed|setup>');
    process.exitCode = 2;
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

import knex, { type Knex } from 'knex';
import { knexConfig, parseDatabaseUrl } from '../../knexfile';
import { signToken } from '../../src/auth/tokens';
import { createDatabase, migrateLatest } from '../../src/cli/db';
import { deleteKeysWithPrefix } from '../../tools/lib/redis-keys';

/** Zero-padded so that id order is numeric order: the seed appends to the primary key instead of splitting it. */
export const userId = (i: number) => `u${String(i).padStart(7, '0')}`;

export const benchDb = (url: string, poolMax = 4) => knex(knexConfig(url, { poolMax, timeoutMs: 30_000 }));

export async function createBenchDatabase(url: string): Promise<void> {
  await dropBenchDatabase(url); // a run that was killed may have left it behind
  await createDatabase(url);
  await migrateLatest(url);
}

export async function dropBenchDatabase(url: string): Promise<void> {
  const { database } = parseDatabaseUrl(url);
  if (!/^scoreboard_bench\w*$/.test(database)) throw new Error(`refusing to drop "${database}"`);
  const server = knex(knexConfig(url, { noDatabase: true, poolMax: 1 }));
  try {
    await server.raw(`DROP DATABASE IF EXISTS \`${database}\``);
  } finally {
    await server.destroy();
  }
}

/**
 * Inserts `count` players, each with a scores row (random scores, so the ranking index is realistic), with
 * multi-row INSERTs of literal values (ids are ours, never input) on a few connections at once.
 * Foreign-key checks are off for these sessions only: every scores row points at a user inserted just before.
 */
export async function seedUsers(db: Knex, count: number, onProgress?: (done: number) => void): Promise<void> {
  const chunk = 5000;
  const parallel = 3;
  let next = 1;
  let done = 0;
  const worker = async () => {
    while (next <= count) {
      const from = next;
      const to = Math.min(count, from + chunk - 1);
      next = to + 1;
      const users: string[] = [];
      const scores: string[] = [];
      for (let i = from; i <= to; i++) {
        const id = userId(i);
        users.push(`('${id}','Player ${i}')`);
        const score = Math.floor(Math.random() * 1_000_000);
        scores.push(`('global','all','1970-01-01','${id}',${score},CURRENT_TIMESTAMP(6),1)`);
      }
      // One connection for both statements, so the session settings above apply to them.
      await db.transaction(async (trx) => {
        await trx.raw('SET SESSION foreign_key_checks = 0, unique_checks = 0');
        await trx.raw(`INSERT INTO users (id, display_name) VALUES ${users.join(',')}`);
        await trx.raw(
          `INSERT INTO board_scores (board_id, window_name, cycle_start, user_id, score, reached_at, version) VALUES ${scores.join(',')}`,
        );
      });
      done += to - from + 1;
      onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/** An admin (by the database's say) for the stream's change driver. */
export async function insertAdmin(db: Knex, id: string): Promise<void> {
  await db.raw(`INSERT INTO users (id, display_name, role) VALUES (?, ?, 'admin')`, [id, id]);
}

/** The service runs as production does, so its tokens must name an issuer and be meant for it. */
export const BENCH_JWT = { issuer: 'https://bench.scoreboard.test/', audience: 'scoreboard-bench' };

export function tokensFor(secret: string, ids: string[]): string[] {
  const signing = { algorithm: 'HS256' as const, signingKey: secret, ...BENCH_JWT };
  return ids.map((sub) => `Bearer ${signToken(signing, { sub }, '6h')}`);
}

/** Deletes only keys under our prefix on the shared Redis (never FLUSHALL). */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<number> {
  if (!prefix.startsWith('sbbench:')) throw new Error(`refusing to delete keys under "${prefix}"`);
  return deleteKeysWithPrefix(redisUrl, prefix);
}

/** A bench database like the main one: the migrations, `users` players with scores, and the bench admin. */
export async function seedBenchDatabase(url: string, users: number): Promise<void> {
  await createBenchDatabase(url);
  const db = benchDb(url);
  try {
    await seedUsers(db, users);
    await insertAdmin(db, 'bench-admin'); // the subject of ctx.main.adminToken
  } finally {
    await db.destroy();
  }
}

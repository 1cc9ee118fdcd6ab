import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';

/**
 * Knex configuration shared by the service, the admin CLI (`npm run migrate`, ...) and the knex CLI.
 * Migrations and seeds are TypeScript; once built they are .js. Names are recorded without their extension
 * so the same database can be migrated from source (tsx) and from the built image (node) alike.
 */
const ext = path.extname(__filename); // .ts under tsx, .js once built
const root = __dirname;

function sourceFor(dir: string): Knex.MigrationSource<{ file: string }> {
  return {
    // Objects with a `file` (the extension-less name), because that is what the knex CLI prints for pending
    // migrations in `migrate:status` / `migrate:list` (it printed "undefined" for plain strings).
    async getMigrations() {
      return fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts'))
        .map((f) => path.basename(f, ext))
        .sort()
        .map((file) => ({ file }));
    },
    getMigrationName: (m) => m.file,
    // require, not import(): it goes through whichever loader runs us (tsx in development, node when built).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    getMigration: async (m) => require(path.join(dir, m.file + ext)),
  };
}

export function parseDatabaseUrl(url: string) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password),
    database: u.pathname.replace(/^\//, ''),
  };
}

export interface KnexOptions {
  poolMax?: number;
  timeoutMs?: number;
  /** Connect without selecting a database (used to create it). */
  noDatabase?: boolean;
}

export function knexConfig(databaseUrl: string, opts: KnexOptions = {}): Knex.Config {
  const { database, ...server } = parseDatabaseUrl(databaseUrl);
  const timeoutMs = opts.timeoutMs ?? 2000;
  return {
    client: 'mysql2',
    connection: {
      ...server,
      ...(opts.noDatabase ? {} : { database }),
      timezone: 'Z',
      charset: 'utf8mb4',
      connectTimeout: timeoutMs,
      supportBigNumbers: true,
      // Several statements in one round trip let a batch insert its events and read back each id.
      // Every statement is built with placeholders, never by pasting input into SQL.
      multipleStatements: true,
    },
    pool: {
      min: 0,
      max: opts.poolMax ?? 10,
      // Every session: UTC, and READ COMMITTED so locking reads never take gap locks (fewer deadlocks),
      // and a short lock wait so a stuck transaction fails fast instead of hanging a request.
      afterCreate(
        conn: { query: (sql: string, cb: (err: Error | null) => void) => void },
        done: (err: Error | null, c: unknown) => void,
      ) {
        conn.query(
          "SET time_zone = '+00:00', innodb_lock_wait_timeout = 5; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
          (err) => done(err, conn),
        );
      },
    },
    acquireConnectionTimeout: timeoutMs,
    migrations: {
      migrationSource: sourceFor(path.join(root, 'migrations')),
      tableName: 'knex_migrations',
      // For `npx knex migrate:make <name>` (from source): a TypeScript file in our migrations' style. No
      // `directory` here: it would make knex drop the extension-less migrationSource above; the CLI writes
      // to ./migrations beside the knexfile.
      extension: ext.slice(1),
      stub: path.join(root, 'migrations', 'migration.ts.stub'),
    },
    seeds: { directory: path.join(root, 'seeds'), loadExtensions: [ext], extension: ext.slice(1) },
  };
}

// Used by the knex CLI (`npx knex ...` through knexfile.js, or `--knexfile dist/knexfile.js` in the image);
// the npm scripts go through src/cli/db.ts.
export default knexConfig(process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/scoreboard');

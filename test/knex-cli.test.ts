import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import knex, { type Knex } from 'knex';
import { knexConfig, parseDatabaseUrl } from '../knexfile';
import { createDatabase } from '../src/cli/db';
import { DEMO_USERS } from '../seeds/01_demo_users';
import { TEST_DATABASE_URL } from './helpers/env';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..');
const KNEX_CLI = path.join(root, 'node_modules/knex/bin/cli.js');

/**
 * The knex CLI as an admin uses it (`npx knex migrate:latest`, ...), run as a child process against a
 * throwaway database of its own. It runs in a copy of what a fresh clone has (knexfile.js, knexfile.ts,
 * migrations/, seeds/, package.json, node_modules linked), so `migrate:make` writes into the copy and
 * never into the working tree other test runs read.
 */
describe('knex CLI (npx knex ...)', function () {
  this.timeout(60_000);
  const { database: testDatabase } = parseDatabaseUrl(TEST_DATABASE_URL);
  const database = `${testDatabase}_knexcli_${process.pid}_${randomBytes(2).toString('hex')}`.slice(0, 64);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${database}`;
  const databaseUrl = url.toString();
  // The oracle: the migrations and seeds a clone has, by the same rule the knexfile uses (.ts, no .d.ts).
  const migrationNames = fs
    .readdirSync(path.join(root, 'migrations'))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => path.basename(f, '.ts'))
    .sort();
  let clone: string;
  let db: Knex;

  async function knexCli(...args: string[]): Promise<string>;
  async function knexCli(env: Record<string, string>, ...args: string[]): Promise<string>;
  async function knexCli(...input: Array<string | Record<string, string>>): Promise<string> {
    const env = typeof input[0] === 'object' ? (input.shift() as Record<string, string>) : {};
    const { stdout, stderr } = await run(process.execPath, [KNEX_CLI, ...(input as string[])], {
      cwd: clone,
      env: { ...process.env, DATABASE_URL: databaseUrl, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
    });
    return stdout + stderr;
  }

  const tables = async () =>
    (await db('information_schema.tables').where({ table_schema: database }).pluck('table_name')).map(String);

  before(async () => {
    clone = fs.mkdtempSync(path.join(os.tmpdir(), 'scoreboard-knex-cli-'));
    for (const entry of ['knexfile.js', 'knexfile.ts', 'package.json', 'migrations', 'seeds']) {
      fs.cpSync(path.join(root, entry), path.join(clone, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(clone, 'node_modules'), 'dir');
    await createDatabase(databaseUrl);
    db = knex(knexConfig(databaseUrl, { poolMax: 2 }));
  });

  after(async () => {
    await db?.destroy();
    const server = knex(knexConfig(databaseUrl, { noDatabase: true, poolMax: 1 }));
    try {
      await server.raw(`DROP DATABASE IF EXISTS \`${database}\``);
    } finally {
      await server.destroy();
    }
    if (clone) fs.rmSync(clone, { recursive: true, force: true });
  });

  it('loads the TypeScript knexfile without ts-node (knexfile.js registers tsx)', async () => {
    const out = await knexCli('migrate:status');
    expect(out).not.to.match(/Failed to load external module|Failed to read config/);
  });

  it('migrate:status lists every migration as pending on an empty database, by name', async () => {
    const out = await knexCli('migrate:status');
    expect(out).to.include('No Completed Migration files Found.');
    expect(out).to.include(`Found ${migrationNames.length} Pending Migration file/files.`);
    expect(out.trim().split('\n').slice(-migrationNames.length)).to.deep.equal(migrationNames);
  });

  it('migrate:latest applies them in one batch, recorded without their extension', async () => {
    const out = await knexCli('migrate:latest');
    expect(out).to.include(`Batch 1 run: ${migrationNames.length} migrations`);
    expect(await tables()).to.include.members([
      'users',
      'boards',
      'board_windows',
      'board_scores',
      'score_events',
      'cheat_flags',
    ]);
    const recorded = await db('knex_migrations').orderBy('id').pluck('name');
    expect(recorded).to.deep.equal(migrationNames);
    const status = await knexCli('migrate:status');
    expect(status).to.include(`Found ${migrationNames.length} Completed Migration file/files.`);
    expect(status).to.include('No Pending Migration files Found.');
  });

  it('seed:run loads nothing without SEED_DEMO=true (no well-known admin in production)', async () => {
    await knexCli('seed:run');
    expect(await db('users').pluck('id')).to.deep.equal([]);
  });

  it('seed:run with SEED_DEMO=true loads the demo users, and running it again changes nothing', async () => {
    const demo = { SEED_DEMO: 'true' };
    expect(await knexCli(demo, 'seed:run')).to.include('Ran 1 seed files');
    await knexCli(demo, 'seed:run');
    const ids = await db('users').orderBy('id').pluck('id');
    expect(ids).to.deep.equal(DEMO_USERS.map((u) => u.id).sort());
    const seeded = await db('score_events').where({ action_id: 'seed' }).count({ n: '*' });
    expect(Number(seeded[0].n)).to.equal(DEMO_USERS.filter((u) => u.score !== 0).length);
  });

  it('migrate:make writes a timestamped TypeScript migration from our stub, which status then lists', async () => {
    const out = await knexCli('migrate:make', 'add_example');
    const created = /Created Migration: (\S+)/.exec(out)?.[1];
    expect(created, out).to.be.a('string');
    expect(path.dirname(created!)).to.equal(fs.realpathSync(path.join(clone, 'migrations')));
    expect(path.basename(created!)).to.match(/^\d{14}_add_example\.ts$/);
    expect(fs.readFileSync(created!, 'utf8')).to.equal(
      fs.readFileSync(path.join(root, 'migrations/migration.ts.stub'), 'utf8'),
    );
    const status = await knexCli('migrate:status');
    expect(status).to.include('Found 1 Pending Migration file/files.');
    expect(status.trim().split('\n').at(-1)).to.equal(path.basename(created!, '.ts'));
    fs.rmSync(created!); // it is a template, not meant to run
  });

  it('migrate:rollback undoes the batch and leaves only knex bookkeeping', async () => {
    const out = await knexCli('migrate:rollback');
    expect(out).to.include(`Batch 1 rolled back: ${migrationNames.length} migrations`);
    expect((await tables()).sort()).to.deep.equal(['knex_migrations', 'knex_migrations_lock']);
    const status = await knexCli('migrate:status');
    expect(status).to.include(`Found ${migrationNames.length} Pending Migration file/files.`);
  });
});

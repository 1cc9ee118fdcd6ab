import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  benchDb,
  createBenchDatabase,
  deleteKeys,
  dropBenchDatabase,
  insertAdmin,
  seedUsers,
  tokensFor,
  userId,
} from './lib/data';
import type { BenchContext, Row, ScenarioResult, Target } from './lib/context';
import { ROOT } from './lib/proc';
import { boardsScenario } from './scenarios/boards';
import { brokerScenario } from './scenarios/broker';
import { pollsScenario } from './scenarios/polls';
import { microcacheScenario } from './scenarios/microcache';
import { scaleScenario } from './scenarios/scale';
import { streamScenario, wsScenario } from './scenarios/stream';
import { writesScenario } from './scenarios/writes';

/**
 * `npm run bench [-- --quick] [--only=writes,polls,microcache,stream,ws,scale,boards,broker] [--workers=N] [--seconds=S]
 * [--profile]`
 *
 * Creates its own databases (scoreboard_bench_<tag>*), Redis prefix (sbbench:<tag>:) and RabbitMQ names
 * (sbbench.<tag>.*), runs every scenario against its baseline in this one run, prints a table, writes
 * bench/results/<ISO time>.json, and removes what it created. Exits 1 if a scenario failed or any request to
 * the service errored; speed is reported, never asserted.
 */
const SCENARIOS = {
  writes: writesScenario,
  polls: pollsScenario,
  microcache: microcacheScenario,
  stream: streamScenario,
  ws: wsScenario,
  scale: scaleScenario,
  boards: boardsScenario,
  broker: brokerScenario,
};
const USERS = 10_000;

function parseArgs(argv: string[]) {
  const flag = (name: string) => argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  const value = (name: string) => flag(name)?.split('=')[1];
  const only = value('only')?.split(',') ?? Object.keys(SCENARIOS);
  for (const o of only) if (!(o in SCENARIOS)) throw new Error(`unknown scenario "${o}"`);
  return {
    quick: Boolean(flag('quick')),
    only: only as Array<keyof typeof SCENARIOS>,
    workers: Number(value('workers') ?? process.env.WORKERS ?? 1),
    profile: Boolean(flag('profile')),
    seconds: value('seconds') === undefined ? undefined : Number(value('seconds')),
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const tag = `${process.pid}${randomBytes(2).toString('hex')}`;
  const base = new URL(process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/scoreboard_bench');
  const databases: string[] = [];
  const database = (suffix: string) => {
    const u = new URL(base);
    u.pathname = `/scoreboard_bench_${tag}_${suffix}`;
    databases.push(u.toString());
    return u.toString();
  };
  const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
  const prefix = `sbbench:${tag}:`;
  const jwtSecret = randomBytes(32).toString('hex');
  const startedAt = new Date();
  const log = (msg: string) =>
    console.log(`[${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)} s] ${msg}`);
  const profileDir = args.profile ? fs.mkdtempSync(path.join(os.tmpdir(), 'scoreboard-profile-')) : undefined;

  const cleanups: Array<() => Promise<void>> = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const fn of cleanups) await fn().catch((e) => log(`cleanup failed: ${e}`));
      for (const url of databases)
        await dropBenchDatabase(url).catch((e) => log(`could not drop ${url}: ${e}`));
      await deleteKeys(redisUrl, prefix).catch((e) => log(`could not delete ${prefix}*: ${e}`));
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  const results: Record<string, ScenarioResult | { error: string }> = {};
  let failed = false;
  try {
    const mainUrl = database('main');
    log(
      `setting up ${new URL(mainUrl).pathname.slice(1)} with ${USERS.toLocaleString('en')} users${args.quick ? ' (--quick)' : ''}`,
    );
    await createBenchDatabase(mainUrl);
    const db = benchDb(mainUrl);
    const userIds = Array.from({ length: USERS }, (_, i) => userId(i + 1));
    try {
      await seedUsers(db, USERS);
      await insertAdmin(db, 'bench-admin');
    } finally {
      await db.destroy();
    }
    const ctx: BenchContext = {
      quick: args.quick,
      runId: tag,
      redisUrl,
      prefix,
      jwtSecret,
      workers: args.workers,
      profileDir,
      loadS: args.seconds ?? (args.quick ? 3 : 10),
      warmupS: args.quick ? 1 : 2,
      rounds: args.quick ? 1 : 3,
      main: {
        url: mainUrl,
        userIds,
        tokens: tokensFor(jwtSecret, userIds),
        adminToken: tokensFor(jwtSecret, ['bench-admin'])[0],
        tickerId: userIds[0],
      },
      database,
      onCleanup: (fn) => cleanups.push(fn),
      log,
    };
    for (const name of args.only) {
      try {
        const r = await SCENARIOS[name](ctx);
        results[name] = r;
        const errored = r.rows.filter(
          (row) =>
            row.note !== 'baseline' &&
            row.scenario !== 'stream' &&
            row.scenario !== 'ws' &&
            (row.errors ?? 0) > 0,
        );
        if (errored.length) {
          failed = true;
          log(
            `${name}: requests errored (${errored.map((e) => `${e.variant}: ${JSON.stringify(e.statusCodes)}`).join('; ')})`,
          );
        }
      } catch (err) {
        failed = true;
        results[name] = { error: (err as Error).stack ?? String(err) };
        log(`${name} failed: ${(err as Error).stack ?? err}`);
      }
    }
  } finally {
    await cleanup();
  }

  const rows = Object.values(results).flatMap((r) => ('rows' in r ? r.rows : []));
  const targets = Object.values(results).flatMap((r) => ('targets' in r ? r.targets : []));
  console.log(`\n${table(rows)}\n\n${targetTable(targets)}`);
  const machine = await describeMachine();
  const file = path.join(ROOT, 'bench/results', `${startedAt.toISOString().replace(/:/g, '-')}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({ startedAt, finishedAt: new Date(), args, machine, rows, targets, results }, null, 2) +
      '\n',
  );
  console.log(`\nwrote ${path.relative(ROOT, file)}${profileDir ? `; CPU profiles in ${profileDir}` : ''}`);
  return failed ? 1 : 0;
}

function table(rows: Row[]): string {
  const head = ['scenario', 'variant', 'throughput', 'p50 ms', 'p99 ms', 'errors', 'RSS MB', 'ratio', 'note'];
  const fmt = (n: number | undefined, digits = 1) =>
    n === undefined || Number.isNaN(n) ? '' : n.toFixed(digits);
  const body = rows.map((r) => [
    r.scenario,
    r.variant,
    r.throughput === undefined ? '' : `${Math.round(r.throughput).toLocaleString('en')} ${r.unit}`,
    fmt(r.p50Ms),
    fmt(r.p99Ms),
    r.errors === undefined ? '' : String(r.errors),
    fmt(r.rssMb, 0),
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    r.note ?? '',
  ]);
  return markdown(head, body);
}

function targetTable(targets: Target[]): string {
  return markdown(
    ['scenario', 'target', 'measured', 'met'],
    targets.map((t) => [t.scenario, t.target, t.measured, t.met ? 'yes' : 'NO']),
  );
}

/** A Markdown table, padded so it reads in a terminal too (and pastes into BENCHMARKS.md as is). */
function markdown(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

async function describeMachine() {
  let mariadb = 'unknown';
  const db = benchDb(process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/mysql', 1);
  try {
    const [rows] = await db.raw('SELECT VERSION() AS v');
    mariadb = (rows as Array<{ v: string }>)[0].v;
  } catch {
    // reported as unknown
  } finally {
    await db.destroy();
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGb: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    mysql: mariadb,
    platform: `${os.type()} ${os.release()}`,
  };
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

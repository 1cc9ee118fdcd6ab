import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bareMysqlLoop } from '../baselines/bare-mysql';
import { boardId, createBoards, GLOBAL_WINDOWS, watch } from '../lib/board-api';
import { mb, round, type BenchContext, type Row, type ScenarioResult, type Target } from '../lib/context';
import { seedBenchDatabase } from '../lib/data';
import { httpLoad, interleaved, type Measured } from '../lib/load';
import { treeCpuS, treeRss } from '../lib/proc';
import { startJwksServer } from '../lib/jwks-server';
import { startService, type RunningService } from '../lib/service';
import { ensureWrk, luaString, wrkLoad, writeLuaTable } from '../lib/wrk';

/** Concurrent clients for the service's writes: enough to keep batches full, few enough for a low p99. */
export const WRITE_CONNECTIONS = 32;
/** The issue's second load level (issue 17): four times the clients, each still with one request in flight. */
export const WRITE_CONNECTIONS_HIGH = 128;
/** The hot-spot mix: HOT_SHARE of the writes go to the last HOT_USERS users, the rest spread over all of them. */
export const HOT_USERS = 10;
export const HOT_SHARE = 0.5;

/** Chooses a write's user by index among `users`. */
export type Pick = (users: number) => number;
export const uniform: Pick = (n) => Math.floor(Math.random() * n);
/** The last users (not the first: user 1 is the stream scenario's ticker), so that 10 rows take half the locks. */
export const hotSpot: Pick = (n) =>
  Math.random() < HOT_SHARE ? n - 1 - Math.floor(Math.random() * Math.min(HOT_USERS, n)) : uniform(n);

/**
 * POSTs with distinct actionIds over the users, each from a user chosen by `opts.pick` (default: uniformly at
 * random), through the full stack. `boardOf` names the board of the user at that index (no boardId in the body,
 * that is `global`, without it).
 */
export async function postWrites(
  ctx: BenchContext,
  url: string,
  users: { tokens: string[] },
  tag: string,
  boardOf?: (user: number) => string,
  opts: { connections?: number; pick?: Pick } = {},
): Promise<Measured> {
  let seq = 0;
  const pick = opts.pick ?? uniform;
  return httpLoad({
    url: `${url}/api/v1/scores/update`,
    method: 'POST',
    connections: opts.connections ?? WRITE_CONNECTIONS,
    durationS: ctx.loadS,
    warmupS: ctx.warmupS,
    expect: [201],
    headers: { 'content-type': 'application/json' },
    vary: () => {
      const user = pick(users.tokens.length);
      const board = boardOf ? `"boardId":"${boardOf(user)}",` : '';
      return {
        headers: { authorization: users.tokens[user] },
        body: `{"scoreIncrement":1,${board}"actionId":"${ctx.runId}-${tag}-${seq++}"}`,
      };
    },
  });
}

/**
 * The same writes as `postWrites` (global, uniform users) with wrk: the bearer tokens are a Lua table in
 * `tokensFile`, each thread numbers its requests, and `run` (per wrk invocation) and `tid` keep actionIds unique.
 */
export function wrkWrites(
  ctx: BenchContext,
  url: string,
  tokensFile: string,
  tag: string,
  connections: number,
): Promise<Measured> {
  return wrkLoad({
    url: `${url}/api/v1/scores/update`,
    connections,
    threads: 2,
    durationS: ctx.loadS,
    warmupS: ctx.warmupS,
    expect: [201],
    args: [`${ctx.runId}-${tag}`],
    script: `
dofile(${luaString(tokensFile)})
local counter = 0
local prefix
function init(args)
  prefix = args[1] .. "-" .. run .. "-" .. tid .. "-"
  math.randomseed(os.time() + tid * 7919)
end
function request()
  counter = counter + 1
  -- A fresh table each time: wrk.format adds Content-Length to it, and the body's length grows with the counter.
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = tokens[math.random(#tokens)] }
  return wrk.format("POST", nil, headers, '{"scoreIncrement":1,"actionId":"' .. prefix .. counter .. '"}')
end
`,
  });
}

/** A service run, with the share of a core the service's process tree used meanwhile (warm-up included). */
async function withCpu(
  service: RunningService,
  warmupS: number,
  run: () => Promise<Measured>,
): Promise<Measured & { serviceCores: number }> {
  const cpu0 = treeCpuS(service.pid);
  const t0 = performance.now();
  const m = await run();
  const wallS = (performance.now() - t0) / 1000;
  return { ...m, serviceCores: round((treeCpuS(service.pid) - cpu0) / Math.max(wallS, warmupS + 0.001)) };
}

const ALL_ONLY = boardId(1);

/**
 * writes (issue 17): the service against the bare mysql2 loop, all in one run. The loop first runs at several
 * concurrencies; its peak is the baseline, measured again in every interleaved round. The service runs with group
 * commit at 32 and 128 connections over the 10,000 users, with a hot-spot mix (half the writes on 10 users),
 * with WORKERS=1 and WORKERS=2, with wrk as a second load generator, with RS256 tokens from a key set, with
 * batching off, and writing to `global` (four windows) against a board with only `all`. The bare loop writes to
 * the main database, each service to its own.
 *
 * With --profile only the group-commit 32-connection service is profiled (into <profileDir>/writes-gc32), so its
 * profile holds that load alone (and its idle time between rounds: `profile-summary.ts --timeline` shows the
 * runs, `--window` selects them). --quick runs 32 connections only: group commit, the hot-spot mix and a short
 * wrk run on one service, plus JWKS.
 */
export async function writesScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const users = ctx.main.userIds.length;
  // The 1-minute load average before each run: the machine is shared, so the figures carry its noise.
  const load = [{ run: 'start', load1: round(os.loadavg()[0]) }];
  const sweep: Array<{ concurrency: number } & Measured> = [];
  let bareRuns = 0;
  const bare = (concurrency: number, pick?: Pick) =>
    bareMysqlLoop({
      databaseUrl: ctx.main.url,
      userIds: ctx.main.userIds,
      concurrency,
      durationS: ctx.loadS,
      runId: `${ctx.runId}-${bareRuns++}`,
      pick,
    });
  for (const concurrency of ctx.quick ? [16] : [8, 16, 32, 64]) {
    ctx.log(`writes: bare mysql2 loop, ${concurrency} connections`);
    sweep.push({ concurrency, ...(await bare(concurrency)) });
  }
  const peak = sweep.reduce((a, b) => (b.throughput > a.throughput ? b : a)).concurrency;

  const wrk = ensureWrk(ctx.log); // (logs why when there is none: the wrk rows are skipped)
  const workersOther = ctx.workers === 1 ? 2 : 1;
  const label = {
    gc32: `service, group commit, WORKERS=${ctx.workers} (${WRITE_CONNECTIONS} conns)`,
    gc128: `service, group commit, WORKERS=${ctx.workers} (${WRITE_CONNECTIONS_HIGH} conns)`,
    hot: `service, hot-spot mix, WORKERS=${ctx.workers} (${WRITE_CONNECTIONS} conns)`,
    workers: `service, group commit, WORKERS=${workersOther} (${WRITE_CONNECTIONS} conns)`,
    wrk32: `wrk: service, group commit, WORKERS=${ctx.workers} (${WRITE_CONNECTIONS} conns)`,
    wrk128: `wrk: service, group commit, WORKERS=${ctx.workers} (${WRITE_CONNECTIONS_HIGH} conns)`,
    jwks: `service, JWKS RS256 (${WRITE_CONNECTIONS} conns)`,
    off: 'service, batching off',
    allOnly: `board with only all (${WRITE_CONNECTIONS} conns)`,
    global: `board global, 4 windows (${WRITE_CONNECTIONS} conns)`,
  };

  // Every service gets a database of its own (the same 10,000 users and tokens). Each instance's Redis mirror
  // catches up every row changed in its database (every MIRROR_SYNC_INTERVAL_MS, re-reading a window of
  // MIRROR_SYNC_WINDOW_MS): on a shared database every idle instance would replay the measured one's writes,
  // and the bare loop's, on the same two cores.
  const names = ['gc32', 'jwks', ...(ctx.quick ? [] : ['gc', 'off', `workers${workersOther}`, 'boards'])];
  ctx.log(
    `writes: seeding ${names.length} databases of ${users.toLocaleString('en')} users, one per service`,
  );
  const databases = Object.fromEntries(names.map((n) => [n, ctx.database(`w${n}`)]));
  await Promise.all(Object.values(databases).map((url) => seedBenchDatabase(url, users)));

  const services: RunningService[] = [];
  const start = async (
    name: string,
    opts: { env?: Record<string, string>; workers?: number; profile?: boolean } = {},
  ) => {
    let profileDir: string | undefined;
    if (opts.profile && ctx.profileDir) {
      profileDir = path.join(ctx.profileDir, `writes-${name}`);
      fs.mkdirSync(profileDir, { recursive: true });
      ctx.log(`writes: profiling the ${name} service into ${profileDir}`);
    }
    const s = await startService({
      databaseUrl: databases[name],
      redisUrl: ctx.redisUrl,
      redisPrefix: `${ctx.prefix}writes-${name}:`,
      jwtSecret: ctx.jwtSecret,
      workers: opts.workers ?? ctx.workers,
      env: opts.env,
      profileDir,
    });
    services.push(s);
    return s;
  };
  // The same users with RS256 tokens from a local identity provider's key set (JWT_JWKS_URL).
  const jwks = await startJwksServer();
  const jwksUsers = { tokens: jwks.tokensFor(ctx.main.userIds) };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scoreboard-writes-'));
  const tokensFile = path.join(tmp, 'tokens.lua');
  writeLuaTable(tokensFile, 'tokens', ctx.main.tokens);
  try {
    ctx.log('writes: starting the services');
    const gc = await start('gc32', { profile: true });
    // 128 connections, the hot-spot mix and wrk run on a second, identical instance in full runs, so that the
    // 32-connection instance's profile holds its own load alone.
    const gcLoad = ctx.quick ? gc : await start('gc');
    const jwksService = await start('jwks', { env: { JWT_JWKS_URL: jwks.url, JWT_ALGORITHMS: 'RS256' } });
    const off = ctx.quick ? undefined : await start('off', { env: { WRITE_BATCH_MAX: '1' } });
    const other = ctx.quick ? undefined : await start(`workers${workersOther}`, { workers: workersOther });
    let boards: RunningService | undefined;
    if (!ctx.quick) {
      // One more board, with only `all`, beside `global` and its four windows, on one instance.
      boards = await start('boards');
      await createBoards(boards.url, ctx.main.adminToken, [ALL_ONLY], ['all']);
    }

    let tag = 0;
    const t = () => `w${tag++}`;
    const runs: Record<string, () => Promise<Measured>> = {
      bare: () => (ctx.rounds > 1 ? bare(peak) : Promise.resolve(sweep.find((s) => s.concurrency === peak)!)),
    };
    if (!ctx.quick) runs.bareHot = () => bare(peak, hotSpot);
    const svc = (s: RunningService, run: () => Promise<Measured>) => () => withCpu(s, ctx.warmupS, run);
    runs[label.gc32] = svc(gc, () => postWrites(ctx, gc.url, ctx.main, t()));
    if (!ctx.quick)
      runs[label.gc128] = svc(gcLoad, () =>
        postWrites(ctx, gcLoad.url, ctx.main, t(), undefined, { connections: WRITE_CONNECTIONS_HIGH }),
      );
    runs[label.hot] = svc(gcLoad, () =>
      postWrites(ctx, gcLoad.url, ctx.main, t(), undefined, { pick: hotSpot }),
    );
    if (other) runs[label.workers] = svc(other, () => postWrites(ctx, other.url, ctx.main, t()));
    if (wrk) {
      runs[label.wrk32] = svc(gcLoad, () => wrkWrites(ctx, gcLoad.url, tokensFile, t(), WRITE_CONNECTIONS));
      if (!ctx.quick)
        runs[label.wrk128] = svc(gcLoad, () =>
          wrkWrites(ctx, gcLoad.url, tokensFile, t(), WRITE_CONNECTIONS_HIGH),
        );
    }
    runs[label.jwks] = svc(jwksService, () => postWrites(ctx, jwksService.url, jwksUsers, t()));
    if (off) runs[label.off] = svc(off, () => postWrites(ctx, off.url, ctx.main, t()));
    if (boards) {
      const onBoard = (board: string, windows: string[]) =>
        svc(boards, async () => {
          await watch(boards.url, [board], windows); // keep its snapshots live, as for any board people watch
          return postWrites(ctx, boards.url, ctx.main, t(), () => board);
        });
      runs[label.allOnly] = onBoard(ALL_ONLY, ['all']);
      runs[label.global] = onBoard('global', GLOBAL_WINDOWS);
    }
    for (const [k, run] of Object.entries(runs))
      runs[k] = () => {
        load.push({ run: k, load1: round(os.loadavg()[0]) });
        return run();
      };

    ctx.log(`writes: ${ctx.rounds} interleaved round(s) of the bare loop (${peak} conns) and the service`);
    const m = await interleaved(ctx.rounds, runs, ctx.log);
    load.push({ run: 'end', load1: round(os.loadavg()[0]) });

    const rssOf: Record<string, RunningService | undefined> = {
      [label.gc32]: gc,
      [label.gc128]: gcLoad,
      [label.hot]: gcLoad,
      [label.workers]: other,
      [label.wrk32]: gcLoad,
      [label.wrk128]: gcLoad,
      [label.jwks]: jwksService,
      [label.off]: off,
      [label.allOnly]: boards,
      [label.global]: boards,
    };
    const rows: Row[] = [
      {
        scenario: 'writes',
        variant: `bare mysql2 loop (peak: ${peak} conns)`,
        unit: 'tx/s',
        ...m.bare,
        rssMb: mb(process.memoryUsage().rss),
        note: 'baseline',
      },
    ];
    if (m.bareHot)
      rows.push({
        scenario: 'writes',
        variant: `bare mysql2 loop, hot-spot mix (${peak} conns)`,
        unit: 'tx/s',
        ...m.bareHot,
        rssMb: mb(process.memoryUsage().rss),
        ratio: round(m.bareHot.throughput / m.bare.throughput),
        note: 'baseline',
      });
    const cores = (r: Measured) => {
      const c = (r as Measured & { serviceCores?: number }).serviceCores;
      return c === undefined ? '' : `service ${Math.round(c * 100)}% CPU`;
    };
    for (const name of Object.keys(m)) {
      if (name === 'bare' || name === 'bareHot') continue;
      const r = m[name];
      const isBoard = name === label.allOnly || name === label.global;
      rows.push({
        scenario: 'writes',
        variant: name,
        unit: 'req/s',
        ...r,
        rssMb: mb(treeRss(rssOf[name]!.pid)),
        ratio: isBoard
          ? name === label.global
            ? round(r.throughput / m[label.allOnly].throughput)
            : undefined
          : round(r.throughput / m.bare.throughput),
        note: [
          name === label.allOnly ? 'baseline (service)' : name === label.global ? 'ratio to only all' : '',
          cores(r),
        ]
          .filter(Boolean)
          .join('; '),
      });
    }
    return {
      rows,
      targets: targetsOf(m, label, peak),
      details: {
        users,
        hotSpot: {
          share: HOT_SHARE,
          users: ctx.main.userIds.slice(-HOT_USERS),
        },
        wrk: wrk ?? 'not installed',
        bareSweep: sweep,
        load,
        rounds: m,
      },
    };
  } finally {
    for (const s of services) await s.stop();
    await jwks.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function targetsOf(m: Record<string, Measured>, label: Record<string, string>, peak: number): Target[] {
  const bare = m.bare.throughput;
  const ratio = (r: Measured) => round(r.throughput / bare);
  const targets: Target[] = [];
  const headline = (name: string, what: string, p99Max: number) => {
    const r = m[name];
    if (!r) return;
    targets.push({
      scenario: 'writes',
      target: `${what}: ≥ 1.5× the bare loop, zero errors, p99 < ${p99Max} ms`,
      measured: `${ratio(r)}×, ${r.errors} errors, p99 ${round(r.p99Ms, 1)} ms`,
      met: ratio(r) >= 1.5 && r.errors === 0 && r.p99Ms < p99Max,
    });
  };
  headline(label.gc32, `${WRITE_CONNECTIONS} conns`, 50);
  headline(label.gc128, `${WRITE_CONNECTIONS_HIGH} conns`, 100);
  headline(label.wrk32, `${WRITE_CONNECTIONS} conns, wrk`, 50);
  headline(label.wrk128, `${WRITE_CONNECTIONS_HIGH} conns, wrk`, 100);
  const hot = m[label.hot];
  if (hot) {
    const statuses = Object.entries(hot.statusCodes ?? {})
      .filter(([code]) => code !== '201')
      .map(([code, n]) => `${n}× ${code}`);
    const vsHot = m.bareHot
      ? `; ${round(hot.throughput / m.bareHot.throughput)}× the loop on the same mix`
      : '';
    targets.push({
      scenario: 'writes',
      target: `hot-spot mix (${HOT_SHARE * 100}% on ${HOT_USERS} users): ≥ 1.0× the bare loop (${peak} conns, uniform), zero errors`,
      measured: `${ratio(hot)}×, ${hot.errors} errors${statuses.length ? ` (${statuses.join(', ')})` : ''}${vsHot}`,
      met: ratio(hot) >= 1.0 && hot.errors === 0,
    });
  }
  const global = m[label.global];
  const allOnly = m[label.allOnly];
  if (global && allOnly) {
    const r = round(global.throughput / allOnly.throughput);
    targets.push({
      scenario: 'writes',
      target: 'writes to global (4 windows) ≥ 0.8× a board with only all',
      measured: `${r}×, ${global.errors + allOnly.errors} errors, p99 ${round(global.p99Ms, 1)} vs ${round(allOnly.p99Ms, 1)} ms`,
      met: r >= 0.8 && global.errors + allOnly.errors === 0,
    });
  }
  return targets;
}

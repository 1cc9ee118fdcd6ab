/**
 * Soak test: `npm run soak -- --minutes N` starts the real service (src/main.ts, as `npm start` runs it) on a
 * database and Redis key prefix of its own, drives mixed load at it (writes with idempotent retries, ETag polls,
 * user and history reads, SSE subscribers that come and go), samples memory and latency every interval, and
 * exits non-zero when:
 *   - any request fails (a status outside 200/201/304, a network error) or a stream ends unasked;
 *   - memory grows without bound: the least-squares slope of the per-interval minimum heap (the live set, as
 *     the lowest reading between collections) over the second half exceeds --max-heap-slope MB/min;
 *   - latency drifts: the last interval's p99 (writes or polls) exceeds --max-p99-factor times the first
 *     interval's and is more than --p99-floor-ms above it (tiny numbers jitter by whole factors);
 *   - at the end the data disagrees: a total differs from the sum of its events, Redis from MySQL, or the
 *     served snapshot from MySQL's top N.
 * Everything it created (database, Redis keys, the process) is removed at the end, also on Ctrl-C.
 *
 * Options: --minutes (5) --interval-s (30, or a tenth of the run if shorter) --writers (4) --pollers (4)
 * --streams (200) --users (500) --max-heap-slope (1) --max-p99-factor (3) --p99-floor-ms (25)
 * --database-url (mysql://root@127.0.0.1:3306) --redis-url (redis://127.0.0.1:6379/0) --json FILE.
 */
import { cycleAt } from '../src/leaderboard/boards/cycles';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import knex from 'knex';
import { knexConfig } from '../knexfile';
import { signToken } from '../src/auth/tokens';
import { createDatabase, migrateLatest } from '../src/cli/db';
import { readSnapshot } from '../src/leaderboard/snapshot/engine';
import { deleteKeysWithPrefix } from './lib/redis-keys';

/** The service runs as production does, so its tokens must name an issuer and be meant for it. */
const SOAK_JWT = { issuer: 'https://soak.scoreboard.test/', audience: 'scoreboard-soak' };
import { redisKeys } from '../src/leaderboard/ranking';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    'interval-s': { type: 'string' },
    writers: { type: 'string', default: '4' },
    pollers: { type: 'string', default: '4' },
    streams: { type: 'string', default: '200' },
    users: { type: 'string', default: '500' },
    'max-heap-slope': { type: 'string', default: '1' },
    'max-p99-factor': { type: 'string', default: '3' },
    'p99-floor-ms': { type: 'string', default: '25' },
    'database-url': {
      type: 'string',
      default: process.env.SOAK_DATABASE_SERVER ?? 'mysql://root@127.0.0.1:3306',
    },
    'redis-url': { type: 'string', default: process.env.SOAK_REDIS_URL ?? 'redis://127.0.0.1:6379/0' },
    json: { type: 'string' },
  },
});
const minutes = Number(args.minutes);
const intervalS = Number(args['interval-s'] ?? Math.max(5, Math.min(30, (minutes * 60) / 10)));
const opts = {
  writers: Number(args.writers),
  pollers: Number(args.pollers),
  streams: Number(args.streams),
  users: Number(args.users),
  maxHeapSlope: Number(args['max-heap-slope']),
  maxP99Factor: Number(args['max-p99-factor']),
  p99FloorMs: Number(args['p99-floor-ms']),
};
if (!(minutes > 0) || !(intervalS > 0))
  throw new Error('--minutes and --interval-s must be positive numbers');

const tag = `${process.pid}_${randomBytes(3).toString('hex')}`;
const databaseUrl = `${args['database-url']!.replace(/\/+$/, '')}/scoreboard_soak_${tag}`;
const redisUrl = args['redis-url']!;
const prefix = `soak:${tag}:`;
const secret = randomBytes(32).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Interval {
  index: number;
  endedAtS: number;
  writes: number[];
  polls: number[];
  reads: number;
  statuses: Record<string, number>;
  errors: string[];
  heapMinMB: number;
  rssMaxMB: number;
  fds: number;
  subscribers: number;
}
const newInterval = (index: number): Interval => ({
  index,
  endedAtS: 0,
  writes: [],
  polls: [],
  reads: 0,
  statuses: {},
  errors: [],
  heapMinMB: Infinity,
  rssMaxMB: 0,
  fds: 0,
  subscribers: 0,
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const percentile = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

async function main(): Promise<number> {
  const state = { cleanup: async () => {} };
  try {
    return await run(state);
  } finally {
    await state.cleanup();
  }
}

async function run(state: { cleanup: () => Promise<void> }): Promise<number> {
  const proc: { child?: ChildProcess; exited?: Promise<number | null> } = {};
  let stopping = false;
  let cleaned = false;
  const streams = new Set<http.ClientRequest>();
  /** Removes everything the run created; safe to call more than once (end, error, Ctrl-C). */
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    stopping = true;
    for (const s of streams) s.destroy();
    const { child } = proc;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([proc.exited, sleep(15_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const server = knex(knexConfig(databaseUrl, { noDatabase: true, poolMax: 1 }));
    await server.raw(`DROP DATABASE IF EXISTS \`scoreboard_soak_${tag}\``).catch(() => {});
    await server.destroy();
    await deleteKeysWithPrefix(redisUrl, prefix);
  };
  state.cleanup = cleanup;
  process.once('SIGINT', () => {
    console.log('\ninterrupted: cleaning up');
    void cleanup().then(() => process.exit(130));
  });

  console.log(
    `soak: ${minutes} min, sampling every ${intervalS} s, database scoreboard_soak_${tag}, prefix ${prefix}`,
  );
  await createDatabase(databaseUrl);
  await migrateLatest(databaseUrl);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let serverLog = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'src', 'main.ts')], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      JWT_SECRET: secret,
      JWT_ISSUER: SOAK_JWT.issuer,
      JWT_AUDIENCE: SOAK_JWT.audience,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_WRITES_PER_MIN: '1000000',
      RATE_LIMIT_READS_PER_MIN: '100000000',
      RATE_LIMIT_STREAMS_PER_IP: '100000',
      SUSPICIOUS_POINTS_PER_MIN: '100000000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Keep only the tail of the service's output (warnings), for the report if something fails.
  const keep = (d: Buffer) => (serverLog = (serverLog + d.toString()).slice(-20_000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  proc.child = child;
  proc.exited = exited;

  const startedAt = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited at start:\n${serverLog}`);
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() - startedAt > 30_000) throw new Error(`the service did not become ready:\n${serverLog}`);
    await sleep(200);
  }

  const users = Array.from({ length: opts.users }, (_, i) => `soak-${i}`);
  const tokens = new Map(
    users.map((u) => [
      u,
      signToken({ algorithm: 'HS256', signingKey: secret, ...SOAK_JWT }, { sub: u, name: `Soak ${u}` }, '1d'),
    ]),
  );
  const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];

  let current = newInterval(0);
  const intervals: Interval[] = [];
  const note = (status: number | string) => (current.statuses[status] = (current.statuses[status] ?? 0) + 1);
  const fail = (what: string) => {
    if (!stopping && current.errors.length < 20) current.errors.push(what);
  };

  async function timed(
    kind: 'writes' | 'polls' | 'reads',
    url: string,
    init: RequestInit,
    ok: number[],
  ): Promise<Response | undefined> {
    const t = performance.now();
    try {
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      const ms = performance.now() - t;
      note(res.status);
      if (kind === 'reads') current.reads++;
      else current[kind].push(ms);
      if (!ok.includes(res.status))
        fail(`${init.method ?? 'GET'} ${url.replace(/^http:\/\/[^/]+/, '')} -> ${res.status}`);
      return res;
    } catch (err) {
      note('network');
      fail(`${init.method ?? 'GET'} ${url.replace(/^http:\/\/[^/]+/, '')}: ${(err as Error).message}`);
      return undefined;
    }
  }

  const recent: Array<{ user: string; actionId: string; delta: number }> = [];
  let actions = 0;
  const writer = async () => {
    while (!stopping) {
      let user: string;
      let actionId: string;
      let delta: number;
      if (recent.length && Math.random() < 0.1) {
        ({ user, actionId, delta } = pick(recent)); // a client retrying: must replay, not apply again
      } else {
        user = pick(users);
        actionId = `soak-${++actions}`;
        delta = 1 + Math.floor(Math.random() * 20);
        recent.push({ user, actionId, delta });
        if (recent.length > 1000) recent.shift();
      }
      await timed(
        'writes',
        `${url}/api/v1/scores/update`,
        {
          method: 'POST',
          headers: { Authorization: `Bearer ${tokens.get(user)}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ scoreIncrement: delta, actionId }),
        },
        [200, 201],
      );
      await sleep(5);
    }
  };
  const poller = async () => {
    let etag: string | null = null;
    while (!stopping) {
      const res = await timed(
        'polls',
        `${url}/api/v1/scores/top`,
        { headers: etag ? { 'If-None-Match': etag } : {} },
        [200, 304],
      );
      etag = res?.headers.get('etag') ?? etag;
      await sleep(10);
    }
  };
  const reader = async () => {
    while (!stopping) {
      const user = pick(users);
      if (Math.random() < 0.5) await timed('reads', `${url}/api/v1/scores/users/${user}`, {}, [200, 404]);
      else
        await timed(
          'reads',
          `${url}/api/v1/scores/users/${user}/events?limit=20`,
          { headers: { Authorization: `Bearer ${tokens.get(user)}` } },
          [200],
        );
      await sleep(50);
    }
  };
  let streamEvents = 0;
  const openStream = () => {
    const req = http.get(
      `${url}/api/v1/scores/stream`,
      { agent: false, headers: { Accept: 'text/event-stream' } },
      (res) => {
        if (res.statusCode !== 200) fail(`stream -> ${res.statusCode}`);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (streamEvents += chunk.split('event: scoreboard').length - 1));
        res.on('end', () => {
          if (!stopping && streams.has(req)) fail('a stream ended unasked');
        });
      },
    );
    req.on('error', (err) => {
      if (!stopping && streams.has(req)) fail(`stream: ${err.message}`);
    });
    streams.add(req);
  };
  const closeStream = (req: http.ClientRequest) => {
    streams.delete(req);
    req.destroy();
  };

  // Warm up for a few seconds (JIT, pools, caches) before the first interval counts.
  for (let i = 0; i < opts.streams; i++) openStream();
  const load = [
    ...Array.from({ length: opts.writers }, writer),
    ...Array.from({ length: opts.pollers }, poller),
    reader(),
  ];
  await sleep(5000);
  const warmup = current;
  current = newInterval(1);
  current.errors.push(...warmup.errors); // a failure while warming up still fails the run

  const sampler = setInterval(async () => {
    const text = await fetch(`${url}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    if (!text) return;
    current.heapMinMB = Math.min(current.heapMinMB, metric(text, 'nodejs_heap_size_used_bytes') / 2 ** 20);
    current.rssMaxMB = Math.max(current.rssMaxMB, metric(text, 'process_resident_memory_bytes') / 2 ** 20);
    current.fds = metric(text, 'process_open_fds');
    current.subscribers = metric(text, 'sse_subscribers');
  }, 2000);

  const runUntil = Date.now() + minutes * 60_000;
  const header =
    'interval  t(s)  writes/s  w.p50  w.p99  polls/s  p.p50  p.p99  heapMin  rssMax  fds  subs  errors';
  console.log(header);
  while (Date.now() < runUntil) {
    await sleep(Math.min(intervalS * 1000, runUntil - Date.now()));
    // Stream churn: a tenth of the subscribers leave and as many arrive, as browsers come and go.
    const leaving = [...streams].slice(0, Math.ceil(streams.size / 10));
    leaving.forEach(closeStream);
    leaving.forEach(() => openStream());
    const done = current;
    done.endedAtS = Math.round((Date.now() - startedAt) / 1000);
    intervals.push(done);
    current = newInterval(done.index + 1);
    const span = intervalS;
    console.log(
      [
        String(done.index).padStart(8),
        String(done.endedAtS).padStart(5),
        (done.writes.length / span).toFixed(0).padStart(9),
        percentile(done.writes, 50).toFixed(1).padStart(6),
        percentile(done.writes, 99).toFixed(1).padStart(6),
        (done.polls.length / span).toFixed(0).padStart(8),
        percentile(done.polls, 50).toFixed(1).padStart(6),
        percentile(done.polls, 99).toFixed(1).padStart(6),
        done.heapMinMB.toFixed(1).padStart(8),
        done.rssMaxMB.toFixed(1).padStart(7),
        String(done.fds).padStart(4),
        String(done.subscribers).padStart(5),
        String(done.errors.length).padStart(7),
      ].join(' '),
    );
    for (const e of done.errors.slice(0, 5)) console.log(`          ! ${e}`);
  }
  clearInterval(sampler);
  stopping = true;
  await Promise.all(load);
  for (const s of [...streams]) closeStream(s);

  // Verdict.
  const problems: string[] = [];
  const errors = intervals.flatMap((i) => i.errors);
  if (errors.length) problems.push(`${errors.length} failed requests or streams, first: ${errors[0]}`);
  if (streamEvents === 0) problems.push('the streams received no events');
  const second = intervals
    .slice(Math.floor(intervals.length / 2))
    .filter((i) => Number.isFinite(i.heapMinMB));
  const heapSlope = slope(second.map((i) => [i.endedAtS / 60, i.heapMinMB]));
  const rssSlope = slope(second.map((i) => [i.endedAtS / 60, i.rssMaxMB]));
  // A slope from a handful of points is GC noise: judge memory only on runs long enough to have 6 or more.
  const judged = second.length >= 6;
  if (judged && heapSlope > opts.maxHeapSlope)
    problems.push(
      `heap grows ${heapSlope.toFixed(2)} MB/min over the second half (limit ${opts.maxHeapSlope})`,
    );
  const [first, last] = [intervals[0], intervals[intervals.length - 1]];
  // Open descriptors track sockets: with the subscriber count steady they must not creep up.
  if (first && last && last.fds > first.fds + Math.max(50, first.fds * 0.2))
    problems.push(`open file descriptors grew from ${first.fds} to ${last.fds}`);
  for (const kind of ['writes', 'polls'] as const) {
    if (!first || !last || first === last) break;
    const [a, b] = [percentile(first[kind], 99), percentile(last[kind], 99)];
    if (b > a * opts.maxP99Factor && b - a > opts.p99FloorMs)
      problems.push(`${kind} p99 drifted from ${a.toFixed(1)} ms to ${b.toFixed(1)} ms`);
  }

  // The data at the end: totals are sums of their events, Redis equals MySQL, the snapshot is MySQL's.
  await sleep(3000); // a few mirror catch-up passes and snapshot ticks
  const db = knex(knexConfig(databaseUrl, { poolMax: 2 }));
  const redis = new Redis(redisUrl);
  try {
    const [bad] = await db.raw(
      `SELECT s.user_id FROM ${GLOBAL_ALL} s LEFT JOIN (SELECT user_id, SUM(delta) AS total FROM score_events WHERE board_id = 'global' GROUP BY user_id) e
       ON e.user_id = s.user_id WHERE s.score <> COALESCE(e.total, 0)`,
    );
    if ((bad as unknown[]).length)
      problems.push(`${(bad as unknown[]).length} totals differ from the sum of their events`);
    const [rows] = await db.raw(`SELECT user_id, CAST(score AS CHAR) AS score FROM ${GLOBAL_ALL} s`);
    const flat = await redis.zrange(redisKeys(prefix).scores, '0', '-1', 'WITHSCORES');
    const mirrored = new Map<string, string>();
    for (let i = 0; i < flat.length; i += 2) mirrored.set(flat[i], flat[i + 1]);
    const differ = (rows as Array<{ user_id: string; score: string }>).filter(
      (r) => mirrored.get(r.user_id) !== r.score,
    );
    if (differ.length) problems.push(`${differ.length} users differ between Redis and MySQL`);
    const served = await fetch(`${url}/api/v1/scores/top`).then((r) => r.text());
    const allTime = { board: 'global', window: 'all', cycle: cycleAt(null, new Date()) };
    if (served !== (await readSnapshot(db, 10, allTime)).body.toString())
      problems.push('the served top N is not MySQL top N');
  } finally {
    await db.destroy();
    redis.disconnect();
  }
  child.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) problems.push(`the service exited with ${code} on SIGTERM`);

  const total = (k: 'writes' | 'polls') => intervals.reduce((s, i) => s + i[k].length, 0);
  const summary = {
    minutes,
    intervalS,
    options: opts,
    requests: {
      writes: total('writes'),
      polls: total('polls'),
      reads: intervals.reduce((s, i) => s + i.reads, 0),
    },
    streamEvents,
    heapSlopeMBPerMin: Number(heapSlope.toFixed(3)),
    rssSlopeMBPerMin: Number(rssSlope.toFixed(3)),
    firstP99: first && { writes: percentile(first.writes, 99), polls: percentile(first.polls, 99) },
    lastP99: last && { writes: percentile(last.writes, 99), polls: percentile(last.polls, 99) },
    problems,
  };
  console.log(
    `\n${summary.requests.writes} writes, ${summary.requests.polls} polls, ${summary.requests.reads} reads, ` +
      `${streamEvents} stream events to ${opts.streams} subscribers (10% churn per interval)`,
  );
  console.log(
    `heap slope (second half) ${summary.heapSlopeMBPerMin} MB/min, rss slope ${summary.rssSlopeMBPerMin} MB/min` +
      (judged ? '' : ' (too few intervals to judge memory; run longer)'),
  );
  console.log(
    problems.length ? `SOAK FAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}` : 'SOAK PASSED',
  );
  if (problems.length && serverLog.trim()) console.log(`service output (tail):\n${serverLog.slice(-3000)}`);
  if (args.json)
    writeFileSync(
      args.json,
      JSON.stringify(
        {
          summary,
          intervals: intervals.map(({ writes, polls, ...rest }) => ({
            ...rest,
            writes: writes.length,
            writeP99: percentile(writes, 99),
            polls: polls.length,
            pollP99: percentile(polls, 99),
          })),
        },
        null,
        2,
      ),
    );
  await cleanup();
  return problems.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

/** `global`/`all` as a derived table with the columns of the one-board `scores` table. */
const GLOBAL_ALL =
  "(SELECT * FROM board_scores WHERE board_id = 'global' AND window_name = 'all' AND cycle_start = '1970-01-01')";

import { bareMysqlLoop } from '../baselines/bare-mysql';
import { mb, round, type BenchContext, type Row, type ScenarioResult } from '../lib/context';
import { httpLoad, interleaved, type Measured } from '../lib/load';
import { treeRss } from '../lib/proc';
import { startJwksServer } from '../lib/jwks-server';
import { startService, type RunningService } from '../lib/service';

/** Concurrent clients for the service's writes: enough to keep batches full, few enough for a low p99. */
export const WRITE_CONNECTIONS = 32;

/**
 * POSTs with distinct actionIds over the users, each from a random one of them, through the full stack.
 * `boardOf` names the board of the user at that index (no boardId in the body, that is `global`, without it).
 */
export async function postWrites(
  ctx: BenchContext,
  url: string,
  users: { tokens: string[] },
  tag: string,
  boardOf?: (user: number) => string,
): Promise<Measured> {
  let seq = 0;
  return httpLoad({
    url: `${url}/api/v1/scores/update`,
    method: 'POST',
    connections: WRITE_CONNECTIONS,
    durationS: ctx.loadS,
    warmupS: ctx.warmupS,
    expect: [201],
    headers: { 'content-type': 'application/json' },
    vary: () => {
      const user = Math.floor(Math.random() * users.tokens.length);
      const board = boardOf ? `"boardId":"${boardOf(user)}",` : '';
      return {
        headers: { authorization: users.tokens[user] },
        body: `{"scoreIncrement":1,${board}"actionId":"${ctx.runId}-${tag}-${seq++}"}`,
      };
    },
  });
}

/**
 * writes: the service (group commit on, and off for comparison) against the bare mysql2 loop. The loop first
 * runs at several concurrencies; its peak is the baseline, measured again in every interleaved round.
 */
export async function writesScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const sweep: Array<{ concurrency: number } & Measured> = [];
  let bareRuns = 0;
  const bare = (concurrency: number) =>
    bareMysqlLoop({
      databaseUrl: ctx.main.url,
      userIds: ctx.main.userIds,
      concurrency,
      durationS: ctx.loadS,
      runId: `${ctx.runId}-${bareRuns++}`,
    });
  for (const concurrency of ctx.quick ? [16] : [8, 16, 32, 64]) {
    ctx.log(`writes: bare mysql2 loop, ${concurrency} connections`);
    sweep.push({ concurrency, ...(await bare(concurrency)) });
  }
  const peak = sweep.reduce((a, b) => (b.throughput > a.throughput ? b : a)).concurrency;

  const on = `service, group commit (${WRITE_CONNECTIONS} conns)`;
  const off = 'service, batching off';
  const jwksMode = `service, JWKS RS256 (${WRITE_CONNECTIONS} conns)`;
  const services: Record<string, RunningService> = {};
  // The same users with RS256 tokens from a local identity provider's key set (JWT_JWKS_URL).
  const jwks = await startJwksServer();
  const tokens: Record<string, { tokens: string[] }> = {
    [jwksMode]: { tokens: jwks.tokensFor(ctx.main.userIds) },
  };
  try {
    const variants: Array<[string, Record<string, string>]> = [
      [on, {}],
      [jwksMode, { JWT_JWKS_URL: jwks.url, JWT_ALGORITHMS: 'RS256' }],
      ...(ctx.quick ? [] : ([[off, { WRITE_BATCH_MAX: '1' }]] as Array<[string, Record<string, string>]>)),
    ];
    for (const [name, env] of variants) {
      services[name] = await startService({
        databaseUrl: ctx.main.url,
        redisUrl: ctx.redisUrl,
        redisPrefix: `${ctx.prefix}writes-${Object.keys(services).length}:`,
        jwtSecret: ctx.jwtSecret,
        workers: ctx.workers,
        env,
        profileDir: ctx.profileDir,
      });
    }
    ctx.log(`writes: ${ctx.rounds} interleaved round(s) of the bare loop (${peak} conns) and the service`);
    let tag = 0;
    const runs: Record<string, () => Promise<Measured>> = {
      bare: () => (ctx.rounds > 1 ? bare(peak) : Promise.resolve(sweep.find((s) => s.concurrency === peak)!)),
    };
    for (const [name, s] of Object.entries(services))
      runs[name] = () => postWrites(ctx, s.url, tokens[name] ?? ctx.main, `w${tag++}`);
    const m = await interleaved(ctx.rounds, runs, ctx.log);

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
    for (const [name, s] of Object.entries(services)) {
      rows.push({
        scenario: 'writes',
        variant: name,
        unit: 'req/s',
        ...m[name],
        rssMb: mb(treeRss(s.pid)),
        ratio: round(m[name].throughput / m.bare.throughput),
      });
    }
    const main = rows[1];
    return {
      rows,
      targets: [
        {
          scenario: 'writes',
          target: '≥ 1.5× the bare loop, zero errors, p99 < 50 ms',
          measured: `${main.ratio}×, ${main.errors} errors, p99 ${main.p99Ms} ms`,
          met: main.ratio! >= 1.5 && main.errors === 0 && main.p99Ms! < 50,
        },
      ],
      details: { bareSweep: sweep, rounds: m },
    };
  } finally {
    for (const s of Object.values(services)) await s.stop();
    await jwks.close();
  }
}

import path from 'node:path';
import { mb, round, type BenchContext, type Row, type ScenarioResult } from '../lib/context';
import { httpLoad, interleaved, type Measured } from '../lib/load';
import { freePort, ROOT, spawnNode, treeRss, waitFor } from '../lib/proc';
import { startService } from '../lib/service';
import { ensureWrk, luaString, wrkLoad } from '../lib/wrk';

export const POLL_CONNECTIONS = 50;
/** The connection counts of the polls scenario: a busy page's worth, and ten times that. */
const POLL_SWEEP = [50, 500];

export type Generator = 'autocannon' | 'wrk';

/**
 * GET /top (or another top N at `path`) unconditionally (200) or with the current ETag (304), with autocannon
 * (in the harness's process) or wrk (a C generator, far less CPU per request on a 2-core machine).
 */
export async function poll(
  ctx: BenchContext,
  url: string,
  conditional: boolean,
  path = '/api/v1/scores/top',
  opts: { connections?: number; generator?: Generator } = {},
): Promise<Measured> {
  const target = `${url}${path}`;
  const etag = (await fetch(target)).headers.get('etag') ?? '';
  const connections = opts.connections ?? POLL_CONNECTIONS;
  const expect = [conditional ? 304 : 200];
  if (opts.generator === 'wrk') {
    const headers = conditional ? `{ ["If-None-Match"] = ${luaString(etag)} }` : '{}';
    return wrkLoad({
      url: target,
      connections,
      durationS: ctx.loadS,
      warmupS: ctx.warmupS,
      expect,
      // One request, formatted once per thread.
      script: `local req\nfunction request()\n  req = req or wrk.format("GET", nil, ${headers})\n  return req\nend`,
    });
  }
  return httpLoad({
    url: target,
    connections,
    durationS: ctx.loadS,
    warmupS: ctx.warmupS,
    expect,
    headers: conditional ? { 'if-none-match': etag } : undefined,
  });
}

/**
 * polls: the service's in-memory /top against a bare Koa handler serving the very same bytes, 200 and 304,
 * at 50 and 500 connections, with autocannon and (when installed) wrk, all interleaved in one run.
 */
export async function pollsScenario(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.log('polls: starting the service and a bare Koa handler with the same bytes');
  const service = await startService({
    databaseUrl: ctx.main.url,
    redisUrl: ctx.redisUrl,
    redisPrefix: `${ctx.prefix}polls:`,
    jwtSecret: ctx.jwtSecret,
    workers: ctx.workers,
    profileDir: ctx.profileDir,
  });
  const port = await freePort();
  let bare: ReturnType<typeof spawnNode> | undefined;
  try {
    const res = await fetch(`${service.url}/api/v1/scores/top`);
    const body = Buffer.from(await res.arrayBuffer());
    const etag = res.headers.get('etag') ?? '';
    bare = spawnNode(path.join(ROOT, 'bench/baselines/bare-koa.ts'), {
      env: { PORT: String(port), BARE_BODY_B64: body.toString('base64'), BARE_ETAG: etag },
    });
    const bareUrl = `http://127.0.0.1:${port}`;
    await waitFor('the bare Koa handler', async () => (await fetch(`${bareUrl}/`)).ok, 30_000, bare);

    const generators: Generator[] = ensureWrk(ctx.log) ? ['autocannon', 'wrk'] : ['autocannon'];
    const cases = generators.flatMap((generator) =>
      POLL_SWEEP.flatMap((connections) =>
        (['200', '304'] as const).map((status) => ({ generator, connections, status })),
      ),
    );
    const name = (c: (typeof cases)[number], who: string) =>
      `${who}${c.status}-${c.generator}-${c.connections}`;
    const runs: Record<string, () => Promise<Measured>> = {};
    for (const c of cases) {
      const opts = { connections: c.connections, generator: c.generator };
      runs[name(c, 'service')] = () => poll(ctx, service.url, c.status === '304', undefined, opts);
      runs[name(c, 'bare')] = () => poll(ctx, bareUrl, c.status === '304', undefined, opts);
    }
    const m = await interleaved(ctx.rounds, runs, ctx.log);
    const rss = { service: mb(treeRss(service.pid)), bare: mb(treeRss(bare.pid)) };

    const rows: Row[] = [];
    const targets = [];
    for (const c of cases) {
      const s = m[name(c, 'service')];
      const b = m[name(c, 'bare')];
      const how = `${c.status}, ${c.generator}, ${c.connections} conns`;
      const ratio = round(s.throughput / b.throughput);
      const min = c.status === '200' ? 0.8 : 0.85;
      rows.push({
        scenario: 'polls',
        variant: `bare Koa, ${how}`,
        unit: 'req/s',
        ...b,
        rssMb: rss.bare,
        note: 'baseline',
      });
      rows.push({
        scenario: 'polls',
        variant: `service GET /top, ${how}`,
        unit: 'req/s',
        ...s,
        rssMb: rss.service,
        ratio,
      });
      targets.push({
        scenario: 'polls',
        target: `${how}: ≥ ${min}× bare Koa`,
        measured: `${ratio}×, ${s.errors} errors`,
        met: ratio >= min && s.errors === 0,
      });
    }
    return { rows, targets, details: { bodyBytes: body.length, cases, rounds: m } };
  } finally {
    await bare?.stop();
    await service.stop();
  }
}

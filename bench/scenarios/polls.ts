import path from 'node:path';
import { mb, round, type BenchContext, type Row, type ScenarioResult } from '../lib/context';
import { httpLoad, interleaved, type Measured } from '../lib/load';
import { freePort, ROOT, spawnNode, treeRss, waitFor } from '../lib/proc';
import { startService } from '../lib/service';

export const POLL_CONNECTIONS = 50;

/** GET /top (or another top N at `path`) unconditionally (200) or with the current ETag (304). */
export async function poll(
  ctx: BenchContext,
  url: string,
  conditional: boolean,
  path = '/api/v1/scores/top',
): Promise<Measured> {
  const target = `${url}${path}`;
  const etag = (await fetch(target)).headers.get('etag') ?? '';
  return httpLoad({
    url: target,
    connections: POLL_CONNECTIONS,
    durationS: ctx.loadS,
    warmupS: ctx.warmupS,
    expect: [conditional ? 304 : 200],
    headers: conditional ? { 'if-none-match': etag } : undefined,
  });
}

/** polls: the service's in-memory /top against a bare Koa handler serving the very same bytes. */
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

    const m = await interleaved(
      ctx.rounds,
      {
        service200: () => poll(ctx, service.url, false),
        bare200: () => poll(ctx, bareUrl, false),
        service304: () => poll(ctx, service.url, true),
        bare304: () => poll(ctx, bareUrl, true),
      },
      ctx.log,
    );
    const rss = { service: mb(treeRss(service.pid)), bare: mb(treeRss(bare.pid)) };

    const rows: Row[] = [];
    const pairs = [
      { label: '200', s: m.service200, b: m.bare200, min: 0.8 },
      { label: '304', s: m.service304, b: m.bare304, min: 0.85 },
    ];
    for (const p of pairs) {
      rows.push({
        scenario: 'polls',
        variant: `bare Koa, ${p.label}`,
        unit: 'req/s',
        ...p.b,
        rssMb: rss.bare,
        note: 'baseline',
      });
      rows.push({
        scenario: 'polls',
        variant: `service GET /top, ${p.label}`,
        unit: 'req/s',
        ...p.s,
        rssMb: rss.service,
        ratio: round(p.s.throughput / p.b.throughput),
      });
    }
    return {
      rows,
      targets: pairs.map((p) => {
        const ratio = round(p.s.throughput / p.b.throughput);
        return {
          scenario: 'polls',
          target: `${p.label}: ≥ ${p.min}× bare Koa`,
          measured: `${ratio}×, ${p.s.errors} errors`,
          met: ratio >= p.min && p.s.errors === 0,
        };
      }),
      details: { bodyBytes: body.length, connections: POLL_CONNECTIONS, rounds: m },
    };
  } finally {
    await bare?.stop();
    await service.stop();
  }
}

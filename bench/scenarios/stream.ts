import path from 'node:path';
import { mb, round, type BenchContext, type Row, type ScenarioResult } from '../lib/context';
import { freePort, ROOT, sleep, spawnNode, treeRss, waitFor, type NodeChild } from '../lib/proc';
import { startService } from '../lib/service';

export const CHANGE_EVERY_MS = 200;

interface Report {
  open: number;
  failed: number;
  dropped: number;
  changes: number;
  deliveries: number;
  missing: number;
  coalesced: number;
  p50: number;
  p99: number;
  max: number;
  spreadP50: number;
  spreadP99: number;
}

interface StreamRun extends Report {
  subscribers: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  kbPerConnection: number;
}

/**
 * Connects `count` subscribers (in their own process), makes a change every 200 ms for the run's length
 * and collects who got what when. `publish(t)` makes the change whose leader's score is `t` (its send time).
 */
async function measure(
  ctx: BenchContext,
  server: NodeChild,
  streamUrl: URL,
  count: number,
  publish: (t: number) => Promise<void>,
  transport: 'sse' | 'ws' = 'sse',
): Promise<StreamRun> {
  await sleep(500);
  const rssBefore = treeRss(server.pid);
  const subs = spawnNode(path.join(ROOT, 'bench/lib/subscribers.ts'), {
    args: [streamUrl.port, streamUrl.pathname, String(count), ...(transport === 'ws' ? ['ws'] : [])],
    ipc: true,
  });
  const messages: Array<{ type: string } & Partial<Report>> = [];
  subs.child.on('message', (m: { type: string } & Partial<Report>) => messages.push(m));
  try {
    await waitFor(
      'subscribers to connect',
      async () => messages.some((m) => m.type === 'ready'),
      120_000,
      subs,
    );
    const ready = messages.find((m) => m.type === 'ready')!;
    if (ready.open !== count) throw new Error(`only ${ready.open} of ${count} subscribers connected`);
    const sent: number[] = [];
    const until = Date.now() + ctx.loadS * 1000;
    while (Date.now() < until) {
      const t = Date.now();
      await publish(t);
      sent.push(t);
      await sleep(Math.max(0, t + CHANGE_EVERY_MS - Date.now()));
    }
    await sleep(1500); // the last change's deliveries
    const rssAfter = treeRss(server.pid);
    subs.child.send({ cmd: 'report', sent });
    await waitFor(
      'the subscribers report',
      async () => messages.some((m) => m.type === 'report'),
      60_000,
      subs,
    );
    const report = messages.find((m) => m.type === 'report') as unknown as Report;
    return {
      ...report,
      subscribers: count,
      rssBeforeMb: mb(rssBefore),
      rssAfterMb: mb(rssAfter),
      kbPerConnection: round((rssAfter - rssBefore) / 1024 / Math.max(1, report.open), 1),
    };
  } finally {
    if (subs.child.connected) subs.child.send({ cmd: 'close' });
    await subs.stop('SIGTERM', 5000);
  }
}

/** A bare broadcaster (SSE or WebSocket) as the baseline, driven through its POST /publish. */
async function measureBare(ctx: BenchContext, transport: 'sse' | 'ws', count: number): Promise<StreamRun> {
  const port = await freePort();
  const script = transport === 'sse' ? 'bench/baselines/bare-broadcaster.ts' : 'bench/baselines/bare-ws.ts';
  const bare = spawnNode(path.join(ROOT, script), { env: { PORT: String(port) } });
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      'the bare broadcaster',
      async () => (await fetch(`${url}/publish`, { method: 'POST', body: '0' })).ok,
      30_000,
      bare,
    );
    const streamUrl = new URL(transport === 'sse' ? `${url}/stream` : `${url.replace('http', 'ws')}/`);
    return await measure(
      ctx,
      bare,
      streamUrl,
      count,
      async (t) => {
        await fetch(`${url}/publish`, { method: 'POST', body: String(t) });
      },
      transport,
    );
  } finally {
    await bare.stop();
  }
}

/** The service, its changes driven by real admin writes of the ticker's score. */
async function measureService(ctx: BenchContext, transport: 'sse' | 'ws', count: number): Promise<StreamRun> {
  const service = await startService({
    databaseUrl: ctx.main.url,
    redisUrl: ctx.redisUrl,
    redisPrefix: `${ctx.prefix}${transport}:`,
    jwtSecret: ctx.jwtSecret,
    workers: ctx.workers,
    profileDir: ctx.profileDir,
  });
  try {
    const current = await fetch(`${service.url}/api/v1/scores/users/${ctx.main.tickerId}`);
    let ticker = ((await current.json()) as { score: number }).score;
    const streamUrl = new URL(
      transport === 'sse'
        ? `${service.url}/api/v1/scores/stream`
        : `${service.url.replace('http', 'ws')}/ws/scores`,
    );
    return await measure(
      ctx,
      service,
      streamUrl,
      count,
      async (t) => {
        // The ticker leads the board with its score set to the send time: every subscriber can tell when.
        const res = await fetch(`${service.url}/api/v1/scores/update`, {
          method: 'POST',
          headers: { authorization: ctx.main.adminToken, 'content-type': 'application/json' },
          body: JSON.stringify({ userId: ctx.main.tickerId, scoreIncrement: t - ticker }),
        });
        if (res.status !== 201) throw new Error(`the change driver got ${res.status}: ${await res.text()}`);
        ticker = ((await res.json()) as { score: number }).score;
      },
      transport,
    );
  } finally {
    await service.stop();
  }
}

/**
 * stream (SSE) and ws (WebSocket): the service's fan-out against a bare broadcaster of the same transport,
 * same subscribers, same cadence, same run.
 */
async function pushScenario(ctx: BenchContext, transport: 'sse' | 'ws'): Promise<ScenarioResult> {
  const count = ctx.quick ? 1000 : 10_000;
  const scenario = transport === 'sse' ? 'stream' : 'ws';
  const bareName = transport === 'sse' ? 'bare node:http' : 'bare ws';
  const serviceName = transport === 'sse' ? 'service SSE' : 'service WebSocket';
  ctx.log(`${scenario}: ${bareName} broadcaster, ${count} subscribers`);
  const base = await measureBare(ctx, transport, count);
  ctx.log(`${scenario}: service, ${count} subscribers`);
  const svc = await measureService(ctx, transport, count);

  const row = (variant: string, r: StreamRun, ratio?: number, note?: string): Row => ({
    scenario,
    variant,
    unit: 'deliveries/s',
    throughput: round(r.deliveries / ctx.loadS, 0),
    operations: r.deliveries,
    p50Ms: r.p50,
    p99Ms: r.p99,
    errors: r.missing + r.dropped + r.failed + r.coalesced,
    rssMb: r.rssAfterMb,
    ratio,
    note:
      note ??
      `${r.kbPerConnection} KB/conn, fan-out spread p99 ${r.spreadP99} ms, ${r.coalesced}/${r.changes} changes merged`,
  });
  const latencyRatio = round(svc.p99 / base.p99);
  return {
    rows: [
      row(
        `${bareName}, ${count} subs`,
        base,
        undefined,
        `baseline; ${base.kbPerConnection} KB/conn, fan-out spread p99 ${base.spreadP99} ms`,
      ),
      row(`${serviceName}, ${count} subs`, svc, latencyRatio),
    ],
    targets: [
      {
        scenario,
        target: `all ${count} subscribers get every change`,
        measured:
          `${svc.changes - svc.coalesced} of ${svc.changes} changes published on their own (${svc.coalesced} merged ` +
          `into the next snapshot); ${svc.missing} missed deliveries of published ones, ${svc.dropped} dropped, ` +
          `${svc.failed} failed connects`,
        met: svc.missing + svc.coalesced + svc.dropped + svc.failed === 0 && svc.changes > 0,
      },
      {
        scenario,
        target: `p99 delivery ≤ 1.25× the ${bareName} broadcaster`,
        measured: `${svc.p99} ms vs ${base.p99} ms (${latencyRatio}×); fan-out spread p99 ${svc.spreadP99} vs ${base.spreadP99} ms`,
        met: latencyRatio <= 1.25,
      },
      {
        scenario,
        target: '≤ 20 KB per connection',
        measured: `${svc.kbPerConnection} KB (bare: ${base.kbPerConnection} KB)`,
        met: svc.kbPerConnection <= 20,
      },
    ],
    details: { changeEveryMs: CHANGE_EVERY_MS, bare: base, service: svc },
  };
}

export const streamScenario = (ctx: BenchContext) => pushScenario(ctx, 'sse');
export const wsScenario = (ctx: BenchContext) => pushScenario(ctx, 'ws');

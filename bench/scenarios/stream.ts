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
): Promise<StreamRun> {
  await sleep(500);
  const rssBefore = treeRss(server.pid);
  const subs = spawnNode(path.join(ROOT, 'bench/lib/subscribers.ts'), {
    args: [streamUrl.port, streamUrl.pathname, String(count)],
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

/** stream: the service's SSE fan-out against a bare node:http broadcaster, same subscribers, same cadence. */
export async function streamScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const count = ctx.quick ? 1000 : 10_000;

  ctx.log(`stream: bare node:http broadcaster, ${count} subscribers`);
  const port = await freePort();
  const bare = spawnNode(path.join(ROOT, 'bench/baselines/bare-broadcaster.ts'), {
    env: { PORT: String(port) },
  });
  let base: StreamRun;
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      'the bare broadcaster',
      async () => (await fetch(`${url}/publish`, { method: 'POST', body: '0' })).ok,
      30_000,
      bare,
    );
    base = await measure(ctx, bare, new URL(`${url}/stream`), count, async (t) => {
      await fetch(`${url}/publish`, { method: 'POST', body: String(t) });
    });
  } finally {
    await bare.stop();
  }

  ctx.log(`stream: service, ${count} subscribers`);
  const service = await startService({
    databaseUrl: ctx.main.url,
    redisUrl: ctx.redisUrl,
    redisPrefix: `${ctx.prefix}stream:`,
    jwtSecret: ctx.jwtSecret,
    workers: ctx.workers,
    profileDir: ctx.profileDir,
  });
  let svc: StreamRun;
  try {
    const current = await fetch(`${service.url}/api/v1/scores/users/${ctx.main.tickerId}`);
    let ticker = ((await current.json()) as { score: number }).score;
    svc = await measure(ctx, service, new URL(`${service.url}/api/v1/scores/stream`), count, async (t) => {
      // The ticker leads the board with its score set to the send time: every subscriber can tell when.
      const res = await fetch(`${service.url}/api/v1/scores/update`, {
        method: 'POST',
        headers: { authorization: ctx.main.adminToken, 'content-type': 'application/json' },
        body: JSON.stringify({ userId: ctx.main.tickerId, scoreIncrement: t - ticker }),
      });
      if (res.status !== 201) throw new Error(`the change driver got ${res.status}: ${await res.text()}`);
      ticker = ((await res.json()) as { score: number }).score;
    });
  } finally {
    await service.stop();
  }

  const row = (variant: string, r: StreamRun, ratio?: number, note?: string): Row => ({
    scenario: 'stream',
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
        `bare node:http, ${count} subs`,
        base,
        undefined,
        `baseline; ${base.kbPerConnection} KB/conn, fan-out spread p99 ${base.spreadP99} ms`,
      ),
      row(`service SSE, ${count} subs`, svc, latencyRatio),
    ],
    targets: [
      {
        scenario: 'stream',
        target: `all ${count} subscribers get every change`,
        measured:
          `${svc.changes - svc.coalesced} of ${svc.changes} changes published on their own (${svc.coalesced} merged ` +
          `into the next snapshot); ${svc.missing} missed deliveries of published ones, ${svc.dropped} dropped, ` +
          `${svc.failed} failed connects`,
        met: svc.missing + svc.coalesced + svc.dropped + svc.failed === 0 && svc.changes > 0,
      },
      {
        scenario: 'stream',
        target: 'p99 delivery ≤ 1.25× the bare broadcaster',
        measured: `${svc.p99} ms vs ${base.p99} ms (${latencyRatio}×); fan-out spread p99 ${svc.spreadP99} vs ${base.spreadP99} ms`,
        met: latencyRatio <= 1.25,
      },
      {
        scenario: 'stream',
        target: '≤ 20 KB per connection',
        measured: `${svc.kbPerConnection} KB (bare: ${base.kbPerConnection} KB)`,
        met: svc.kbPerConnection <= 20,
      },
    ],
    details: { changeEveryMs: CHANGE_EVERY_MS, bare: base, service: svc },
  };
}

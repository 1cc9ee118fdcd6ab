import fs from 'node:fs';
import { round, type BenchContext, type Row, type ScenarioResult } from '../lib/context';
import { startService } from '../lib/service';
import { ensureWrk } from '../lib/wrk';
import { startNginx } from '../../test/helpers/nginx';
import { poll } from './polls';

/** Client connections polling through the cache: a busy page's worth, and ten times that. */
const CLIENTS = [100, 1000];
const TOP = '/api/v1/scores/top';

/** How many polls of /top the service itself answered so far (its own duration histogram's count). */
async function originPolls(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^http_request_duration_seconds_count\{([^}]*)\} (\d+)/gm))
    if (m[1].includes(`route="${TOP}"`)) n += Number(m[2]);
  return n;
}

/**
 * microcache: polls through deploy/nginx.conf's micro-cache (Debian's nginx, started like the nginx test
 * starts it, with its per-address poll limit lifted: every client here is one address) in front of one
 * service, at 100 and 1,000 connections polling with If-None-Match as fast as they can. What matters is what
 * reaches the origin: about one refresh per s-maxage, whatever the number of clients.
 */
export async function microcacheScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const nginxPath = process.env.NGINX_PATH ?? '/usr/sbin/nginx';
  if (!fs.existsSync(nginxPath)) {
    ctx.log(`microcache: skipped, no nginx at ${nginxPath} (apt-get install -y nginx, or set NGINX_PATH)`);
    const skipped = { scenario: 'microcache', target: 'origin req/s independent of the clients' };
    return { rows: [], targets: [{ ...skipped, measured: 'skipped: nginx is not installed', met: false }] };
  }
  const service = await startService({
    databaseUrl: ctx.main.url,
    redisUrl: ctx.redisUrl,
    redisPrefix: `${ctx.prefix}microcache:`,
    jwtSecret: ctx.jwtSecret,
    workers: ctx.workers,
    profileDir: ctx.profileDir,
  });
  const nginx = await startNginx([service.url.slice('http://'.length)], { pollRate: '1000000r/s' });
  try {
    const generator = ensureWrk(ctx.log) ? 'wrk' : 'autocannon';
    const rows: Row[] = [];
    const perSecond: number[] = [];
    for (const connections of CLIENTS) {
      ctx.log(`microcache: ${connections} connections through nginx (${generator})`);
      const before = await originPolls(service.url);
      const started = Date.now();
      const m = await poll(ctx, nginx.url, true, TOP, { connections, generator });
      // The origin count covers the warm-up too: divide by all the time it ran.
      const origin = ((await originPolls(service.url)) - before) / ((Date.now() - started) / 1000);
      perSecond.push(origin);
      rows.push({
        scenario: 'microcache',
        variant: `through nginx, ${connections} conns (${generator}, 304)`,
        unit: 'req/s',
        ...m,
        note: `origin ${round(origin, 1)} req/s`,
      });
    }
    const growth = perSecond[1] / Math.max(perSecond[0], 0.1);
    return {
      rows,
      targets: [
        {
          scenario: 'microcache',
          target: 'origin req/s independent of the clients (1,000 vs 100 conns within 1.5×, ≤ 5/s)',
          measured: `${round(perSecond[0], 1)} → ${round(perSecond[1], 1)} req/s (${round(growth)}×)`,
          met: growth <= 1.5 && Math.max(...perSecond) <= 5,
        },
      ],
      details: { clients: CLIENTS, originPerSecond: perSecond, generator },
    };
  } finally {
    await nginx.close();
    await service.stop();
  }
}

import { expect } from 'chai';
import WebSocket from 'ws';
import { addToTop } from './helpers/api';
import { uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { startNginx } from './helpers/nginx';
import { openRawStream } from './helpers/sse';

/** deploy/nginx.conf as shipped, in front of two instances: upgrades, streams and the closed /metrics. */
describe("through Debian's nginx (deploy/nginx.conf)", function () {
  this.timeout(60_000);
  let a: Instance;
  let b: Instance;
  let nginx: Awaited<ReturnType<typeof startNginx>>;
  before(async () => {
    const env = { TRUST_PROXY: '1', SNAPSHOT_TICK_MS: '50' };
    [a, b] = await Promise.all([startInstance(env), startInstance(env)]);
    nginx = await startNginx([a.url.slice(7), b.url.slice(7)]);
  });
  after(async () => {
    await nginx?.close();
    await Promise.all([a?.close(), b?.close()]);
  });

  it('passes WebSocket upgrades on /ws/scores and /api/v1/ws, and messages keep flowing', async () => {
    for (const path of ['/ws/scores', '/api/v1/ws']) {
      const ws = new WebSocket(nginx.url.replace('http', 'ws') + path);
      const messages: string[] = [];
      ws.on('message', (d) => messages.push(d.toString()));
      ws.on('error', () => {});
      await eventually(() => messages.length === 1, 5000);
      const user = uniqueUser('nginx-ws');
      await addToTop(a, user);
      await eventually(() => messages.some((m) => m.includes(user)), 5000);
      const top = JSON.parse(messages.at(-1)!) as { type: string; version: string };
      expect(top.type).to.equal('scoreboard');
      ws.close();
    }
  });

  it('streams Server-Sent Events unbuffered: each change arrives on its own', async () => {
    const stream = openRawStream(`${nginx.url}/api/v1/scores/stream`);
    await stream.ready;
    await eventually(() => stream.events().length === 1, 5000);
    const user = uniqueUser('nginx-sse');
    await addToTop(b, user);
    await eventually(() => stream.events().some((e) => e.data.includes(user)), 5000);
    stream.close();
  });

  it('micro-caches polls: 1,000 clients for 10 s cost the instances a handful of requests a second, and see a write within s-maxage plus a tick', async function () {
    this.timeout(60_000);
    const cached = await startNginx([a.url.slice(7), b.url.slice(7)], { pollRate: '100000r/s' });
    const originPolls = async () => {
      let n = 0;
      for (const i of [a, b]) {
        const text = await i.services.metrics.registry.metrics();
        for (const m of text.matchAll(/^http_request_duration_seconds_count\{([^}]*)\} (\d+)/gm))
          if (m[1].includes('route="/api/v1/scores/top"')) n += Number(m[2]);
      }
      return n;
    };
    try {
      const runner = uniqueUser('nginx-cache');
      let wroteAt = 0;
      const seenAt: number[] = [];
      const statuses = new Map<number, number>();
      let refusal = '';
      const before = await originPolls();
      const started = Date.now();
      const deadline = started + 10_000;
      const client = async (i: number) => {
        let etag: string | undefined;
        let seen = false;
        await new Promise((r) => setTimeout(r, Math.random() * 1000));
        while (Date.now() < deadline) {
          const res = await fetch(`${cached.url}/api/v1/scores/top`, {
            headers: etag ? { 'If-None-Match': etag } : {},
          });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const text = await res.text();
          if (res.status !== 200 && res.status !== 304 && !refusal)
            refusal = `${res.status} ${text.slice(0, 300)}`;
          if (res.status === 200) etag = res.headers.get('etag') ?? undefined;
          if (!seen && wroteAt && res.status === 200 && text.includes(runner)) {
            seen = true;
            seenAt[i] = Date.now() - wroteAt;
          }
          await new Promise((r) => setTimeout(r, 800 + Math.random() * 400));
        }
      };
      const clients = Array.from({ length: 1000 }, (_, i) => client(i));
      await new Promise((r) => setTimeout(r, 4000));
      await addToTop(a, runner);
      wroteAt = Date.now();
      await Promise.all(clients);
      const seconds = (Date.now() - started) / 1000;
      const origin = (await originPolls()) - before;
      const served = [...statuses.values()].reduce((x, y) => x + y, 0);
      expect([...statuses.keys()].sort(), refusal).to.deep.equal([200, 304]);
      expect(served / seconds, 'client polls per second').to.be.above(500);
      // Two instances behind one cache key: about one refresh per s-maxage each, whatever the clients.
      expect(origin / seconds, `origin polls per second (${origin} in ${seconds} s)`).to.be.below(6);
      const late = seenAt.filter((x) => x !== undefined);
      expect(late.length, 'clients that saw the write').to.equal(1000);
      // What the cache allows: s-maxage (1 s), and as long again stale while it revalidates, plus one tick;
      // then the client's own poll interval (up to 1.2 s), and 1.5 s for a thousand clients on two loaded cores.
      expect(Math.max(...late), 'slowest client to see the write (ms)').to.be.below(
        1000 + 1000 + 100 + 1200 + 1500,
      );
    } finally {
      await cached.close();
    }
  });

  it('passes board window streams unbuffered and never caches them', async () => {
    const stream = openRawStream(`${nginx.url}/api/v1/boards/global/stream?window=day`);
    await stream.ready;
    expect(stream.response?.headers['x-cache-status']).to.equal(undefined);
    await eventually(() => stream.events().length === 1, 5000);
    const user = uniqueUser('nginx-day');
    await addToTop(b, user);
    await eventually(() => stream.events().some((e) => e.data.includes(user)), 5000);
    stream.close();
  });

  it('does not expose /metrics', async () => {
    expect((await fetch(`${nginx.url}/metrics`)).status).to.equal(404);
    expect((await fetch(`${nginx.url}/api/v1/scores/top`)).status).to.equal(200);
  });
});

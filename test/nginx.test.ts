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

  it('does not expose /metrics', async () => {
    expect((await fetch(`${nginx.url}/metrics`)).status).to.equal(404);
    expect((await fetch(`${nginx.url}/api/v1/scores/top`)).status).to.equal(200);
  });
});

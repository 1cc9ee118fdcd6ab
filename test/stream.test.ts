import net from 'node:net';
import { expect } from 'chai';
import { isolatedStore } from './helpers/database';
import { addPoints, addToTop } from './helpers/api';
import { uniqueUser } from './helpers/env';
import { spawnServer } from './helpers/process';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { openRawStream } from './helpers/sse';
import { floodSnapshots } from './helpers/snapshots';

const add = addPoints;

// eventsource is an ES module: loaded once, before the tests.
let EventSource: typeof import('eventsource', { with: { 'resolution-mode': 'import' } }).EventSource;

function listen(url: string, headers: Record<string, string> = {}) {
  const received: Array<{ id: string; data: string }> = [];
  const es = new EventSource(url, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, ...headers } }),
  });
  es.addEventListener('scoreboard', (e) => received.push({ id: e.lastEventId, data: e.data }));
  return { es, received };
}

describe('SSE stream', function () {
  this.timeout(60_000);
  // Tables and keys of its own: the burst and fan-out checks need their users in the top N of an empty board.
  const store = isolatedStore('stream');
  const start: typeof startInstance = (env = {}, hooks) => startInstance({ ...store.env, ...env }, hooks);
  const spawn = (env: Record<string, string> = {}) => spawnServer({ ...store.env, ...env });
  let a: Instance;
  let b: Instance;
  const env = { SNAPSHOT_TICK_MS: '100' };

  before(async () => {
    ({ EventSource } = await import('eventsource'));
    a = await start(env);
    b = await start(env);
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  it('sends the right headers, a jittered retry hint, then the current snapshot exactly as /top', async () => {
    await add(a, uniqueUser('sse'), 7);
    await new Promise((r) => setTimeout(r, 250));
    const top = await a.request.get('/api/v1/scores/top');
    const raw = openRawStream(`${a.url}/api/v1/scores/stream`, { 'Accept-Encoding': 'gzip, br' });
    const res = await raw.ready;
    expect(res.headers['content-type']).to.match(/^text\/event-stream/);
    expect(res.headers['cache-control']).to.equal('no-cache, no-transform');
    expect(res.headers['x-accel-buffering']).to.equal('no');
    expect(res.headers['content-encoding']).to.equal(undefined);
    await eventually(() => raw.events().length === 1);
    const [first] = raw.blocks();
    expect(first.retry).to.be.within(3000, 6000);
    const [event] = raw.events();
    expect(event.id).to.equal(top.headers.etag);
    expect(event.data).to.equal(top.text);
    raw.close();

    const { es, received } = listen(`${b.url}/api/scores/stream`);
    await eventually(() => received.length === 1);
    expect(received[0]).to.deep.equal({ id: top.headers.etag, data: top.text });
    es.close();
  });

  it('skips the initial event when Last-Event-ID is current, sends it when older', async () => {
    const top = await a.request.get('/api/v1/scores/top');
    const current = openRawStream(`${a.url}/api/v1/scores/stream`, { 'Last-Event-ID': top.headers.etag });
    const older = openRawStream(`${a.url}/api/v1/scores/stream`, { 'Last-Event-ID': '"stale"' });
    await Promise.all([current.ready, older.ready]);
    await eventually(() => older.events().length === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(current.events()).to.have.length(0);
    expect(current.blocks()[0].retry).to.be.a('number');
    current.close();
    older.close();
  });

  it('a write through instance A reaches a subscriber on instance B; poll and stream agree', async () => {
    const { es, received } = listen(`${b.url}/api/v1/scores/stream`);
    await eventually(() => received.length === 1);
    const user = uniqueUser('cross-sse');
    await addToTop(a, user);
    await eventually(() => received.some((e) => e.data.includes(user)), 2000, 10);
    const last = received[received.length - 1];
    const top = await b.request.get('/api/v1/scores/top');
    expect(last).to.deep.equal({ id: top.headers.etag, data: top.text });
    es.close();
  });

  it('coalesces a burst of 50 writes into far fewer events; the last matches the final /top', async () => {
    const { es, received } = listen(`${a.url}/api/v1/scores/stream`);
    await eventually(() => received.length === 1);
    const users = Array.from({ length: 5 }, () => uniqueUser('burst'));
    await Promise.all(Array.from({ length: 50 }, (_, i) => add(i % 2 ? a : b, users[i % 5], 900 + i)));
    await new Promise((r) => setTimeout(r, 500));
    const top = await a.request.get('/api/v1/scores/top');
    expect(received.length - 1).to.be.within(1, 20);
    expect(received[received.length - 1]).to.deep.equal({ id: top.headers.etag, data: top.text });
    es.close();
  });

  it('keeps SSE framing intact when a display name holds newlines and "data:"', async () => {
    const user = uniqueUser('evil');
    await addToTop(a, user);
    // Written straight into MySQL: the API refuses such names now (test/attacks.test.ts), but rows written
    // before that rule, or by hand, must still not break the stream's framing.
    await store
      .db('users')
      .where({ id: user })
      .update({ display_name: 'evil\n\ndata: {"hacked":true}\r\nid: pwned\revent: x' });
    const { es, received } = listen(`${a.url}/api/v1/scores/stream`);
    await eventually(() => received.length === 1);
    await addToTop(a, user); // a change, so the new name is read
    await eventually(() => received.some((e) => e.data.includes('hacked')), 2000, 10);
    for (const e of received) {
      expect(() => JSON.parse(e.data)).to.not.throw();
      expect(e.id).to.match(/^"[A-Za-z0-9_-]+"$/);
    }
    const entry = JSON.parse(received[received.length - 1].data).find(
      (x: { userId: string }) => x.userId === user,
    );
    expect(entry.displayName).to.equal('evil\n\ndata: {"hacked":true}\r\nid: pwned\revent: x');
    es.close();
  });

  it('sends heartbeats and releases closed connections at once', async () => {
    const c = await start({ SSE_HEARTBEAT_MS: '100' });
    try {
      const raw = openRawStream(`${c.url}/api/v1/scores/stream`);
      await raw.ready;
      await eventually(() => raw.blocks().filter((x) => x.comment).length >= 2, 2000);
      expect(c.services.hub.size()).to.equal(1);
      raw.close();
      await eventually(() => c.services.hub.size() === 0, 1000, 5);
    } finally {
      await c.close();
    }
  });

  it('answers 503 with Retry-After past SSE_MAX_CLIENTS', async () => {
    const c = await start({ SSE_MAX_CLIENTS: '2' });
    try {
      const s1 = openRawStream(`${c.url}/api/v1/scores/stream`);
      const s2 = openRawStream(`${c.url}/api/v1/scores/stream`);
      await Promise.all([s1.ready, s2.ready]);
      const refused = await c.request.get('/api/v1/scores/stream');
      expect(refused.status).to.equal(503);
      expect(refused.headers['retry-after']).to.match(/^\d+$/);
      expect(refused.headers['content-type']).to.match(/problem\+json/);
      s1.close();
      await eventually(() => c.services.hub.size() === 1);
      const s3 = openRawStream(`${c.url}/api/v1/scores/stream`);
      expect((await s3.ready).statusCode).to.equal(200);
      s2.close();
      s3.close();
    } finally {
      await c.close();
    }
  });

  it('cuts off a client that stops reading without stalling the others', async () => {
    const c = await start({ SSE_MAX_BUFFER_BYTES: '65536' });
    try {
      // A client that never reads: its socket buffers fill up and the hub must give up on it.
      const url = new URL(`${c.url}/api/v1/scores/stream`);
      const stuck = net.connect(Number(url.port), url.hostname);
      stuck.write(`GET ${url.pathname} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
      stuck.pause();
      let stuckClosed = false;
      stuck.on('close', () => (stuckClosed = true));
      stuck.on('error', () => {});
      const { es, received } = listen(`${c.url}/api/v1/scores/stream`);
      await eventually(() => received.length === 1 && c.services.hub.size() === 2);

      // Large snapshots, offered directly to the engine, fill the stuck client's buffers quickly.
      const last = await floodSnapshots(
        c.services.boards.global().snapshot,
        () => c.services.hub.stats().cutOff > 0,
      );
      await eventually(() => c.services.hub.stats().cutOff > 0, 5000);
      stuck.resume(); // read what was buffered: the server must have closed the connection
      await eventually(() => stuckClosed, 5000);
      await eventually(() => received[received.length - 1]?.id === last, 5000);
      expect(c.services.hub.size()).to.equal(1);
      es.close();
    } finally {
      await c.close();
    }
  });

  it('delivers one update to 2,000 concurrent subscribers', async function () {
    this.timeout(60_000);
    const streams = Array.from({ length: 2000 }, () => openRawStream(`${a.url}/api/v1/scores/stream`));
    await Promise.all(streams.map((s) => s.ready));
    await eventually(() => streams.every((s) => s.events().length >= 1), 10_000);
    const before = (await a.request.get('/api/v1/scores/top')).headers.etag;
    const user = uniqueUser('fanout');
    await addToTop(b, user);
    await eventually(async () => (await a.request.get('/api/v1/scores/top')).headers.etag !== before, 2000);
    await new Promise((r) => setTimeout(r, 300)); // let the last tick land
    const top = await a.request.get('/api/v1/scores/top');
    expect(top.text).to.include(user);
    const lastId = (s: (typeof streams)[number]) => s.events()[s.events().length - 1]?.id;
    await eventually(() => streams.every((s) => lastId(s) === top.headers.etag), 15_000, 50);
    expect(new Set(streams.map(lastId)).size).to.equal(1);
    streams.forEach((s) => s.close());
    await eventually(() => a.services.hub.size() === 0, 5000);
  });

  it('on SIGTERM ends every stream with a retry hint and the process exits 0', async function () {
    this.timeout(30_000);
    const server = await spawn();
    const streams = Array.from({ length: 20 }, () => openRawStream(`${server.url}/api/v1/scores/stream`));
    await Promise.all(streams.map((s) => s.ready));
    await eventually(() => streams.every((s) => s.events().length === 1));
    server.child.kill('SIGTERM');
    expect(await server.exited, server.stderr).to.equal(0);
    for (const s of streams) {
      await eventually(() => s.ended);
      const blocks = s.blocks();
      expect(blocks[blocks.length - 1].retry, 'final retry hint').to.be.a('number');
    }
  });
});

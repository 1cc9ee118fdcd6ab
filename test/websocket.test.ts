import net from 'node:net';
import { expect } from 'chai';
import WebSocket from 'ws';
import { addToTop, adminToken } from './helpers/api';
import { isolatedStore } from './helpers/database';
import { uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { spawnServer } from './helpers/process';
import { openRawStream } from './helpers/sse';
import { floodSnapshots } from './helpers/snapshots';

/** A WebSocket client that keeps every text message and how it closed. */
function connect(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(url, { headers });
  const messages: string[] = [];
  let closed: { code: number; reason: string } | undefined;
  let refused: number | undefined;
  ws.on('message', (data, binary) => !binary && messages.push(data.toString()));
  ws.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
  ws.on('unexpected-response', (_req, res) => {
    refused = res.statusCode;
    ws.terminate();
  });
  ws.on('error', () => {});
  const open = new Promise<void>((resolve) => {
    ws.on('open', () => resolve());
    ws.on('close', () => resolve());
  });
  return {
    ws,
    messages,
    open,
    parsed: () => messages.map((m) => JSON.parse(m) as Record<string, unknown>),
    scoreboards: () => messages.filter((m) => m.startsWith('{"type":"scoreboard"')),
    get closed() {
      return closed;
    },
    get refused() {
      return refused;
    },
  };
}

/** The scoreboard message the protocol promises for a /top answer, built here from its bytes. */
const expectedMessage = (etag: string, body: string) =>
  `{"type":"scoreboard","board":"global","window":"all","cycle":"all","version":${JSON.stringify(etag)},"top":${body}}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WebSocket (/ws/scores, /api/v1/ws)', function () {
  this.timeout(60_000);
  const store = isolatedStore('websocket');
  const start: typeof startInstance = (env = {}, hooks) => startInstance({ ...store.env, ...env }, hooks);
  let a: Instance;
  let b: Instance;
  const wsUrl = (i: Instance, path = '/ws/scores') => i.url.replace('http', 'ws') + path;

  before(async () => {
    const env = { SNAPSHOT_TICK_MS: '50', MIRROR_SYNC_INTERVAL_MS: '200' };
    [a, b] = await Promise.all([start(env), start(env)]);
    await addToTop(a, uniqueUser('ws-seed'));
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  it('first message is the /top body and ETag, on both spellings of the endpoint', async () => {
    await eventually(async () => (await a.request.get('/api/v1/scores/top')).text !== '[]');
    await sleep(300); // the seed's two writes have settled: no change arrives while we connect
    const top = await a.request.get('/api/v1/scores/top');
    for (const path of ['/ws/scores', '/api/v1/ws']) {
      const c = connect(wsUrl(a, path));
      await eventually(() => c.messages.length === 1);
      expect(c.messages[0]).to.equal(expectedMessage(top.headers.etag, top.text));
      c.ws.close();
    }
  });

  it('a write on instance A reaches a socket on instance B, byte for byte what B polls', async () => {
    const c = connect(wsUrl(b));
    await eventually(() => c.messages.length === 1);
    const user = uniqueUser('ws-cross');
    await addToTop(a, user);
    await eventually(() => c.scoreboards().some((m) => m.includes(user)), 3000, 10);
    await sleep(200);
    const top = await b.request.get('/api/v1/scores/top');
    expect(c.scoreboards().at(-1)).to.equal(expectedMessage(top.headers.etag, top.text));
    c.ws.close();
  });

  it('since= the current version skips the first message; a stale one gets it', async () => {
    const top = await a.request.get('/api/v1/scores/top');
    const current = connect(`${wsUrl(a)}?since=${encodeURIComponent(top.headers.etag)}`);
    const stale = connect(`${wsUrl(a)}?board=global&window=all&since=%22old%22`);
    await Promise.all([current.open, stale.open]);
    await eventually(() => stale.messages.length === 1);
    await sleep(300);
    expect(current.messages).to.deep.equal([]);
    current.ws.close();
    stale.ws.close();
  });

  it('subscribe and unsubscribe on one socket, with errors for what does not exist', async () => {
    const c = connect(wsUrl(a));
    await eventually(() => c.messages.length === 1);
    c.ws.send(JSON.stringify({ type: 'unsubscribe', board: 'global', window: 'all' }));
    await eventually(() => c.parsed().some((m) => m.type === 'unsubscribed'));
    const user = uniqueUser('ws-unsub');
    await addToTop(a, user);
    await sleep(300);
    expect(
      c.scoreboards().some((m) => m.includes(user)),
      'nothing after unsubscribing',
    ).to.equal(false);
    c.ws.send(JSON.stringify({ type: 'subscribe', board: 'global', window: 'all' }));
    await eventually(() => c.parsed().some((m) => m.type === 'subscribed'));
    await eventually(() => c.scoreboards().some((m) => m.includes(user)));
    c.ws.send(JSON.stringify({ type: 'subscribe', board: 'nope', window: 'all' }));
    c.ws.send(JSON.stringify({ type: 'subscribe', board: 'global', window: 'year' }));
    await eventually(() => c.parsed().filter((m) => m.code === 'unknown_board_window').length === 2);
    expect(c.closed).to.equal(undefined);
    c.ws.close();
  });

  it('follows several board windows on one socket, each message named by board, window and cycle', async () => {
    const board = `wsb-${Date.now().toString(36)}`;
    const created = await a.request
      .post('/api/v1/boards')
      .set('Authorization', `Bearer ${adminToken()}`)
      .send({ id: board, title: 'WS', windows: ['all', 'day'] });
    expect(created.status, created.text).to.equal(201);
    const dayCycle = created.body.windows[1].cycle as string;
    // Connect to the new board on the other instance: it learns of the board at the upgrade.
    const c = connect(`${wsUrl(b)}?board=${board}&window=day`);
    await eventually(() => c.scoreboards().length === 1);
    expect(c.parsed()[0]).to.include({ board, window: 'day', cycle: dayCycle });
    c.ws.send(JSON.stringify({ type: 'subscribe', board: 'global', window: 'day' }));
    c.ws.send(JSON.stringify({ type: 'subscribe', board, window: 'all' }));
    await eventually(() => c.parsed().filter((m) => m.type === 'subscribed').length === 2);
    const player = uniqueUser('wsb');
    await addToTop(a, player); // provisions the player and lifts them onto global's day top too
    const post = await a.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${adminToken()}`)
      .send({ userId: player, scoreIncrement: 5, boardId: board });
    expect(post.status, post.text).to.equal(201);
    const latest = (w: string, bd = board) =>
      c
        .parsed()
        .filter((m) => m.type === 'scoreboard' && m.board === bd && m.window === w)
        .at(-1);
    await eventually(() => JSON.stringify(latest('day')?.top ?? []).includes(player), 3000);
    await eventually(() => JSON.stringify(latest('all')?.top ?? []).includes(player), 3000);
    await eventually(() => JSON.stringify(latest('day', 'global')?.top ?? []).includes(player), 3000);
    // Each message is byte for byte what the other instance polls for that board window.
    await sleep(300);
    for (const [bd, w] of [
      [board, 'day'],
      [board, 'all'],
      ['global', 'day'],
    ]) {
      const top = await b.request.get(`/api/v1/boards/${bd}/top?window=${w}`);
      const last = c
        .scoreboards()
        .filter((m) => m.includes(`"board":"${bd}","window":"${w}"`))
        .at(-1);
      const cycle = w === 'all' ? 'all' : (JSON.parse(last!) as { cycle: string }).cycle;
      expect(last).to.equal(
        `{"type":"scoreboard","board":"${bd}","window":"${w}","cycle":"${cycle}","version":${JSON.stringify(top.headers.etag)},"top":${top.text}}`,
      );
    }
    c.ws.send(JSON.stringify({ type: 'unsubscribe', board, window: 'day' }));
    await eventually(() => c.parsed().some((m) => m.type === 'unsubscribed' && m.board === board));
    c.ws.close();
  });

  it('answers bad messages with an error or the right close code, and never fails', async () => {
    const cases: Array<[string, (ws: WebSocket) => void, number | string]> = [
      ['invalid JSON', (ws) => ws.send('{nope'), 'invalid_json'],
      ['not an object', (ws) => ws.send('[1,2]'), 'invalid_message'],
      ['unknown type', (ws) => ws.send('{"type":"hack"}'), 'unknown_type'],
      ['bad board name', (ws) => ws.send('{"type":"subscribe","board":"../x"}'), 'invalid_message'],
      ['binary frame', (ws) => ws.send(Buffer.from([1, 2, 3])), 1003],
      ['oversized', (ws) => ws.send('x'.repeat(5000)), 1009],
      ['invalid UTF-8', (ws) => ws.send(Buffer.from([0x7b, 0xff, 0xfe]), { binary: false }), 1007],
      ['a flood', (ws) => Array.from({ length: 60 }, () => ws.send('{"type":"hack"}')), 1008],
    ];
    for (const [what, act, expected] of cases) {
      const c = connect(wsUrl(a));
      await eventually(() => c.messages.length === 1);
      act(c.ws);
      if (typeof expected === 'number')
        await eventually(() => c.closed?.code === expected, 3000).catch(() => {
          throw new Error(`${what}: closed ${JSON.stringify(c.closed)}, wanted ${expected}`);
        });
      else {
        await eventually(() => c.parsed().some((m) => m.code === expected), 3000);
        expect(c.closed, what).to.equal(undefined);
        c.ws.close();
      }
    }
    expect((await a.request.get('/healthz')).status).to.equal(200);
  });

  it('keeps the JSON intact whatever a display name holds', async () => {
    const user = uniqueUser('ws-name');
    await addToTop(a, user);
    // Straight into MySQL: the API refuses control characters, but old rows may hold them.
    const hostile = 'q"uote\\ back\nline\u2028ls"},{"userId":"x"';
    await store.db('users').where({ id: user }).update({ display_name: hostile });
    const c = connect(wsUrl(a));
    await eventually(() => c.messages.length >= 1);
    await addToTop(a, user); // a change, so the new name is read
    await eventually(() => c.scoreboards().some((m) => m.includes(user) && m.includes('uote')), 3000);
    const last = JSON.parse(c.scoreboards().at(-1)!) as {
      top: Array<{ userId: string; displayName: string }>;
    };
    expect(last.top.find((e) => e.userId === user)?.displayName).to.equal(hostile);
    c.ws.close();
  });

  it('GET without an upgrade is 426; other paths and bad queries are refused before the upgrade', async () => {
    const plain = await a.request.get('/ws/scores');
    expect(plain.status).to.equal(426);
    expect(plain.headers.upgrade).to.equal('websocket');
    for (const [path, status] of [
      ['/ws/other', 404],
      ['/WS/scores', 404],
      ['/ws/scores?board=Bad!', 400],
      ['/ws/scores?board=nope', 404],
      ['/ws/scores?window=year', 404],
    ] as const) {
      const c = connect(wsUrl(a, path));
      await c.open;
      await eventually(() => c.refused !== undefined);
      expect(c.refused, path).to.equal(status);
    }
  });

  it('checks Origin against CORS_ORIGINS and our own host (cross-site WebSocket hijacking)', async () => {
    const c = await start({ CORS_ORIGINS: 'https://good.example' });
    try {
      const host = new URL(c.url).host;
      for (const [origin, ok] of [
        ['https://good.example', true],
        [`http://${host}`, true],
        ['https://evil.example', false],
        ['null', false],
      ] as const) {
        const s = connect(wsUrl(c), { Origin: origin });
        await s.open;
        if (ok) {
          await eventually(() => s.messages.length === 1);
          s.ws.close();
        } else {
          await eventually(() => s.refused !== undefined);
          expect(s.refused, origin).to.equal(403);
        }
      }
      const none = connect(wsUrl(c)); // not a browser: no Origin
      await eventually(() => none.messages.length === 1);
      none.ws.close();
    } finally {
      await c.close();
    }
  });

  it('shares the per-address and per-instance stream limits with SSE (429 and 503 before the upgrade)', async () => {
    const c = await start({ RATE_LIMIT_STREAMS_PER_IP: '2', SSE_MAX_CLIENTS: '3', TRUST_PROXY: '1' });
    try {
      const from = (ip: string) => ({ 'X-Forwarded-For': ip });
      const sse = openRawStream(`${c.url}/api/v1/scores/stream`, from('203.0.113.7'));
      await sse.ready;
      const first = connect(wsUrl(c), from('203.0.113.7'));
      await eventually(() => first.messages.length === 1);
      const third = connect(wsUrl(c), from('203.0.113.7'));
      await eventually(() => third.refused !== undefined);
      expect(third.refused, 'one SSE + one WebSocket fill the address').to.equal(429);
      const other = connect(wsUrl(c), from('198.51.100.9'));
      await eventually(() => other.messages.length === 1);
      const full = connect(wsUrl(c), from('192.0.2.1'));
      await eventually(() => full.refused !== undefined);
      expect(full.refused, 'the instance holds 3 streams of any kind').to.equal(503);
      first.ws.close();
      other.ws.close();
      sse.close();
      await eventually(() => c.services.ws.size() === 0 && c.services.hub.size() === 0);
    } finally {
      await c.close();
    }
  });

  it('closes a socket that stops reading (1013) while the others keep receiving', async () => {
    const c = await start({ SSE_MAX_BUFFER_BYTES: '65536' });
    try {
      const port = Number(new URL(c.url).port);
      const stuck = net.connect(port, '127.0.0.1');
      stuck.on('error', () => {});
      let stuckClosed = false;
      let tail = Buffer.alloc(0); // the last bytes read: the close frame ends the stream
      stuck.on('data', (d: Buffer) => (tail = Buffer.concat([tail, d]).subarray(-64)));
      stuck.on('close', () => (stuckClosed = true));
      stuck.write(
        'GET /ws/scores HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      stuck.pause();
      const live = connect(wsUrl(c));
      await eventually(() => live.messages.length === 1 && c.services.ws.size() === 2);
      const last = await floodSnapshots(
        c.services.boards.global().snapshot,
        () => c.services.ws.stats().cutOff > 0,
      );
      await eventually(() => c.services.ws.stats().cutOff > 0, 5000);
      stuck.resume();
      await eventually(() => stuckClosed, 5000);
      await eventually(
        () => (JSON.parse(live.scoreboards().at(-1)!) as { version: string }).version === last,
        5000,
      );
      expect(c.services.ws.size()).to.equal(1);
      live.ws.close();
    } finally {
      await c.close();
    }
  });

  it('2,000 sockets across two instances all end on the version /top serves', async function () {
    this.timeout(60_000);
    const sockets = Array.from({ length: 2000 }, (_, i) => connect(wsUrl(i % 2 ? a : b)));
    await eventually(() => sockets.every((s) => s.messages.length >= 1), 20_000, 50);
    const user = uniqueUser('ws-fanout');
    await addToTop(a, user);
    await eventually(async () => (await b.request.get('/api/v1/scores/top')).text.includes(user), 3000);
    await sleep(300);
    const top = await a.request.get('/api/v1/scores/top');
    expect((await b.request.get('/api/v1/scores/top')).headers.etag).to.equal(top.headers.etag);
    const want = expectedMessage(top.headers.etag, top.text);
    await eventually(() => sockets.every((s) => s.scoreboards().at(-1) === want), 15_000, 50);
    sockets.forEach((s) => s.ws.close());
    await eventually(() => a.services.ws.size() === 0 && b.services.ws.size() === 0, 20_000);
  });

  it('on SIGTERM every socket is closed with 1001 and a reason, and the process exits 0', async function () {
    this.timeout(30_000);
    const server = await spawnServer({ ...store.env });
    const sockets = Array.from({ length: 20 }, () =>
      connect(server.url.replace('http', 'ws') + '/ws/scores'),
    );
    await eventually(() => sockets.every((s) => s.messages.length === 1));
    server.child.kill('SIGTERM');
    expect(await server.exited, server.stderr).to.equal(0);
    for (const s of sockets) {
      await eventually(() => s.closed !== undefined);
      expect(s.closed).to.deep.equal({ code: 1001, reason: 'server shutting down' });
    }
  });

  it('counts connections and messages in /metrics', async () => {
    const before = (await a.request.get('/metrics')).text;
    const c = connect(wsUrl(a));
    await eventually(() => c.messages.length === 1);
    c.ws.send('{"type":"hack"}');
    await eventually(() => c.messages.length === 2);
    const after = (await a.request.get('/metrics')).text;
    const value = (text: string, name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    expect(value(after, 'ws_connections_total') - value(before, 'ws_connections_total')).to.equal(1);
    expect(value(after, 'ws_messages_received_total') - value(before, 'ws_messages_received_total')).to.equal(
      1,
    );
    expect(value(after, 'ws_subscribers')).to.be.at.least(1);
    c.ws.close();
  });
});

import { GLOBAL_SCORES } from './helpers/database';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, createHmac } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import type { Knex } from 'knex';
import { adminToken, addPoints, addToTop, TEST_ADMIN } from './helpers/api';
import { runUserCommand } from '../src/cli/user';
import { ConfigError, DEV_JWT_SECRET, loadConfig } from '../src/config';
import {
  ensureAdmin,
  expectProblem,
  insertUser,
  mysqlEvents,
  mysqlScore,
  mysqlUser,
} from './helpers/assertions';
import { isolatedStore, testDb, withScratchDatabase } from './helpers/database';
import { waitForMirror } from './helpers/mirror';
import { TEST_DATABASE_URL, TEST_SECRET, testConfig, tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { spawnServer } from './helpers/process';
import supertest from 'supertest';
import { startServer } from '../src/main';
import { openRawStream } from './helpers/sse';
import { startTcpProxy } from './helpers/tcp-proxy';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Counter } from 'prom-client';
import { createCheatDetector } from '../src/cheat/detector';
import { createDb } from '../src/platform/db';
import { createMetrics } from '../src/platform/metrics';
import { createRedis, markRedisFailure, redisReady } from '../src/platform/redis';
import { clientKey } from '../src/http/rate-limit/client-key';

/**
 * The attack suite: what test/auth.test.ts (alg none, HS/RS confusion, wrong algorithm, tampering, expiry,
 * nbf, issuer/audience, 8 KB tokens) and test/scores-update.test.ts (field validation, 413/415) do not cover
 * already. Every attack checks the answer and that nothing was written.
 */

const PATH = '/api/v1/scores/update';
const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
function hmacToken(header: object, payload: object, key: string | Buffer): string {
  const signed = `${b64(header)}.${b64(payload)}`;
  return `${signed}.${createHmac('sha256', key).update(signed).digest('base64url')}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One raw HTTP exchange on a socket: what an attacker types, byte for byte, and everything that comes back. */
function rawExchange(port: number, bytes: string | Buffer, waitMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve(text));
    socket.write(bytes);
    setTimeout(() => socket.destroy(), waitMs);
  });
}

describe('attack suite', function () {
  this.timeout(60_000);
  let app: Instance;
  let db: Knex;
  // A board of its own, so the users put on top (addToTop) are the ones streamed.
  const store = isolatedStore('attacks');
  const start = (env: Record<string, string | undefined> = {}) => startInstance({ ...store.env, ...env });
  before(async () => {
    db = store.db;
    app = await start({ AUTH_CACHE_TTL_MS: '0' });
  });
  after(async () => {
    await app.close();
  });

  const post = (token: string, body: unknown, target = app) =>
    target.request
      .post(PATH)
      .set('Authorization', `Bearer ${token}`)
      .send(body as object);

  describe('JWT', () => {
    it('refuses tokens whose kid points at a file, a path or SQL and are signed with what that would yield', async () => {
      // Were kid used to find the key, these would verify: /dev/null and empty files yield an empty key, an
      // injected SELECT yields a chosen one. The verifier has one key and never reads kid.
      const attacks: Array<[string, string | Buffer]> = [
        ['../../../../../../dev/null', ''],
        ['/dev/null', Buffer.alloc(0)],
        ['../../etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n'],
        ["x' UNION SELECT 'attacker-key' -- ", 'attacker-key'],
        ['file:///proc/self/environ', 'JWT_SECRET'],
        ['|cat /etc/passwd', ''],
      ];
      for (const [kid, key] of attacks) {
        const sub = uniqueUser('kid');
        const token = hmacToken({ alg: 'HS256', typ: 'JWT', kid }, { sub, exp: now() + 600 }, key);
        const res = await post(token, { scoreIncrement: 1 });
        expectProblem(res, 401);
        expect(await mysqlUser(db, sub), kid).to.equal(undefined);
      }
      // A genuine token carrying the same kids is judged on its signature alone: kid is ignored, not followed.
      const sub = uniqueUser('kid');
      const genuine = jwt.sign({ sub }, TEST_SECRET, {
        algorithm: 'HS256',
        expiresIn: 600,
        keyid: '../../etc/passwd',
      });
      expect((await post(genuine, { scoreIncrement: 1 })).status).to.equal(201);
    });

    it('ignores jku, x5u and embedded jwk: a token signed with the attacker key is refused and no key is fetched', async () => {
      const fetched: string[] = [];
      const keyServer = http.createServer((req, res) => {
        fetched.push(req.url ?? '');
        res.end('{}');
      });
      await new Promise<void>((r) => keyServer.listen(0, '127.0.0.1', r));
      const keyUrl = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}`;
      const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const jwk = attacker.publicKey.export({ format: 'jwk' });
      const rsaPublicPem = generateKeyPairSync('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      });
      // Against the HS256 default and against an RS256 instance (where RS256 itself is the right algorithm).
      const rs = await start({
        JWT_SECRET: undefined,
        JWT_PUBLIC_KEY: rsaPublicPem.publicKey,
        JWT_ALGORITHM: 'RS256',
      });
      try {
        for (const target of [app, rs]) {
          for (const header of [
            { jku: `${keyUrl}/jwks.json`, kid: 'k1' },
            { x5u: `${keyUrl}/cert.pem` },
            { jwk: { ...jwk, kid: 'embedded' } },
            { jku: `${keyUrl}/jwks.json`, x5u: `${keyUrl}/cert.pem`, jwk },
          ]) {
            const sub = uniqueUser('jku');
            const token = jwt.sign({ sub }, attacker.privateKey, {
              algorithm: 'RS256',
              expiresIn: 600,
              header: { alg: 'RS256', ...header } as jwt.JwtHeader,
            });
            expectProblem(await post(token, { scoreIncrement: 1 }, target), 401);
            expect(await mysqlUser(db, sub)).to.equal(undefined);
          }
        }
        // The genuine key still works on the RS256 instance, whatever URL the header names.
        const sub = uniqueUser('jku');
        const genuine = jwt.sign({ sub }, rsaPublicPem.privateKey, {
          algorithm: 'RS256',
          expiresIn: 600,
          header: { alg: 'RS256', jku: `${keyUrl}/jwks.json` } as jwt.JwtHeader,
        });
        expect((await post(genuine, { scoreIncrement: 1 }, rs)).status).to.equal(201);
        expect(fetched, 'no key URL was ever fetched').to.deep.equal([]);
      } finally {
        await rs.close();
        await new Promise((r) => keyServer.close(r));
      }
    });

    it('answers a huge token (12 KB, 1 MB) without a 5xx or a hang and stays up', async () => {
      const sub = uniqueUser('huge');
      const big = jwt.sign({ sub, pad: 'x'.repeat(9_000) }, TEST_SECRET, { expiresIn: 600 });
      const started = Date.now();
      expectProblem(await post(big, { scoreIncrement: 1 }), 401);
      // Past Node's 16 KB header limit the HTTP parser answers 431 before any of our code runs.
      const port = Number(new URL(app.url).port);
      const reply = await rawExchange(
        port,
        `POST ${PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'A'.repeat(1_000_000)}\r\nContent-Length: 2\r\n\r\n{}`,
      );
      expect(reply).to.match(/^HTTP\/1\.1 431 /);
      expect(Date.now() - started).to.be.below(5000);
      expect(await mysqlUser(db, sub)).to.equal(undefined);
      expect((await app.request.get('/healthz')).status).to.equal(200);
    });
  });

  describe('access', () => {
    it("a player can touch neither another user's score, history or account nor any admin route", async () => {
      const [player, victim] = [uniqueUser('player'), uniqueUser('victim')];
      await addPoints(app, victim, 10);
      await addPoints(app, player, 1);
      const as = `Bearer ${tokenFor(player)}`;
      const attempts = [
        app.request.post(PATH).set('Authorization', as).send({ userId: victim, scoreIncrement: 5 }),
        app.request
          .post('/api/scores/update')
          .set('Authorization', as)
          .send({ userId: victim, scoreIncrement: 5 }),
        app.request
          .post(PATH)
          .set('Authorization', as)
          .set('Idempotency-Key', 'k')
          .send({ userId: victim, scoreIncrement: 5 }),
        app.request.get(`/api/v1/scores/users/${victim}/events`).set('Authorization', as),
        app.request.patch(`/api/v1/users/${victim}`).set('Authorization', as).send({ status: 'banned' }),
        app.request.patch(`/api/v1/users/${player}`).set('Authorization', as).send({ role: 'admin' }),
        app.request.patch(`/api/v1/users/${TEST_ADMIN}`).set('Authorization', as).send({ role: 'player' }),
        app.request.get('/api/v1/admin/flags').set('Authorization', as),
        app.request.delete(`/api/v1/admin/flags/${player}`).set('Authorization', as),
        // A player's token that claims admin: the role comes from the database, never from the token.
        app.request
          .post(PATH)
          .set('Authorization', `Bearer ${tokenFor(player, { claims: { role: 'admin' } })}`)
          .send({ userId: victim, scoreIncrement: 5 }),
      ];
      for (const res of await Promise.all(attempts)) expectProblem(res, 403);
      expect(await mysqlScore(db, victim)).to.equal('10');
      expect((await mysqlEvents(db, victim)).map((e) => e.actor_id)).to.deep.equal([victim]);
      expect(await mysqlUser(db, player)).to.include({ role: 'player', status: 'active' });
      expect(await mysqlUser(db, victim)).to.include({ status: 'active' });
      expect(await mysqlUser(db, TEST_ADMIN)).to.include({ role: 'admin' });
    });
  });

  describe('input', () => {
    it('refuses mass assignment and prototype tricks, changing neither role, status nor score', async () => {
      const u = uniqueUser('mass');
      await addPoints(app, u, 3);
      const bodies = [
        { scoreIncrement: 1, score: 1e9, role: 'admin' },
        { scoreIncrement: 1, status: 'active', role: 'admin' },
        JSON.parse('{"scoreIncrement":1,"__proto__":{"role":"admin","userId":"someone-else"}}'),
        { scoreIncrement: 1, constructor: { prototype: { role: 'admin' } } },
        { scoreIncrement: 1, user: { id: 'x', role: 'admin' } },
      ];
      let credited = 0;
      for (const body of bodies) {
        const res = await post(tokenFor(u), body);
        // joi drops an own "__proto__" key instead of refusing it: harmless (no pollution, no other target),
        // so either answer is fine as long as the delta went to the caller alone.
        if (Object.keys(body).includes('__proto__') && res.status === 201) {
          expect(res.body).to.include({ userId: u, scoreIncrement: 1 });
          credited++;
        } else expectProblem(res, 400);
      }
      // Admin routes whitelist their fields too.
      for (const body of [
        { score: 1e9 },
        { id: 'renamed' },
        { role: 'admin', createdAt: '2000-01-01' },
        { displayName: 'x', version: 0 },
      ]) {
        expectProblem(
          await app.request
            .patch(`/api/v1/users/${u}`)
            .set('Authorization', `Bearer ${adminToken()}`)
            .send(body),
          400,
        );
      }
      expect(({} as { role?: string }).role, 'no prototype pollution').to.equal(undefined);
      expect(await mysqlScore(db, u)).to.equal(String(3 + credited));
      expect(await mysqlUser(db, u)).to.include({ id: u, role: 'player', status: 'active' });
    });

    it('refuses overflowing, negative, fractional and disguised increments from players and admins', async () => {
      const u = uniqueUser('num');
      await insertUser(db, u);
      const raw = (token: string, text: string) =>
        app.request
          .post(PATH)
          .set('Authorization', `Bearer ${token}`)
          .set('Content-Type', 'application/json')
          .send(text);
      for (const text of [
        '{"scoreIncrement":1e400}', // JSON.parse gives Infinity
        '{"scoreIncrement":-1e400}',
        '{"scoreIncrement":9007199254740993}', // not representable: must not round to something accepted
        '{"scoreIncrement":-0}',
        '{"scoreIncrement":0.5}',
        '{"scoreIncrement":-3}',
        '{"scoreIncrement":"0x10"}',
        '{"scoreIncrement":[5]}',
        '{"scoreIncrement":{"$gt":0}}',
      ]) {
        expectProblem(await raw(tokenFor(u), text), 400);
      }
      for (const text of [
        `{"userId":"${u}","scoreIncrement":1e400}`,
        `{"userId":"${u}","scoreIncrement":9007199254740993}`,
        `{"userId":"${u}","scoreIncrement":-9007199254740993}`,
        `{"userId":"${u}","scoreIncrement":-0}`,
        `{"userId":"${u}","scoreIncrement":-1.5}`,
      ]) {
        expectProblem(await raw(adminToken(), text), 400);
      }
      // Reaching past the safe range in two steps is refused at the second, as a whole.
      expect(
        (await raw(adminToken(), `{"userId":"${u}","scoreIncrement":${Number.MAX_SAFE_INTEGER}}`)).status,
      ).to.equal(201);
      expectProblem(await raw(adminToken(), `{"userId":"${u}","scoreIncrement":1}`), 422);
      expect(await mysqlScore(db, u)).to.equal(String(Number.MAX_SAFE_INTEGER));
      expect(await mysqlEvents(db, u)).to.have.length(1);
      // And all the way back (so this user does not top every later test's board).
      expect(
        (await raw(adminToken(), `{"userId":"${u}","scoreIncrement":-${Number.MAX_SAFE_INTEGER}}`)).status,
      ).to.equal(201);
      expect(await mysqlScore(db, u)).to.equal('0');
    });

    it('answers a 10 MB body with 413 without reading it, declared or chunked', async () => {
      const u = uniqueUser('big');
      const port = Number(new URL(app.url).port);
      const head = (framing: string) =>
        `POST ${PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokenFor(u)}\r\nContent-Type: application/json\r\n${framing}\r\n`;
      // Declared: the answer must come before a single byte of the body is sent. Chunked (no length to judge
      // by): after 128 KB of a body that never ends. Either way the server cannot have buffered 10 MB.
      const piece = ' '.repeat(64 * 1024);
      const chunk = `${piece.length.toString(16)}\r\n${piece}\r\n`;
      for (const [framing, body] of [
        [`Content-Length: ${10 * 1024 * 1024}\r\n`, ''],
        ['Transfer-Encoding: chunked\r\n', `${chunk}${chunk}`],
      ]) {
        const started = Date.now();
        const reply = await rawExchange(port, head(framing) + body, 3000);
        expect(reply, framing).to.match(/^HTTP\/1\.1 413 /);
        expect(reply.toLowerCase()).to.include('content-type: application/problem+json');
        expect(reply.toLowerCase()).to.include('connection: close');
        expect(Date.now() - started, 'answered and closed by the server, not by our 3 s timer').to.be.below(
          2000,
        );
      }
      expect(await mysqlEvents(db, u)).to.have.length(0);
    });

    it('ends slow bodies and slow headers (slowloris) at REQUEST_TIMEOUT_MS', async function () {
      this.timeout(30_000);
      const server = await spawnServer({ ...store.env, REQUEST_TIMEOUT_MS: '1000' });
      try {
        const u = uniqueUser('slow');
        const slowly = async (first: string, drip: string) => {
          const socket = net.connect(server.port, '127.0.0.1');
          let reply = '';
          let closedAt = 0;
          socket.on('data', (d) => (reply += d.toString()));
          socket.on('error', () => {});
          socket.on('close', () => (closedAt = Date.now()));
          const started = Date.now();
          socket.write(first);
          // One byte every 200 ms: never idle long enough for an idle timeout, never done.
          const timer = setInterval(() => socket.writable && socket.write(drip), 200);
          try {
            await eventually(() => closedAt > 0, 8000, 50);
          } finally {
            clearInterval(timer);
            socket.destroy();
          }
          return { reply, ms: closedAt - started };
        };
        const body = await slowly(
          `POST ${PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokenFor(u)}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"scoreIncrement":1,"pad":"`,
          'x',
        );
        expect(body.ms, 'slow body cut off').to.be.below(4000);
        expect(body.reply).to.not.match(/^HTTP\/1\.1 [25]/);
        const headers = await slowly(`GET /api/v1/scores/top HTTP/1.1\r\nHost: x\r\nX-Slow: `, 'x');
        expect(headers.ms, 'slow headers cut off').to.be.below(4000);
        expect(await mysqlEvents(db, u)).to.have.length(0);
        expect((await fetch(`${server.url}/healthz`)).status).to.equal(200);
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
      }
    });

    it('never lets X-Request-Id (or any header) inject a response header or split the response', async () => {
      const port = Number(new URL(app.url).port);
      for (const value of [
        'abc\r\nSet-Cookie: injected=1',
        'abc%0d%0aSet-Cookie:%20injected=1',
        'abc\nSet-Cookie: injected=1',
        'abc\rSet-Cookie: injected=1',
        'abc\u010d\u010aSet-Cookie: injected=1', // a client that truncates to latin1 would send CR LF
        'x'.repeat(200),
        '<script>alert(1)</script>',
      ]) {
        const reply = await rawExchange(
          port,
          Buffer.from(
            `GET /api/v1/nothing HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${value}\r\nConnection: close\r\n\r\n`,
            'latin1',
          ),
          1500,
        );
        const head = reply.split('\r\n\r\n')[0];
        expect(head, JSON.stringify(value)).to.not.match(/set-cookie|injected/i);
        expect(head, JSON.stringify(value)).to.match(/^HTTP\/1\.1 (400|404) /);
        const id = /\r\nx-request-id: ([^\r\n]*)/i.exec(head)?.[1];
        if (id !== undefined) expect(id).to.match(/^[\w.:-]{1,128}$/);
        if (head.startsWith('HTTP/1.1 404')) expect(id).to.not.equal(undefined);
      }
    });

    it('keeps SSE framing intact whatever a display name holds: line breaks are refused, the rest kept as text', async () => {
      // Line breaks (CR, LF, NEL, LS, PS) are control or separator characters: PATCH refuses them (400) and a
      // token's name with them is ignored (the user shows as its id). What is left may still look like SSE
      // fields or JSON, and must travel as plain text inside one data: line.
      const broken = [
        'evil\n\nevent: hacked\ndata: {"pwned":true}\n\nend',
        'cr\rid: 666\r\rretry: 1',
        'ls\u2028ps\u2029nel\u0085end',
        'data: x\r\n\r\nevent: y',
      ];
      const kept = [
        'event: hacked data: {"pwned":true}',
        'id: 666 retry: 1',
        '"}]},{"userId":"x"',
        '</script><b>',
      ];
      const stream = openRawStream(`${app.url}/api/v1/scores/stream`);
      await stream.ready;
      const want = new Map<string, string>();
      for (const [i, name] of [...broken, ...kept].entries()) {
        const u = uniqueUser('sse');
        const refused = i < broken.length;
        // Half through PATCH, half through the token's name claim on first sight.
        if (i % 2) await addPoints(app, u, 1, name);
        else {
          await addPoints(app, u, 1);
          const res = await app.request
            .patch(`/api/v1/users/${u}`)
            .set('Authorization', `Bearer ${adminToken()}`)
            .send({ displayName: name });
          expect(res.status, res.text).to.equal(refused ? 400 : 200);
        }
        want.set(u, refused ? u : name);
        await addToTop(app, u); // into the top N, so the name goes out on the stream
      }
      await eventually(() => [...want.keys()].every((u) => stream.text.includes(u)), 3000);
      for (const block of stream.blocks()) {
        expect(block.event === undefined || block.event === 'scoreboard', JSON.stringify(block)).to.equal(
          true,
        );
        if (block.event) {
          expect(block.id).to.match(/^"[A-Za-z0-9_-]+"$/);
          expect(() => JSON.parse(block.data)).to.not.throw();
        }
      }
      const last = JSON.parse(stream.events().at(-1)!.data) as Array<{ userId: string; displayName: string }>;
      for (const [u, name] of want) expect(last.find((e) => e.userId === u)?.displayName).to.equal(name);
      stream.close();
    });
  });

  describe('resources', () => {
    it('thousands of streams from one address: RATE_LIMIT_STREAMS_PER_IP are served, the rest get 429', async () => {
      const c = await start({ RATE_LIMIT_STREAMS_PER_IP: '50' });
      try {
        const streams = Array.from({ length: 2000 }, () => openRawStream(`${c.url}/api/v1/scores/stream`));
        const responses = await Promise.all(streams.map((s) => s.ready));
        const codes = responses.map((r) => r.statusCode);
        expect(codes.filter((s) => s === 200)).to.have.length(50);
        expect(codes.filter((s) => s === 429)).to.have.length(1950);
        const refused = streams[codes.indexOf(429)];
        await eventually(() => refused.ended);
        expect(refused.response!.headers['content-type']).to.match(/problem\+json/);
        expect(refused.response!.headers['retry-after']).to.match(/^\d+$/);
        expect(c.services.hub.size()).to.equal(50);
        streams.forEach((s) => s.close());
        await eventually(() => c.services.hub.size() === 0, 5000);
        const again = openRawStream(`${c.url}/api/v1/scores/stream`);
        expect((await again.ready).statusCode).to.equal(200);
        again.close();
      } finally {
        await c.close();
      }
    });

    it('a steady trickle of writes does not spin the CPU: the event loop stays responsive', async () => {
      // Found by the soak (tools/soak.ts): each commit inside a snapshot tick used to re-run the tick in a
      // microtask loop until the tick ended, blocking the event loop for up to SNAPSHOT_TICK_MS per write.
      // A long tick makes any such spin unmistakable.
      const c = await start({ SNAPSHOT_TICK_MS: '1000' });
      const delay = monitorEventLoopDelay({ resolution: 10 });
      try {
        const u = uniqueUser('trickle');
        await addPoints(c, u, 1);
        delay.enable();
        for (let i = 0; i < 15; i++) {
          expect((await post(tokenFor(u), { scoreIncrement: 1 }, c)).status).to.equal(201);
          await sleep(20);
        }
        delay.disable();
        expect(delay.max / 1e6, 'longest event-loop stall (ms)').to.be.below(300);
      } finally {
        delay.disable();
        await c.close();
      }
    });

    it('a burst from one user spread over two instances at once gets exactly the shared write limit', async () => {
      const env = { RATE_LIMIT_WRITES_PER_MIN: '20' };
      const [a, b] = await Promise.all([start(env), start(env)]);
      try {
        await eventually(() => a.services.mirror.isReady() && b.services.mirror.isReady());
        const u = uniqueUser('burst');
        const responses = await Promise.all(
          Array.from({ length: 60 }, (_, i) => post(tokenFor(u), { scoreIncrement: 1 }, i % 2 ? a : b)),
        );
        const codes = responses.map((r) => r.status);
        expect(codes.filter((s) => s === 201)).to.have.length(20);
        expect(codes.filter((s) => s === 429)).to.have.length(40);
        expect(await mysqlScore(db, u)).to.equal('20');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });
});

describe('security hardening: authorization and identity', function () {
  this.timeout(60_000);
  let app: Instance;
  let db: Knex;
  before(async () => {
    db = testDb();
    app = await startInstance({ AUTH_CACHE_TTL_MS: '0' });
  });
  after(async () => {
    await app.close();
    await db.destroy();
  });
  const post = (token: string, body: object, target: Instance = app) =>
    target.request.post(PATH).set('Authorization', `Bearer ${token}`).send(body);

  describe('roles come from MySQL only', () => {
    it('provisions a never-seen sub whose token claims admin as a player, who then cannot act as one', async () => {
      const [u, victim] = [uniqueUser('claim'), uniqueUser('victim')];
      await insertUser(db, victim);
      const token = tokenFor(u, { claims: { role: 'admin', roles: ['admin'], admin: true, scope: 'admin' } });
      expectProblem(await post(token, { userId: victim, scoreIncrement: 5 }), 403);
      expect(await mysqlUser(db, u)).to.include({ role: 'player', status: 'active' });
      const patch = await app.request
        .patch(`/api/v1/users/${victim}`)
        .set('Authorization', `Bearer ${token}`)
        .send({ status: 'banned' });
      expectProblem(patch, 403);
      expect(await mysqlEvents(db, victim)).to.have.length(0);
      expect(await mysqlUser(db, victim)).to.include({ status: 'active' });
    });

    it('the operator command promotes (creating a user that never logged in) and demotes', async () => {
      const op = uniqueUser('op');
      const promoted = await runUserCommand(app.db, ['promote', op, '--name', 'Night Operator']);
      expect(promoted.code, promoted.out).to.equal(0);
      expect(await mysqlUser(db, op)).to.include({ role: 'admin', display_name: 'Night Operator' });
      const victim = uniqueUser('victim');
      await insertUser(db, victim);
      expect((await post(tokenFor(op), { userId: victim, scoreIncrement: 7 })).status).to.equal(201);
      expect((await runUserCommand(app.db, ['demote', op])).code).to.equal(0);
      expect(await mysqlUser(db, op)).to.include({ role: 'player' });
      expectProblem(await post(tokenFor(op), { userId: victim, scoreIncrement: 7 }), 403);
      expect((await runUserCommand(app.db, ['promote', 'bad id!'])).code).to.equal(2);
      expect((await runUserCommand(app.db, ['promote', op, '--name', 'x\u202e'])).code).to.equal(2);
      expect((await runUserCommand(app.db, ['frobnicate'])).code).to.equal(2);
    });

    it('the operator command runs as a program (as the image runs it)', async () => {
      const { stdout, status } = await runNode(['src/cli/user.ts', 'admins'], {
        DATABASE_URL: app.config.databaseUrl,
      });
      expect(status).to.equal(0);
      expect(stdout.split('\n')).to.include(TEST_ADMIN);
    });

    it('never removes the last active admin, and two admins demoting each other at once leave one', async () => {
      await withScratchDatabase('admins', async (_url, scratch) => {
        expect((await runUserCommand(scratch, ['promote', 'solo'])).code).to.equal(0);
        const last = await runUserCommand(scratch, ['demote', 'solo']);
        expect(last.code).to.equal(1);
        expect(last.out).to.match(/last active admin/);
        expect(await mysqlUser(scratch, 'solo')).to.include({ role: 'admin' });
      });
      for (let round = 0; round < 5; round++) {
        const [a, b] = [uniqueUser('adm-a'), uniqueUser('adm-b')];
        await ensureAdmin(db, a);
        await ensureAdmin(db, b);
        const demote = (actor: string, target: string) =>
          app.request
            .patch(`/api/v1/users/${target}`)
            .set('Authorization', `Bearer ${tokenFor(actor)}`)
            .send({ role: 'player' });
        const codes = (await Promise.all([demote(a, b), demote(b, a)])).map((r) => r.status).sort();
        expect(codes).to.deep.equal([200, 403]);
        const roles = [(await mysqlUser(db, a))!.role, (await mysqlUser(db, b))!.role].sort();
        expect(roles).to.deep.equal(['admin', 'player']);
      }
    });
  });

  describe('tokens meant for someone else', () => {
    const named = { JWT_ISSUER: 'https://idp.test/', JWT_AUDIENCE: 'scoreboard' };
    const refused = (env: Record<string, string>) => {
      try {
        loadConfig({ JWT_SECRET: TEST_SECRET, ...env } as NodeJS.ProcessEnv);
      } catch (err) {
        expect(err).to.be.instanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error(`accepted ${JSON.stringify(env)}`);
    };

    it('production needs JWT_ISSUER and JWT_AUDIENCE, and refuses the public development secret', () => {
      const message = refused({ NODE_ENV: 'production' });
      expect(message).to.include('"JWT_ISSUER"').and.include('"JWT_AUDIENCE"');
      expect(refused({ NODE_ENV: 'production', ...named, JWT_SECRET: DEV_JWT_SECRET })).to.match(
        /development secret/,
      );
      expect(() => loadConfig({ NODE_ENV: 'production', ...named, JWT_SECRET: TEST_SECRET })).to.not.throw();
      expect(() => loadConfig({ NODE_ENV: 'development', JWT_SECRET: DEV_JWT_SECRET })).to.not.throw();
    });

    it('JWT_MAX_AGE_S refuses tokens issued too long ago, and tokens without iat', async () => {
      const c = await startInstance({ JWT_MAX_AGE_S: '60' });
      try {
        const u = uniqueUser('age');
        const sign = (payload: object, opts: jwt.SignOptions = {}) =>
          jwt.sign(payload, TEST_SECRET, { algorithm: 'HS256', subject: u, expiresIn: 3600, ...opts });
        expectProblem(await post(sign({ iat: now() - 120 }), { scoreIncrement: 1 }, c), 401);
        expectProblem(await post(sign({}, { noTimestamp: true }), { scoreIncrement: 1 }, c), 401);
        expect(await mysqlUser(db, u)).to.equal(undefined);
        expect((await post(sign({ iat: now() - 10 }), { scoreIncrement: 1 }, c)).status).to.equal(201);
      } finally {
        await c.close();
      }
    });

    it('JWT_TYP refuses tokens of another type (RFC 8725 3.11), with or without the application/ prefix', async () => {
      const c = await startInstance({ JWT_TYP: 'at+jwt' });
      try {
        const u = uniqueUser('typ');
        const sign = (typ?: string) =>
          jwt.sign({}, TEST_SECRET, {
            algorithm: 'HS256',
            subject: u,
            expiresIn: 3600,
            header: typ === undefined ? { alg: 'HS256' } : { alg: 'HS256', typ },
          });
        for (const typ of ['JWT', undefined, 'id_token+jwt', 'at+jwt+x'])
          expectProblem(await post(sign(typ), { scoreIncrement: 1 }, c), 401);
        expect(await mysqlUser(db, u)).to.equal(undefined);
        expect((await post(sign('at+jwt'), { scoreIncrement: 1 }, c)).status).to.equal(201);
        expect((await post(sign('application/AT+JWT'), { scoreIncrement: 1 }, c)).status).to.equal(201);
      } finally {
        await c.close();
      }
    });
  });

  describe('display names cannot impersonate', () => {
    it('an admin rename is normalised (NFC, one space) and refuses control, bidi and zero-width characters', async () => {
      const u = uniqueUser('name');
      await insertUser(db, u);
      const rename = (displayName: string) =>
        app.request
          .patch(`/api/v1/users/${u}`)
          .set('Authorization', `Bearer ${adminToken()}`)
          .send({ displayName });
      for (const bad of [
        'Ada\u202eecalevoL',
        'Ada\u200bLovelace',
        'Ada\u2066x\u2069',
        'a\u0000b',
        '\ufeffAda',
        ' ',
      ])
        expectProblem(await rename(bad), 400);
      expect(await mysqlUser(db, u)).to.include({ display_name: u });
      const res = await rename('  Rene\u0301   Descartes ');
      expect(res.status).to.equal(200);
      expect(res.body.displayName).to.equal('Ren\u00e9 Descartes');
      expect(await mysqlUser(db, u)).to.include({ display_name: 'Ren\u00e9 Descartes' });
    });

    it("a token's name with hidden characters is ignored (the user shows as its id); a clean one is normalised", async () => {
      const [hidden, clean] = [uniqueUser('tname'), uniqueUser('tname')];
      await addPoints(app, hidden, 1, 'Admin\u202e');
      await addPoints(app, clean, 1, 'Rene\u0301  Descartes');
      expect(await mysqlUser(db, hidden)).to.include({ display_name: hidden });
      expect(await mysqlUser(db, clean)).to.include({ display_name: 'Ren\u00e9 Descartes' });
    });
  });

  describe('idempotency keys belong to their author', () => {
    it("a player's actionId never replays an admin's correction of the same user, nor the other way round", async () => {
      const [v, w] = [uniqueUser('idem'), uniqueUser('idem')];
      await insertUser(db, v);
      const admin = await post(adminToken(), { userId: v, scoreIncrement: 50, actionId: 'shared-key' });
      expect(admin.status, admin.text).to.equal(201);
      const own = await post(tokenFor(v), { scoreIncrement: 1, actionId: 'shared-key' });
      expect(own.status, own.text).to.equal(201);
      expect(own.body.score).to.equal(51);
      const replay = await post(adminToken(), { userId: v, scoreIncrement: 50, actionId: 'shared-key' });
      expect(replay.status).to.equal(200);
      expect(replay.body).to.deep.equal(admin.body);
      expect((await post(tokenFor(v), { scoreIncrement: 1, actionId: 'shared-key' })).body).to.deep.equal(
        own.body,
      );

      expect((await post(tokenFor(w), { scoreIncrement: 3, actionId: 'k2' })).status).to.equal(201);
      const correction = await post(adminToken(), { userId: w, scoreIncrement: -3, actionId: 'k2' });
      expect(correction.status, correction.text).to.equal(201);
      expect(await mysqlScore(db, v)).to.equal('51');
      expect(await mysqlScore(db, w)).to.equal('0');
    });

    it('the migration that scopes keys by actor goes down and up, and refuses to go down over clashing keys', async () => {
      await withScratchDatabase('migrations', async (_url, scratch) => {
        const indexes = async () =>
          ((await scratch.raw('SHOW INDEX FROM score_events'))[0] as Array<{ Key_name: string }>).map(
            (r) => r.Key_name,
          );
        expect(await indexes()).to.include('score_events_user_actor_action');
        await scratch.migrate.down(); // the event relay watermark
        await scratch.migrate.down(); // boards and windows
        await scratch.migrate.down(); // users_role_status
        await scratch.migrate.down(); // the actor scope
        expect(await indexes())
          .to.include('score_events_user_action')
          .and.not.include('score_events_user_actor_action');
        await scratch.migrate.latest();
        await insertUser(scratch, 'p');
        await insertUser(scratch, 'q', { role: 'admin' });
        for (const actor of ['p', 'q'])
          await scratch('score_events').insert({
            user_id: 'p',
            delta: 1,
            score_after: 1,
            actor_id: actor,
            action_id: 'same',
          });
        await scratch.migrate.down(); // the event relay watermark
        await scratch.migrate.down(); // boards and windows
        await scratch.migrate.down(); // users_role_status
        let error: unknown;
        await scratch.migrate.down().catch((err: unknown) => (error = err));
        expect(String(error)).to.match(/more than one actor/);
        expect(await indexes()).to.include('score_events_user_actor_action');
      });
    });
  });

  describe('bounded queues and connections', () => {
    it('past WRITE_QUEUE_MAX a write is 503 with Retry-After at once, and nothing of it is written', async () => {
      const c = await startInstance({ WRITE_QUEUE_MAX: '3', WRITE_CONCURRENCY: '1', WRITE_BATCH_MAX: '1' });
      const blocker = await db.transaction();
      try {
        const users = Array.from({ length: 10 }, () => uniqueUser('queue'));
        for (const u of users) await insertUser(db, u);
        await blocker.raw('SELECT id FROM users WHERE id = ? FOR UPDATE', [users[0]]); // the first batch waits here
        // supertest sends on then(): start the requests now, await their answers later.
        const send = (u: string) => post(tokenFor(u), { scoreIncrement: 1 }, c).then((r) => r);
        const first = send(users[0]);
        await sleep(200);
        const queued = users.slice(1, 4).map(send);
        await sleep(200);
        const started = Date.now();
        const shed = await Promise.all(
          users.slice(4).map((u) => post(tokenFor(u), { scoreIncrement: 1 }, c)),
        );
        expect(Date.now() - started, 'answered without waiting for the queue').to.be.below(1500);
        for (const res of shed) {
          expectProblem(res, 503);
          expect(res.headers['retry-after']).to.match(/^\d+$/);
        }
        await blocker.commit();
        for (const res of [await first, ...(await Promise.all(queued))]) expect(res.status).to.equal(201);
        for (const u of users.slice(0, 4)) expect(await mysqlScore(db, u)).to.equal('1');
        for (const u of users.slice(4)) expect(await mysqlScore(db, u)).to.equal(undefined);
      } finally {
        if (!blocker.isCompleted()) await blocker.rollback();
        await c.close();
      }
    });

    it('MAX_CONNECTIONS closes connections past the limit at once', async () => {
      const c = await startInstance({ MAX_CONNECTIONS: '2' });
      const port = Number(new URL(c.url).port);
      const open = () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s));
          s.on('error', () => {});
        });
      try {
        const held = [await open(), await open()];
        await sleep(100);
        const extra = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 1500);
        expect(extra).to.equal('');
        held.forEach((s) => s.destroy());
        await sleep(100);
        expect((await c.request.get('/healthz')).status).to.equal(200);
      } finally {
        await c.close();
      }
    });
  });
});

/** Runs a TypeScript entry point as a child process (through tsx), as an operator would run it. */
function runNode(
  args: string[],
  env: Record<string, string>,
): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('exit', (status) => resolve({ status, stdout }));
  });
}

describe('security hardening: limits and cost', function () {
  this.timeout(60_000);
  let db: Knex;
  const post = (c: Instance, token: string, body: unknown) =>
    c.request
      .post(PATH)
      .set('Authorization', `Bearer ${token}`)
      .send(body as object);
  before(() => {
    db = testDb();
  });
  after(async () => {
    await db.destroy();
  });

  describe('one spelling per route', () => {
    // Every way a lenient router or proxy might read a canonical path. Each one must be 404 (not routed) and
    // still draw on the same read budget as the canonical path when it is under /api.
    const respell = (path: string): string[] => {
      const [, first, ...rest] = path.split('/');
      const last = path.slice(path.lastIndexOf('/') + 1);
      const encoded = `%${last.charCodeAt(0).toString(16)}${last.slice(1)}`;
      return [
        path.toUpperCase(),
        `/${first.toUpperCase()}/${rest.join('/')}`,
        path.replace('/v1/', '/V1/'),
        `${path}/`,
        `/${path}`,
        path.replace(/\/([^/]*)$/, '//$1'),
        `${path.slice(0, path.lastIndexOf('/') + 1)}${encoded}`,
      ].filter((p) => p !== path);
    };
    const reads = [
      '/api/v1/scores/top',
      '/api/scores/top',
      '/api/v1/scores/stream',
      '/api/scores/stream',
      '/api/v1/scores/users/someone',
      '/api/v1/scores/users/someone/events',
      '/api/v1/admin/flags',
    ];
    const others = ['/healthz', '/readyz', '/metrics', '/docs', '/openapi.json'];

    it('answers every non-canonical spelling of a read, stream, admin, ops or web route 404', async () => {
      const c = await startInstance();
      try {
        for (const path of [...reads, ...others]) {
          for (const spelling of respell(path)) {
            const res = await c.request.get(spelling).timeout(3000);
            expect(res.status, `GET ${spelling}`).to.equal(404);
          }
        }
        // The canonical paths themselves still answer (streams are not opened here).
        for (const path of ['/api/v1/scores/top', '/api/scores/top', ...others])
          expect((await c.request.get(path)).status, path).to.equal(200);
      } finally {
        await c.close();
      }
    });

    it('routes no spelling of a write but the canonical one, and writes nothing for them', async () => {
      const c = await startInstance();
      try {
        const u = uniqueUser('spell');
        for (const path of ['/api/v1/scores/update', '/api/scores/update']) {
          for (const spelling of respell(path)) {
            const res = await c.request
              .post(spelling)
              .set('Authorization', `Bearer ${tokenFor(u)}`)
              .send({ scoreIncrement: 1 });
            expect(res.status, `POST ${spelling}`).to.equal(404);
          }
        }
        for (const spelling of respell(`/api/v1/users/${u}`)) {
          const res = await c.request
            .patch(spelling)
            .set('Authorization', `Bearer ${adminToken()}`)
            .send({ status: 'banned' });
          expect(res.status, `PATCH ${spelling}`).to.equal(404);
        }
        expect(await mysqlScore(db, u)).to.equal(undefined);
      } finally {
        await c.close();
      }
    });

    it('counts every spelling under /api against the one read budget of the address', async () => {
      const limit = 40;
      const c = await startInstance({ RATE_LIMIT_READS_PER_MIN: String(limit) });
      try {
        const spellings = [
          '/api/v1/scores/top',
          ...respell('/api/v1/scores/top'),
          ...respell('/api/scores/top'),
        ];
        let expected = limit;
        for (let i = 0; i < limit; i++) {
          const path = spellings[i % spellings.length];
          const res = await c.request.get(path);
          expected--;
          expect(res.status, path).to.equal(path === '/api/v1/scores/top' ? 200 : 404);
          // RateLimit-* go out once at most half the budget is left (src/http/rate-limit/limiter.ts).
          expect(res.headers['ratelimit-remaining'], path).to.equal(
            expected <= limit / 2 ? String(expected) : undefined,
          );
        }
        for (const path of spellings) expectProblem(await c.request.get(path), 429);
      } finally {
        await c.close();
      }
    });
  });

  describe('operator endpoints', () => {
    const METRICS_TOKEN = 'metrics-token-for-the-test-0123456789';

    it('with METRICS_TOKEN, /metrics answers only its bearer token (401 problem otherwise)', async () => {
      const c = await startInstance({ METRICS_TOKEN });
      try {
        const attempts: Array<[string, string | undefined]> = [
          ['no header', undefined],
          ['wrong token, same length', `Bearer ${METRICS_TOKEN.replace(/.$/, 'x')}`],
          ['wrong token, shorter', 'Bearer metrics'],
          ['a prefix of it', `Bearer ${METRICS_TOKEN.slice(0, -1)}`],
          ['right token, wrong scheme', `Basic ${METRICS_TOKEN}`],
          ['right token with more', `Bearer ${METRICS_TOKEN}x`],
          ['a JWT of a real admin', `Bearer ${adminToken()}`],
        ];
        for (const [label, header] of attempts) {
          const req = c.request.get('/metrics');
          const res = await (header ? req.set('Authorization', header) : req);
          expectProblem(res, 401);
          expect(res.headers['www-authenticate'], label).to.match(/^Bearer/);
          expect(res.text, label).to.not.match(/http_request_duration_seconds/);
        }
        const ok = await c.request.get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`);
        expect(ok.status).to.equal(200);
        expect(ok.text).to.match(/# TYPE http_request_duration_seconds histogram/);
      } finally {
        await c.close();
      }
    });

    it('with METRICS_PORT, /metrics is served on that port only', async () => {
      const probe = net.createServer();
      await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
      const metricsPort = (probe.address() as AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
      const s = await startServer(testConfig({ METRICS_PORT: String(metricsPort), METRICS_TOKEN }));
      try {
        const main = supertest(`http://127.0.0.1:${s.port}`);
        const ops = supertest(`http://127.0.0.1:${metricsPort}`);
        expectProblem(await main.get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`), 404);
        expect((await main.get('/healthz')).status).to.equal(200);
        expectProblem(await ops.get('/metrics'), 401);
        const ok = await ops.get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`);
        expect(ok.status).to.equal(200);
        expect(ok.text).to.match(/http_request_duration_seconds/);
        expectProblem(await ops.get('/api/v1/scores/top'), 404);
      } finally {
        await s.close();
      }
    });

    it('many /readyz probes within READYZ_CACHE_MS cost one MySQL ping', async () => {
      const c = await startInstance({ READYZ_CACHE_MS: '1000' });
      let pings = 0;
      const onQuery = (q: { sql: string }) => {
        if (q.sql === 'SELECT 1') pings++;
      };
      c.db.on('query', onQuery);
      try {
        await sleep(1100); // whatever ping start-up caused is out of the cache now
        pings = 0;
        const started = Date.now();
        const burst = await Promise.all(Array.from({ length: 30 }, () => c.request.get('/readyz')));
        for (let i = 0; i < 10; i++) burst.push(await c.request.get('/readyz'));
        expect(Date.now() - started, 'the probes ran inside one cache period').to.be.below(900);
        for (const res of burst) expect(res.body).to.include({ mysql: 'up' });
        expect(pings).to.equal(1);
        await sleep(1100);
        expect((await c.request.get('/readyz')).status).to.equal(200);
        expect(pings).to.equal(2);
      } finally {
        c.db.off('query', onQuery);
        await c.close();
      }
    });
  });

  describe('one party, one budget: client keys', () => {
    it('clientKey groups IPv6 by prefix and IPv4 (also IPv4-mapped) by address', () => {
      const cases: Array<[string | undefined, number, string]> = [
        ['203.0.113.7', 64, '203.0.113.7'],
        ['::ffff:203.0.113.7', 64, '203.0.113.7'],
        ['::FFFF:203.0.113.7', 64, '203.0.113.7'],
        ['::ffff:cb00:7107', 64, '203.0.113.7'],
        ['2001:db8:1:2::1', 64, '2001:db8:1:2:0:0:0:0/64'],
        ['2001:0db8:0001:0002:ffff:ffff:ffff:ffff', 64, '2001:db8:1:2:0:0:0:0/64'],
        ['2001:DB8:1:2:3:4:5:6', 64, '2001:db8:1:2:0:0:0:0/64'],
        ['[2001:db8:1:2::1]', 64, '2001:db8:1:2:0:0:0:0/64'],
        ['fe80::1%eth0', 64, 'fe80:0:0:0:0:0:0:0/64'],
        ['2001:db8:1:2::1', 48, '2001:db8:1:0:0:0:0:0/48'],
        ['2001:db8:1:2f::1', 60, '2001:db8:1:20:0:0:0:0/60'],
        ['2001:db8:1:2::1', 128, '2001:db8:1:2:0:0:0:1/128'],
        ['::1', 64, '0:0:0:0:0:0:0:0/64'],
        ['not an address', 64, 'unknown'],
        ['', 64, 'unknown'],
        [undefined, 64, 'unknown'],
      ];
      for (const [ip, prefix, key] of cases) expect(clientKey(ip, prefix), `${ip}/${prefix}`).to.equal(key);
      expect(clientKey('2001:db8:1:2::1', 64)).to.equal(clientKey('2001:db8:1:2:ffff::9', 64));
      expect(clientKey('2001:db8:1:2::1', 64)).not.to.equal(clientKey('2001:db8:1:3::1', 64));
      expect(clientKey('203.0.113.7', 64)).not.to.equal(clientKey('203.0.113.8', 64));
    });

    it('addresses in one /64 share the read budget; another /64 and IPv4 have their own', async () => {
      const c = await startInstance({ TRUST_PROXY: '1', RATE_LIMIT_READS_PER_MIN: '6' });
      const read = (ip: string) => c.request.get('/api/v1/scores/top').set('X-Forwarded-For', ip);
      try {
        for (let i = 1; i <= 6; i++) expect((await read(`2001:db8:aa:1::${i}`)).status).to.equal(200);
        expectProblem(await read('2001:db8:aa:1:ffff:ffff:ffff:ffff'), 429);
        expectProblem(await read('2001:db8:aa:1::77'), 429);
        expect((await read('2001:db8:aa:2::1')).status).to.equal(200);
        // IPv4 and its IPv4-mapped spelling are one client.
        for (let i = 0; i < 3; i++) expect((await read('198.51.100.9')).status).to.equal(200);
        for (let i = 0; i < 3; i++) expect((await read('::ffff:198.51.100.9')).status).to.equal(200);
        expectProblem(await read('198.51.100.9'), 429);
        expect((await read('198.51.100.10')).status).to.equal(200);
      } finally {
        await c.close();
      }
    });

    it('addresses in one /64 share the stream slots; another /64 does not', async () => {
      const c = await startInstance({ TRUST_PROXY: '1', RATE_LIMIT_STREAMS_PER_IP: '2' });
      const open = (ip: string) => openRawStream(`${c.url}/api/v1/scores/stream`, { 'X-Forwarded-For': ip });
      const streams = [open('2001:db8:bb:1::1'), open('2001:db8:bb:1::2')];
      try {
        for (const s of streams) expect((await s.ready).statusCode).to.equal(200);
        const third = open('2001:db8:bb:1:abcd::3');
        streams.push(third);
        expect((await third.ready).statusCode).to.equal(429);
        const mapped = [open('192.0.2.1'), open('::ffff:192.0.2.1'), open('192.0.2.1')];
        streams.push(...mapped);
        const codes = (await Promise.all(mapped.map((s) => s.ready))).map((r) => r.statusCode);
        expect(codes.sort()).to.deep.equal([200, 200, 429]);
        const other = open('2001:db8:bb:2::1');
        streams.push(other);
        expect((await other.ready).statusCode).to.equal(200);
        expect(c.services.hub.size()).to.equal(5);
      } finally {
        streams.forEach((s) => s.close());
        await c.close();
      }
    });
  });

  describe('one component failing never degrades another', () => {
    /** A counter's value, summed over the labels given (all when none). */
    async function counter(c: Counter, labels: Record<string, string> = {}): Promise<number> {
      const { values } = await c.get();
      return values
        .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k as keyof typeof v.labels] === l))
        .reduce((sum, v) => sum + v.value, 0);
    }

    it('a flag MySQL refuses (user never provisioned) keeps Redis in use and is saved once the user exists', async () => {
      const c = await startInstance({
        RATE_LIMIT_WRITES_PER_MIN: '1',
        RATE_LIMIT_FLAG_AFTER: '1',
        AUTO_PROVISION_USERS: 'false',
      });
      try {
        await eventually(() => c.services.mirror.isReady());
        const u = uniqueUser('ghost');
        const redisErrors = await counter(c.services.metrics.redisErrors);
        // Without provisioning, the first write uses the budget and is refused (an unregistered caller); the
        // next one is limited, which raises a flag for a user MySQL does not know.
        expectProblem(await post(c, tokenFor(u), { scoreIncrement: 1 }), 403);
        expect(await mysqlUser(db, u)).to.equal(undefined);
        expectProblem(await post(c, tokenFor(u), { scoreIncrement: 1 }), 429);
        const failures = c.services.metrics.cheatFlagSaveFailures;
        await eventually(async () => (await counter(failures, { cause: 'unknown_user' })) >= 1);
        expect(redisReady(c.redis), 'a MySQL error does not mark Redis as failing').to.equal(true);
        expect(await counter(c.services.metrics.redisErrors)).to.equal(redisErrors);
        expect(c.services.cheat.pending()).to.equal(1);
        // The user's row appears (an operator registers them); the queued flag is then saved.
        await insertUser(db, u);
        await eventually(async () => (await c.services.cheat.list()).some((f) => f.userId === u), 5000, 100);
        expect((await c.services.cheat.list()).find((f) => f.userId === u)).to.include({
          reason: 'rate_limited',
        });
        expect(c.services.cheat.pending()).to.equal(0);
        expect(await counter(c.services.metrics.cheatFlagsLost)).to.equal(0);
      } finally {
        await c.close();
      }
    });

    it('a flag that can never be saved is retried a bounded number of times, then logged at error and counted', async () => {
      const config = testConfig();
      const lines: Array<Record<string, unknown>> = [];
      const logger = pino(
        { level: 'warn' },
        new Writable({
          write(chunk, _enc, done) {
            lines.push(JSON.parse(String(chunk)));
            done();
          },
        }),
      );
      const sbDb = createDb(config);
      const redis = createRedis(config);
      const metrics = createMetrics();
      const detector = createCheatDetector({
        db: sbDb,
        redis,
        prefix: `${config.redisPrefix}cheat-unit:`,
        pointsPerMinute: 10,
        flagAfterLimited: 1,
        logger,
        metrics,
        queueMax: 2,
        maxAttempts: 3,
        retryBaseMs: 20,
      });
      try {
        await eventually(() => redisReady(redis));
        const ghosts = [uniqueUser('never'), uniqueUser('never'), uniqueUser('never')];
        for (const g of ghosts) await detector.recordPoints([{ userId: g, delta: 11 }]);
        // Three flags, room for two: the oldest is given up at once, the others after three attempts.
        await eventually(async () => (await counter(metrics.cheatFlagsLost)) === 3, 5000);
        expect(await counter(metrics.cheatFlagsLost, { cause: 'queue_full' })).to.equal(1);
        expect(await counter(metrics.cheatFlagsLost, { cause: 'unknown_user' })).to.equal(2);
        expect(detector.pending()).to.equal(0);
        const errors = lines.filter((l) => l.level === 50 && l.msg === 'cheat flag could not be saved');
        expect(errors.map((l) => l.userId)).to.have.members(ghosts);
        expect(redisReady(redis)).to.equal(true);
        expect(await counter(metrics.redisErrors)).to.equal(0);
      } finally {
        detector.stop();
        redis.disconnect();
        await sbDb.destroy();
      }
    });

    it('while Redis blips the write limit goes on from the counts Redis had, not from a fresh bucket', async () => {
      const c = await startInstance({ RATE_LIMIT_WRITES_PER_MIN: '3' });
      try {
        await eventually(() => redisReady(c.redis));
        const over = uniqueUser('over');
        const under = uniqueUser('under');
        for (let i = 0; i < 3; i++)
          expect((await post(c, tokenFor(over), { scoreIncrement: 1 })).status).to.equal(201);
        expectProblem(await post(c, tokenFor(over), { scoreIncrement: 1 }), 429);
        expect((await post(c, tokenFor(under), { scoreIncrement: 1 })).status).to.equal(201);
        // Redis "fails" before each request: the limiter must decide from memory.
        const blip = async (u: string) => {
          markRedisFailure(c.redis);
          return (await post(c, tokenFor(u), { scoreIncrement: 1 })).status;
        };
        expect(await blip(over), 'over the limit in Redis, still over it in memory').to.equal(429);
        expect(await blip(under)).to.equal(201);
        expect(await blip(under)).to.equal(201);
        expect(await blip(under), 'the budget Redis had left, no more').to.equal(429);
        expect(await mysqlScore(db, over)).to.equal('3');
        expect(await mysqlScore(db, under)).to.equal('3');
      } finally {
        await c.close();
      }
    });
  });

  describe('public reads and MySQL', () => {
    const FALLBACK_SQL = /AND s\.user_id = \?|COUNT\(\*\) AS above/; // the standing read and its rank count
    /** Watches the fallback's statements on a knex instance: how many ran, and the most at once. */
    function watchFallbackQueries(target: Knex) {
      const open = new Set<string>();
      const stats = { total: 0, maxInFlight: 0 };
      const onQuery = (q: { sql: string; __knexQueryUid: string }) => {
        if (!FALLBACK_SQL.test(q.sql)) return;
        stats.total++;
        open.add(q.__knexQueryUid);
        stats.maxInFlight = Math.max(stats.maxInFlight, open.size);
      };
      const onDone = (_r: unknown, q: { __knexQueryUid: string }) => open.delete(q.__knexQueryUid);
      target
        .on('query', onQuery)
        .on('query-response', onDone)
        .on('query-error', (_e, q) => onDone(_e, q));
      return {
        stats,
        stop: () => {
          target.off('query', onQuery);
          target.off('query-response', onDone);
        },
      };
    }

    /** The oracle: a user's standing from every active score, computed here. */
    async function standingOf(userId: string) {
      const [rows] = await db.raw(
        `SELECT s.user_id, s.score, u.display_name FROM ${GLOBAL_SCORES} s JOIN users u ON u.id = s.user_id WHERE u.status = 'active'`,
      );
      const all = rows as Array<{ user_id: string; score: number; display_name: string }>;
      const me = all.find((r) => r.user_id === userId)!;
      const above = all.filter((r) => Number(r.score) > Number(me.score)).length;
      return { userId, displayName: me.display_name, score: Number(me.score), rank: above + 1 };
    }

    it('with Redis down, concurrent public user reads run at most DB_FALLBACK_CONCURRENCY MySQL queries at once', async () => {
      // MySQL behind a slow link, so 40 reads at once surely meet a full fallback, whatever the machine's load.
      const slow = await startTcpProxy({
        host: '127.0.0.1',
        port: Number(new URL(TEST_DATABASE_URL).port || 3306),
      });
      const viaSlow = new URL(TEST_DATABASE_URL);
      viaSlow.port = String(slow.port);
      const c = await startInstance({
        REDIS_URL: 'redis://127.0.0.1:1/0', // nothing listens there: the mirror is never ready
        DATABASE_URL: viaSlow.toString(),
        DB_FALLBACK_CONCURRENCY: '2',
        DB_FALLBACK_CACHE_MS: '10000',
      });
      const watch = watchFallbackQueries(c.db);
      try {
        expect(c.services.mirror.isReady()).to.equal(false);
        const users = Array.from({ length: 20 }, () => uniqueUser('fallback'));
        for (const [i, u] of users.entries()) await addPoints(c, u, 1 + i);
        watch.stats.total = 0;
        slow.setLatency(100);
        const responses = await Promise.all(
          [...users, ...users].map((u) => c.request.get(`/api/v1/scores/users/${u}`)),
        );
        slow.setLatency(0);
        expect(watch.stats.maxInFlight, 'fallback statements in flight at once').to.be.within(1, 2);
        const ok = responses.filter((r) => r.status === 200);
        const busy = responses.filter((r) => r.status === 503);
        expect(ok.length + busy.length).to.equal(responses.length);
        expect(busy.length, 'some reads were refused rather than queued').to.be.greaterThan(0);
        for (const r of busy) {
          expectProblem(r, 503);
          expect(r.headers['retry-after']).to.match(/^\d+$/);
        }
        for (const r of ok) expect(r.body).to.deep.equal(await standingOf(r.body.userId));
        // Sequentially every user is answered, and the cached ones cost nothing.
        const before = watch.stats.total;
        const answered = new Set(ok.map((r) => r.body.userId as string));
        for (const u of users) {
          const r = await c.request.get(`/api/v1/scores/users/${u}`);
          expect(r.status, u).to.equal(200);
          expect(r.body).to.deep.equal(await standingOf(u));
        }
        const missing = users.filter((u) => !answered.has(u)).length;
        expect(watch.stats.total - before, 'only users not cached yet were queried').to.equal(missing * 2);
        // Unknown users are answered 404 and cached too.
        const ghost = uniqueUser('ghost');
        expectProblem(await c.request.get(`/api/v1/scores/users/${ghost}`), 404);
        const afterGhost = watch.stats.total;
        expectProblem(await c.request.get(`/api/v1/scores/users/${ghost}`), 404);
        expect(watch.stats.total).to.equal(afterGhost);
      } finally {
        watch.stop();
        await c.close();
        await slow.close();
      }
    });

    it('with the mirror ready, any user read is answered from Redis: unknown and never-scored users are 404 without MySQL', async () => {
      const c = await startInstance();
      const watch = watchFallbackQueries(c.db);
      try {
        const scorer = uniqueUser('scorer');
        await addPoints(c, scorer, 5);
        const idle = uniqueUser('idle'); // provisioned (a row in users) but never scored
        await c.request.get('/api/v1/admin/flags').set('Authorization', `Bearer ${tokenFor(idle)}`);
        expect(await mysqlUser(db, idle)).to.not.equal(undefined);
        await eventually(() => c.services.mirror.isReady());
        await waitForMirror(db, c.redis, c.config.redisPrefix);
        watch.stats.total = 0;
        const reads = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            c.request.get(
              `/api/v1/scores/users/${i % 3 === 0 ? scorer : i % 3 === 1 ? idle : uniqueUser('nobody')}`,
            ),
          ),
        );
        for (const [i, r] of reads.entries()) {
          if (i % 3 === 0) expect(r.body).to.deep.equal(await standingOf(scorer));
          else expectProblem(r, 404);
        }
        expect(watch.stats.total, 'MySQL statements for public user reads').to.equal(0);
      } finally {
        watch.stop();
        await c.close();
      }
    });
  });
});

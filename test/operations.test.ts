import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { expect } from 'chai';
import { adminToken, addPoints, addToTop } from './helpers/api';
import { TEST_DATABASE_URL, TEST_SECRET, tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { spawnServer } from './helpers/process';
import { startTcpProxy } from './helpers/tcp-proxy';

const write = (app: Instance, userId: string, scoreIncrement = 1) =>
  app.request
    .post('/api/v1/scores/update')
    .set('Authorization', `Bearer ${tokenFor(userId)}`)
    .send({ scoreIncrement });

/** Reads one sample from Prometheus text: the value of `name{...labels containing every given pair}`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) total += Number(m[3]);
  }
  return total;
}

describe('operations', function () {
  this.timeout(60_000);

  describe('rate limits', () => {
    it('holds the per-user write limit across two instances, answering 429 problems with Retry-After', async () => {
      const env = { RATE_LIMIT_WRITES_PER_MIN: '10' };
      const [a, b] = [await startInstance(env), await startInstance(env)];
      try {
        const user = uniqueUser('limited');
        const results = [];
        for (let i = 0; i < 30; i++) results.push(await write(i % 2 ? a : b, user));
        const ok = results.filter((r) => r.status === 201);
        const limited = results.filter((r) => r.status === 429);
        expect(ok.length).to.equal(10);
        expect(limited.length).to.equal(20);
        const r = limited[0];
        expect(r.headers['content-type']).to.match(/problem\+json/);
        expect(Number(r.headers['retry-after'])).to.be.within(1, 60);
        expect(r.headers['ratelimit-limit']).to.equal('10');
        expect(r.headers['ratelimit-remaining']).to.equal('0');
        expect(ok[0].headers['ratelimit-limit']).to.equal('10');
        expect(Number(ok[0].headers['ratelimit-reset'])).to.be.within(0, 60);
        // another user has a bucket of their own
        expect((await write(a, uniqueUser('other'))).status).to.equal(201);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('limits reads per address in memory; RateLimit-* once half the budget is gone, and on every 429', async () => {
      const app = await startInstance({ RATE_LIMIT_READS_PER_MIN: '10' });
      try {
        const answers = [];
        for (let i = 0; i < 12; i++) answers.push(await app.request.get('/api/v1/scores/top'));
        expect(answers.map((r) => r.status)).to.deep.equal([...Array(10).fill(200), 429, 429]);
        // Remaining after each request: 9, 8, ... 0. The fields appear from 5 left on.
        expect(answers.slice(0, 10).map((r) => r.headers['ratelimit-remaining'])).to.deep.equal([
          ...Array(4).fill(undefined),
          ...['5', '4', '3', '2', '1', '0'],
        ]);
        for (const r of answers.slice(4)) {
          expect(r.headers['ratelimit-limit']).to.equal('10');
          expect(Number(r.headers['ratelimit-reset'])).to.be.within(0, 60);
        }
        const refused = answers[10];
        expect(refused.headers['content-type']).to.match(/problem\+json/);
        expect(refused.headers['ratelimit-remaining']).to.equal('0');
        expect(Number(refused.headers['retry-after'])).to.be.within(1, 60);
        // Only reads under /api count: operator endpoints stay reachable.
        expect((await app.request.get('/healthz')).status).to.equal(200);
      } finally {
        await app.close();
      }
    });

    it('ignores a spoofed X-Forwarded-For unless TRUST_PROXY says a proxy appends it', async () => {
      const direct = await startInstance({ RATE_LIMIT_READS_PER_MIN: '5' });
      const proxied = await startInstance({ RATE_LIMIT_READS_PER_MIN: '5', TRUST_PROXY: '1' });
      try {
        const statuses = [];
        for (let i = 0; i < 8; i++) {
          statuses.push(
            (await direct.request.get('/api/v1/scores/top').set('X-Forwarded-For', `10.9.9.${i}`)).status,
          );
        }
        expect(statuses.filter((s) => s === 429)).to.have.length(3); // all counted as 127.0.0.1

        // Behind one proxy, only the address that proxy appended counts: a client prefix changes nothing.
        const viaProxy = async (spoof: string, real: string) =>
          (await proxied.request.get('/api/v1/scores/top').set('X-Forwarded-For', `${spoof}, ${real}`))
            .status;
        const real = [];
        for (let i = 0; i < 7; i++) real.push(await viaProxy(`1.1.1.${i}`, '10.0.0.1'));
        expect(real.filter((s) => s === 429)).to.have.length(2);
        expect(await viaProxy('1.1.1.1', '10.0.0.2')).to.equal(200);
      } finally {
        await direct.close();
        await proxied.close();
      }
    });

    it('falls back to in-memory limits when Redis is unreachable: no hang, no 5xx', async () => {
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
      const app = await startInstance({
        REDIS_URL: `redis://127.0.0.1:${proxy.port}/0`,
        RATE_LIMIT_WRITES_PER_MIN: '5',
      });
      try {
        const user = uniqueUser('fallback');
        await eventually(() => app.services.mirror.isReady());
        expect((await write(app, uniqueUser('before'))).status).to.equal(201); // through Redis
        proxy.blackhole(); // the worst case: connections stay open and nothing answers
        const started = Date.now();
        const statuses = [];
        for (let i = 0; i < 8; i++) {
          const t = Date.now();
          statuses.push((await write(app, user)).status);
          expect(Date.now() - t, `request ${i}`).to.be.below(1500);
        }
        expect(Date.now() - started).to.be.below(5000);
        expect(statuses.filter((s) => s === 201)).to.have.length(5);
        expect(statuses.filter((s) => s === 429)).to.have.length(3);
      } finally {
        proxy.heal();
        await app.close();
        await proxy.close();
      }
    });

    it('limits open streams per address', async () => {
      const app = await startInstance({ RATE_LIMIT_STREAMS_PER_IP: '2' });
      const open: http.ClientRequest[] = [];
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 3; i++) {
          statuses.push(
            await new Promise<number>((resolve) => {
              const req = http.get(`${app.url}/api/v1/scores/stream`, { agent: false }, (res) =>
                resolve(res.statusCode!),
              );
              open.push(req);
            }),
          );
        }
        expect(statuses).to.deep.equal([200, 200, 429]);
      } finally {
        open.forEach((r) => r.destroy());
        await app.close();
      }
    });
  });

  describe('cheat signals', () => {
    it('flags too many points per minute and repeated rate limiting; admins list and clear flags; writes go on', async () => {
      const app = await startInstance({
        SUSPICIOUS_POINTS_PER_MIN: '50',
        RATE_LIMIT_WRITES_PER_MIN: '4',
        RATE_LIMIT_FLAG_AFTER: '2',
      });
      try {
        const fast = uniqueUser('fast');
        expect((await write(app, fast, 30)).status).to.equal(201);
        expect((await write(app, fast, 30)).status).to.equal(201); // 60 > 50: flagged, not blocked
        expect((await write(app, fast, 1)).status).to.equal(201);
        const spammer = uniqueUser('spam');
        const statuses = [];
        for (let i = 0; i < 7; i++) statuses.push((await write(app, spammer)).status);
        expect(statuses.filter((s) => s === 429)).to.have.length(3);

        await addPoints(app, uniqueUser('warmup'), 1); // the admin must exist before listing
        await app.request.get('/api/v1/admin/flags').set('Authorization', `Bearer ${adminToken()}`);
        let flags: Array<{ userId: string; reason: string; count: number }> = [];
        await eventually(async () => {
          const res = await app.request
            .get('/api/v1/admin/flags')
            .set('Authorization', `Bearer ${adminToken()}`);
          flags = res.body.flags;
          return flags.some((f) => f.userId === fast) && flags.some((f) => f.userId === spammer);
        });
        expect(flags.find((f) => f.userId === fast)).to.include({ reason: 'points_rate' });
        expect(flags.find((f) => f.userId === spammer)).to.include({ reason: 'rate_limited' });

        expect(
          (await app.request.get('/api/v1/admin/flags').set('Authorization', `Bearer ${tokenFor(fast)}`))
            .status,
        ).to.equal(403);
        expect(
          (
            await app.request
              .delete(`/api/v1/admin/flags/${fast}`)
              .set('Authorization', `Bearer ${adminToken()}`)
          ).status,
        ).to.equal(204);
        expect(
          (
            await app.request
              .delete(`/api/v1/admin/flags/${fast}`)
              .set('Authorization', `Bearer ${adminToken()}`)
          ).status,
        ).to.equal(404);
        const after = await app.request
          .get('/api/v1/admin/flags')
          .set('Authorization', `Bearer ${adminToken()}`);
        expect(after.body.flags.some((f: { userId: string }) => f.userId === fast)).to.equal(false);
        const metrics = (await app.request.get('/metrics')).text;
        expect(sample(metrics, 'cheat_flags_total', { reason: 'points_rate' })).to.be.greaterThan(0);
      } finally {
        await app.close();
      }
    });
  });

  describe('health, readiness and metrics', () => {
    it('/healthz answers; /readyz fails while MySQL is unreachable and reports Redis as degraded', async () => {
      const mysql = await startTcpProxy({ host: '127.0.0.1', port: 3306 });
      const redis = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
      const app = await startInstance({
        DATABASE_URL: `mysql://root@127.0.0.1:${mysql.port}/${new URL(TEST_DATABASE_URL).pathname.slice(1)}`,
        REDIS_URL: `redis://127.0.0.1:${redis.port}/0`,
        DATABASE_TIMEOUT_MS: '500',
      });
      try {
        expect((await app.request.get('/healthz')).body).to.deep.equal({ status: 'ok' });
        // Redis answers through the proxy a moment after start on a loaded machine.
        await eventually(async () => (await app.request.get('/readyz')).body.redis === 'up', 5000);
        expect((await app.request.get('/readyz')).body).to.deep.include({
          status: 'ready',
          mysql: 'up',
          redis: 'up',
        });
        redis.cut();
        await eventually(async () => (await app.request.get('/readyz')).body.redis === 'degraded');
        const degraded = await app.request.get('/readyz');
        expect(degraded.status).to.equal(200);
        expect(degraded.body.status).to.equal('degraded');
        mysql.cut();
        // /readyz may reuse the last ping for READYZ_CACHE_MS (1000), then a dead MySQL costs DATABASE_TIMEOUT_MS.
        const t = Date.now();
        await eventually(async () => (await app.request.get('/readyz')).status === 503, 3000);
        expect(Date.now() - t).to.be.below(2500);
        const down = await app.request.get('/readyz');
        expect(down.status).to.equal(503);
        expect(down.body.mysql).to.equal('down');
        expect((await app.request.get('/healthz')).status).to.equal(200);
        mysql.heal();
        redis.heal();
        await eventually(async () => (await app.request.get('/readyz')).status === 200, 5000, 100);
      } finally {
        mysql.heal();
        redis.heal();
        await app.close();
        await mysql.close();
        await redis.close();
      }
    });

    it('/metrics is Prometheus text and moves when requests happen', async () => {
      const app = await startInstance();
      try {
        const before = (await app.request.get('/metrics')).text;
        expect((await app.request.get('/metrics')).headers['content-type']).to.match(/^text\/plain/);
        for (const name of [
          'process_cpu_seconds_total',
          'nodejs_heap_size_used_bytes',
          'sse_subscribers',
          'snapshot_age_seconds',
        ]) {
          expect(before, name).to.include(name);
        }
        const user = uniqueUser('metrics');
        await addToTop(app, user); // two applied deltas that change the top N
        await app.request
          .post('/api/v1/scores/update')
          .set('Authorization', `Bearer ${tokenFor(user)}`)
          .send({ scoreIncrement: 1, actionId: 'm1' });
        await app.request
          .post('/api/v1/scores/update')
          .set('Authorization', `Bearer ${tokenFor(user)}`)
          .send({ scoreIncrement: 1, actionId: 'm1' });
        await app.request
          .post('/api/v1/scores/update')
          .set('Authorization', `Bearer ${tokenFor(user)}`)
          .send({ scoreIncrement: 1, actionId: 'm1', extra: 1 });
        for (let i = 0; i < 5; i++) await app.request.get('/api/v1/scores/top');
        await new Promise((r) => setTimeout(r, 250));
        const after = (await app.request.get('/metrics')).text;
        const route = { route: '/api/v1/scores/top', status: '200' };
        expect(
          sample(after, 'http_request_duration_seconds_count', route) -
            sample(before, 'http_request_duration_seconds_count', route),
        ).to.equal(5);
        expect(
          sample(after, 'score_updates_total', { outcome: 'applied' }) -
            sample(before, 'score_updates_total', { outcome: 'applied' }),
        ).to.equal(3);
        expect(
          sample(after, 'score_updates_total', { outcome: 'replayed' }) -
            sample(before, 'score_updates_total', { outcome: 'replayed' }),
        ).to.equal(1);
        expect(
          sample(after, 'http_request_duration_seconds_count', {
            route: '/api/v1/scores/update',
            status: '400',
          }),
        ).to.be.greaterThan(0);
        expect(sample(after, 'snapshot_changes_total')).to.be.greaterThan(
          sample(before, 'snapshot_changes_total'),
        );
        for (const line of after.split('\n').filter((l) => l && !l.startsWith('#'))) {
          expect(line, 'a sample line').to.match(/^[a-zA-Z_:][\w:]*(\{.*\})? -?[\d.e+-]+|NaN|\+Inf$/);
        }
      } finally {
        await app.close();
      }
    });

    it('sends API security headers and RFC 9457 problems for unknown paths and wrong methods', async () => {
      const app = await startInstance({ CORS_ORIGINS: 'https://good.example' });
      try {
        const res = await app.request.get('/api/v1/scores/top').set('Origin', 'https://good.example');
        expect(res.headers['x-content-type-options']).to.equal('nosniff');
        expect(res.headers['content-security-policy']).to.include("frame-ancestors 'none'");
        expect(res.headers['access-control-allow-origin']).to.equal('https://good.example');
        expect(res.headers['access-control-expose-headers']).to.include('ETag');
        const evil = await app.request.get('/api/v1/scores/top').set('Origin', 'https://evil.example');
        expect(evil.headers['access-control-allow-origin']).to.equal(undefined);
        const missing = await app.request.get('/api/v1/nothing-here');
        expect(missing.status).to.equal(404);
        expect(missing.headers['content-type']).to.match(/problem\+json/);
        const wrong = await app.request.delete('/api/v1/scores/top');
        expect(wrong.status).to.equal(405);
        expect(wrong.headers.allow).to.include('GET');
        expect(wrong.headers['content-type']).to.match(/problem\+json/);
      } finally {
        await app.close();
      }
    });
  });

  describe('the process', () => {
    it('writes JSON log lines with request id, route, status, latency and user, never a token or secret', async () => {
      const server = await spawnServer({ LOG_LEVEL: 'info' });
      const user = uniqueUser('logged');
      const token = tokenFor(user);
      const res = await fetch(`${server.url}/api/v1/scores/update`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${token}`,
          'Content-Type': 'application/json',
          'X-Request-Id': 'trace-me-123',
        },
        body: JSON.stringify({ scoreIncrement: 2, actionId: 'secret-body-value' }),
      });
      expect(res.status).to.equal(201);
      expect(res.headers.get('x-request-id')).to.equal('trace-me-123');
      await fetch(`${server.url}/api/v1/scores/update`, {
        method: 'POST',
        headers: { Authorization: 'Bearer not.a.token' },
      });
      server.child.kill('SIGTERM');
      expect(await server.exited).to.equal(0);
      const lines = server.stdout.split('\n').filter(Boolean);
      const parsed = lines.map((l) => JSON.parse(l));
      const line = parsed.find((l) => l.requestId === 'trace-me-123' && l.msg === 'request');
      expect(line).to.include({ method: 'POST', route: '/api/v1/scores/update', status: 201, userId: user });
      expect(line.ms).to.be.a('number');
      for (const secret of [token, token.split('.')[2], TEST_SECRET, 'not.a.token', 'secret-body-value']) {
        expect(server.stdout).to.not.include(secret);
      }
    });

    it('finishes every request on SIGTERM under load (readiness fails first) and exits 0', async () => {
      const server = await spawnServer({ SHUTDOWN_DELAY_MS: '600' });
      const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
      const get = (path: string, init: RequestInit = {}) =>
        fetch(`${server.url}${path}`, { ...init, keepalive: true });
      let draining = false;
      const failures: string[] = [];
      let completed = 0;
      // A load balancer's view: stop sending new requests once readiness fails.
      const watcher = (async () => {
        while (!draining) {
          try {
            if ((await get('/readyz')).status === 503) draining = true;
          } catch {
            draining = true;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const users = Array.from({ length: 5 }, () => uniqueUser('term'));
      const worker = async (i: number) => {
        while (!draining) {
          try {
            const res =
              i % 2
                ? await get('/api/v1/scores/top')
                : await get('/api/v1/scores/update', {
                    method: 'POST',
                    headers: {
                      Authorization: `Bearer ${tokenFor(users[i % 5])}`,
                      'Content-Type': 'application/json',
                    },
                    body: '{"scoreIncrement":1}',
                  });
            if (res.status >= 500) failures.push(String(res.status));
            await res.arrayBuffer();
            completed++;
          } catch (err) {
            if (!draining) failures.push((err as Error).message);
          }
        }
      };
      const load = Array.from({ length: 10 }, (_, i) => worker(i));
      await new Promise((r) => setTimeout(r, 800));
      server.child.kill('SIGTERM');
      const code = await server.exited;
      draining = true;
      await Promise.all([watcher, ...load]);
      agent.destroy();
      expect(failures).to.deep.equal([]);
      expect(completed).to.be.greaterThan(50);
      expect(code, server.stderr).to.equal(0);
    });

    it('WORKERS=2 serves from two processes sharing the port and shuts down cleanly', async () => {
      const server = await spawnServer({ WORKERS: '2' });
      const children = () =>
        execFileSync('pgrep', ['-P', String(server.child.pid)], { encoding: 'utf8' })
          .trim()
          .split('\n')
          .filter(Boolean);
      await eventually(() => children().length === 2, 10_000, 100);
      const statuses = await Promise.all(
        Array.from({ length: 40 }, () => fetch(`${server.url}/api/v1/scores/top`).then((r) => r.status)),
      );
      expect(new Set(statuses)).to.deep.equal(new Set([200]));
      const user = uniqueUser('workers');
      const res = await fetch(`${server.url}/api/v1/scores/update`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${tokenFor(user)}`, 'Content-Type': 'application/json' },
        body: '{"scoreIncrement":9}',
      });
      expect(res.status).to.equal(201);
      const pids = children();
      server.child.kill('SIGTERM');
      expect(await server.exited, server.stderr).to.equal(0);
      for (const pid of pids) expect(() => process.kill(Number(pid), 0)).to.throw();
    });
  });
});

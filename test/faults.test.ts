import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { addToTop } from './helpers/api';
import { insertUser, mysqlScore, mysqlEvents } from './helpers/assertions';
import { deleteRunKeys, isolatedStore } from './helpers/database';
import { RUN_PREFIX, TEST_REDIS_URL, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { postDelta, startPollLoad, startWriteLoad, type WriteOutcome } from './helpers/load';
import { expectedTop, ledgerProblems, waitForMirror } from './helpers/mirror';
import { spawnServer } from './helpers/process';
import { openRawStream } from './helpers/sse';
import { startTcpProxy } from './helpers/tcp-proxy';
import { redisKeys } from '../src/leaderboard/ranking';

/**
 * Fault injection, one scenario per failure mode of the issue, each under load and each with its pass
 * criterion. Faults go through TCP proxies in front of the shared MySQL and Redis (never the servers themselves),
 * and every instance here mirrors into its own Redis key prefix, so "Redis equals MySQL" is checked as a whole.
 */

type Proxy = Awaited<ReturnType<typeof startTcpProxy>>;

/** The URL with its host and port replaced by the proxy's. */
function through(url: string, proxy: Proxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}

async function proxyFor(url: string, defaultPort: number): Promise<Proxy> {
  const u = new URL(url);
  return startTcpProxy({ host: u.hostname, port: Number(u.port || defaultPort) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const statuses = (outcomes: Array<{ status: number }>) => [...new Set(outcomes.map((o) => o.status))].sort();
const slowest = (outcomes: Array<{ ms: number }>) => Math.max(0, ...outcomes.map((o) => o.ms));

describe('fault injection', function () {
  this.timeout(60_000);
  // Tables and keys of its own: it needs an empty board, and no other suite sees its rows.
  const store = isolatedStore('faults');
  const start: typeof startInstance = (env = {}, hooks) =>
    startInstance({ DATABASE_URL: store.databaseUrl, REDIS_PREFIX: store.prefix, ...env }, hooks);
  const spawn = (env: Record<string, string> = {}) =>
    spawnServer({ DATABASE_URL: store.databaseUrl, REDIS_PREFIX: store.prefix, ...env });
  let db: Knex;
  let direct: Redis;
  before(async () => {
    // An empty board: several scenarios watch a user they put on top (addToTop) reach polls and streams.
    db = store.db;
    direct = new Redis(TEST_REDIS_URL);
  });
  after(async () => {
    direct.disconnect();
  });

  describe('Redis faults during a write load', () => {
    let proxy: Proxy;
    let app: Instance;
    const prefix = `${RUN_PREFIX}faults-redis:`;
    const users = Array.from({ length: 30 }, () => uniqueUser('rload'));

    before(async () => {
      proxy = await proxyFor(TEST_REDIS_URL, 6379);
      app = await start({
        REDIS_URL: through(TEST_REDIS_URL, proxy),
        REDIS_PREFIX: prefix,
        REDIS_TIMEOUT_MS: '200',
        MIRROR_SYNC_INTERVAL_MS: '200',
        // A short catch-up window, so recovering from a flush cannot lean on recent writes alone.
        MIRROR_SYNC_WINDOW_MS: '1000',
        SNAPSHOT_TICK_MS: '100',
        RATE_LIMIT_WRITES_PER_MIN: '400',
      });
      await eventually(() => app.services.mirror.isReady(), 5000);
      // Users last written a minute ago, whom nobody writes to during the scenarios: after a flush they must
      // come back too (the catch-up scan of recent changes alone would not bring them).
      for (const u of Array.from({ length: 5 }, () => uniqueUser('rdormant'))) {
        await insertUser(db, u);
        await db.raw(
          `INSERT INTO score_events (user_id, delta, score_after, actor_id, created_at) VALUES (?, 7, 7, ?, NOW(3) - INTERVAL 1 MINUTE)`,
          [u, u],
        );
        await db.raw(
          `INSERT INTO board_scores (board_id, window_name, cycle_start, user_id, score, reached_at, version, updated_at)
           VALUES ('global', 'all', '1970-01-01', ?, 7, NOW(6) - INTERVAL 1 MINUTE, 1, NOW(3) - INTERVAL 1 MINUTE)`,
          [u],
        );
      }
      await app.services.mirror.rebuild();
    });
    after(async () => {
      proxy.heal();
      await app.close();
      await proxy.close();
    });

    const faults: Array<[string, (p: Proxy) => Promise<void> | void]> = [
      ['refuses connections (cut)', (p) => p.cut()],
      ['accepts connections but never answers (black hole)', (p) => p.blackhole()],
      ['loses our keys (flushed)', () => deleteRunKeys(prefix)],
    ];
    for (const [label, inject] of faults) {
      it(`Redis ${label}: writes go on 201, polls and streams go on, then Redis equals MySQL within 10 s`, async () => {
        const stream = openRawStream(`${app.url}/api/v1/scores/stream`);
        await stream.ready;
        const writes = startWriteLoad(app.url, users, { label: `redis-${label.length}` });
        const polls = startPollLoad(app.url);
        await sleep(400);

        await inject(proxy);
        const outageStarted = Date.now();
        // A new leader during the outage: polls and the stream must show it although nobody can announce it.
        const leader = uniqueUser('rleader');
        await addToTop(app, leader);
        await eventually(
          async () => (await app.request.get('/api/v1/scores/top')).body[0]?.userId === leader,
          5000,
        );
        await eventually(() => stream.events().some((e) => JSON.parse(e.data)[0]?.userId === leader), 5000);
        // The limiter degrades to a per-instance memory limit: it still limits, and never hangs or fails.
        const spammer = uniqueUser('rspam');
        const limited: WriteOutcome[] = [];
        for (let i = 0; i < 405 && Date.now() - outageStarted < 3000; i++)
          limited.push(await postDelta(app.url, spammer, 1));
        await sleep(Math.max(0, 1500 - (Date.now() - outageStarted)));
        proxy.heal();
        await sleep(400);
        const written = await writes.stop();
        const polled = await polls.stop();

        expect(written.length).to.be.greaterThan(50);
        expect(statuses(written), JSON.stringify(written.find((w) => w.status !== 201))).to.deep.equal([201]);
        expect(slowest(written)).to.be.below(3000);
        expect(statuses(polled)).to.satisfy((s: number[]) => s.every((x) => x === 200 || x === 304));
        expect(slowest(polled)).to.be.below(500);
        expect(statuses(limited)).to.satisfy((s: number[]) => s.every((x) => x === 201 || x === 429));
        expect(slowest(limited)).to.be.below(3000);
        if (limited.length === 405) expect(limited.filter((l) => l.status === 429)).to.have.length.above(0);
        expect(stream.ended, 'the stream stayed open').to.equal(false);

        // Converged: every user's Redis score equals MySQL's, and the snapshot is MySQL's top N.
        const healed = Date.now();
        await waitForMirror(db, direct, prefix);
        expect(Date.now() - healed).to.be.below(10_000);
        const want = await expectedTop(db);
        await eventually(async () => (await app.request.get('/api/v1/scores/top')).text === want, 5000);
        const top = await app.request.get('/api/v1/scores/top');
        await eventually(() => stream.events().at(-1)?.id === top.headers.etag, 5000);
        expect(await ledgerProblems(db, [...users, leader, spammer])).to.deep.equal([]);
        stream.close();
      });
    }
  });

  describe('MySQL faults', () => {
    let proxy: Proxy;
    let app: Instance;
    const users = Array.from({ length: 20 }, () => uniqueUser('mload'));

    before(async () => {
      proxy = await proxyFor(store.databaseUrl, 3306);
      app = await start({
        DATABASE_URL: through(store.databaseUrl, proxy),
        DATABASE_TIMEOUT_MS: '500',
        RETRY_AFTER_S: '3',
        SNAPSHOT_TICK_MS: '100',
      });
    });
    after(async () => {
      proxy.heal();
      await app.close();
      await proxy.close();
    });

    const faults: Array<[string, (p: Proxy) => void]> = [
      ['refuses and resets connections (cut)', (p) => p.cut()],
      // No resetOpen() when healing: only the statement deadline (DATABASE_TIMEOUT_MS) can free those connections.
      ['accepts connections but never answers (black hole)', (p) => p.blackhole()],
    ];
    for (const [label, inject] of faults) {
      it(`MySQL ${label}: writes fail fast with 503, reads serve the last snapshot, writes resume, nothing partial`, async () => {
        const leader = uniqueUser('mleader');
        await addToTop(app, leader);
        await eventually(
          async () => (await app.request.get('/api/v1/scores/top')).body[0]?.userId === leader,
          5000,
        );
        const before = await app.request.get('/api/v1/scores/top');
        const stream = openRawStream(`${app.url}/api/v1/scores/stream`);
        await stream.ready;
        await eventually(() => stream.events().at(-1)?.id === before.headers.etag);
        const writes = startWriteLoad(app.url, users, { label: `mysql-${label.length}`, workers: 4 });
        await sleep(300);

        inject(proxy);
        await sleep(600); // requests in flight when the fault hit have had their deadline
        const duringStart = writes.outcomes.length;
        const ready = await app.request.get('/readyz');
        expect(ready.status).to.equal(503);
        expect(ready.body.mysql).to.equal('down');
        // Reads keep serving the last snapshot from memory: same bytes, same ETag, 304 on a match.
        const polled = await app.request.get('/api/v1/scores/top');
        expect(polled.status).to.equal(200);
        expect(polled.text).to.equal(before.text);
        expect(polled.headers.etag).to.equal(before.headers.etag);
        expect(
          (await app.request.get('/api/v1/scores/top').set('If-None-Match', before.headers.etag)).status,
        ).to.equal(304);
        const late = openRawStream(`${app.url}/api/v1/scores/stream`);
        expect((await late.ready).statusCode).to.equal(200);
        await eventually(() => late.events().length === 1);
        expect(late.events()[0]).to.include({ id: before.headers.etag, data: before.text });
        await sleep(1200);
        const during = writes.outcomes.slice(duringStart);
        expect(during.length).to.be.greaterThan(3);
        for (const w of during) {
          expect(w.status, JSON.stringify(w)).to.equal(503);
          expect(w.retryAfter).to.equal('3');
          expect(w.ms).to.be.below(2000);
          expect(w.body).to.include({ status: 503, title: 'Service Unavailable' });
        }
        expect(stream.ended, 'the open stream stayed open').to.equal(false);

        proxy.heal();
        await eventually(async () => (await postDelta(app.url, users[0], 1)).status === 201, 5000, 100);
        await sleep(300);
        const written = await writes.stop();
        expect(statuses(written)).to.satisfy((s: number[]) => s.every((x) => x === 201 || x === 503));
        expect(slowest(written)).to.be.below(2000);
        expect((await app.request.get('/readyz')).status).to.equal(200);

        // Nothing partial: every total is the sum of its events, every 201 is in MySQL with its score, and a
        // retry of each refused actionId applies it at most once (a COMMIT whose answer was lost replays).
        expect(await ledgerProblems(db, users)).to.deep.equal([]);
        for (const w of written.filter((x) => x.status === 201)) {
          const events = await mysqlEvents(db, w.userId);
          const e = events.find((x) => x.action_id === w.actionId);
          expect(e, w.actionId).to.not.equal(undefined);
          expect(e!.id).to.equal(w.body!.eventId);
          expect(e!.score_after).to.equal(w.body!.score);
        }
        const refused = written.filter((w) => w.status === 503);
        const retried = await Promise.all(
          refused.map((w) => postDelta(app.url, w.userId, w.delta, w.actionId)),
        );
        for (const [i, r] of retried.entries()) {
          expect([200, 201], JSON.stringify(r)).to.include(r.status);
          const events = (await mysqlEvents(db, r.userId)).filter((e) => e.action_id === r.actionId);
          expect(events.map((e) => [e.id, e.delta])).to.deep.equal([[r.body!.eventId, refused[i].delta]]);
        }
        expect(await ledgerProblems(db, users)).to.deep.equal([]);
        // The snapshot moves again.
        await addToTop(app, uniqueUser('mafter'));
        await eventually(
          async () => (await app.request.get('/api/v1/scores/top')).text === (await expectedTop(db)),
          2000,
        );
        stream.close();
        late.close();
      });
    }
  });

  describe('a late mirror write', () => {
    it('never moves a Redis score backwards (an older commit mirrored after a newer one is ignored)', async () => {
      const prefix = `${RUN_PREFIX}faults-late:`;
      const user = uniqueUser('late');
      let firstCommit: () => void = () => {};
      const committed = new Promise<void>((r) => (firstCommit = r));
      let delayed = false;
      // Instance A stalls between its first commit and that commit's mirror write (a GC pause, a slow
      // network), long enough for B to commit and mirror a newer total. The catch-up loop is slowed down so
      // that only the version check can keep Redis from going back.
      const env = { REDIS_PREFIX: prefix, MIRROR_SYNC_INTERVAL_MS: '60000' };
      const a = await start(env, {
        afterCommit: async () => {
          if (delayed) return;
          delayed = true;
          firstCommit();
          await sleep(400);
        },
      });
      const b = await start(env);
      try {
        await eventually(() => a.services.mirror.isReady() && b.services.mirror.isReady(), 5000);
        const seen: string[] = [];
        let watching = true;
        const watcher = (async () => {
          while (watching) {
            const s = await direct.zscore(redisKeys(prefix).scores, user);
            if (s !== null && s !== seen.at(-1)) seen.push(s);
            await sleep(2);
          }
        })();
        const slow = postDelta(a.url, user, 1);
        await committed;
        expect((await postDelta(b.url, user, 1)).status).to.equal(201);
        expect((await slow).status).to.equal(201);
        await sleep(50);
        watching = false;
        await watcher;
        expect(seen, 'the mirrored score over time').to.deep.equal(['2']);
        expect(await direct.zscore(redisKeys(prefix).scores, user)).to.equal('2');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });

  describe('a late snapshot announcement', () => {
    it('is ignored: an instance never goes back to an older snapshot, in polls or on its streams', async () => {
      const prefix = `${RUN_PREFIX}faults-stale:`;
      const app = await start({ REDIS_PREFIX: prefix, SNAPSHOT_TICK_MS: '50' });
      const stream = openRawStream(`${app.url}/api/v1/scores/stream`);
      try {
        await stream.ready;
        const shared = async () => (await direct.get(redisKeys(prefix).snapshot)) ?? '';
        await addToTop(app, uniqueUser('stale'));
        await eventually(async () => (await shared()).includes('stale'), 5000);
        const old = await shared();
        const newest = uniqueUser('fresh');
        await addToTop(app, newest);
        await eventually(
          async () => (await app.request.get('/api/v1/scores/top')).body[0]?.userId === newest,
        );
        const current = await app.request.get('/api/v1/scores/top');
        await eventually(() => stream.events().at(-1)?.id === current.headers.etag);
        const sent = stream.events().length;

        // The older snapshot arrives late on the channel (a slow or out-of-order publisher somewhere).
        // Redis 7: the board's shard channel, which the instance listens on (so the message does reach it).
        const receivers = await direct.spublish(redisKeys(prefix).boardChannel('global'), old);
        expect(receivers, 'subscribers of the channel').to.be.at.least(1);
        await sleep(300);
        const after = await app.request.get('/api/v1/scores/top');
        expect(after.headers.etag).to.equal(current.headers.etag);
        expect(after.text).to.equal(current.text);
        expect(stream.events().length, 'nothing was sent to subscribers').to.equal(sent);
      } finally {
        stream.close();
        await app.close();
      }
    });
  });

  describe('the process', () => {
    it('killed with SIGKILL between commit and mirror: MySQL has the write; a surviving instance, or a restart, brings Redis back', async function () {
      this.timeout(60_000);
      const prefix = `${RUN_PREFIX}faults-crash:`;
      const user = uniqueUser('crash');
      const first = await start({ REDIS_PREFIX: prefix });
      try {
        await eventually(() => first.services.mirror.isReady(), 5000);
        expect((await postDelta(first.url, user, 5)).status).to.equal(201);
      } finally {
        await first.close();
      }
      expect(await direct.zscore(redisKeys(prefix).scores, user)).to.equal('5');

      /** One write through a server that dies right after committing it; returns once it is dead. */
      async function crashAfterCommit(delta: number, actionId: string) {
        const doomed = await spawn({ REDIS_PREFIX: prefix, TEST_CRASH_AFTER_COMMIT: '1' });
        const lost = await postDelta(doomed.url, user, delta, actionId);
        expect(lost.status, 'no answer: the process died').to.equal(0);
        await doomed.exited;
        expect(doomed.child.signalCode).to.equal('SIGKILL');
      }

      // Alone: committed, not mirrored, exactly the gap a crash at that moment leaves, until a restart.
      await crashAfterCommit(3, 'crash-1');
      expect(await mysqlScore(db, user)).to.equal('8');
      expect(await direct.zscore(redisKeys(prefix).scores, user)).to.equal('5');
      const restarted = await spawn({ REDIS_PREFIX: prefix });
      try {
        await eventually(
          async () => (await direct.zscore(redisKeys(prefix).scores, user)) === '8',
          10_000,
          100,
        );
        await waitForMirror(db, direct, prefix);
        // The client's retry of the unanswered request is recognised, not applied again.
        const retry = await postDelta(restarted.url, user, 3, 'crash-1');
        expect(retry.status).to.equal(200);
        expect(retry.body).to.include({ score: 8 });
        expect(await mysqlScore(db, user)).to.equal('8');

        // Beside a running instance: its catch-up loop repairs Redis within 10 s, no restart needed.
        await crashAfterCommit(4, 'crash-2');
        expect(await mysqlScore(db, user)).to.equal('12');
        await eventually(
          async () => (await direct.zscore(redisKeys(prefix).scores, user)) === '12',
          10_000,
          100,
        );
      } finally {
        restarted.child.kill('SIGTERM');
        expect(await restarted.exited, restarted.stderr).to.equal(0);
      }
    });

    it('SIGTERM under load with 1,000 subscribers: no failed request, every stream ends cleanly, exit 0', async function () {
      this.timeout(60_000);
      const server = await spawn({ SHUTDOWN_DELAY_MS: '500' });
      const streams = Array.from({ length: 1000 }, () => openRawStream(`${server.url}/api/v1/scores/stream`));
      await Promise.all(streams.map((s) => s.ready));
      await eventually(() => streams.every((s) => s.events().length === 1), 10_000);

      // A load balancer's view: it stops sending once readiness fails; until then nothing may fail.
      let draining = false;
      const failures: string[] = [];
      let completed = 0;
      const watcher = (async () => {
        while (!draining) {
          const res = await fetch(`${server.url}/readyz`).catch(() => undefined);
          if (res?.status !== 200) draining = true;
          await res?.arrayBuffer();
          await sleep(50);
        }
      })();
      const users = Array.from({ length: 5 }, () => uniqueUser('term'));
      const worker = async (i: number) => {
        while (!draining) {
          try {
            const out =
              i % 2
                ? await fetch(`${server.url}/api/v1/scores/top`).then(async (r) => {
                    await r.arrayBuffer();
                    return { status: r.status };
                  })
                : await postDelta(server.url, users[i % users.length], 1);
            if (out.status === 0) {
              // Refused after the listener closed: a load balancer would not have sent it (readiness failed).
              if (!draining) failures.push((out as WriteOutcome).error ?? 'no answer');
            } else {
              completed++;
              if (out.status !== 200 && out.status !== 201) failures.push(String(out.status));
            }
          } catch (err) {
            if (!draining) failures.push((err as Error).message);
          }
        }
      };
      const load = Array.from({ length: 8 }, (_, i) => worker(i));
      await sleep(800);
      server.child.kill('SIGTERM');
      const code = await server.exited;
      draining = true;
      await Promise.all([watcher, ...load]);
      expect(failures).to.deep.equal([]);
      expect(completed).to.be.greaterThan(50);
      expect(code, server.stderr).to.equal(0);
      for (const s of streams) {
        await eventually(() => s.ended, 2000);
        expect(s.endedCleanly, 'ended by the server, not reset').to.equal(true);
        expect(s.blocks().at(-1)?.retry, 'a final retry hint').to.be.a('number');
      }
    });
  });
});

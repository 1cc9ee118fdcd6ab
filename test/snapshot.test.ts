import { Redis } from 'ioredis';
import { expect } from 'chai';
import { deleteRunKeys, isolatedStore } from './helpers/database';
import { addPoints } from './helpers/api';
import { ensureAdmin } from './helpers/assertions';
import { TEST_REDIS_URL, tokenFor, uniqueUser } from './helpers/env';
import { countQueries, eventually, startInstance, type Instance } from './helpers/instance';
import { startTcpProxy } from './helpers/tcp-proxy';
import { redisKeys } from '../src/leaderboard/ranking';
import { markRedisFailure } from '../src/platform/redis';

const ADMIN = 'snap-admin';
const admin = () => tokenFor(ADMIN, { name: 'Snapshot Admin' });

const add = addPoints;

/** A player's first point, then an admin's bonus: puts a fresh user far above everyone else. */
async function addLots(app: Instance, userId: string, total: number, name?: string) {
  await add(app, userId, 1, name);
  const res = await app.request
    .post('/api/v1/scores/update')
    .set('Authorization', `Bearer ${admin()}`)
    .send({ userId, scoreIncrement: total - 1 });
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
}

const top = async (app: Instance) => {
  const res = await app.request.get('/api/v1/scores/top');
  expect(res.status).to.equal(200);
  return {
    etag: res.headers.etag as string,
    body: res.body as Array<{ rank: number; userId: string; score: number }>,
  };
};

describe('top-N snapshot', function () {
  this.timeout(30_000);
  // Tables and keys of its own: the tie and flush checks need an empty board, seen by no other suite.
  const store = isolatedStore('snapshot');
  const start: typeof startInstance = (env = {}, hooks) => startInstance({ ...store.env, ...env }, hooks);
  let a: Instance;
  let b: Instance;
  const fast = { SNAPSHOT_TICK_MS: '100', MIRROR_SYNC_INTERVAL_MS: '200' };

  before(async () => {
    a = await start(fast);
    b = await start(fast);
    await ensureAdmin(a.db, ADMIN, 'Snapshot Admin'); // admins exist only in the database
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  it('serves the top N with a strong ETag, no-cache and X-Poll-Interval, and HEAD', async () => {
    await add(a, uniqueUser('head'), 5);
    const res = await a.request.get('/api/scores/top');
    expect(res.headers.etag).to.match(/^"[A-Za-z0-9_-]+"$/);
    // Shared caches may keep it POLL_SHARED_MAX_AGE_S (1 s by default); browsers revalidate every poll.
    expect(res.headers['cache-control']).to.equal('public, max-age=0, s-maxage=1, stale-while-revalidate=1');
    expect(res.headers['x-poll-interval']).to.equal('5');
    expect(res.headers['content-type']).to.match(/^application\/json/);
    const head = await a.request.head('/api/v1/scores/top');
    expect(head.status).to.equal(200);
    expect(head.headers.etag).to.equal(res.headers.etag);
    expect(head.text ?? '').to.equal('');
  });

  it('POLL_SHARED_MAX_AGE_S=0 keeps every cache revalidating (no-cache), and any value is in s-maxage', async () => {
    for (const [value, header] of [
      ['0', 'no-cache'],
      ['5', 'public, max-age=0, s-maxage=5, stale-while-revalidate=5'],
    ]) {
      const c = await start({ POLL_SHARED_MAX_AGE_S: value });
      try {
        for (const path of ['/api/v1/scores/top', '/api/v1/boards/global/top?window=day']) {
          const res = await c.request.get(path);
          expect(res.headers['cache-control'], `${value} ${path}`).to.equal(header);
          const again = await c.request.get(path).set('If-None-Match', res.headers.etag);
          expect(again.status).to.equal(304);
          expect(again.headers['cache-control']).to.equal(header);
        }
      } finally {
        await c.close();
      }
    }
  });

  it('answers If-None-Match per RFC 9110: exact, weak, lists and *', async () => {
    const { etag } = await top(a);
    for (const header of [etag, `W/${etag}`, `"nope", ${etag}`, `W/"x" , W/${etag}`, '*']) {
      const res = await a.request.get('/api/v1/scores/top').set('If-None-Match', header);
      expect(res.status, header).to.equal(304);
      expect(res.text ?? '').to.equal('');
      expect(res.headers.etag).to.equal(etag);
      expect(res.headers['cache-control']).to.equal(
        'public, max-age=0, s-maxage=1, stale-while-revalidate=1',
      );
      expect(res.headers['x-poll-interval']).to.equal('5');
    }
    for (const header of ['"nope"', 'W/"nope", "other"', etag.slice(1, -1)]) {
      const res = await a.request.get('/api/v1/scores/top').set('If-None-Match', header);
      expect(res.status, header).to.equal(200);
    }
  });

  it('a write through one instance changes the ETag on both within a tick, and both agree', async () => {
    const before = await top(b);
    const writeDone = Date.now();
    await add(a, uniqueUser('cross'), 999);
    await eventually(async () => (await top(b)).etag !== before.etag, 1000, 10);
    const lag = Date.now() - writeDone;
    expect(lag).to.be.below(1000);
    await eventually(async () => (await top(a)).etag === (await top(b)).etag, 1000, 10);
    expect((await top(a)).body).to.deep.equal((await top(b)).body);
  });

  it('never goes back to an older snapshot under writers on both instances', async () => {
    const users = [uniqueUser('mono'), uniqueUser('mono'), uniqueUser('mono')];
    const seen: Record<string, Array<[number, number]>> = { a: [], b: [] };
    let writing = true;
    const watch = async (name: 'a' | 'b', inst: Instance) => {
      while (writing) {
        const s = inst.services.boards.global().snapshot.current();
        seen[name].push([s.maxEventId, s.readAtUs]);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const watchers = [watch('a', a), watch('b', b)];
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 60; i++) writes.push(add(i % 2 ? a : b, users[i % 3], 1 + (i % 7)));
    await Promise.all(writes);
    await new Promise((r) => setTimeout(r, 400));
    writing = false;
    await Promise.all(watchers);
    for (const name of ['a', 'b']) {
      const seq = seen[name];
      expect(seq.length).to.be.greaterThan(10);
      for (let i = 1; i < seq.length; i++) {
        const [pe, pt] = seq[i - 1];
        const [e, t] = seq[i];
        expect(e > pe || (e === pe && t >= pt), `${name} went back at ${i}`).to.equal(true);
      }
    }
    expect(a.services.boards.global().snapshot.current().etag).to.equal(
      b.services.boards.global().snapshot.current().etag,
    );
  });

  it('orders ties by earlier reach time and gives competition ranks', async () => {
    // Start from empty tables and an empty mirror (users are never deleted in production; here they are).
    await store.reset();
    await ensureAdmin(a.db, ADMIN, 'Snapshot Admin');
    await eventually(() => a.services.mirror.isReady() && b.services.mirror.isReady());
    const [p, q, r, s] = ['tie-p', 'tie-q', 'tie-r', 'tie-s'];
    await add(a, s, 10); // reaches 10 first
    await add(a, p, 20);
    await add(a, q, 10);
    await add(a, r, 10);
    await eventually(async () => (await top(a)).body.length === 4);
    const { body } = await top(a);
    expect(body.map((e) => [e.rank, e.userId, e.score])).to.deep.equal([
      [1, p, 20],
      [2, s, 10],
      [2, q, 10],
      [2, r, 10],
    ]);
    await add(a, r, 11); // r: 21, now first
    await eventually(async () => (await top(a)).body[0].userId === r);
    expect((await top(a)).body.map((e) => e.rank)).to.deep.equal([1, 2, 3, 3]);
    const me = await a.request.get(`/api/v1/scores/users/${q}`);
    expect(me.body).to.deep.include({ userId: q, score: 10, rank: 3 });
  });

  it('runs zero SQL queries and zero Redis commands for 1,000 polls in steady state', async () => {
    const quiet = await start({ MIRROR_SYNC_INTERVAL_MS: '600000' });
    try {
      await add(quiet, uniqueUser('steady'), 1);
      // Let the write's rebuilds settle: at once, or within a second for a commit judged unable to change the
      // top N (engine.ts, SAFETY_REBUILD_MS). Steady means a whole 1.2 s without a query.
      let recent: string[] = [];
      const onQuery = (q: { sql: string }) => recent.push(q.sql.replace(/\s+/g, ' ').slice(0, 100));
      quiet.db.on('query', onQuery);
      await eventually(
        async () => {
          recent = [];
          await new Promise((r) => setTimeout(r, 1200));
          return recent.length === 0;
        },
        20_000,
        0,
      ).catch((err: Error) => {
        const feed = quiet.services.boards.global().snapshot;
        throw new Error(
          `${err.message}: still querying (${recent.join(' | ')}); pub/sub ${quiet.services.boards.pubsub()}, ` +
            `redis ${quiet.redis.status}, snapshot age ${feed.age()} ms`,
        );
      });
      quiet.db.off('query', onQuery);
      let redisCommands = 0;
      const client = quiet.redis as Redis;
      const send = client.sendCommand.bind(client);
      client.sendCommand = ((...args: Parameters<typeof send>) => {
        redisCommands++;
        return send(...args);
      }) as typeof send;
      const { etag } = await top(quiet);
      const queries = await countQueries(quiet.db, async () => {
        for (let i = 0; i < 1000; i++) {
          const res = await quiet.request
            .get('/api/v1/scores/top')
            .set('If-None-Match', i % 2 ? etag : '"x"');
          expect(res.status).to.equal(i % 2 ? 304 : 200);
        }
      });
      expect(queries).to.equal(0);
      expect(redisCommands).to.equal(0);
    } finally {
      await quiet.close();
    }
  });

  it('bans take a user out of the top N and rank answers within a tick; unbanning brings them back', async () => {
    const cheater = uniqueUser('cheat');
    await addLots(a, cheater, 100_000);
    await eventually(async () => (await top(b)).body[0]?.userId === cheater);
    const ban = await a.request
      .patch(`/api/v1/users/${cheater}`)
      .set('Authorization', `Bearer ${admin()}`)
      .send({ status: 'banned' });
    expect(ban.status).to.equal(200);
    expect(ban.body).to.include({ userId: cheater, status: 'banned' });
    await eventually(async () => !(await top(b)).body.some((e) => e.userId === cheater), 1000, 10);
    expect((await b.request.get(`/api/v1/scores/users/${cheater}`)).status).to.equal(404);
    // a banned player cannot score
    const blocked = await a.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${tokenFor(cheater)}`)
      .send({ scoreIncrement: 1 });
    expect(blocked.status).to.equal(403);

    await a.request
      .patch(`/api/v1/users/${cheater}`)
      .set('Authorization', `Bearer ${admin()}`)
      .send({ status: 'active' });
    await eventually(async () => (await top(b)).body[0]?.userId === cheater, 1000, 10);
    expect((await b.request.get(`/api/v1/scores/users/${cheater}`)).body).to.include({
      rank: 1,
      score: 100_000,
    });
  });

  it('PATCH is admin-only, validates its body and renames show up in the top N', async () => {
    const player = uniqueUser('rename');
    await addLots(a, player, 200_000, 'Old Name');
    const asPlayer = await a.request
      .patch(`/api/v1/users/${player}`)
      .set('Authorization', `Bearer ${tokenFor(player)}`)
      .send({ displayName: 'Hacker' });
    expect(asPlayer.status).to.equal(403);
    for (const body of [{}, { status: 'deleted' }, { role: 'root' }, { displayName: '' }, { score: 5 }]) {
      const res = await a.request
        .patch(`/api/v1/users/${player}`)
        .set('Authorization', `Bearer ${admin()}`)
        .send(body);
      expect(res.status, JSON.stringify(body)).to.equal(400);
    }
    const missing = await a.request
      .patch('/api/v1/users/nobody-here')
      .set('Authorization', `Bearer ${admin()}`)
      .send({ displayName: 'X' });
    expect(missing.status).to.equal(404);
    const renamed = await a.request
      .patch(`/api/v1/users/${player}`)
      .set('Authorization', `Bearer ${admin()}`)
      .send({ displayName: 'New Name' });
    expect(renamed.status).to.equal(200);
    await eventually(async () =>
      (await top(b)).body.some(
        (e) => e.userId === player && (e as { displayName?: string }).displayName === 'New Name',
      ),
    );
    expect((await b.request.get(`/api/v1/scores/users/${player}`)).body.displayName).to.equal('New Name');
  });

  it('pages a user history newest first, for that user or an admin only', async () => {
    const user = uniqueUser('hist');
    for (let i = 1; i <= 5; i++) await add(a, user, i);
    const auth = `Bearer ${tokenFor(user)}`;
    const first = await a.request
      .get(`/api/v1/scores/users/${user}/events?limit=2`)
      .set('Authorization', auth);
    expect(first.status).to.equal(200);
    expect(first.body.events.map((e: { scoreIncrement: number }) => e.scoreIncrement)).to.deep.equal([5, 4]);
    const second = await a.request
      .get(`/api/v1/scores/users/${user}/events?limit=2&before=${first.body.nextBefore}`)
      .set('Authorization', auth);
    expect(second.body.events.map((e: { scoreIncrement: number }) => e.scoreIncrement)).to.deep.equal([3, 2]);
    const last = await a.request
      .get(`/api/v1/scores/users/${user}/events?limit=2&before=${second.body.nextBefore}`)
      .set('Authorization', auth);
    expect(last.body.events).to.have.length(1);
    expect(last.body.nextBefore).to.equal(null);
    expect(last.body.events[0]).to.include({ scoreIncrement: 1, score: 1, actorId: user });
    const other = await a.request
      .get(`/api/v1/scores/users/${user}/events`)
      .set('Authorization', `Bearer ${tokenFor(uniqueUser())}`);
    expect(other.status).to.equal(403);
    const asAdmin = await a.request
      .get(`/api/v1/scores/users/${user}/events`)
      .set('Authorization', `Bearer ${admin()}`);
    expect(asAdmin.body.events).to.have.length(5);
    for (const q of ['limit=0', 'limit=201', 'limit=abc', 'before=-1', 'foo=1']) {
      const bad = await a.request.get(`/api/v1/scores/users/${user}/events?${q}`).set('Authorization', auth);
      expect(bad.status, q).to.equal(400);
    }
    expect((await a.request.get(`/api/v1/scores/users/${user}/events`)).status).to.equal(401);
  });

  it('after our Redis keys are flushed the mirror and snapshot come back from MySQL; polls never fail', async () => {
    const user = uniqueUser('flush');
    await addLots(a, user, 1_000_000);
    await eventually(async () => (await top(a)).body[0]?.userId === user);
    const expected = await top(a);
    let polling = true;
    const failures: number[] = [];
    const poller = (async () => {
      while (polling) {
        const res = await b.request.get('/api/v1/scores/top');
        if (res.status !== 200) failures.push(res.status);
      }
    })();
    await deleteRunKeys(store.prefix);
    await eventually(
      async () => (await a.redis.zscore(redisKeys(store.prefix).scores, user)) === '1000000',
      5000,
    );
    await add(b, user, 1);
    await eventually(async () => (await a.redis.exists(redisKeys(store.prefix).snapshot)) === 1, 2000);
    polling = false;
    await poller;
    expect(failures).to.deep.equal([]);
    expect((await top(a)).body[0]).to.include({ userId: user, score: 1_000_001 });
    expect((await top(b)).etag).to.not.equal(expected.etag);
    expect((await a.request.get(`/api/v1/scores/users/${user}`)).body).to.include({
      rank: 1,
      score: 1_000_001,
    });
  });

  it('with Redis unreachable, polls keep working and a write on one instance reaches the other', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
    const env = { ...fast, REDIS_URL: `redis://127.0.0.1:${proxy.port}/0` };
    const c = await start(env);
    const d = await start(env);
    try {
      const user = uniqueUser('outage');
      proxy.cut();
      await new Promise((r) => setTimeout(r, 200));
      const before = await top(d);
      const res = await c.request
        .post('/api/v1/scores/update')
        .set('Authorization', `Bearer ${tokenFor(user)}`)
        .send({ scoreIncrement: 1000 });
      expect(res.status).to.equal(201);
      expect(res.body.rank).to.be.a('number');
      await eventually(async () => (await top(d)).etag !== before.etag, 2000, 20);
      expect((await top(d)).body.some((e) => e.userId === user)).to.equal(true);
      const standing = await d.request.get(`/api/v1/scores/users/${user}`);
      expect(standing.status).to.equal(200);
      expect(standing.body.score).to.equal(1000);
    } finally {
      proxy.heal();
      await c.close();
      await d.close();
      await proxy.close();
    }
  });
  it('REDIS_SHARDED_PUBSUB=off: notices go over classic pub/sub on the board channel and reach the other instance', async () => {
    const prefix = `${store.prefix}classic:`;
    const env = { ...fast, REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: prefix, REDIS_SHARDED_PUBSUB: 'off' };
    const [c, d] = [await start(env), await start(env)];
    const direct = new Redis(TEST_REDIS_URL);
    try {
      const channel = redisKeys(prefix).boardChannel('global');
      await eventually(async () => ((await direct.pubsub('NUMSUB', channel)) as [string, number])[1] === 2);
      expect(await direct.pubsub('SHARDCHANNELS', `${prefix}*`)).to.deep.equal([]);
      const before = await top(d);
      await addLots(c, uniqueUser('classic'), 1e9);
      await eventually(async () => (await top(d)).etag !== before.etag, 2000, 10);
      expect((await top(d)).etag).to.equal((await top(c)).etag);
    } finally {
      direct.disconnect();
      await Promise.all([c.close(), d.close()]);
    }
  });

  it('a snapshot built while its Redis blipped is shared once Redis is back: the other instance gets it', async () => {
    // Found by the history check: the other instance listens for announcements and does not ask MySQL, so a
    // snapshot that was never shared left it on the older top until the next commit.
    const before = await top(b);
    const blip = setInterval(() => markRedisFailure(a.redis), 50); // a's commands look failed for ~1.2 s
    markRedisFailure(a.redis);
    try {
      await addLots(a, uniqueUser('blip'), 1e9);
      await eventually(async () => (await top(a)).etag !== before.etag, 1000, 10);
    } finally {
      setTimeout(() => clearInterval(blip), 200);
    }
    await eventually(async () => (await top(b)).etag === (await top(a)).etag, 4000, 20);
  });
});

describe('top-N snapshot: commits that cannot change it', function () {
  this.timeout(30_000);
  const store = isolatedStore('snapshot-skip');
  let app: Instance;
  before(async () => {
    app = await startInstance({ ...store.env, SNAPSHOT_TICK_MS: '100', MIRROR_SYNC_INTERVAL_MS: '200' });
    await ensureAdmin(app.db, ADMIN, 'Snapshot Admin');
  });
  after(() => app.close());

  it('a commit that cannot change a full top N rebuilds nothing at once, and is re-checked within a second', async () => {
    // A full top N of big scores, then small writes by users outside it.
    for (let i = 0; i < 10; i++) await addLots(app, uniqueUser('topfull'), 1e9 + i);
    await eventually(
      async () => (await top(app)).body.length === 10 && (await top(app)).body.at(-1)!.score >= 1e9,
      3000,
    );
    await new Promise((r) => setTimeout(r, 1200)); // past any safety rebuild of the writes above
    const rebuilds: number[] = [];
    const onQuery = (q: { sql: string }) =>
      q.sql.includes('AS max_id') && q.sql.includes('LIMIT') && rebuilds.push(Date.now());
    app.db.on('query', onQuery);
    try {
      const before = await top(app);
      const small = uniqueUser('small');
      const wroteAt = Date.now();
      await add(app, small, 3);
      await new Promise((r) => setTimeout(r, 400));
      expect(rebuilds, 'no rebuild for a commit below the top N').to.deep.equal([]);
      await eventually(() => rebuilds.length > 0, 2500, 20);
      expect(rebuilds[0] - wroteAt, 'the safety rebuild comes within a second or so').to.be.within(900, 2000);
      expect((await top(app)).etag).to.equal(before.etag);
      // A commit by a user in the top N rebuilds at once.
      rebuilds.length = 0;
      const leader = before.body[0].userId;
      const res = await app.request
        .post('/api/v1/scores/update')
        .set('Authorization', `Bearer ${admin()}`)
        .send({ userId: leader, scoreIncrement: 1 });
      expect(res.status).to.equal(201);
      await eventually(() => rebuilds.length > 0, 300, 5);
      await eventually(async () => (await top(app)).body[0].score === before.body[0].score + 1, 1000);
    } finally {
      app.db.off('query', onQuery);
    }
  });
});

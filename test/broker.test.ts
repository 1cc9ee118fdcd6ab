import { expect } from 'chai';
import { isolatedStore } from './helpers/database';
import { adminToken } from './helpers/api';
import { insertUser } from './helpers/assertions';
import { uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { spawnServer } from './helpers/process';
import { rabbitNames, testRabbit, TEST_AMQP_URL } from './helpers/rabbit';
import { startTcpProxy } from './helpers/tcp-proxy';
import { redisKeys } from '../src/leaderboard/ranking';
import { contiguous } from '../src/broker/relay';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RabbitMQ in and out, against the real broker, with queues and exchanges of the test's own. */
describe('message broker (RabbitMQ)', function () {
  this.timeout(90_000);
  const store = isolatedStore('broker');
  const names = rabbitNames('broker');
  const rabbit = testRabbit();
  const env = (extra: Record<string, string> = {}) => ({
    ...store.env,
    AMQP_URL: TEST_AMQP_URL,
    AMQP_DELTAS_QUEUE: names.queue,
    AMQP_RETRY_MAX_MS: '500',
    SNAPSHOT_TICK_MS: '100',
    MIRROR_SYNC_INTERVAL_MS: '200',
    ...extra,
  });
  let a: Instance;
  let b: Instance;

  before(async () => {
    [a, b] = await Promise.all([startInstance(env()), startInstance(env())]);
    await eventually(() => a.services.brokerStatus()?.connected === true, 10_000);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    for (const queue of [`${names.queue}.unused`, `${names.queue}.unused.dead`])
      await rabbit.connection.queueDelete({ queue }).catch(() => {});
    for (const exchange of [`${names.queue}.unused.dead-letter`, `${names.exchange}.gap`])
      await rabbit.connection.exchangeDelete({ exchange }).catch(() => {});
    await rabbit.cleanup(names);
  });

  it('the relay publishes only contiguous ids: it waits at a gap until it fills or times out', () => {
    const row = (id: number, agoMs: number) => ({ id, created_at: new Date(10_000 - agoMs) });
    const ids = (rows: Array<{ id: number }>) => rows.map((r) => r.id);
    expect(ids(contiguous([row(11, 0), row(12, 0)], 10, 10_000, 1000))).to.deep.equal([11, 12]);
    expect(ids(contiguous([row(11, 0), row(13, 0), row(14, 0)], 10, 10_000, 1000))).to.deep.equal([11]);
    expect(ids(contiguous([row(13, 0)], 10, 10_000, 1000))).to.deep.equal([]);
    expect(ids(contiguous([row(11, 0), row(13, 2000), row(15, 10)], 10, 10_000, 1000))).to.deep.equal([
      11, 13,
    ]);
  });

  it('never skips an event committed after a later one: the relay waits for it, and passes a rolled-back id', async () => {
    const exchange = `${names.exchange}.gap`;
    const events = rabbit.collect(`${exchange}.probe`, { exchange, routingKey: 'score.#' });
    await events.ready;
    const relay = await startInstance(
      env({ AMQP_EVENTS_EXCHANGE: exchange, RELAY_INTERVAL_MS: '50', RELAY_GAP_TIMEOUT_MS: '1500' }),
    );
    try {
      const [[{ head }]] = await store.db.raw('SELECT COALESCE(MAX(id), 0) AS head FROM score_events');
      await eventually(() => new Set(events.seen.map((m) => m.messageId)).size >= Number(head), 20_000, 100);
      const seenIds = () => events.seen.map((m) => Number(m.messageId));
      const early = uniqueUser('gap-early');
      const late = uniqueUser('gap-late');
      await insertUser(store.db, early);
      await insertUser(store.db, late);
      const post = (u: string) =>
        a.request
          .post('/api/v1/scores/update')
          .set('Authorization', `Bearer ${adminToken()}`)
          .send({ userId: u, scoreIncrement: 1 });
      // An event whose transaction stays open takes its id first; a later one commits before it.
      const open = await store.db.transaction();
      const [inserted] = await open.raw(
        "INSERT INTO score_events (user_id, board_id, delta, score_after, actor_id) VALUES (?, 'global', 1, 1, ?)",
        [early, early],
      );
      const earlyId = Number(inserted.insertId);
      const after = await post(late);
      expect(after.status).to.equal(201);
      expect(after.body.eventId).to.be.above(earlyId);
      await sleep(800);
      expect(seenIds()).to.not.include(after.body.eventId); // waiting at the gap
      await open.commit();
      await eventually(() => seenIds().includes(after.body.eventId), 5000, 50);
      expect(seenIds().indexOf(earlyId)).to.be.within(0, seenIds().indexOf(after.body.eventId) - 1);
      // A rolled-back id never fills: after RELAY_GAP_TIMEOUT_MS the relay goes past it.
      const doomed = await store.db.transaction();
      await doomed.raw(
        "INSERT INTO score_events (user_id, board_id, delta, score_after, actor_id) VALUES (?, 'global', 1, 1, ?)",
        [early, early],
      );
      const next = await post(late);
      await doomed.rollback();
      await eventually(() => seenIds().includes(next.body.eventId), 6000, 50);
    } finally {
      await relay.close();
      await events.close();
    }
  });

  /** Totals per user from MySQL's global/all rows. */
  async function totals(users: string[]): Promise<Map<string, number>> {
    const [rows] = await store.db.raw(
      `SELECT user_id, score FROM board_scores WHERE board_id = 'global' AND window_name = 'all'
       AND user_id IN (${users.map(() => '?').join(',')})`,
      users,
    );
    return new Map(
      (rows as Array<{ user_id: string; score: number }>).map((r) => [r.user_id, Number(r.score)]),
    );
  }
  const consumed = () => {
    const sum = { applied: 0, replayed: 0, dead: 0, retried: 0 };
    for (const i of [a, b]) {
      const c = i.services.brokerStatus()?.consumed as typeof sum;
      for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += c[k];
    }
    return sum;
  };

  it('two instances apply N deltas with duplicate actionIds exactly once, in MySQL, Redis and the standings', async () => {
    const users = Array.from({ length: 5 }, () => uniqueUser('mq'));
    const expected = new Map(users.map((u) => [u, 0]));
    const messages: object[] = [];
    for (let i = 0; i < 200; i++) {
      const userId = users[i % users.length];
      const scoreIncrement = 1 + (i % 7);
      expected.set(userId, expected.get(userId)! + scoreIncrement);
      messages.push({ userId, scoreIncrement, actionId: `m-${i}` });
    }
    const duplicates = messages.filter((_, i) => i % 5 === 0); // 40 redeliveries of the same actions
    const before = consumed();
    await Promise.all([...messages, ...duplicates].map((m) => rabbit.send(names.queue, m)));
    await eventually(
      async () => {
        const t = await totals(users);
        return users.every((u) => t.get(u) === expected.get(u));
      },
      20_000,
      100,
    );
    // The duplicates were sent last: they may still be arriving when the totals are complete.
    await eventually(
      () => consumed().applied - before.applied + consumed().replayed - before.replayed >= 240,
      5000,
    );
    expect(consumed().applied - before.applied).to.equal(200);
    expect(consumed().replayed - before.replayed).to.equal(40);
    expect(consumed().dead - before.dead).to.equal(0);
    await sleep(500); // nothing more arrives
    const t = await totals(users);
    for (const u of users) expect(t.get(u), u).to.equal(expected.get(u));
    // Every counted once in Redis too, and the authored events belong to the broker's user.
    const keys = redisKeys(store.prefix);
    await eventually(async () => {
      for (const u of users)
        if (Number(await a.redis.zscore(keys.scores, u)) !== expected.get(u)) return false;
      return true;
    }, 5000);
    for (const u of users) {
      const standing = await b.request.get(`/api/v1/scores/users/${u}`);
      expect(standing.body.score, u).to.equal(expected.get(u));
    }
    const [[{ n }]] = await store.db.raw(
      `SELECT COUNT(*) AS n FROM score_events WHERE actor_id = 'broker' AND user_id IN (${users.map(() => '?').join(',')})`,
      users,
    );
    expect(Number(n)).to.equal(200); // one event per distinct actionId, authored by the broker's user
  });

  it('dead-letters what can never apply, with the reason, and writes nothing for it', async () => {
    const banned = uniqueUser('mq-banned');
    await insertUser(store.db, banned, { status: 'banned' });
    const ok = uniqueUser('mq-ok');
    await rabbit.send(names.queue, { userId: ok, scoreIncrement: 3, actionId: 'first' });
    await eventually(async () => (await totals([ok])).get(ok) === 3, 10_000);
    await eventually(
      () =>
        rabbit.connection.queueDeclare({ queue: names.dead, passive: true }).then(
          () => true,
          () => false,
        ),
      10_000,
    );
    const dlq = rabbit.collect(names.dead);
    await dlq.ready;
    const [before] = await store.db.raw('CHECKSUM TABLE board_scores, score_events');
    const poison: Array<[object | Buffer, string]> = [
      [Buffer.from('{not json'), 'invalid_json'],
      [{ userId: ok, scoreIncrement: 1 }, 'invalid'], // no actionId
      [{ userId: ok, scoreIncrement: 0, actionId: 'z' }, 'invalid'],
      [{ userId: ok, scoreIncrement: 1, actionId: 'x', extra: true }, 'invalid'],
      [{ userId: 'bad user!', scoreIncrement: 1, actionId: 'x' }, 'invalid'],
      [{ userId: ok, scoreIncrement: 1, actionId: 'x', boardId: 'no-such-board' }, 'unknown_board'],
      [{ userId: banned, scoreIncrement: 1, actionId: 'x' }, 'target_banned'],
      [{ userId: ok, scoreIncrement: 4, actionId: 'first' }, 'conflicting_replay'],
      [{ userId: ok, scoreIncrement: Number.MAX_SAFE_INTEGER, actionId: 'big' }, 'out_of_range'],
    ];
    for (const [body] of poison) await rabbit.send(names.queue, body);
    await eventually(() => dlq.seen.length === poison.length, 10_000);
    const reasons = dlq.seen.map((m) => String(m.headers?.['x-scoreboard-reason']));
    for (const [, reason] of poison)
      expect(
        reasons.some((r) => r.startsWith(reason)),
        reason,
      ).to.equal(true);
    expect(dlq.seen.every((m) => m.headers?.['x-original-queue'] === names.queue)).to.equal(true);
    const [after] = await store.db.raw('CHECKSUM TABLE board_scores, score_events');
    expect(after).to.deep.equal(before);
    await dlq.close();
  });

  it('with MySQL cut while messages flow, nothing is lost or doubled and consumption resumes', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 3306 });
    const viaProxy = new URL(store.env.DATABASE_URL);
    viaProxy.port = String(proxy.port);
    const c = await startInstance(env({ DATABASE_URL: viaProxy.toString(), DATABASE_TIMEOUT_MS: '500' }));
    await a.close(); // only c consumes now
    await b.close();
    try {
      const u = uniqueUser('mq-cut');
      for (let i = 0; i < 150; i++)
        void rabbit.send(names.queue, { userId: u, scoreIncrement: 1, actionId: `c-${i}` });
      await eventually(async () => ((await totals([u])).get(u) ?? 0) > 20, 10_000, 20);
      proxy.cut();
      await sleep(1500);
      expect(c.services.brokerStatus()?.consumed).to.have.property('retried').above(0);
      proxy.heal();
      await eventually(async () => (await totals([u])).get(u) === 150, 30_000, 100);
      const [[{ n }]] = await store.db.raw('SELECT COUNT(*) AS n FROM score_events WHERE user_id = ?', [u]);
      expect(Number(n)).to.equal(150);
    } finally {
      await c.close();
      await proxy.close();
      [a, b] = await Promise.all([startInstance(env()), startInstance(env())]);
    }
  });

  it('with the broker connection cut mid-batch, redelivered messages are counted once', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5672 });
    const c = await startInstance(env({ AMQP_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}` }));
    await eventually(() => c.services.brokerStatus()?.connected === true, 10_000);
    try {
      const u = uniqueUser('mq-brk');
      for (let i = 0; i < 300; i++)
        void rabbit.send(names.queue, { userId: u, scoreIncrement: 2, actionId: `b-${i}` });
      await eventually(async () => ((await totals([u])).get(u) ?? 0) > 40, 10_000, 10);
      proxy.resetOpen(); // the consumer's connection dies with messages in hand; it reconnects by itself
      await eventually(async () => (await totals([u])).get(u) === 600, 30_000, 100);
      await sleep(500);
      expect((await totals([u])).get(u)).to.equal(600);
      const [[{ n }]] = await store.db.raw('SELECT COUNT(*) AS n FROM score_events WHERE user_id = ?', [u]);
      expect(Number(n)).to.equal(300);
    } finally {
      await c.close();
      await proxy.close();
    }
  });

  it('publishes every committed event once per id, in order, across the relay dying and the broker cut', async function () {
    this.timeout(120_000);
    const events = rabbit.collect(`${names.exchange}.probe`, {
      exchange: names.exchange,
      routingKey: 'score.#',
    });
    await events.ready;
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5672 });
    const relayEnv = {
      ...env({ AMQP_EVENTS_EXCHANGE: names.exchange, RELAY_INTERVAL_MS: '50' }),
      AMQP_URL: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
      AMQP_DELTAS_QUEUE: `${names.queue}.unused`,
    };
    const first = await spawnServer(relayEnv);
    const second = await spawnServer(relayEnv);
    const writer = a;
    const leaderOf = async () => {
      for (const p of [first, second]) {
        const r = await fetch(`${p.url}/readyz`).then(
          (x) => x.json() as Promise<{ broker?: { relay?: { leader: boolean } } }>,
        );
        if (r.broker?.relay?.leader) return p;
      }
      return undefined;
    };
    try {
      const users = Array.from({ length: 30 }, () => uniqueUser('mq-out'));
      for (const u of users) await insertUser(store.db, u);
      const post = (u: string, d: number) =>
        writer.request
          .post('/api/v1/scores/update')
          .set('Authorization', `Bearer ${adminToken()}`)
          .send({ userId: u, scoreIncrement: d });
      for (const u of users.slice(0, 10)) expect((await post(u, 5)).status).to.equal(201);
      await eventually(async () => (await leaderOf()) !== undefined, 10_000, 100);
      const leader = (await leaderOf())!;
      leader.child.kill('SIGKILL');
      for (const u of users.slice(10, 20)) expect((await post(u, 6)).status).to.equal(201);
      const survivor = leader === first ? second : first;
      await eventually(
        async () => {
          const r = await fetch(`${survivor.url}/readyz`).then(
            (x) => x.json() as Promise<{ broker?: { relay?: { leader: boolean } } }>,
          );
          return r.broker?.relay?.leader === true;
        },
        15_000,
        100,
      );
      proxy.resetOpen(); // the relay's broker connection dies; it reconnects and carries on
      for (const u of users.slice(20)) expect((await post(u, 7)).status).to.equal(201);
      const [rows] = await store.db.raw('SELECT id FROM score_events ORDER BY id');
      const all = (rows as Array<{ id: number }>).map((r) => Number(r.id));
      await eventually(() => new Set(events.seen.map((m) => m.messageId)).size >= all.length, 30_000, 100);
      // After deduplication by id: every committed event, once, in id order.
      const firstSeen: number[] = [];
      const seen = new Set<string>();
      for (const m of events.seen) {
        if (seen.has(m.messageId!)) continue;
        seen.add(m.messageId!);
        firstSeen.push(Number(m.messageId));
      }
      expect(firstSeen).to.deep.equal(all);
      const sample = events.seen.find((m) => m.messageId === String(all.at(-1)))!;
      expect(sample.routingKey).to.equal('score.global');
      expect(sample.body).to.include({ eventId: all.at(-1), boardId: 'global', delta: 7 });
      expect(sample.body.windows.all.score).to.equal(7);
    } finally {
      for (const p of [first, second]) p.child.kill('SIGKILL');
      // Dead before the cleanup, or a consumer reconnecting in its last moments re-declares its queues.
      await Promise.all([first.exited, second.exited]);
      await proxy.close();
      await events.close();
    }
  });
});

import { expect } from 'chai';
import { Cluster } from 'ioredis';
import { isolatedStore } from './helpers/database';
import { adminToken } from './helpers/api';
import { insertUser } from './helpers/assertions';
import { tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { expectedTop, mirrorDifferences } from './helpers/mirror';
import { startCluster } from './helpers/redis-servers';
import { openRawStream } from './helpers/sse';
import { startFailoverLoad } from './helpers/failover-load';
import { redisKeys } from '../src/leaderboard/ranking';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Redis Cluster (ioredis's own client): every script one slot, the whole path on shards, a failover healed. */
describe('Redis Cluster: three shards, and a failover under load', function () {
  this.timeout(120_000);
  const store = isolatedStore('cluster');
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  let a: Instance;
  let b: Instance;
  let direct: Cluster;
  let env: Record<string, string | undefined>;
  const update = (app: Instance, token: string, body: object) =>
    app.request.post('/api/v1/scores/update').set('Authorization', `Bearer ${token}`).send(body);

  before(async function () {
    this.timeout(60_000);
    cluster = await startCluster();
    env = {
      ...store.env,
      REDIS_URL: undefined,
      REDIS_CLUSTER_NODES: cluster.nodes,
      SNAPSHOT_TICK_MS: '100',
      MIRROR_SYNC_INTERVAL_MS: '200',
    };
    [a, b] = await Promise.all([startInstance(env), startInstance(env)]);
    direct = new Cluster(
      cluster.nodes.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
    direct.on('error', () => {});
  });
  after(async () => {
    direct?.disconnect();
    await a?.close();
    await b?.close();
    await cluster?.close();
  });

  it('writes, boards, snapshots, streams, standings, the write limit and cheat counters run with no CROSSSLOT', async () => {
    // Each instance knows the cluster takes shard channels before it writes (until then it publishes both ways).
    const knows = (...apps: Instance[]) => apps.every((i) => i.services.boards.pubsub() === 'sharded');
    await eventually(() => a.services.mirror.isReady() && b.services.mirror.isReady() && knows(a, b), 10_000);
    const errorsBefore = await cluster.errorStats();
    const callsBefore = await cluster.commandCalls();
    const created = await a.request
      .post('/api/v1/boards')
      .set('Authorization', `Bearer ${adminToken()}`)
      .send({ id: 'chess', title: 'Chess', windows: ['all', 'day'] });
    expect(created.status).to.equal(201);
    await eventually(async () => (await b.request.get('/api/v1/boards/chess')).status === 200, 5000, 200);
    const stream = openRawStream(`${b.url}/api/v1/scores/stream`);
    await stream.ready;
    const users = Array.from({ length: 12 }, () => uniqueUser('cl'));
    const totals = new Map<string, number>();
    await Promise.all(
      users.map(async (u, i) => {
        for (let k = 1; k <= 3; k++) {
          const res = await update(i % 2 ? a : b, tokenFor(u), { scoreIncrement: k * (i + 1) });
          expect(res.status).to.equal(201);
          expect(res.body.rank).to.be.a('number');
          totals.set(u, (totals.get(u) ?? 0) + k * (i + 1));
        }
        const chess = await update(i % 2 ? b : a, tokenFor(u), { scoreIncrement: i + 1, boardId: 'chess' });
        expect(chess.status).to.equal(201);
        expect(chess.body.windows.day.rank).to.be.a('number');
      }),
    );
    // Both instances converge on the top computed here from MySQL's rows; the stream carries it too.
    const want = await expectedTop(store.db);
    for (const app of [a, b])
      await eventually(async () => (await app.request.get('/api/v1/scores/top')).text === want, 5000);
    await eventually(() => stream.events().at(-1)?.data === want, 5000);
    stream.close();
    const chessTop = await b.request.get('/api/v1/boards/chess/top?window=day');
    expect(chessTop.status).to.equal(200);
    const leader = users[users.length - 1];
    const standing = await b.request.get(`/api/v1/scores/users/${leader}`);
    expect(standing.body).to.include({ score: totals.get(leader), rank: 1 });
    await eventually(
      async () => (await mirrorDifferences(store.db, direct, store.prefix)).length === 0,
      10_000,
    );

    // The write limit holds exactly across two instances; a points spike raises a cheat flag.
    const limited = { ...env, RATE_LIMIT_WRITES_PER_MIN: '10', SUSPICIOUS_POINTS_PER_MIN: '50' };
    const [c, d] = await Promise.all([startInstance(limited), startInstance(limited)]);
    try {
      await eventually(
        () => c.services.mirror.isReady() && d.services.mirror.isReady() && knows(c, d),
        10_000,
      );
      const spammer = uniqueUser('cl-limit');
      const codes = [];
      for (let i = 0; i < 30; i++)
        codes.push((await update(i % 2 ? c : d, tokenFor(spammer), { scoreIncrement: 1 })).status);
      expect(codes.filter((s) => s === 201)).to.have.length(10);
      expect(codes.filter((s) => s === 429)).to.have.length(20);
      const fast = uniqueUser('cl-fast');
      expect((await update(c, tokenFor(fast), { scoreIncrement: 40 })).status).to.equal(201);
      expect((await update(d, tokenFor(fast), { scoreIncrement: 40 })).status).to.equal(201);
      await eventually(async () => (await c.services.cheat.list()).some((f) => f.userId === fast), 5000);
    } finally {
      await Promise.all([c.close(), d.close()]);
    }

    // No command any instance sent was refused for spanning slots, and no script or data command failed.
    const errorsAfter = await cluster.errorStats();
    const grew = (name: string) => (errorsAfter[name] ?? 0) - (errorsBefore[name] ?? 0);
    expect(grew('CROSSSLOT'), JSON.stringify(errorsAfter)).to.equal(0);
    // (Plain ERR is not counted: ioredis names itself with CLIENT SETINFO, which Redis 7.0 answers with ERR.)
    for (const cmd of ['evalsha', 'eval', 'spublish', 'ssubscribe', 'zadd', 'hset', 'get', 'set'])
      expect(grew(`failed:${cmd}`), `${cmd}: ${JSON.stringify(errorsAfter)}`).to.equal(0);
    // Notices went over shard channels (Redis 7), each to its board's shard only: none was broadcast.
    const calls = await cluster.commandCalls();
    const ran = (cmd: string) => (calls[cmd] ?? 0) - (callsBefore[cmd] ?? 0);
    expect(ran('spublish'), JSON.stringify(calls)).to.be.greaterThan(0);
    expect(calls.ssubscribe, JSON.stringify(calls)).to.be.greaterThan(0);
    expect(ran('publish'), JSON.stringify(calls)).to.equal(0);
  });

  it('a SIGKILLed primary is replaced by its replica; no acknowledged delta is lost or doubled, the mirror heals, snapshots flow', async () => {
    await eventually(() => a.services.mirror.isReady() && b.services.mirror.isReady(), 10_000);
    const users = Array.from({ length: 20 }, () => uniqueUser('clf'));
    for (const u of users) await insertUser(store.db, u);
    const stream = openRawStream(`${b.url}/api/v1/scores/stream`);
    await stream.ready;
    const load = startFailoverLoad(a, b, users, 'clf');

    await sleep(1500);
    // The shard that holds global/all: its primary goes, its replica must take over.
    const victim = await cluster.primaryOf(redisKeys(store.prefix).scores);
    cluster.kill(victim);
    await eventually(
      async () => (await cluster.primaryOf(redisKeys(store.prefix).scores).catch(() => victim)) !== victim,
      30_000,
      200,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${victim} still serves global; ${await cluster.describe()}`);
    });
    await eventually(() => cluster.healthy(), 30_000, 200);
    const promotedAt = Date.now();
    await sleep(2000); // load goes on against the promoted replica
    const marker = uniqueUser('clf-after');
    await insertUser(store.db, marker);
    const lift = await update(a, adminToken(), { userId: marker, scoreIncrement: 1e12 });
    expect(lift.status).to.equal(201);
    await eventually(() => stream.events().some((e) => e.data.includes(marker)), 5000);
    await load.stop();
    stream.close();

    await load.expectLedger(store.db);
    let differences: string[] = [];
    await eventually(
      async () =>
        (differences = await mirrorDifferences(store.db, direct, store.prefix).catch((e) => [String(e)]))
          .length === 0,
      Math.max(1000, promotedAt + 10_000 - Date.now()),
      200,
    ).catch(() => {
      throw new Error(`the mirror did not heal within 10 s: ${differences.slice(0, 5).join('; ')}`);
    });
    expect([...load.pollStatuses.keys()], 'polls were served from memory throughout').to.deep.equal([200]);
  });
});

import { GLOBAL_SCORES } from './helpers/database';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { Redis } from 'ioredis';
import { testDb } from './helpers/database';
import { RUN_PREFIX, TEST_REDIS_URL, tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { startTcpProxy } from './helpers/tcp-proxy';
import { mysqlRank, mysqlScore } from './helpers/assertions';
import { redisKeys } from '../src/leaderboard/ranking';

/**
 * The instance reaches Redis through a TCP proxy we can cut; the shared Redis itself is never stopped or
 * flushed. Its mirror lives under its own prefix, so "the mirror matches MySQL" can be checked as a whole.
 */
describe('Redis unreachable', () => {
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let app: Instance;
  let db: Knex;
  let direct: Redis;
  const prefix = `${RUN_PREFIX}outage:`;
  const zset = redisKeys(prefix).scores;

  before(async () => {
    const target = new URL(TEST_REDIS_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    const viaProxy = new URL(TEST_REDIS_URL);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    app = await startInstance({
      REDIS_URL: viaProxy.toString(),
      REDIS_PREFIX: prefix,
      REDIS_TIMEOUT_MS: '300',
      MIRROR_SYNC_INTERVAL_MS: '200',
    });
    db = testDb();
    direct = new Redis(TEST_REDIS_URL);
    await eventually(() => app.services.mirror.isReady(), 5000);
  });
  after(async () => {
    proxy.heal();
    await app.close();
    await proxy.close();
    await db.destroy();
    direct.disconnect();
  });
  afterEach(() => proxy.heal());

  const post = (userId: string, scoreIncrement: number) =>
    app.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${tokenFor(userId)}`)
      .send({ scoreIncrement });

  const redisScore = async (userId: string) => {
    const s = await direct.zscore(zset, userId);
    return s === null ? null : String(s);
  };

  /** Every active user's total in MySQL, exactly as the sorted set should hold it. */
  async function mysqlTotals(): Promise<Map<string, string>> {
    const [rows] = await db.raw(
      `SELECT s.user_id, CAST(s.score AS CHAR) AS score FROM ${GLOBAL_SCORES} s JOIN users u ON u.id = s.user_id
       WHERE u.status = 'active'`,
    );
    return new Map((rows as Array<{ user_id: string; score: string }>).map((r) => [r.user_id, r.score]));
  }
  async function redisTotals(): Promise<Map<string, string>> {
    const flat = await direct.zrange(zset, '0', '-1', 'WITHSCORES');
    const out = new Map<string, string>();
    for (let i = 0; i < flat.length; i += 2) out.set(flat[i], flat[i + 1]);
    return out;
  }
  async function mirrorMatchesMysql(): Promise<boolean> {
    const [m, r] = await Promise.all([mysqlTotals(), redisTotals()]);
    return m.size === r.size && [...m].every(([user, score]) => r.get(user) === score);
  }

  /** A write during the outage: committed, answered 201, ranked by MySQL. */
  async function writeDuringOutage(userId: string, increment: number, expectedScore: number) {
    const started = Date.now();
    const res = await post(userId, increment);
    expect(res.status, res.text).to.equal(201);
    expect(Date.now() - started).to.be.below(3000);
    expect(res.body).to.include({ userId, score: expectedScore });
    expect(res.body.rank).to.equal(await mysqlRank(db, expectedScore));
    expect(await mysqlScore(db, userId)).to.equal(String(expectedScore));
  }

  it('keeps accepting writes when Redis refuses connections, and the mirror converges after it returns', async () => {
    const [known, fresh] = [uniqueUser('outage'), uniqueUser('outage')];
    expect((await post(known, 5)).status).to.equal(201);
    expect(await redisScore(known)).to.equal('5');

    proxy.cut();
    await writeDuringOutage(known, 3, 8);
    await writeDuringOutage(fresh, 10, 10);
    await writeDuringOutage(fresh, 2, 12);
    // The outage was real: none of those writes reached the mirror.
    expect(await redisScore(known)).to.equal('5');
    expect(await redisScore(fresh)).to.equal(null);

    proxy.heal();
    await eventually(mirrorMatchesMysql, 5000, 50);
    expect(await redisScore(known)).to.equal('8');
    expect(await redisScore(fresh)).to.equal('12');

    // Healed: ranks come from the mirror again and still agree with MySQL.
    await eventually(() => app.services.mirror.isReady(), 5000);
    const after = await post(known, 1);
    expect(after.status).to.equal(201);
    expect(after.body.rank).to.equal(await mysqlRank(db, 9));
    expect(await redisScore(known)).to.equal('9');
  });

  it('keeps accepting writes when Redis accepts connections but never answers', async () => {
    const u = uniqueUser('outage');
    expect((await post(u, 4)).status).to.equal(201);

    proxy.blackhole();
    await writeDuringOutage(u, 6, 10);
    await writeDuringOutage(u, 1, 11);
    expect(await redisScore(u)).to.equal('4');

    // The hung connections are reset (as a real network eventually does) and Redis answers again.
    proxy.resetOpen();
    proxy.heal();
    await eventually(mirrorMatchesMysql, 5000, 50);
    expect(await redisScore(u)).to.equal('11');
  });
});

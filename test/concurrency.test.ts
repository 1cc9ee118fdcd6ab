import { expect } from 'chai';
import type { Knex } from 'knex';
import type { RedisClient } from '../src/platform/redis';
import { testDb } from './helpers/database';
import { tokenFor, uniqueUser } from './helpers/env';
import { directRedis } from './helpers/test-redis';
import { startInstance, type Instance } from './helpers/instance';
import { mysqlEvents, mysqlScore } from './helpers/assertions';
import { redisKeys } from '../src/leaderboard/ranking';

const PATH = '/api/v1/scores/update';

describe('concurrent writes', () => {
  let a: Instance;
  let b: Instance;
  let db: Knex;
  let redis: RedisClient;

  before(async () => {
    // Far more writes per user than any rate limit would allow: this suite tests the write path, not the limiter.
    const env = { RATE_LIMIT_WRITES_PER_MIN: '1000000' };
    [a, b] = await Promise.all([startInstance(env), startInstance(env)]);
    db = testDb();
    redis = directRedis();
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
    await db.destroy();
    redis.disconnect();
  });

  const redisScore = async (userId: string) =>
    Number(await redis.zscore(redisKeys(a.config.redisPrefix).scores, userId));
  const send = (app: Instance, userId: string, body: object) =>
    app.request
      .post(PATH)
      .set('Authorization', `Bearer ${tokenFor(userId)}`)
      .send(body);

  /** N parallel +1s spread over the given instances: every one applied, none lost, in MySQL and in Redis. */
  async function parallelIncrements(instances: Instance[], n: number) {
    const u = uniqueUser('para');
    // The user exists first, so the race is on the score, not on provisioning.
    expect((await send(instances[0], u, { scoreIncrement: 1 })).status).to.equal(201);

    const responses = await Promise.all(
      Array.from({ length: n }, (_, i) => send(instances[i % instances.length], u, { scoreIncrement: 1 })),
    );
    expect(responses.map((r) => r.status)).to.deep.equal(new Array(n).fill(201));
    // Each +1 saw a distinct total: the answers are exactly 2..n+1, and every event id is distinct.
    expect(responses.map((r) => r.body.score).sort((x, y) => x - y)).to.deep.equal(
      Array.from({ length: n }, (_, i) => i + 2),
    );
    expect(new Set(responses.map((r) => r.body.eventId)).size).to.equal(n);

    const expected = n + 1;
    expect(await mysqlScore(db, u)).to.equal(String(expected));
    const events = await mysqlEvents(db, u);
    expect(events).to.have.length(expected);
    expect(events.reduce((sum, e) => sum + e.delta, 0)).to.equal(expected);
    // History is consistent: in id order, each score_after is the previous one plus its delta.
    events.forEach((e, i) => expect(e.score_after).to.equal(i + 1));
    // Every answer was given after its batch was mirrored, so Redis already holds the final total.
    expect(await redisScore(u)).to.equal(expected);
  }

  it('200 parallel +1s on one instance add exactly 200', async () => {
    await parallelIncrements([a], 200);
  });

  it('200 parallel +1s across two instances add exactly 200', async () => {
    await parallelIncrements([a, b], 200);
  });

  it('20 parallel requests with one actionId apply once and all get the same body', async () => {
    const u = uniqueUser('idem');
    expect((await send(a, u, { scoreIncrement: 1 })).status).to.equal(201);

    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send(i % 2 ? b : a, u, { scoreIncrement: 7, actionId: 'race-1' })),
    );
    expect(responses.map((r) => r.status).sort()).to.deep.equal([...new Array(19).fill(200), 201]);
    const created = responses.find((r) => r.status === 201)!;
    expect(created.headers['idempotent-replayed']).to.equal(undefined);
    for (const r of responses.filter((x) => x.status === 200)) {
      expect(r.headers['idempotent-replayed']).to.equal('true');
    }
    expect(new Set(responses.map((r) => r.text))).to.deep.equal(new Set([created.text]));
    expect(created.body).to.include({ userId: u, score: 8, scoreIncrement: 7 });

    expect(await mysqlScore(db, u)).to.equal('8');
    expect((await mysqlEvents(db, u)).filter((e) => e.action_id === 'race-1')).to.have.length(1);
    expect(await redisScore(u)).to.equal(8);
  });

  it('a new user racing with 20 requests is provisioned once and every delta counts', async () => {
    const u = uniqueUser('fresh');
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send(i % 2 ? b : a, u, { scoreIncrement: 2 })),
    );
    expect(responses.map((r) => r.status)).to.deep.equal(new Array(20).fill(201));
    expect(await mysqlScore(db, u)).to.equal('40');
    expect(await redisScore(u)).to.equal(40);
  });
});

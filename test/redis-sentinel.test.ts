import { expect } from 'chai';
import { Redis } from 'ioredis';
import { isolatedStore } from './helpers/database';
import { adminToken } from './helpers/api';
import { insertUser } from './helpers/assertions';
import { uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { mirrorDifferences } from './helpers/mirror';
import { startSentinelGroup } from './helpers/redis-servers';
import { openRawStream } from './helpers/sse';
import { startFailoverLoad } from './helpers/failover-load';
import { redisKeys } from '../src/leaderboard/ranking';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Redis behind Sentinel (ioredis's own client): a primary killed under load loses nothing and heals. */
describe('Redis Sentinel: failover under load', function () {
  this.timeout(120_000);
  const store = isolatedStore('sentinel');
  let group: Awaited<ReturnType<typeof startSentinelGroup>>;
  let a: Instance;
  let b: Instance;
  let direct: Redis;

  before(async function () {
    this.timeout(60_000);
    group = await startSentinelGroup();
    const env = {
      ...store.env,
      REDIS_URL: undefined,
      REDIS_SENTINELS: group.sentinels,
      REDIS_SENTINEL_NAME: group.name,
      SNAPSHOT_TICK_MS: '100',
      MIRROR_SYNC_INTERVAL_MS: '200',
    };
    [a, b] = await Promise.all([startInstance(env), startInstance(env)]);
    const sentinels = group.sentinels
      .split(',')
      .map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) }));
    direct = new Redis({ sentinels, name: group.name, maxRetriesPerRequest: 1 });
    direct.on('error', () => {});
  });
  after(async () => {
    direct?.disconnect();
    await a?.close();
    await b?.close();
    await group?.close();
  });

  it('a SIGKILLed primary is replaced; no acknowledged delta is lost or doubled, the mirror heals, snapshots flow', async () => {
    await eventually(() => a.services.mirror.isReady() && b.services.mirror.isReady(), 10_000);
    const users = Array.from({ length: 20 }, () => uniqueUser('sent'));
    for (const u of users) await insertUser(store.db, u);
    const stream = openRawStream(`${b.url}/api/v1/scores/stream`);
    await stream.ready;
    const load = startFailoverLoad(a, b, users, 'sent');

    await sleep(2000);
    const old = await group.currentPrimary();
    group.kill(old);
    await eventually(async () => (await group.currentPrimary().catch(() => old)) !== old, 30_000, 200);
    const promotedAt = Date.now();
    await sleep(2000); // load goes on against the new primary
    const marker = uniqueUser('sent-after');
    await insertUser(store.db, marker);
    const lift = await a.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${adminToken()}`)
      .send({ userId: marker, scoreIncrement: 1e12 });
    expect(lift.status).to.equal(201);
    await eventually(() => stream.events().some((e) => e.data.includes(marker)), 5000);
    await load.stop();
    stream.close();

    await load.expectLedger(store.db);
    // The new primary's mirror equals MySQL within 10 s of the promotion.
    let differences: string[] = [];
    await eventually(
      async () =>
        (differences = await mirrorDifferences(store.db, direct, store.prefix).catch((e) => [String(e)]))
          .length === 0,
      Math.max(1000, promotedAt + 10_000 - Date.now()),
      200,
    ).catch(async () => {
      const roles = await Promise.all(
        [direct, a.redis, b.redis].map((r) =>
          r.call('ROLE').then(
            (x) =>
              `${(x as string[])[0]}@${(r as unknown as { stream?: { remotePort?: number } }).stream?.remotePort}`,
            (e) => String(e),
          ),
        ),
      );
      const first = differences[0]?.split(':')[0];
      const scores = first
        ? await Promise.all(
            [direct, a.redis, b.redis].map((r) =>
              r.zscore(redisKeys(store.prefix).scores, first).catch((e) => String(e)),
            ),
          )
        : [];
      const state = [a, b].map(
        (i) =>
          `ready=${i.services.mirror.isReady()} syncAge=${i.services.mirror.syncAge()} status=${i.redis.status}`,
      );
      throw new Error(
        `the mirror still differs from MySQL 10 s after the promotion: ${differences.slice(0, 5).join('; ')} (${state.join(' | ')}) roles ${roles.join(', ')} scores of ${first}: ${scores.join(', ')} primary now ${await group.currentPrimary()}`,
      );
    });
    // Polls were answered from memory all along.
    expect([...load.pollStatuses.keys()]).to.deep.equal([200]);
  });
});

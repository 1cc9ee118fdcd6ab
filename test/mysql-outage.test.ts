import { expect } from 'chai';
import type { Knex } from 'knex';
import { testDb } from './helpers/database';
import { TEST_DATABASE_URL, tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { startTcpProxy } from './helpers/tcp-proxy';
import { expectProblem, mysqlScore } from './helpers/assertions';

describe('MySQL unreachable', () => {
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let app: Instance;
  let db: Knex;

  before(async () => {
    const target = new URL(TEST_DATABASE_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 3306) });
    const viaProxy = new URL(TEST_DATABASE_URL);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    app = await startInstance({
      DATABASE_URL: viaProxy.toString(),
      DATABASE_TIMEOUT_MS: '500',
      RETRY_AFTER_S: '7',
    });
    db = testDb();
  });
  after(async () => {
    proxy.heal();
    await app.close();
    await proxy.close();
    await db.destroy();
  });

  const post = (userId: string, body: object) =>
    app.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${tokenFor(userId)}`)
      .send(body);

  it('answers 503 with Retry-After while the database cannot be reached, then recovers', async () => {
    const u = uniqueUser();
    expect((await post(u, { scoreIncrement: 2 })).status).to.equal(201);

    proxy.cut();
    for (const path of ['/api/v1/scores/update', '/api/scores/update']) {
      const started = Date.now();
      const res = await app.request
        .post(path)
        .set('Authorization', `Bearer ${tokenFor(u)}`)
        .send({ scoreIncrement: 3, actionId: 'during-outage' });
      expectProblem(res, 503);
      expect(res.headers['retry-after']).to.equal('7');
      expect(Date.now() - started).to.be.below(5000);
    }
    expect(await mysqlScore(db, u)).to.equal('2');

    proxy.heal();
    // The same actionId, retried as Retry-After invites: applied once, now that MySQL is back.
    let res = await post(u, { scoreIncrement: 3, actionId: 'during-outage' });
    await eventually(async () => {
      if (res.status === 201) return true;
      res = await post(u, { scoreIncrement: 3, actionId: 'during-outage' });
      return res.status === 201;
    }, 5000);
    expect(res.body).to.include({ score: 5 });
    expect(await mysqlScore(db, u)).to.equal('5');
  });

  // Every statement has a deadline of DATABASE_TIMEOUT_MS (src/platform/db.ts): without it a MySQL that accepts packets
  // but never answers (a network partition) hung a write forever, and shutdown with it. test/faults.test.ts
  // runs the same fault under load and heals it without resetting the hung connections.
  it('answers 503 with Retry-After when MySQL accepts connections but never answers', async () => {
    const u = uniqueUser();
    expect((await post(u, { scoreIncrement: 1 })).status).to.equal(201);
    proxy.blackhole();
    try {
      const started = Date.now();
      const res = await post(u, { scoreIncrement: 1 }).timeout(5000);
      expectProblem(res, 503);
      expect(res.headers['retry-after']).to.equal('7');
      expect(Date.now() - started).to.be.below(3000);
    } finally {
      proxy.resetOpen();
      proxy.heal();
    }
    await eventually(async () => (await post(u, { scoreIncrement: 1 })).status === 201, 5000);
    expect(await mysqlScore(db, u)).to.equal('2');
  });
});

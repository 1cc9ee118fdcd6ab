import { expect } from 'chai';
import type { Knex } from 'knex';
import type supertest from 'supertest';
import { expectProblem, insertUser, mysqlEvents, mysqlScore, mysqlUser } from './helpers/assertions';
import { testDb } from './helpers/database';
import { testConfig, tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance } from './helpers/instance';

/** An instance with the authorization cache at the given TTL, counting the authorization lookups it sends. */
async function startCachingInstance(ttlMs: number) {
  const app = await startInstance({ AUTH_CACHE_TTL_MS: String(ttlMs) });
  const sql: string[] = [];
  app.db.on('query', (q: { sql: string }) => sql.push(q.sql));
  return Object.assign(app, {
    /** Authorization lookups (src/users/store.ts findUser) sent while `fn` runs. */
    async userLookups(fn: () => Promise<unknown>): Promise<number> {
      const from = sql.length;
      await fn();
      return sql.slice(from).filter((q) => /FROM users WHERE id = \?/i.test(q)).length;
    },
  });
}
type CachingInstance = Awaited<ReturnType<typeof startCachingInstance>>;

const write = (app: CachingInstance, token: string, body: object) =>
  app.request.post('/api/v1/scores/update').set('Authorization', `Bearer ${token}`).send(body);
const patchUser = (app: CachingInstance, token: string, userId: string, body: object) =>
  app.request.patch(`/api/v1/users/${userId}`).set('Authorization', `Bearer ${token}`).send(body);

describe('authorization cache (AUTH_CACHE_TTL_MS)', () => {
  let db: Knex;
  before(() => (db = testDb()));
  after(() => db.destroy());

  it('defaults to 1000 ms and accepts 0 (off)', () => {
    expect(testConfig().authCacheTtlMs).to.equal(1000);
    expect(testConfig({ AUTH_CACHE_TTL_MS: '0' }).authCacheTtlMs).to.equal(0);
  });

  describe('with a TTL', () => {
    let a: CachingInstance;
    let b: CachingInstance;
    before(async () => {
      a = await startCachingInstance(60_000);
      b = await startCachingInstance(60_000);
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    it('writes send no users query for authorization; token routes look a user up once per TTL', async () => {
      const u = uniqueUser();
      // Writes are authorized inside the batch's transaction, under the caller's row lock: no lookup beside it.
      for (const scoreIncrement of [1, 2]) {
        const lookups = await a.userLookups(async () =>
          expect((await write(a, tokenFor(u), { scoreIncrement })).status).to.equal(201),
        );
        expect(lookups, `write of ${scoreIncrement}`).to.equal(0);
      }
      expect(await mysqlScore(db, u)).to.equal('3');
      const history = () =>
        a.request.get(`/api/v1/scores/users/${u}/events`).set('Authorization', `Bearer ${tokenFor(u)}`);
      const first = await a.userLookups(async () => expect((await history()).status).to.equal(200));
      expect(first, 'the first history read looks the user up').to.be.greaterThan(0);
      const second = await a.userLookups(async () => expect((await history()).status).to.equal(200));
      expect(second, 'the second is answered from the cache').to.equal(0);
    });

    it("a ban through one instance blocks the next write on another at once, though the other's cache is warm", async () => {
      const [admin, player] = [uniqueUser('admin'), uniqueUser('banned')];
      await insertUser(db, admin, { role: 'admin' });
      expect((await write(b, tokenFor(player), { scoreIncrement: 5 })).status).to.equal(201); // warms b

      expect((await patchUser(a, tokenFor(admin), player, { status: 'banned' })).status).to.equal(200);
      let refused: supertest.Response | undefined;
      const lookups = await b.userLookups(async () => {
        refused = await write(b, tokenFor(player), { scoreIncrement: 7, actionId: 'after-ban' });
      });
      expectProblem(refused!, 403);
      expect(lookups, "b answered from its cache: the write transaction's check refused it").to.equal(0);
      expect(await mysqlScore(db, player)).to.equal('5');
    });

    it('a banned admin cannot adjust anyone, on any instance, while caches still say admin', async () => {
      const [admin, rogue, target] = [uniqueUser('admin'), uniqueUser('rogue'), uniqueUser('target')];
      await insertUser(db, admin, { role: 'admin' });
      await insertUser(db, rogue, { role: 'admin' });
      await insertUser(db, target);
      const adjust = (app: CachingInstance, scoreIncrement: number) =>
        write(app, tokenFor(rogue), { userId: target, scoreIncrement });
      expect((await adjust(b, 10)).status).to.equal(201); // b now caches rogue as an active admin

      expect((await patchUser(a, tokenFor(admin), rogue, { status: 'banned' })).status).to.equal(200);
      expectProblem(await adjust(b, -10), 403);
      expect(await mysqlScore(db, target)).to.equal('10');
    });
  });

  describe('role changes', () => {
    const TTL = 400;
    let a: CachingInstance;
    let b: CachingInstance;
    before(async () => {
      a = await startCachingInstance(TTL);
      b = await startCachingInstance(TTL);
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    it('a demoted admin loses admin rights within the TTL (at once for writes and on the changing instance)', async () => {
      const [chief, demoted, target] = [uniqueUser('chief'), uniqueUser('demoted'), uniqueUser('target')];
      await insertUser(db, chief, { role: 'admin' });
      await insertUser(db, demoted, { role: 'admin' });
      await insertUser(db, target);
      const rename = (app: CachingInstance, displayName: string) =>
        patchUser(app, tokenFor(demoted), target, { displayName });
      expect((await rename(b, 'Renamed by an admin')).status).to.equal(200); // b caches demoted as admin

      expect((await patchUser(a, tokenFor(chief), demoted, { role: 'player' })).status).to.equal(200);
      const demotedAt = Date.now();
      expect(await mysqlUser(db, demoted)).to.include({ role: 'player' });
      // The changing instance forgot its cached row; every instance's write transaction re-checks the role.
      expectProblem(await rename(a, 'Refused on a'), 403);
      expectProblem(await write(b, tokenFor(demoted), { userId: target, scoreIncrement: 3 }), 403);
      expect(await mysqlEvents(db, target)).to.deep.equal([]);

      // b's other admin routes may honour the cached role until it expires, never longer.
      await eventually(async () => (await rename(b, 'Within the TTL')).status === 403, TTL + 1000, 20);
      expect(Date.now() - demotedAt).to.be.at.most(TTL + 500);
    });
  });
});

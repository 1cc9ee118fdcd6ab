import { expect } from 'chai';
import type { Knex } from 'knex';
import { testDb } from './helpers/database';
import { TEST_REDIS_URL, tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { startTcpProxy } from './helpers/tcp-proxy';
import { insertUser } from './helpers/assertions';
import { provisionUsers } from '../src/users/store';

const PATH = '/api/v1/scores/update';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const post = (app: Instance, user: string, body: object) =>
  app.request
    .post(PATH)
    .set('Authorization', `Bearer ${tokenFor(user)}`)
    .send(body);

/** Rank of a score among active users of global/all, computed here from the raw rows (the oracle). */
async function rankOf(db: Knex, score: number): Promise<number> {
  const [[{ above }]] = await db.raw(
    `SELECT COUNT(*) AS above FROM board_scores s JOIN users u ON u.id = s.user_id
     WHERE s.board_id = 'global' AND s.window_name = 'all' AND s.score > ? AND u.status = 'active'`,
    [score],
  );
  return Number(above) + 1;
}

describe('the write path, per batch', function () {
  this.timeout(30_000);
  let db: Knex;
  before(() => (db = testDb()));
  after(() => db.destroy());

  it('holds no MySQL row lock while it talks to Redis: a slow Redis never becomes row-lock time', async () => {
    const u = new URL(TEST_REDIS_URL);
    const proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 6379) });
    u.hostname = '127.0.0.1';
    u.port = String(proxy.port);
    const app = await startInstance({ REDIS_URL: u.toString(), REDIS_TIMEOUT_MS: '5000' });
    try {
      await eventually(() => app.services.mirror.isReady());
      const user = uniqueUser('lock');
      expect((await post(app, user, { scoreIncrement: 1 })).status).to.equal(201);
      const latencyMs = 250; // each way: every Redis round trip takes at least 500 ms
      proxy.setLatency(latencyMs);
      // Watch the user's row from another connection: each probe asks for its lock without waiting.
      const lockedAt: number[] = [];
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          try {
            await db.transaction((trx) =>
              trx.raw('SELECT id FROM users WHERE id = ? FOR UPDATE NOWAIT', [user]),
            );
          } catch {
            lockedAt.push(Date.now());
          }
          await sleep(10);
        }
      })();
      const started = Date.now();
      const res = await post(app, user, { scoreIncrement: 2, actionId: 'slow-redis' });
      const took = Date.now() - started;
      watching = false;
      await watcher;
      expect(res.status).to.equal(201);
      expect(res.body.score).to.equal(3);
      expect(res.body.rank).to.equal(await rankOf(db, 3)); // ranked after commit, through the slow Redis
      expect(took, 'the limit before and the mirror after: two slow round trips').to.be.at.least(
        4 * latencyMs,
      );
      const heldMs = lockedAt.length ? lockedAt[lockedAt.length - 1] - lockedAt[0] : 0;
      expect(heldMs, `row seen locked ${lockedAt.length} times`).to.be.below(latencyMs);
    } finally {
      proxy.heal();
      await app.close();
      await proxy.close();
    }
  });

  it('provisions the new callers of a batch with one statement, not one per request', async () => {
    const app = await startInstance({ WRITE_CONCURRENCY: '1' });
    try {
      const users = Array.from({ length: 40 }, () => uniqueUser('prov'));
      const inserts: string[] = [];
      const onQuery = (q: { sql: string }) => /^\s*INSERT INTO users/i.test(q.sql) && inserts.push(q.sql);
      app.db.on('query', onQuery);
      const answers = await Promise.all(users.map((u) => post(app, u, { scoreIncrement: 1 })));
      app.db.off('query', onQuery);
      expect(answers.map((a) => a.status)).to.deep.equal(users.map(() => 201));
      expect(inserts.length, 'one per batch').to.be.within(1, 20);
      const [rows] = await db.raw(
        `SELECT COUNT(*) AS n FROM users WHERE id IN (${users.map(() => '?').join(',')}) AND role = 'player'`,
        users,
      );
      expect(Number(rows[0].n)).to.equal(40);
      // A second write by the same callers provisions nothing.
      const before = inserts.length;
      app.db.on('query', onQuery);
      await Promise.all(users.slice(0, 5).map((u) => post(app, u, { scoreIncrement: 1 })));
      app.db.off('query', onQuery);
      expect(inserts.length).to.equal(before);
    } finally {
      await app.close();
    }
  });

  it('provisioning only reads callers that exist: a row locked by a write transaction does not hold it up', async () => {
    const [held, fresh] = [uniqueUser('held'), uniqueUser('fresh')];
    await insertUser(db, held);
    const trx = await db.transaction();
    try {
      await trx.raw('SELECT id FROM users WHERE id = ? FOR UPDATE', [held]);
      const started = Date.now();
      await provisionUsers(db, [
        { id: held, displayName: held },
        { id: fresh, displayName: fresh },
      ]);
      expect(Date.now() - started, 'waited for the lock').to.be.below(2000);
    } finally {
      await trx.rollback();
    }
    const [rows] = await db.raw('SELECT id, role FROM users WHERE id IN (?, ?) ORDER BY id', [held, fresh]);
    expect(rows.map((r: { role: string }) => r.role)).to.deep.equal(['player', 'player']);
  });

  it('stores the ranks of the first answer with its event, so a replay answers exactly that', async () => {
    const app = await startInstance();
    try {
      const user = uniqueUser('replay');
      const first = await post(app, user, { scoreIncrement: 5, actionId: 'stored' });
      expect(first.status).to.equal(201);
      expect(first.body.rank).to.equal(await rankOf(db, 5));
      let stored: { rank_after: number | null; windows_after: string } | undefined;
      await eventually(async () => {
        [[stored]] = await db.raw('SELECT rank_after, windows_after FROM score_events WHERE id = ?', [
          first.body.eventId,
        ]);
        return stored?.rank_after !== null;
      });
      expect(Number(stored!.rank_after)).to.equal(first.body.rank);
      expect(JSON.parse(stored!.windows_after)).to.deep.equal(first.body.windows);
      // Others move ahead: the replay still answers the first answer's rank, not today's.
      for (const other of [uniqueUser('ahead'), uniqueUser('ahead')])
        expect((await post(app, other, { scoreIncrement: 50 })).status).to.equal(201);
      const replay = await post(app, user, { scoreIncrement: 5, actionId: 'stored' });
      expect(replay.status).to.equal(200);
      expect(replay.headers['idempotent-replayed']).to.equal('true');
      expect(replay.body).to.deep.equal(first.body);
    } finally {
      await app.close();
    }
  });

  it('ranks anew a replay whose first answer never had its ranks stored', async () => {
    const app = await startInstance();
    try {
      const user = uniqueUser('unranked');
      const first = await post(app, user, { scoreIncrement: 4, actionId: 'lost-ranks' });
      expect(first.status).to.equal(201);
      await app.services.scores.drain(); // the ranks are stored
      // As if the instance had stopped between its commit and storing the ranks.
      const windows = Object.fromEntries(
        Object.entries(first.body.windows as Record<string, { cycle: string; score: number }>).map(
          ([name, w]) => [name, { cycle: w.cycle, score: w.score }],
        ),
      );
      await db.raw('UPDATE score_events SET rank_after = NULL, windows_after = ? WHERE id = ?', [
        JSON.stringify(windows),
        first.body.eventId,
      ]);
      expect((await post(app, uniqueUser('ahead'), { scoreIncrement: 40 })).status).to.equal(201);
      const replay = await post(app, user, { scoreIncrement: 4, actionId: 'lost-ranks' });
      expect(replay.status).to.equal(200);
      expect(replay.body).to.include({ eventId: first.body.eventId, score: 4 });
      expect(replay.body.rank).to.equal(await rankOf(db, 4));
      expect(replay.body.windows.all.rank).to.equal(replay.body.rank);
      await app.services.scores.drain();
      const [[stored]] = await db.raw('SELECT rank_after FROM score_events WHERE id = ?', [
        first.body.eventId,
      ]);
      expect(Number(stored.rank_after), 'stored now').to.equal(replay.body.rank);
    } finally {
      await app.close();
    }
  });

  it('authorizes callers under lock: unregistered 403, a player writing for another 403, nothing written', async () => {
    const app = await startInstance({ AUTO_PROVISION_USERS: 'false' });
    try {
      const [stranger, player, other] = [uniqueUser('stranger'), uniqueUser('player'), uniqueUser('other')];
      await insertUser(db, player);
      await insertUser(db, other);
      const unregistered = await post(app, stranger, { scoreIncrement: 1 });
      expect(unregistered.status).to.equal(403);
      expect(unregistered.body.detail).to.equal('This user is not registered.');
      const forOther = await post(app, player, { userId: other, scoreIncrement: 1 });
      expect(forOther.status).to.equal(403);
      expect(forOther.body.detail).to.equal('Players may only add to their own score.');
      const [[{ n }]] = await db.raw('SELECT COUNT(*) AS n FROM score_events WHERE user_id IN (?, ?, ?)', [
        stranger,
        player,
        other,
      ]);
      expect(Number(n)).to.equal(0);
    } finally {
      await app.close();
    }
  });

  it('answers an admin-only increment from a caller without a row 400, and provisions nobody', async () => {
    const app = await startInstance({ AUTO_PROVISION_USERS: 'true' });
    try {
      const stranger = uniqueUser('negative');
      for (const scoreIncrement of [0, -5]) {
        const res = await post(app, stranger, { scoreIncrement });
        expect(res.status, JSON.stringify(res.body)).to.equal(400);
        expect(res.body.errors[0].field).to.equal('scoreIncrement');
      }
      const [[{ n }]] = await db.raw('SELECT COUNT(*) AS n FROM users WHERE id = ?', [stranger]);
      expect(Number(n), 'users created').to.equal(0);
      // The same caller's valid write still provisions it.
      expect((await post(app, stranger, { scoreIncrement: 1 })).status).to.equal(201);
    } finally {
      await app.close();
    }
  });
});

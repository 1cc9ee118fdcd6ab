import http from 'node:http';
import { expect } from 'chai';
import type { Knex } from 'knex';
import type { RedisClient } from '../src/platform/redis';
import { testDb } from './helpers/database';
import { tokenFor, uniqueUser } from './helpers/env';
import { directRedis } from './helpers/test-redis';
import { startInstance, type Instance } from './helpers/instance';
import {
  expectProblem,
  insertUser,
  mysqlEvents,
  mysqlRank,
  mysqlScore,
  mysqlUser,
} from './helpers/assertions';
import { redisKeys } from '../src/leaderboard/ranking';

const MAX = Number.MAX_SAFE_INTEGER;

/** Sends raw bytes (so the test controls Content-Type, Content-Length and chunking exactly). */
function rawPost(
  url: string,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('POST /scores/update', () => {
  let app: Instance;
  let db: Knex;
  let redis: RedisClient;

  before(async () => {
    app = await startInstance();
    db = testDb();
    redis = directRedis();
  });
  after(async () => {
    await app.close();
    await db.destroy();
    redis.disconnect();
  });

  const redisScore = async (userId: string) => {
    const s = await redis.zscore(redisKeys(app.config.redisPrefix).scores, userId);
    return s === null ? null : Number(s);
  };

  /** An admin whose role comes from the database, not from a token claim. */
  async function newAdmin(): Promise<string> {
    const id = uniqueUser('admin');
    await insertUser(db, id, { role: 'admin' });
    return tokenFor(id);
  }

  for (const path of ['/api/v1/scores/update', '/api/scores/update']) {
    describe(path, () => {
      const post = (token: string | undefined, body?: unknown) => {
        const req = app.request.post(path);
        if (token) req.set('Authorization', `Bearer ${token}`);
        return body === undefined ? req : req.send(body as object);
      };

      describe('201 applied', () => {
        it('commits the delta and answers {userId, score, rank, scoreIncrement, eventId, boardId, windows}', async () => {
          const u = uniqueUser();
          const first = await post(tokenFor(u), { scoreIncrement: 7 });
          expect(first.status, first.text).to.equal(201);
          expect(first.headers['content-type']).to.match(/^application\/json/);
          expect(first.headers['idempotent-replayed']).to.equal(undefined);
          expect(Object.keys(first.body)).to.have.members([
            'userId',
            'score',
            'rank',
            'scoreIncrement',
            'eventId',
            'boardId',
            'windows',
          ]);
          expect(first.body).to.include({ userId: u, score: 7, scoreIncrement: 7, boardId: 'global' });
          expect(first.body.rank).to.equal(await mysqlRank(db, 7));
          // Without a boardId the delta lands on `global`, in every one of its windows; `score` and `rank`
          // are the `all` window's, as before boards existed.
          expect(Object.keys(first.body.windows)).to.deep.equal(['all', 'day', 'week', 'month']);
          expect(first.body.windows.all).to.deep.equal({ cycle: 'all', score: 7, rank: first.body.rank });
          for (const w of ['day', 'week', 'month']) {
            expect(first.body.windows[w].score, w).to.equal(7);
            expect(first.body.windows[w].cycle, w).to.match(/^\d{4}-\d\d-\d\dT00:00:00Z$/);
          }

          const second = await post(tokenFor(u), { userId: u, scoreIncrement: 5 });
          expect(second.status).to.equal(201);
          expect(second.body).to.include({ userId: u, score: 12, scoreIncrement: 5 });
          expect(second.body.rank).to.equal(await mysqlRank(db, 12));

          // A 201 means committed: the total, and one event per delta carrying the ids we answered with.
          expect(await mysqlScore(db, u)).to.equal('12');
          const events = await mysqlEvents(db, u);
          expect(events.map((e) => [e.id, e.delta, e.score_after, e.actor_id])).to.deep.equal([
            [first.body.eventId, 7, 7, u],
            [second.body.eventId, 5, 12, u],
          ]);
          expect(second.body.eventId).to.be.greaterThan(first.body.eventId);
          // ...and mirrored into Redis before the answer.
          expect(await redisScore(u)).to.equal(12);
        });

        it('auto-provisions an unknown user from the token (sub, name) as a player', async () => {
          const u = uniqueUser();
          expect(await mysqlUser(db, u)).to.equal(undefined);
          const res = await post(tokenFor(u, { name: 'Ada Lovelace' }), { scoreIncrement: 1 });
          expect(res.status).to.equal(201);
          expect(await mysqlUser(db, u)).to.include({
            display_name: 'Ada Lovelace',
            role: 'player',
            status: 'active',
          });
        });

        it('accepts the boundaries: 1 and MAX_SCORE_INCREMENT (1000)', async () => {
          const u = uniqueUser();
          expect((await post(tokenFor(u), { scoreIncrement: 1 })).status).to.equal(201);
          expect((await post(tokenFor(u), { scoreIncrement: 1000 })).status).to.equal(201);
          expect(await mysqlScore(db, u)).to.equal('1001');
        });
      });

      describe('200 idempotent replay', () => {
        it('answers a repeated actionId with the first body, byte for byte, and applies it once', async () => {
          const u = uniqueUser();
          const first = await post(tokenFor(u), { scoreIncrement: 5, actionId: 'a-42' });
          expect(first.status).to.equal(201);
          // Another delta in between: the replay must still answer with the first response, not the current state.
          expect((await post(tokenFor(u), { scoreIncrement: 3 })).status).to.equal(201);

          const replay = await post(tokenFor(u), { scoreIncrement: 5, actionId: 'a-42' });
          expect(replay.status).to.equal(200);
          expect(replay.headers['idempotent-replayed']).to.equal('true');
          expect(replay.text).to.equal(first.text);
          expect(replay.body.score).to.equal(5);

          expect(await mysqlScore(db, u)).to.equal('8');
          expect((await mysqlEvents(db, u)).filter((e) => e.action_id === 'a-42')).to.have.length(1);
          expect(await redisScore(u)).to.equal(8);
        });

        it('takes the Idempotency-Key header alone as the key, equivalent to actionId', async () => {
          const u = uniqueUser();
          const first = await post(tokenFor(u), { scoreIncrement: 4 }).set('Idempotency-Key', 'hk-1');
          expect(first.status).to.equal(201);
          const again = await post(tokenFor(u), { scoreIncrement: 4 }).set('Idempotency-Key', 'hk-1');
          expect(again.status).to.equal(200);
          expect(again.headers['idempotent-replayed']).to.equal('true');
          expect(again.text).to.equal(first.text);
          const viaBody = await post(tokenFor(u), { scoreIncrement: 4, actionId: 'hk-1' });
          expect(viaBody.status).to.equal(200);
          expect(viaBody.text).to.equal(first.text);
          const both = await post(tokenFor(u), { scoreIncrement: 4, actionId: 'hk-1' }).set(
            'Idempotency-Key',
            'hk-1',
          );
          expect(both.status).to.equal(200);
          expect(both.text).to.equal(first.text);

          expect(await mysqlScore(db, u)).to.equal('4');
          expect(await mysqlEvents(db, u)).to.have.length(1);
        });

        it('scopes an actionId to its user', async () => {
          const [a, b] = [uniqueUser(), uniqueUser()];
          expect((await post(tokenFor(a), { scoreIncrement: 2, actionId: 'shared' })).status).to.equal(201);
          const other = await post(tokenFor(b), { scoreIncrement: 2, actionId: 'shared' });
          expect(other.status).to.equal(201);
          expect(other.body).to.include({ userId: b, score: 2 });
        });
      });

      describe('422 unprocessable', () => {
        it('refuses the same actionId with a different increment and changes nothing', async () => {
          const u = uniqueUser();
          expect((await post(tokenFor(u), { scoreIncrement: 5, actionId: 'a-1' })).status).to.equal(201);
          const res = await post(tokenFor(u), { scoreIncrement: 6, actionId: 'a-1' });
          expectProblem(res, 422);
          expect(res.headers['idempotent-replayed']).to.equal(undefined);
          expect(await mysqlScore(db, u)).to.equal('5');
          expect(await mysqlEvents(db, u)).to.have.length(1);
        });

        it('refuses a total that would leave the safe integer range, writing nothing', async () => {
          const admin = await newAdmin();
          const u = uniqueUser();
          expect((await post(tokenFor(u), { scoreIncrement: 1 })).status).to.equal(201);
          const push = await post(admin, { userId: u, scoreIncrement: MAX - 6 });
          expect(push.status, push.text).to.equal(201);
          expect(push.body.score).to.equal(MAX - 5);
          const eventsBefore = await mysqlEvents(db, u);

          const over = await post(tokenFor(u), { scoreIncrement: 10, actionId: 'too-far' });
          expectProblem(over, 422);
          expect(await mysqlScore(db, u)).to.equal(String(MAX - 5));
          expect(await mysqlEvents(db, u)).to.deep.equal(eventsBefore);
          expect(await redisScore(u)).to.equal(MAX - 5);
          // The refused actionId was not recorded: it can still be used for a delta that fits.
          const exact = await post(tokenFor(u), { scoreIncrement: 5, actionId: 'too-far' });
          expect(exact.status).to.equal(201);
          expect(exact.body.score).to.equal(MAX);
          expectProblem(await post(tokenFor(u), { scoreIncrement: 1 }), 422);
          expect(await mysqlScore(db, u)).to.equal(String(MAX));

          // Admin corrections are bounded below too.
          const down = await post(admin, { userId: u, scoreIncrement: -MAX });
          expect(down.status).to.equal(201);
          expect(down.body.score).to.equal(0);
          expect((await post(admin, { userId: u, scoreIncrement: -MAX })).status).to.equal(201);
          expect(await mysqlScore(db, u)).to.equal(String(-MAX));
          expectProblem(await post(admin, { userId: u, scoreIncrement: -1 }), 422);
          expect(await mysqlScore(db, u)).to.equal(String(-MAX));
          // Leave the user at 0 so later rank assertions are not skewed.
          expect((await post(admin, { userId: u, scoreIncrement: MAX })).status).to.equal(201);
        });
      });

      describe('400 invalid input', () => {
        const invalid = async (
          body: unknown,
          fields: string[],
          opts: { token?: string; headers?: Record<string, string> } = {},
        ) => {
          const u = uniqueUser();
          const req = post(opts.token ?? tokenFor(u));
          for (const [k, v] of Object.entries(opts.headers ?? {})) req.set(k, v);
          const res = await req.send(body as object);
          expectProblem(res, 400);
          if (fields.length) {
            expect(res.body.errors, res.text).to.be.an('array');
            expect(res.body.errors.map((e: { field: string }) => e.field)).to.have.members(fields);
            for (const e of res.body.errors) expect(e.message).to.be.a('string').and.match(/\S/);
          }
          expect(await mysqlEvents(db, u)).to.have.length(0);
          expect(await mysqlScore(db, u)).to.equal(undefined);
          return res;
        };

        it('lists every invalid field at once', async () => {
          await invalid({ scoreIncrement: 1.5, actionId: '', bonus: 3 }, [
            'scoreIncrement',
            'actionId',
            'bonus',
          ]);
        });

        it('refuses unknown fields', async () => {
          await invalid({ scoreIncrement: 1, score: 1_000_000 }, ['score']);
        });

        for (const [label, value] of [
          ['fractional', 1.5],
          ['zero', 0],
          ['negative', -1],
          ['a numeric string', '5'],
          ['above MAX_SCORE_INCREMENT', 1001],
          ['null', null],
          ['a boolean', true],
        ] as Array<[string, unknown]>) {
          it(`refuses a ${label} scoreIncrement from a player`, async () => {
            await invalid({ scoreIncrement: value }, ['scoreIncrement']);
          });
        }

        it('requires scoreIncrement', async () => {
          await invalid({ actionId: 'x' }, ['scoreIncrement']);
        });

        for (const [label, value] of [
          ['empty', ''],
          ['with a space', 'a b'],
          ['longer than 128 characters', 'a'.repeat(129)],
          ['not ASCII', 'é'],
          ['a number', 42],
        ] as Array<[string, unknown]>) {
          it(`refuses an actionId ${label}`, async () => {
            await invalid({ scoreIncrement: 1, actionId: value }, ['actionId']);
          });
        }

        it('accepts an actionId of exactly 128 visible characters', async () => {
          const u = uniqueUser();
          expect((await post(tokenFor(u), { scoreIncrement: 1, actionId: '~'.repeat(128) })).status).to.equal(
            201,
          );
        });

        it('refuses a malformed userId', async () => {
          await invalid({ userId: 'not a user!', scoreIncrement: 1 }, ['userId']);
        });

        it('refuses an invalid Idempotency-Key header', async () => {
          await invalid({ scoreIncrement: 1 }, [], { headers: { 'Idempotency-Key': 'k'.repeat(129) } });
        });

        it('refuses an Idempotency-Key header that disagrees with actionId', async () => {
          const res = await invalid({ scoreIncrement: 1, actionId: 'a-1' }, [], {
            headers: { 'Idempotency-Key': 'a-2' },
          });
          expect(res.body.detail).to.match(/Idempotency-Key/);
        });

        it('refuses a body that is not JSON, not an object, or missing', async () => {
          const u = uniqueUser();
          const send = (text: string) =>
            app.request
              .post(path)
              .set('Authorization', `Bearer ${tokenFor(u)}`)
              .set('Content-Type', 'application/json')
              .send(text);
          expectProblem(await send('{"scoreIncrement": '), 400);
          expectProblem(await send('null'), 400);
          expectProblem(await send('[1]'), 400);
          expectProblem(await send('"text"'), 400);
          expectProblem(await post(tokenFor(u)), 400);
          expect(await mysqlEvents(db, u)).to.have.length(0);
        });

        it('refuses an admin correction outside the safe integer range', async () => {
          const target = uniqueUser();
          await insertUser(db, target);
          const res = await post(await newAdmin(), { userId: target, scoreIncrement: MAX + 1 });
          expectProblem(res, 400);
          expect(res.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['scoreIncrement']);
          expect(await mysqlEvents(db, target)).to.have.length(0);
        });

        it('refuses a zero correction from an admin', async () => {
          const target = uniqueUser();
          await insertUser(db, target);
          const res = await post(await newAdmin(), { userId: target, scoreIncrement: 0 });
          expectProblem(res, 400);
          expect(await mysqlEvents(db, target)).to.have.length(0);
        });
      });

      describe('admin corrections', () => {
        it('lets an admin apply a negative correction to another user, recorded as the admin', async () => {
          const adminId = uniqueUser('admin');
          await insertUser(db, adminId, { role: 'admin' });
          const u = uniqueUser();
          expect((await post(tokenFor(u), { scoreIncrement: 50 })).status).to.equal(201);
          const res = await post(tokenFor(adminId), { userId: u, scoreIncrement: -20 });
          expect(res.status, res.text).to.equal(201);
          expect(res.body).to.include({ userId: u, score: 30, scoreIncrement: -20 });
          expect(res.body.rank).to.equal(await mysqlRank(db, 30));
          expect(await mysqlScore(db, u)).to.equal('30');
          const last = (await mysqlEvents(db, u)).at(-1)!;
          expect(last).to.include({ delta: -20, score_after: 30, actor_id: adminId });
          expect(await redisScore(u)).to.equal(30);
          // The admin's own score is untouched.
          expect(await mysqlScore(db, adminId)).to.equal(undefined);
        });

        it('does not let a player send a negative increment, even for themselves', async () => {
          const u = uniqueUser();
          expect((await post(tokenFor(u), { scoreIncrement: 10 })).status).to.equal(201);
          expectProblem(await post(tokenFor(u), { scoreIncrement: -5 }), 400);
          expect(await mysqlScore(db, u)).to.equal('10');
        });
      });

      describe('401 unauthenticated', () => {
        it('answers 401 with WWW-Authenticate: Bearer and writes nothing', async () => {
          for (const auth of [undefined, 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer not-a-token']) {
            const req = app.request.post(path);
            if (auth) req.set('Authorization', auth);
            const res = await req.send({ userId: 'nobody-401', scoreIncrement: 1 });
            expectProblem(res, 401);
            expect(res.headers['www-authenticate']).to.match(/^Bearer\b/);
          }
          expect(await mysqlUser(db, 'nobody-401')).to.equal(undefined);
        });
      });

      describe('403 forbidden', () => {
        it('refuses a player posting for another user', async () => {
          const [player, victim] = [uniqueUser(), uniqueUser()];
          await insertUser(db, victim);
          const res = await post(tokenFor(player), { userId: victim, scoreIncrement: 5 });
          expectProblem(res, 403);
          expect(await mysqlEvents(db, victim)).to.have.length(0);
          expect(await mysqlScore(db, victim)).to.equal(undefined);
        });

        it('refuses a banned user', async () => {
          const u = uniqueUser();
          await insertUser(db, u, { status: 'banned' });
          expectProblem(await post(tokenFor(u), { scoreIncrement: 1 }), 403);
          expect(await mysqlEvents(db, u)).to.have.length(0);
        });

        it('takes the role from the database, not from the token', async () => {
          const [u, victim] = [uniqueUser(), uniqueUser()];
          await insertUser(db, u, { role: 'player' });
          await insertUser(db, victim);
          const res = await post(tokenFor(u, { claims: { role: 'admin' } }), {
            userId: victim,
            scoreIncrement: 1,
          });
          expectProblem(res, 403);
          expect(await mysqlUser(db, u)).to.include({ role: 'player' });
          expect(await mysqlEvents(db, victim)).to.have.length(0);
        });
      });

      describe('404 not found', () => {
        it('answers 404 when an admin posts for a user that does not exist, creating nothing', async () => {
          const ghost = uniqueUser('ghost');
          const res = await post(await newAdmin(), { userId: ghost, scoreIncrement: 5 });
          expectProblem(res, 404);
          expect(await mysqlUser(db, ghost)).to.equal(undefined);
          expect(await mysqlEvents(db, ghost)).to.have.length(0);
        });
      });

      describe('413 and 415', () => {
        it('refuses a body over 4 KB with 413, and accepts one of exactly 4 KB', async () => {
          const u = uniqueUser();
          const json = '{"scoreIncrement": 1}';
          const headers = {
            Authorization: `Bearer ${tokenFor(u)}`,
            'Content-Type': 'application/json',
          };
          const exact = json + ' '.repeat(4096 - json.length);
          const ok = await rawPost(app.url, path, { ...headers, 'Content-Length': '4096' }, exact);
          expect(ok.status, ok.text).to.equal(201);

          const big = json + ' '.repeat(4097 - json.length);
          const tooBig = await rawPost(app.url, path, { ...headers, 'Content-Length': '4097' }, big);
          expect(tooBig.status).to.equal(413);
          expect(tooBig.headers['content-type']).to.match(/^application\/problem\+json/);
          expect(JSON.parse(tooBig.text)).to.include({ status: 413 });
          expect(JSON.parse(tooBig.text).requestId).to.be.a('string');

          // Chunked, with no Content-Length to trust: the limit is enforced while streaming.
          const chunked = await rawPost(
            app.url,
            path,
            { ...headers, 'Transfer-Encoding': 'chunked' },
            big + ' '.repeat(10_000),
          );
          expect(chunked.status).to.equal(413);

          expect(await mysqlScore(db, u)).to.equal('1');
        });

        it('refuses a body that is not JSON with 415', async () => {
          const u = uniqueUser();
          const body = '{"scoreIncrement": 1}';
          for (const type of [
            'text/plain',
            'application/x-www-form-urlencoded',
            'application/json; charset=iso-8859-1',
          ]) {
            const res = await app.request
              .post(path)
              .set('Authorization', `Bearer ${tokenFor(u)}`)
              .set('Content-Type', type)
              .send(body);
            expectProblem(res, 415);
          }
          const untyped = await rawPost(app.url, path, { Authorization: `Bearer ${tokenFor(u)}` }, body);
          expect(untyped.status).to.equal(415);
          expect(untyped.headers['content-type']).to.match(/^application\/problem\+json/);
          expect(await mysqlEvents(db, u)).to.have.length(0);
        });
      });

      it("answers with the caller's X-Request-Id when it is sane, and a fresh one otherwise", async () => {
        const u = uniqueUser();
        const traced = await post(tokenFor(u), { scoreIncrement: 0 }).set('X-Request-Id', 'trace-abc.123');
        expectProblem(traced, 400);
        expect(traced.body.requestId).to.equal('trace-abc.123');
        const insane = await post(tokenFor(u), { scoreIncrement: 0 }).set(
          'X-Request-Id',
          'no spaces <allowed>',
        );
        expectProblem(insane, 400);
        expect(insane.body.requestId).to.not.include('<');
      });

      it('answers other methods with 405 and an Allow header', async () => {
        const res = await app.request.get(path);
        expectProblem(res, 405);
        expect(res.headers.allow).to.equal('POST');
      });
    });
  }
});

describe('bad input from a brand-new user', () => {
  let app: Instance;
  let db: Knex;
  before(async () => {
    app = await startInstance();
    db = testDb();
  });
  after(async () => {
    await app.close();
    await db.destroy();
  });

  it('is refused before the user is provisioned, so nothing is written', async () => {
    for (const body of [
      { scoreIncrement: 'ten' },
      { scoreIncrement: 1, role: 'admin' },
      { scoreIncrement: 1.5 },
      [],
    ]) {
      const user = uniqueUser('newbad');
      const res = await app.request
        .post('/api/v1/scores/update')
        .set('Authorization', `Bearer ${tokenFor(user)}`)
        .send(body);
      expect(res.status, JSON.stringify(body)).to.equal(400);
      expect(await mysqlUser(db, user), JSON.stringify(body)).to.equal(undefined);
    }
  });
});

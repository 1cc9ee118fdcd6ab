import { createHmac, generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import type { Knex } from 'knex';
import type { Response } from 'supertest';
import { testDb } from './helpers/database';
import { TEST_SECRET, tokenFor, uniqueUser } from './helpers/env';
import { startInstance, type Instance } from './helpers/instance';
import { expectProblem, insertUser, mysqlEvents, mysqlUser } from './helpers/assertions';

const PATH = '/api/v1/scores/update';
const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A JWT assembled by hand, so a test can produce exactly the token an attacker would. */
function hmacToken(header: object, payload: object, key: string, hash = 'sha256'): string {
  const signed = `${b64(header)}.${b64(payload)}`;
  return `${signed}.${createHmac(hash, key).update(signed).digest('base64url')}`;
}
const unsignedToken = (payload: object, alg = 'none') => `${b64({ alg, typ: 'JWT' })}.${b64(payload)}.`;

function rsaPair() {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

function post(app: Instance, token: string | undefined, body: object = { scoreIncrement: 1 }) {
  const req = app.request.post(PATH);
  if (token !== undefined) req.set('Authorization', `Bearer ${token}`);
  return req.send(body);
}

function expect401(res: Response): void {
  expectProblem(res, 401);
  expect(res.headers['www-authenticate']).to.match(/^Bearer\b/);
}

describe('authentication (JWT)', () => {
  let db: Knex;
  before(() => (db = testDb()));
  after(() => db.destroy());

  describe('HS256 (the default)', () => {
    let app: Instance;
    before(async () => (app = await startInstance()));
    after(() => app.close());

    it('accepts a valid token (the control for every attack below)', async () => {
      const u = uniqueUser();
      expect((await post(app, tokenFor(u))).status).to.equal(201);
    });

    it('accepts a token that expired within the 30 s clock tolerance', async () => {
      const u = uniqueUser();
      const token = jwt.sign({ sub: u, exp: now() - 10 }, TEST_SECRET, { algorithm: 'HS256' });
      expect((await post(app, token)).status).to.equal(201);
    });

    it('answers 401 with WWW-Authenticate: Bearer when there is no token', async () => {
      const res = await app.request.post(PATH).send({ scoreIncrement: 1 });
      expect401(res);
    });

    /** Each attack gets a fresh subject, so we can check the token did not even provision a user. */
    const attacks: Array<[string, (sub: string) => string | Promise<string>]> = [
      ['malformed (not a JWT)', () => 'not-a-jwt'],
      ['malformed (three parts of garbage)', () => 'aaaa.bbbb.cccc'],
      ['alg: none, no signature', (sub) => unsignedToken({ sub, exp: now() + 600 })],
      ['alg: "None", no signature', (sub) => unsignedToken({ sub, exp: now() + 600 }, 'None')],
      [
        'alg: none with the signature of a valid token kept',
        (sub) => unsignedToken({ sub, exp: now() + 600 }) + tokenFor(sub).split('.')[2],
      ],
      [
        'the wrong algorithm (HS512 with the right secret)',
        (sub) => hmacToken({ alg: 'HS512', typ: 'JWT' }, { sub, exp: now() + 600 }, TEST_SECRET, 'sha512'),
      ],
      [
        'the wrong algorithm (HS384 with the right secret)',
        (sub) => jwt.sign({ sub }, TEST_SECRET, { algorithm: 'HS384', expiresIn: 600 }),
      ],
      [
        'signed with another secret',
        (sub) => tokenFor(sub, { secret: 'another-secret-that-is-also-long-enough!!' }),
      ],
      [
        'a tampered payload (signature of the original kept)',
        (sub) => {
          const [header, payload, signature] = tokenFor(uniqueUser('original')).split('.');
          const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
          return [header, b64({ ...claims, sub, role: 'admin' }), signature].join('.');
        },
      ],
      [
        'expired beyond the clock tolerance',
        (sub) => jwt.sign({ sub, exp: now() - 60 }, TEST_SECRET, { algorithm: 'HS256' }),
      ],
      ['without exp', (sub) => jwt.sign({ sub }, TEST_SECRET, { algorithm: 'HS256' })],
      [
        'not valid yet (nbf beyond the tolerance)',
        (sub) => jwt.sign({ sub, nbf: now() + 300 }, TEST_SECRET, { expiresIn: 600 }),
      ],
      [
        'without sub',
        () => jwt.sign({ name: 'nobody' }, TEST_SECRET, { algorithm: 'HS256', expiresIn: 600 }),
      ],
      [
        'with a sub that is not a usable user id',
        () => jwt.sign({ sub: 'bad id with spaces' }, TEST_SECRET, { expiresIn: 600 }),
      ],
      [
        'longer than 8 KB',
        (sub) => jwt.sign({ sub, name: 'x'.repeat(9000) }, TEST_SECRET, { expiresIn: 600 }),
      ],
    ];

    for (const [label, make] of attacks) {
      it(`refuses a token ${label} with 401, creating and writing nothing`, async () => {
        const sub = uniqueUser('attacker');
        const res = await post(app, await make(sub));
        expect401(res);
        expect(await mysqlUser(db, sub)).to.equal(undefined);
        expect(await mysqlEvents(db, sub)).to.have.length(0);
      });
    }

    it('never says which check failed: every refused token gets the same answer', async () => {
      const answers = new Set<string>();
      for (const [, make] of attacks) {
        const res = await post(app, await make(uniqueUser('attacker')));
        expect(res.status).to.equal(401);
        answers.add(JSON.stringify([res.body.title, res.body.detail, res.headers['www-authenticate']]));
      }
      expect(answers.size, [...answers].join('\n')).to.equal(1);
      const [, detail] = JSON.parse([...answers][0]) as [string, string];
      expect(detail).to.not.match(
        /signature|algorithm|alg\b|issuer|audience|malformed|\bsub\b|\bexp\b|nbf|jwt|long/i,
      );
    });

    it('refuses a tampered token for an existing user without touching that user', async () => {
      const victim = uniqueUser('victim');
      await insertUser(db, victim);
      const [header, payload, signature] = tokenFor(uniqueUser()).split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      expect401(await post(app, [header, b64({ ...claims, sub: victim }), signature].join('.')));
      expect(await mysqlEvents(db, victim)).to.have.length(0);
    });
  });

  describe('issuer and audience', () => {
    let app: Instance;
    const ISS = 'https://auth.example.test';
    const AUD = 'scoreboard-api';
    before(async () => (app = await startInstance({ JWT_ISSUER: ISS, JWT_AUDIENCE: AUD })));
    after(() => app.close());

    const sign = (sub: string, opts: jwt.SignOptions) =>
      jwt.sign({ sub }, TEST_SECRET, { expiresIn: 600, ...opts });

    it('accepts the configured issuer and audience', async () => {
      expect((await post(app, sign(uniqueUser(), { issuer: ISS, audience: AUD }))).status).to.equal(201);
    });

    for (const [label, opts] of [
      ['a wrong issuer', { issuer: 'https://evil.example.test', audience: AUD }],
      ['no issuer', { audience: AUD }],
      ['a wrong audience', { issuer: ISS, audience: 'another-api' }],
      ['no audience', { issuer: ISS }],
    ] as Array<[string, jwt.SignOptions]>) {
      it(`refuses a token with ${label}`, async () => {
        const sub = uniqueUser('attacker');
        expect401(await post(app, sign(sub, opts)));
        expect(await mysqlUser(db, sub)).to.equal(undefined);
      });
    }
  });

  describe('RS256 (JWT_PUBLIC_KEY)', () => {
    let app: Instance;
    const keys = rsaPair();
    before(
      async () =>
        (app = await startInstance({
          JWT_SECRET: undefined,
          JWT_PUBLIC_KEY: keys.publicKey,
          JWT_ALGORITHM: 'RS256',
        })),
    );
    after(() => app.close());

    it('accepts a token signed with the private key', async () => {
      const token = jwt.sign({ sub: uniqueUser() }, keys.privateKey, { algorithm: 'RS256', expiresIn: 600 });
      expect((await post(app, token)).status).to.equal(201);
    });

    const attacks: Array<[string, (sub: string) => string]> = [
      [
        'HS256 signed with the public key as the HMAC secret (algorithm confusion)',
        (sub) => hmacToken({ alg: 'HS256', typ: 'JWT' }, { sub, exp: now() + 600 }, keys.publicKey),
      ],
      ['alg: none', (sub) => unsignedToken({ sub, exp: now() + 600 })],
      ['HS256 signed with the test secret', (sub) => tokenFor(sub)],
      [
        'RS256 signed with another private key',
        (sub) => jwt.sign({ sub }, rsaPair().privateKey, { algorithm: 'RS256', expiresIn: 600 }),
      ],
      [
        'another RSA algorithm (RS512) with the right key',
        (sub) => jwt.sign({ sub }, keys.privateKey, { algorithm: 'RS512', expiresIn: 600 }),
      ],
      ['RS256 without exp', (sub) => jwt.sign({ sub }, keys.privateKey, { algorithm: 'RS256' })],
    ];
    for (const [label, make] of attacks) {
      it(`refuses ${label}`, async () => {
        const sub = uniqueUser('attacker');
        expect401(await post(app, make(sub)));
        expect(await mysqlUser(db, sub)).to.equal(undefined);
      });
    }
  });
});

describe('authorization from the database', () => {
  let db: Knex;
  before(() => (db = testDb()));
  after(() => db.destroy());

  describe('AUTO_PROVISION_USERS=false', () => {
    let app: Instance;
    before(async () => (app = await startInstance({ AUTO_PROVISION_USERS: 'false' })));
    after(() => app.close());

    it('refuses an unknown user with 403 and does not create it', async () => {
      const u = uniqueUser();
      expectProblem(await post(app, tokenFor(u, { name: 'Stranger' })), 403);
      expect(await mysqlUser(db, u)).to.equal(undefined);
    });

    it('accepts a user that exists', async () => {
      const u = uniqueUser();
      await insertUser(db, u);
      expect((await post(app, tokenFor(u))).status).to.equal(201);
    });
  });

  describe('role and status are read on every write', () => {
    let app: Instance;
    // With the authorization cache on, role changes made behind the service's back take up to the TTL
    // (test/auth-cache.test.ts); this pins the behaviour with the cache off.
    before(async () => (app = await startInstance({ AUTH_CACHE_TTL_MS: '0' })));
    after(() => app.close());

    it('follows promotions and bans made in the database', async () => {
      const [actor, target] = [uniqueUser('actor'), uniqueUser()];
      await insertUser(db, actor);
      await insertUser(db, target);
      const forTarget = () => post(app, tokenFor(actor), { userId: target, scoreIncrement: 3 });

      expectProblem(await forTarget(), 403);
      await db.raw(`UPDATE users SET role = 'admin' WHERE id = ?`, [actor]);
      const ok = await forTarget();
      expect(ok.status).to.equal(201);
      expect(ok.body).to.include({ userId: target, score: 3 });
      await db.raw(`UPDATE users SET status = 'banned' WHERE id = ?`, [actor]);
      expectProblem(await forTarget(), 403);
      expect((await mysqlEvents(db, target)).map((e) => e.delta)).to.deep.equal([3]);
    });
  });
});

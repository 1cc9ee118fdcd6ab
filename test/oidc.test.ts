import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { ConfigError, loadConfig } from '../src/config';
import { expectProblem, mysqlScore, mysqlUser } from './helpers/assertions';
import { testDb } from './helpers/database';
import { startInstance, type Instance } from './helpers/instance';
import { AUDIENCE, craft, rsaKey, startProvider } from './helpers/oidc';
import { startTcpProxy } from './helpers/tcp-proxy';

/** The env of an instance that trusts an identity provider instead of a shared secret. */
const providerEnv = (issuer: string, extra: Record<string, string> = {}) => ({
  JWT_SECRET: undefined,
  OIDC_ISSUER: issuer,
  JWT_AUDIENCE: AUDIENCE,
  JWKS_COOLDOWN_MS: '300',
  ...extra,
});

const post = (app: Instance, token: string, body: object = { scoreIncrement: 5 }) =>
  app.request.post('/api/v1/scores/update').set('Authorization', `Bearer ${token}`).send(body);

describe('tokens from an OpenID Connect provider (oidc-provider, JWKS, rotation)', function () {
  this.timeout(60_000);
  const first = rsaKey('key-1');
  let provider: Awaited<ReturnType<typeof startProvider>>;
  let app: Instance;
  const db = testDb();
  before(async () => {
    provider = await startProvider([first.jwk]);
    app = await startInstance(providerEnv(provider.issuer));
  });
  after(async () => {
    await app?.close();
    await provider?.stop();
    await db.destroy();
  });

  it("accepts a token from the provider's token endpoint: the client posts a score as itself", async () => {
    const token = await provider.token();
    expect(jwt.decode(token, { complete: true })?.header).to.include({ kid: 'key-1', typ: 'at+jwt' });
    const before = Number((await mysqlScore(db, 'game-backend')) ?? 0);
    const res = await post(app, token);
    expect(res.status, res.text).to.equal(201);
    expect(res.body.score).to.equal(before + 5);
    expect(await mysqlUser(db, 'game-backend')).to.include({ role: 'player' });
  });

  it('refuses tokens from another issuer, for another audience, outside the algorithms, with an unpublished kid, expired or not yet valid', async () => {
    const sub = `oidc-${randomBytes(3).toString('hex')}`;
    const me = provider.issuer;
    const stranger = rsaKey('key-1'); // same kid, another key: the signature cannot verify
    const now = Math.floor(Date.now() / 1000);
    const bad = {
      issuer: craft(first.privateKey, 'key-1', { sub }, { issuer: 'https://evil.example/' }),
      audience: craft(first.privateKey, 'key-1', { sub }, { issuer: me, audience: 'someone-else' }),
      algorithm: craft(first.privateKey, 'key-1', { sub }, { issuer: me, alg: 'PS256' }),
      unpublished: craft(rsaKey('key-x').privateKey, 'key-x', { sub }, { issuer: me }),
      forged: craft(stranger.privateKey, 'key-1', { sub }, { issuer: me }),
      expired: craft(first.privateKey, 'key-1', { sub, exp: now - 120 }, { issuer: me, expiresIn: null }),
      notYet: craft(first.privateKey, 'key-1', { sub, nbf: now + 600 }, { issuer: me }),
    };
    for (const [what, token] of Object.entries(bad)) {
      const res = await post(app, token);
      expectProblem(res, 401);
      expect(res.status, what).to.equal(401);
    }
    expect(await mysqlUser(db, sub)).to.equal(undefined);
    // The control: the same shape signed right is accepted.
    expect((await post(app, craft(first.privateKey, 'key-1', { sub }, { issuer: me }))).status).to.equal(201);
  });

  it('a rotated key is accepted without a restart, and the old one keeps working while it is published', async () => {
    const old = craft(first.privateKey, 'key-1', { sub: 'rot-old' }, { issuer: provider.issuer });
    const second = rsaKey('key-2');
    await provider.restart([second.jwk, first.jwk]); // key-2 signs now; key-1 is still published
    await new Promise((r) => setTimeout(r, 350)); // past the refetch cooldown
    const fresh = await provider.token();
    expect(jwt.decode(fresh, { complete: true })?.header.kid).to.equal('key-2');
    expect((await post(app, fresh)).status).to.equal(201);
    expect((await post(app, old)).status).to.equal(201);
  });

  it('1,000 tokens with random kids cost the provider at most a handful of JWKS fetches', async () => {
    await new Promise((r) => setTimeout(r, 350));
    const before = provider.stats.jwksRequests;
    const attacker = rsaKey('x');
    const started = Date.now();
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => {
          const kid = randomBytes(8).toString('hex') + (i + j);
          return post(
            app,
            craft(attacker.privateKey, kid, { sub: 'flood' }, { issuer: provider.issuer }),
          ).then((r) => expect(r.status).to.equal(401));
        }),
      );
    }
    const fetches = provider.stats.jwksRequests - before;
    const elapsedMs = Date.now() - started;
    // One refetch per cooldown (300 ms here) at most, plus the one the first unknown kid may trigger.
    expect(fetches, `${fetches} fetches in ${elapsedMs} ms`).to.be.at.most(Math.ceil(elapsedMs / 300) + 1);
    expect(fetches).to.be.at.most(10);
  });

  it('with the provider stopped, known keys still verify and unknown ones fail fast', async () => {
    const known = await provider.token();
    const port = provider.port;
    await provider.stop();
    try {
      expect((await post(app, known)).status).to.equal(201);
      const unknown = craft(rsaKey('gone').privateKey, 'gone', { sub: 'x' }, { issuer: provider.issuer });
      await new Promise((r) => setTimeout(r, 350)); // let a refetch be allowed: it fails at once (refused)
      const t0 = Date.now();
      expectProblem(await post(app, unknown), 401);
      expect(Date.now() - t0).to.be.below(1000);
    } finally {
      await provider.restart([rsaKey('key-3').jwk, first.jwk]);
      expect(provider.port).to.equal(port);
    }
  });

  it('with the provider slow, no request waits longer than the fetch timeout', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: provider.port });
    // Discovery names the provider's own URLs, so the slow path is the key fetch after discovery: route the
    // instance through the proxy for both by using the JWKS URL directly.
    const slow = await startInstance({
      JWT_SECRET: undefined,
      JWT_JWKS_URL: `http://127.0.0.1:${proxy.port}/jwks`,
      JWT_ISSUER: provider.issuer,
      JWT_AUDIENCE: AUDIENCE,
      JWKS_TIMEOUT_MS: '500',
      JWKS_COOLDOWN_MS: '0',
    });
    try {
      proxy.setLatency(3000);
      const unknown = craft(rsaKey('slow').privateKey, 'slow', { sub: 'x' }, { issuer: provider.issuer });
      const t0 = Date.now();
      expectProblem(await post(slow, unknown), 401);
      expect(Date.now() - t0, 'bounded by JWKS_TIMEOUT_MS').to.be.below(1500);
      const known = craft(first.privateKey, 'key-1', { sub: 'slow-known' }, { issuer: provider.issuer });
      const t1 = Date.now();
      expect((await post(slow, known)).status).to.equal(201);
      expect(Date.now() - t1).to.be.below(1000);
    } finally {
      proxy.heal();
      await slow.close();
      await proxy.close();
    }
  });

  it('readiness reports a key set that could never be loaded', async () => {
    const dead = await startInstance(providerEnv('http://127.0.0.1:1', { JWKS_TIMEOUT_MS: '300' }));
    try {
      const res = await dead.request.get('/readyz');
      expect(res.status).to.equal(503);
      expect(res.body).to.include({ jwks: 'unavailable' });
      expect((await app.request.get('/readyz')).body).to.include({ jwks: 'loaded' });
    } finally {
      await dead.close();
    }
  });

  it('counts fetches and refusals by reason in /metrics, never the token', async () => {
    const text = (await app.request.get('/metrics')).text;
    expect(text).to.match(/^jwks_fetches_total\{result="ok"\} [1-9]/m);
    expect(text).to.match(/^token_rejections_total\{reason="unknown_key"\} [1-9]/m);
    expect(text).to.match(/^token_rejections_total\{reason="issuer"\} [1-9]/m);
    expect(text).to.match(/^jwks_cooldown_hits_total [1-9]/m);
  });
});

describe('a JWKS from a plain HTTP server (JWT_JWKS_URL): ES256 and PS256', function () {
  this.timeout(30_000);
  it('verifies ES256 and PS256 tokens by kid, and only algorithms in JWT_ALGORITHMS', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pss = generateKeyPairSync('rsa', { modulusLength: 2048 }); // PS256 signs with an RSA key
    const keys = [
      { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' },
      { ...pss.publicKey.export({ format: 'jwk' }), kid: 'pss-1', alg: 'PS256', use: 'sig' },
    ];
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`;
    const issuer = 'https://login.example.test/';
    const app = await startInstance({
      JWT_SECRET: undefined,
      JWT_JWKS_URL: url,
      JWT_ISSUER: issuer,
      JWT_AUDIENCE: AUDIENCE,
      JWT_ALGORITHMS: 'ES256,PS256',
    });
    try {
      const es = craft(ec.privateKey, 'ec-1', { sub: 'es-user' }, { issuer, alg: 'ES256' });
      const ps = craft(pss.privateKey, 'pss-1', { sub: 'auth0|ps-user+x' }, { issuer, alg: 'PS256' });
      expect((await post(app, es)).status).to.equal(201);
      expect((await post(app, ps)).status, 'an Auth0-style subject with + is a user id').to.equal(201);
      const rs = craft(rsaKey('pss-1').privateKey, 'pss-1', { sub: 'rs' }, { issuer, alg: 'RS256' });
      expectProblem(await post(app, rs), 401);
    } finally {
      await app.close();
      server.close();
    }
  });
});

describe('identity provider configuration', () => {
  const refused = (env: Record<string, string>) => {
    try {
      loadConfig({ NODE_ENV: 'production', ...env } as NodeJS.ProcessEnv);
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error(`accepted ${JSON.stringify(env)}`);
  };

  it('takes exactly one key mode, requires JWT_AUDIENCE with a provider, and implies the issuer', () => {
    const secret = 's'.repeat(40);
    expect(refused({ OIDC_ISSUER: 'https://id.example/', JWT_SECRET: secret, JWT_AUDIENCE: 'a' })).to.match(
      /only one of/,
    );
    expect(refused({ OIDC_ISSUER: 'https://id.example/' })).to.include('"JWT_AUDIENCE"');
    expect(refused({ JWT_JWKS_URL: 'https://id.example/keys', JWT_ISSUER: 'x' })).to.include(
      '"JWT_AUDIENCE"',
    );
    expect(
      refused({ OIDC_ISSUER: 'https://id.example/', JWT_AUDIENCE: 'a', JWT_ISSUER: 'https://other/' }),
    ).to.match(/must equal "OIDC_ISSUER"/);
    expect(
      refused({ OIDC_ISSUER: 'https://id.example/', JWT_AUDIENCE: 'a', JWT_ALGORITHMS: 'HS256' }),
    ).to.include('"JWT_ALGORITHMS"');
    const config = loadConfig({
      NODE_ENV: 'production',
      OIDC_ISSUER: 'https://id.example/',
      JWT_AUDIENCE: 'a',
    });
    expect(config.jwt).to.include({ mode: 'oidc', issuer: 'https://id.example/', audience: 'a' });
    expect(config.jwt.algorithms).to.deep.equal(['RS256']);
  });
});

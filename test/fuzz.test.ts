import http from 'node:http';
import { expect } from 'chai';
import fc from 'fast-check';
import jwt from 'jsonwebtoken';
import type { Knex } from 'knex';
import { insertUser } from './helpers/assertions';
import { isolatedStore } from './helpers/database';
import { TEST_SECRET, tokenFor, uniqueUser } from './helpers/env';
import { startInstance, type Instance } from './helpers/instance';

/**
 * Property-based requests to every endpoint: random bodies, types, sizes, encodings, headers and tokens.
 * For every request: never a 5xx; every error is RFC 9457 problem JSON whose `status` is the HTTP status and
 * whose `requestId` is the X-Request-Id header; and a rejected request changes no data (table checksums before
 * and after). FUZZ_RUNS sets the runs per endpoint (default 50); FUZZ_SEED replays a failing run.
 *
 * One allowance: a valid token for a user the database does not know yet creates that user (auto-provisioning,
 * AUTO_PROVISION_USERS). That row comes from the authenticated identity, not from the rejected input, so it is
 * the one change a refused request may leave, and only for the token's own subject. On the write path a
 * malformed request (400, 413, 415) leaves not even that (its body is checked before the caller is loaded);
 * the other authenticated routes still load the caller first, so there it may (reported to the lead).
 */

/** Answers that mean "the request itself is malformed": on the write path they must not even provision the caller. */
const MALFORMED = new Set([400, 413, 415]);
const RUNS = Number(process.env.FUZZ_RUNS ?? 50);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  chunked?: boolean;
}
interface Received {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Sends exactly what the fuzzer built (no client-side fixing up), closing event streams after their headers. */
function send(baseUrl: string, req: Sent): Promise<Received> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    if (req.body && !req.chunked) headers['Content-Length'] = String(req.body.length);
    if (req.chunked) headers['Transfer-Encoding'] = 'chunked';
    const r = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers,
        agent: false,
        timeout: 5000,
      },
      (res) => {
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          resolve({ status: res.statusCode!, headers: res.headers, text: '' });
          res.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`no answer within 5 s: ${req.method} ${req.path}`)));
    r.on('error', reject);
    if (req.body) r.end(req.body);
    else r.end();
  });
}

/** Everything a request could change, as one comparable value. */
async function fingerprint(db: Knex): Promise<{ data: string; users: Map<string, string> }> {
  const [sums] = await db.raw('CHECKSUM TABLE board_scores, score_events, boards, board_windows');
  const [rows] = await db.raw(
    'SELECT id, display_name, role, status, CAST(updated_at AS CHAR) AS at FROM users ORDER BY id',
  );
  return {
    data: JSON.stringify(sums),
    users: new Map((rows as Array<Record<string, string>>).map((r) => [r.id, JSON.stringify(r)])),
  };
}

describe('fuzzing every endpoint (fast-check)', function () {
  this.timeout(180_000);
  // Tables and keys of its own: it needs an empty board, and no other suite sees its rows.
  const store = isolatedStore('fuzz');
  const start: typeof startInstance = (env = {}, hooks) =>
    startInstance({ DATABASE_URL: store.databaseUrl, REDIS_PREFIX: store.prefix, ...env }, hooks);
  let app: Instance;
  let db: Knex;
  const player = uniqueUser('fz');
  const other = uniqueUser('fz');
  const admin = uniqueUser('fzadmin');
  const banned = uniqueUser('fzbanned');

  before(async () => {
    db = store.db; // small tables of its own, so a checksum per request stays cheap
    await insertUser(db, player);
    await insertUser(db, other);
    await insertUser(db, admin, { role: 'admin' });
    await insertUser(db, banned, { status: 'banned' });
    app = await start({ AUTH_CACHE_TTL_MS: '0' });
    const seeded = await send(app.url, {
      method: 'POST',
      path: '/api/v1/scores/update',
      headers: { Authorization: `Bearer ${tokenFor(other)}`, 'Content-Type': 'application/json' },
      body: Buffer.from('{"scoreIncrement":5,"actionId":"seed"}'),
    });
    expect(seeded.status).to.equal(201);
  });
  after(async () => {
    await app.close(); // admin corrections of up to 2^53 - 1 stay in the suite's own database, dropped now
  });

  const now = () => Math.floor(Date.now() / 1000);
  const userId = fc.oneof(
    { arbitrary: fc.constantFrom(player, other, admin, banned, 'nobody-here', 'x'), weight: 4 },
    fc.stringMatching(/^[A-Za-z0-9._@:|-]{1,64}$/),
    fc.string({ unit: 'grapheme', maxLength: 80 }),
    fc.constantFrom(
      '..',
      '../../etc/passwd',
      '%00',
      '%2e%2e%2f',
      'a%2Fb',
      '%',
      '%zz',
      ' ',
      "'; DROP TABLE users; --",
    ),
    fc.string({ unit: 'binary-ascii', minLength: 65, maxLength: 2000 }),
  );
  // The hand-written percent tricks go out as they are; everything else is encoded, as a client would.
  const rawSegments = new Set(['..', '%00', '%2e%2e%2f', 'a%2Fb', '%', '%zz']);
  const pathSegment = userId.map((id) => (rawSegments.has(id) ? id : encodeURIComponent(id)));

  const subject = fc.oneof(
    fc.constantFrom(player, other, admin, banned),
    fc.stringMatching(/^[A-Za-z0-9]{1,20}$/),
  );
  const token = fc.oneof(
    subject.map((sub) => tokenFor(sub)),
    subject.map((sub) => tokenFor(sub, { claims: { role: 'admin' }, name: 'Fuzzy' })),
    fc.constantFrom(admin).map((sub) => tokenFor(sub)),
    subject.map((sub) => tokenFor(sub, { ttl: -120 })),
    subject.map((sub) => tokenFor(sub, { secret: 'not-the-secret-but-long-enough-for-hs256' })),
    subject.map(
      (sub) =>
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub, exp: now() + 600 })).toString('base64url')}.`,
    ),
    fc
      .record({
        sub: fc.anything(),
        exp: fc.oneof(fc.integer(), fc.constant(now() + 600), fc.string()),
        role: fc.anything(),
      })
      .map((p) => {
        try {
          return jwt.sign(p as object, TEST_SECRET, { algorithm: 'HS256' });
        } catch {
          return 'unsignable';
        }
      }),
    fc.string({ unit: 'binary-ascii', maxLength: 300 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
    fc.constant('x'.repeat(9000)),
  );
  const authorization = fc.option(
    fc.oneof(
      // Half the time a good token of a known user, so requests get past authentication and test what follows.
      {
        arbitrary: fc.constantFrom(player, other, admin, banned).map((sub) => `Bearer ${tokenFor(sub)}`),
        weight: 4,
      },
      token.map((t) => `Bearer ${t}`),
      token.map((t) => `bearer ${t}`),
      token.map((t) => `Basic ${t}`),
      token.map((t) => `Bearer  ${t} `),
    ),
    { nil: undefined },
  );
  const printable = fc.string({
    unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    maxLength: 200,
  });
  const contentType = fc.option(
    fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 4 },
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'application/json; charset=UTF-16',
        'application/json; charset=iso-8859-1',
        'application/json; charset=bogus',
        'application/merge-patch+json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/json;;;',
      ),
      printable,
    ),
    { nil: undefined },
  );
  const extraHeaders = fc.dictionary(
    fc.constantFrom(
      'X-Request-Id',
      'If-None-Match',
      'Last-Event-ID',
      'Idempotency-Key',
      'Accept',
      'Accept-Encoding',
      'Content-Encoding',
      'Origin',
      'X-Forwarded-For',
      'Range',
      'Expect-Nothing',
    ),
    printable,
    { maxKeys: 4 },
  );
  const scalar = fc.oneof(
    fc.integer(),
    fc.integer({ min: 1, max: 1000 }),
    fc.double(),
    fc.constantFrom(0, -0, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, 1.5, -1),
    fc.string({ maxLength: 30 }),
    fc.constantFrom('1', '1e3', '0x10', 'NaN', 'Infinity', '', null, true, false),
    fc.bigInt().map((b) => b.toString()),
  );
  const plausible = fc.record(
    {
      scoreIncrement: fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.object({ maxDepth: 1 })),
      userId: fc.oneof(userId, scalar),
      actionId: fc.oneof(fc.string({ maxLength: 140 }), scalar),
      displayName: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 120 }), scalar),
      status: fc.oneof(fc.constantFrom('active', 'banned', 'deleted'), scalar),
      role: fc.oneof(fc.constantFrom('player', 'admin', 'root'), scalar),
      score: scalar,
      constructor: fc.object({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  );
  const json = (v: unknown) => Buffer.from(JSON.stringify(v) ?? 'null');
  const body = fc.option(
    fc.oneof(
      // Nearly valid: the shape a real client sends, so acceptance and its edges get exercised too.
      {
        arbitrary: fc
          .record(
            {
              scoreIncrement: fc.oneof(fc.integer({ min: 1, max: 1000 }), scalar),
              actionId: fc.stringMatching(/^[\x21-\x7e]{1,130}$/),
              userId: fc.constantFrom(player, other, admin),
            },
            { requiredKeys: ['scoreIncrement'] },
          )
          .map(json),
        weight: 3,
      },
      {
        arbitrary: fc
          .record(
            {
              displayName: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 110 }), scalar),
              status: fc.constantFrom('active', 'banned'),
              role: fc.constantFrom('player', 'admin'),
            },
            { requiredKeys: [] },
          )
          .map(json),
        weight: 2,
      },
      plausible.map(json),
      plausible.map((v) => Buffer.from(JSON.stringify(v), 'utf16le')),
      plausible.map((v) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(v)])),
      fc.jsonValue().map(json),
      fc.json().map((s) => Buffer.from(s)),
      fc.string({ unit: 'grapheme', maxLength: 200 }).map((s) => Buffer.from(s)),
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      fc
        .integer({ min: 3000, max: 9000 })
        .map((n) => Buffer.from(`{"scoreIncrement":1,"pad":"${'x'.repeat(n)}"}`)),
      fc
        .constantFrom(
          '{',
          '{"scoreIncrement":',
          '[]',
          'null',
          '"x"',
          '{"a":'.repeat(200),
          '{"__proto__":{"role":"admin"},"scoreIncrement":1}',
          '{"scoreIncrement":1,"scoreIncrement":-5}',
          '{"scoreIncrement":1e400}',
          '{"scoreIncrement":1}garbage',
        )
        .map((s) => Buffer.from(s)),
    ),
    { nil: undefined },
  );
  const query = fc.option(
    fc.dictionary(fc.constantFrom('limit', 'before', 'foo', 'limit[]', '__proto__'), printable, {
      maxKeys: 3,
    }),
    { nil: undefined },
  );

  function request(method: fc.Arbitrary<string>, pathFor: fc.Arbitrary<string>): fc.Arbitrary<Sent> {
    return fc
      .record({
        method,
        path: pathFor,
        auth: authorization,
        type: contentType,
        extra: extraHeaders,
        body,
        query,
        chunked: fc.boolean(),
      })
      .map(({ method: m, path, auth, type, extra, body: b, query: q, chunked }) => {
        const headers: Record<string, string> = { ...extra };
        if (auth !== undefined) headers.Authorization = auth;
        if (type !== undefined) headers['Content-Type'] = type;
        const qs = q ? new URLSearchParams(q).toString() : '';
        return {
          method: m,
          path: qs ? `${path}?${qs}` : path,
          headers,
          body: b,
          chunked: chunked && b !== undefined,
        };
      });
  }

  const prefix = fc.constantFrom('/api/v1', '/api');
  const endpoints: Array<[string, fc.Arbitrary<Sent>]> = [
    [
      'POST /scores/update',
      request(
        fc.constant('POST'),
        prefix.map((p) => `${p}/scores/update`),
      ),
    ],
    [
      'GET /scores/top',
      request(
        fc.constant('GET'),
        prefix.map((p) => `${p}/scores/top`),
      ),
    ],
    [
      'GET /scores/stream',
      request(
        fc.constant('GET'),
        prefix.map((p) => `${p}/scores/stream`),
      ),
    ],
    [
      'GET /scores/users/:id',
      request(
        fc.constant('GET'),
        fc.tuple(prefix, pathSegment).map(([p, id]) => `${p}/scores/users/${id}`),
      ),
    ],
    [
      'GET /scores/users/:id/events',
      request(
        fc.constant('GET'),
        fc.tuple(prefix, pathSegment).map(([p, id]) => `${p}/scores/users/${id}/events`),
      ),
    ],
    [
      'PATCH /users/:id',
      request(
        fc.constant('PATCH'),
        fc.tuple(prefix, pathSegment).map(([p, id]) => `${p}/users/${id}`),
      ),
    ],
    [
      'GET /admin/flags',
      request(
        fc.constant('GET'),
        prefix.map((p) => `${p}/admin/flags`),
      ),
    ],
    [
      'DELETE /admin/flags/:id',
      request(
        fc.constant('DELETE'),
        fc.tuple(prefix, pathSegment).map(([p, id]) => `${p}/admin/flags/${id}`),
      ),
    ],
    ['GET /healthz and /readyz', request(fc.constant('GET'), fc.constantFrom('/healthz', '/readyz'))],
    [
      'any method on any route',
      request(
        fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'),
        fc
          .tuple(
            prefix,
            fc.constantFrom(
              '/scores/top',
              '/scores/update',
              '/scores/stream',
              '/users/x',
              '/nope',
              '/scores/users/x/events',
            ),
          )
          .map(([p, rest]) => p + rest),
      ),
    ],
  ];

  for (const [label, arbitrary] of endpoints) {
    it(`${label}: never a 5xx, errors are problem JSON, rejected requests change nothing`, async () => {
      const seen = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(arbitrary, async (req) => {
          // An earlier accepted write stores its ranks after its answer (ranks.ts): let that land first.
          await app.services.scores.drain();
          const before = await fingerprint(db);
          const res = await send(app.url, req);
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
          const where = `${req.method} ${req.path} -> ${res.status} ${res.text.slice(0, 300)}`;
          expect(res.status, where).to.be.below(500);
          if (res.status >= 400) {
            expect(res.headers['content-type'], where).to.match(/^application\/problem\+json/);
            const problem = JSON.parse(res.text);
            expect(problem.type, where).to.be.a('string');
            expect(problem.title, where).to.be.a('string').and.match(/\S/);
            expect(problem.status, where).to.equal(res.status);
            expect(problem.requestId, where).to.be.a('string').and.equal(res.headers['x-request-id']);
            expect(res.text, where).to.not.match(/node_modules|\.ts:\d+|\bat .+:\d+:\d+/);
          }
          if (res.status >= 400 || req.method === 'GET') {
            const after = await fingerprint(db);
            expect(after.data, `${where}: scores or events changed`).to.equal(before.data);
            for (const [id, row] of before.users)
              expect(after.users.get(id), `${where}: user ${id} changed`).to.equal(row);
            const created = [...after.users.keys()].filter((id) => !before.users.has(id));
            // Malformed input (400, 413, 415) provisions nobody on the write path; past that, only the token's
            // own subject may appear. The other authenticated routes load (and provision) the caller before
            // they validate, so there the subject may appear on any answer but 401.
            const strict = label === 'POST /scores/update' && MALFORMED.has(res.status);
            const sub = strict || res.status === 401 ? undefined : tokenSubject(req.headers.Authorization);
            expect(
              created.filter((id) => id !== sub),
              `${where}: users created`,
            ).to.deep.equal([]);
          }
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      console.log(`        statuses: ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
    });
  }
});

/** The `sub` of a bearer token (unverified: only to recognise the one row auto-provisioning may add). */
function tokenSubject(authorization: string | undefined): string | undefined {
  const payload = authorization?.split(' ').filter(Boolean)[1]?.split('.')[1];
  try {
    return payload
      ? (JSON.parse(Buffer.from(payload, 'base64url').toString()) as { sub?: string }).sub
      : undefined;
  } catch {
    return undefined;
  }
}

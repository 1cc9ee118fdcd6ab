import { expect } from 'chai';
import type { Knex } from 'knex';
import { insertUser, mysqlEvents } from './helpers/assertions';
import { isolatedStore } from './helpers/database';
import { RUN_PREFIX, tokenFor, uniqueUser } from './helpers/env';
import { REDIS_MODES, redisUnderTest, type RedisMode, type RedisUnderTest } from './helpers/history-redis';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { expectedTop, ledgerProblems, waitForMirror } from './helpers/mirror';
import { startTcpProxy } from './helpers/tcp-proxy';

/**
 * History check: a randomized workload across two instances (many clients, retries of the same actionId,
 * concurrent deltas on hot users, admin corrections, faults injected at random into each instance's links to
 * MySQL and Redis). Every response is recorded; at the end the recorded history must be explained by MySQL:
 * each acknowledged delta applied exactly once, each unacknowledged one at most once, totals equal to the sum
 * of their events, Redis equal to MySQL, and both instances serving the same final snapshot.
 *
 * It runs once against each Redis mode (src/platform/redis.ts): one server, Sentinel and Cluster, each with
 * the faults that fit it (test/helpers/history-redis.ts); MySQL's link is broken the same way in all three.
 *
 * HISTORY_SEED=n replays a run's choices (workload and fault schedule; the network's timing still varies).
 * HISTORY_LONG=1 runs 20 times as many operations per client (a few minutes per mode).
 * HISTORY_REDIS_MODES=single,cluster picks the modes (all three by default).
 */

const LONG = process.env.HISTORY_LONG === '1';
const SEED = Number(process.env.HISTORY_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CLIENTS = 16;
const OPS_PER_CLIENT = LONG ? 500 : 25;
const MODES = (process.env.HISTORY_REDIS_MODES?.split(',') ?? REDIS_MODES) as RedisMode[];
const MYSQL_FAULTS = ['cut', 'blackhole', 'refuse-new', 'reset', 'latency'] as const;

/** mulberry32: small, fast, good enough to pick test actions reproducibly. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    chance: (p: number) => next() < p,
  };
}

interface Attempt {
  op: string;
  instance: number;
  userId: string;
  actor: 'self' | 'admin';
  delta: number;
  actionId?: string;
  conflicting: boolean;
  status: number;
  ms: number;
  body?: { eventId?: number; score?: number; scoreIncrement?: number; status?: number; title?: string };
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const mode of MODES)
  describe(`history check (randomized workload with faults across two instances), Redis: ${mode}`, function () {
    this.timeout(LONG ? 1_800_000 : 90_000);
    // Tables and keys of its own: it needs an empty board, and no other suite sees its rows.
    const store = isolatedStore(`history_${mode}`);
    const start: typeof startInstance = (env = {}, hooks) =>
      startInstance({ DATABASE_URL: store.databaseUrl, REDIS_PREFIX: store.prefix, ...env }, hooks);
    const prefix = `${RUN_PREFIX}history:`;
    let db: Knex;
    let redis: RedisUnderTest;
    let apps: Instance[] = [];
    let proxies: Array<Awaited<ReturnType<typeof startTcpProxy>>> = [];

    before(async function () {
      this.timeout(90_000);
      console.log(`      history seed: ${SEED} (replay with HISTORY_SEED=${SEED})`);
      // An empty board, so the workload's users are the top N and every snapshot check sees them move.
      db = store.db;
      redis = await redisUnderTest(mode, prefix);
      for (let i = 0; i < 2; i++) {
        const m = new URL(store.databaseUrl);
        const mysql = await startTcpProxy({ host: m.hostname, port: Number(m.port || 3306) });
        proxies.push(mysql);
        m.hostname = '127.0.0.1';
        m.port = String(mysql.port);
        apps.push(
          await start({
            DATABASE_URL: m.toString(),
            ...redis.env(i),
            REDIS_PREFIX: prefix,
            DATABASE_TIMEOUT_MS: '500',
            REDIS_TIMEOUT_MS: '200',
            MIRROR_SYNC_INTERVAL_MS: '200',
            SNAPSHOT_TICK_MS: '100',
            RETRY_AFTER_S: '1',
          }),
        );
      }
    });
    after(async () => {
      for (const p of proxies) p.heal();
      redis?.healAll();
      await Promise.all(apps.map((a) => a.close()));
      await Promise.all(proxies.map((p) => p.close()));
      await redis?.close();
      apps = [];
      proxies = [];
    });

    it('explains every recorded response by what MySQL holds, and Redis and both snapshots agree with it', async () => {
      const admin = uniqueUser('hadmin');
      await insertUser(db, admin, { role: 'admin' });
      const users = Array.from({ length: 12 }, () => uniqueUser('hist'));
      for (const u of users) await insertUser(db, u); // admins may correct them from the first operation on
      const hot = users.slice(0, 3);
      const attempts: Attempt[] = [];
      let clientsDone = false;

      async function send(a: Omit<Attempt, 'status' | 'ms'>): Promise<Attempt> {
        const started = Date.now();
        const rec: Attempt = { ...a, status: 0, ms: 0 };
        const body: Record<string, unknown> = { scoreIncrement: a.delta };
        if (a.actor === 'admin') body.userId = a.userId;
        if (a.actionId !== undefined) body.actionId = a.actionId;
        try {
          const res = await fetch(`${apps[a.instance].url}/api/v1/scores/update`, {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${tokenFor(a.actor === 'admin' ? admin : a.userId)}`,
              'Content-Type': 'application/json',
            },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(5000),
          });
          rec.status = res.status;
          rec.body = (await res.json()) as Attempt['body'];
        } catch (err) {
          rec.error = (err as Error).message;
        }
        rec.ms = Date.now() - started;
        attempts.push(rec);
        return rec;
      }

      const acked = (s: number) => s === 200 || s === 201;

      async function client(c: number): Promise<void> {
        const rnd = prng(SEED * 31 + c);
        for (let i = 0; i < OPS_PER_CLIENT; i++) {
          const asAdmin = rnd.chance(0.1);
          const userId = rnd.chance(0.5) ? rnd.pick(hot) : rnd.pick(users);
          const delta = asAdmin ? rnd.pick([-3, -1, 2, 7, 50]) : rnd.int(1, 9);
          const base = { instance: rnd.int(0, 1), userId, actor: asAdmin ? 'admin' : 'self', delta } as const;
          const op = `${SEED}-${c}-${i}`;
          if (rnd.chance(0.15)) {
            await send({ ...base, op, conflicting: false }); // no key: sent once, never retried
          } else {
            const keyed = { ...base, op, actionId: `h-${op}`, conflicting: false };
            // Sometimes the same request twice at once, through both instances (a client that double-fires).
            const first = rnd.chance(0.1)
              ? (await Promise.all([send(keyed), send({ ...keyed, instance: 1 - keyed.instance })]))[0]
              : await send(keyed);
            let last = first;
            // Retries of the same actionId while unacknowledged, as Retry-After invites, on either instance.
            for (let r = 0; r < 4 && !acked(last.status) && last.status !== 422; r++) {
              await sleep(rnd.int(100, 400));
              last = await send({ ...keyed, instance: rnd.int(0, 1) });
            }
            // A retry after success (the answer was lost on the way) must replay, never apply again.
            if (rnd.chance(0.2)) await send({ ...keyed, instance: rnd.int(0, 1) });
            // A buggy client reusing the key with another increment must be refused.
            if (rnd.chance(0.03))
              await send({ ...keyed, delta: keyed.delta === -1 ? -2 : keyed.delta + 1, conflicting: true });
          }
          if (rnd.chance(0.3)) await sleep(rnd.int(0, 30));
        }
      }

      const faultLog: string[] = [];
      async function faults(): Promise<void> {
        const rnd = prng(SEED ^ 0x5eed);
        let first = true;
        while (!clientsDone) {
          await sleep(rnd.int(100, 600));
          if (clientsDone) break;
          const i = rnd.int(0, 1);
          // In Sentinel and Cluster mode the first fault is always a failover: each run has at least one.
          const kind =
            first && redis.faults.includes('failover')
              ? 'redis-failover'
              : rnd.pick([
                  ...MYSQL_FAULTS.map((k) => `mysql-${k}`),
                  ...redis.faults.map((k) => `redis-${k}`),
                ]);
          first = false;
          faultLog.push(`${Date.now() % 100000} ${kind}@${i}`);
          const [side, what] = [kind.slice(0, kind.indexOf('-')), kind.slice(kind.indexOf('-') + 1)];
          let heal: () => Promise<void>;
          if (side === 'redis') heal = await redis.inject(what, i, rnd);
          else {
            const proxy = proxies[i];
            if (what === 'cut') proxy.cut();
            else if (what === 'blackhole') proxy.blackhole();
            else if (what === 'refuse-new') proxy.refuseNew();
            else if (what === 'reset') proxy.resetOpen();
            else proxy.setLatency(rnd.int(20, 150));
            heal = async () => proxy.heal();
          }
          await sleep(rnd.int(200, 1200));
          await heal();
        }
      }

      const faulting = faults();
      await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
      clientsDone = true;
      await faulting;
      for (const p of proxies) p.heal();
      redis.healAll();

      const context = () => `mode ${mode}; seed ${SEED}; faults: ${faultLog.join(', ')}`;
      // 1. Every answer is one the contract allows, and came in bounded time (no hang).
      for (const a of attempts) {
        const allowed = a.conflicting ? [422, 503, 200, 201] : [200, 201, 503];
        expect(allowed, `${JSON.stringify(a)}; ${context()}`).to.include(a.status);
        expect(a.ms, JSON.stringify(a)).to.be.below(4000);
        if (a.status === 200) expect(a.actionId, 'only keyed requests replay').to.be.a('string');
      }
      expect(attempts.filter((a) => acked(a.status)).length).to.be.greaterThan(attempts.length / 3);

      // 2. Each acknowledged delta exactly once, each unacknowledged at most once, nothing unexplained.
      const events = new Map<string, Awaited<ReturnType<typeof mysqlEvents>>>();
      for (const u of users) events.set(u, await mysqlEvents(db, u));
      const byKey = new Map<string, Attempt[]>();
      for (const a of attempts.filter((x) => x.actionId !== undefined)) {
        const k = `${a.userId}\0${a.actionId}`;
        byKey.set(k, [...(byKey.get(k) ?? []), a]);
      }
      for (const [k, group] of byKey) {
        const [userId, actionId] = k.split('\0');
        const applied = events.get(userId)!.filter((e) => e.action_id === actionId);
        expect(applied.length, `${actionId} applied at most once`).to.be.at.most(1);
        const acks = group.filter((a) => acked(a.status));
        if (acks.length) {
          expect(applied, `${actionId} acknowledged, so applied; ${context()}`).to.have.length(1);
          for (const a of acks) {
            expect(a.body, `${actionId}: every answer names the one event`).to.include({
              eventId: applied[0].id,
              score: applied[0].score_after,
              scoreIncrement: applied[0].delta,
            });
          }
        }
        if (applied.length) {
          expect(
            group.map((a) => a.delta),
            `${actionId}: applied delta was sent`,
          ).to.include(applied[0].delta);
          const expectedActor = group[0].actor === 'admin' ? admin : userId;
          expect(applied[0].actor_id).to.equal(expectedActor);
        }
        for (const refused of group.filter((a) => a.status === 422)) {
          expect(applied, `${actionId}: 422 means another delta holds the key`).to.have.length(1);
          expect(applied[0].delta).to.not.equal(refused.delta);
        }
      }
      for (const u of users) {
        const keyless = attempts.filter((a) => a.userId === u && a.actionId === undefined);
        const unkeyed = events.get(u)!.filter((e) => e.action_id === null);
        const ackedIds = new Set<number>();
        for (const a of keyless.filter((x) => x.status === 201)) {
          const e = unkeyed.find((x) => x.id === a.body!.eventId);
          expect(e, `acknowledged keyless delta ${JSON.stringify(a)}`).to.not.equal(undefined);
          expect([e!.delta, e!.score_after]).to.deep.equal([a.delta, a.body!.score]);
          ackedIds.add(e!.id);
        }
        // Unacknowledged keyless deltas may have been applied (a lost COMMIT answer), each at most once.
        const spare = keyless.filter((a) => a.status !== 201).map((a) => a.delta);
        for (const e of unkeyed.filter((x) => !ackedIds.has(x.id))) {
          const at = spare.indexOf(e.delta);
          expect(
            at,
            `event ${e.id} of ${u} (delta ${e.delta}) matches no unacknowledged request`,
          ).to.not.equal(-1);
          spare.splice(at, 1);
        }
        for (const e of events.get(u)!.filter((x) => x.action_id !== null)) {
          expect(byKey.has(`${u}\0${e.action_id}`), `event ${e.id} was requested`).to.equal(true);
        }
      }

      // 3. MySQL totals equal the sum of applied events (and each score_after chains).
      expect(await ledgerProblems(db, users)).to.deep.equal([]);

      // 4. Redis equals MySQL (within 10 s of the last fault healing).
      await waitForMirror(db, redis.direct, prefix, 10_000, context());

      // 5. Both instances serve the same final snapshot: MySQL's top N, byte for byte, with the same ETag.
      const want = await expectedTop(db);
      let served: Array<{ text: string; etag: string }> = [];
      await eventually(async () => {
        served = (await Promise.all(apps.map((app) => app.request.get('/api/v1/scores/top')))).map((r) => ({
          text: r.text,
          etag: r.headers.etag,
        }));
        const [a, b] = served;
        return a.text === want && b.text === want && a.etag === b.etag;
      }, 5000).catch((err: Error) => {
        throw new Error(`${err.message}: want ${want}, served ${JSON.stringify(served)}; ${context()}`);
      });
      const summary = new Map<number, number>();
      for (const a of attempts) summary.set(a.status, (summary.get(a.status) ?? 0) + 1);
      console.log(
        `      ${attempts.length} requests by status ${JSON.stringify(Object.fromEntries(summary))}, faults ${faultLog.map((f) => f.split(' ')[1]).join(' ')}`,
      );
    });
  });

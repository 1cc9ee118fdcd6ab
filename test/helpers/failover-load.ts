import { expect } from 'chai';
import type { Knex } from 'knex';
import { adminToken } from './api';
import type { Instance } from './instance';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Write and poll load on two instances while a test breaks something underneath. Each delta is retried with
 * its actionId until the service says it is recorded (201, or 200 for a replay of one whose answer was lost),
 * so the client's log (`acked`) is exactly what MySQL must hold afterwards.
 */
export function startFailoverLoad(a: Instance, b: Instance, users: string[], label: string, writers = 6) {
  const acked = new Map(users.map((u) => [u, 0]));
  const pollStatuses = new Map<number, number>();
  let stop = false;
  let seq = 0;
  const writer = async (w: number) => {
    while (!stop) {
      const userId = users[Math.floor(Math.random() * users.length)];
      const delta = 1 + Math.floor(Math.random() * 5);
      const actionId = `${label}-${w}-${seq++}`;
      for (let attempt = 0; ; attempt++) {
        const res = await ((w + attempt) % 2 ? a : b).request
          .post('/api/v1/scores/update')
          .set('Authorization', `Bearer ${adminToken()}`)
          .send({ userId, scoreIncrement: delta, actionId })
          .catch(() => undefined);
        if (res && (res.status === 201 || res.status === 200)) {
          acked.set(userId, acked.get(userId)! + delta);
          break;
        }
        await sleep(50);
      }
    }
  };
  const poller = async () => {
    while (!stop) {
      for (const app of [a, b]) {
        const res = await app.request.get('/api/v1/scores/top');
        pollStatuses.set(res.status, (pollStatuses.get(res.status) ?? 0) + 1);
      }
      await sleep(20);
    }
  };
  const running = [...Array.from({ length: writers }, (_, w) => writer(w)), poller(), poller()];
  return {
    acked,
    pollStatuses,
    async stop(): Promise<void> {
      stop = true;
      await Promise.all(running);
    },
    /** Zero acknowledged deltas lost or doubled: MySQL's global/all totals are exactly the client's log. */
    async expectLedger(db: Knex): Promise<void> {
      const [rows] = await db.raw(
        `SELECT user_id, score FROM board_scores WHERE board_id = 'global' AND window_name = 'all'
         AND user_id IN (${users.map(() => '?').join(',')})`,
        users,
      );
      const held = new Map(
        (rows as Array<{ user_id: string; score: number }>).map((r) => [r.user_id, Number(r.score)]),
      );
      for (const u of users) expect(held.get(u) ?? 0, u).to.equal(acked.get(u));
      expect([...acked.values()].reduce((x, y) => x + y, 0)).to.be.above(50);
    },
  };
}

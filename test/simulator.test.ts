import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { createCoalescer } from '../tools/simulator/coalescer';
import { postDelta } from '../tools/simulator/score-client';
import { runSimulation } from '../tools/simulator/run';
import { simUsers } from '../tools/simulator/traffic';
import { mysqlScore } from './helpers/assertions';
import { tokenFor, uniqueUser } from './helpers/env';
import { adminToken } from './helpers/api';
import { startInstance, type Instance } from './helpers/instance';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('simulator', function () {
  this.timeout(30_000);

  it("coalesces a user's rapid actions into one request per window, in order, split at the maximum", async () => {
    const sent: Array<[string, number]> = [];
    const coalescer = createCoalescer({
      windowMs: 80,
      maxDelta: 100,
      send: async (userId, delta) => {
        sent.push([userId, delta]);
        await sleep(30);
      },
    });
    coalescer.add('a', 5);
    coalescer.add('a', 10);
    coalescer.add('b', 1);
    await sleep(20);
    coalescer.add('a', 25);
    expect(sent).to.deep.equal([]); // nothing before the window closes
    await sleep(100);
    expect(sent).to.deep.include.members([
      ['a', 40],
      ['b', 1],
    ]);
    coalescer.add('a', 150);
    await coalescer.drain();
    expect(sent.filter(([u]) => u === 'a')).to.deep.equal([
      ['a', 40],
      ['a', 100],
      ['a', 50],
    ]);
  });

  it('retries network errors and 5xx with the same actionId, and gives up on other 4xx', async () => {
    const seen: Array<{ actionId: string; auth?: string }> = [];
    let calls = 0;
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ actionId: JSON.parse(body).actionId, auth: req.headers.authorization });
        calls++;
        // 1: the answer is lost; 2: the server is unavailable; 3: applied; then a final refusal.
        const [status, text] = [
          [0, ''],
          [503, '{"status":503}'],
          [201, '{}'],
        ][calls - 1] ?? [422, '{"status":422,"detail":"no"}'];
        if (status === 0) req.socket.destroy();
        else res.writeHead(status as number, { 'Content-Type': 'application/json' }).end(text);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const retries: string[] = [];
      const ok = await postDelta({
        baseUrl,
        token: 't',
        delta: 5,
        actionId: 'x-1',
        onRetry: (r) => retries.push(r),
      });
      expect(ok).to.include({ outcome: 'applied', attempts: 3 });
      expect(retries).to.deep.equal(['network', '5xx']);
      expect(seen.map((s) => s.actionId)).to.deep.equal(['x-1', 'x-1', 'x-1']);
      expect(seen[0].auth).to.equal('Bearer t');

      const rejected = await postDelta({ baseUrl, token: 't', delta: 5, actionId: 'x-2' });
      expect(rejected).to.include({ outcome: 'rejected', status: 422, attempts: 1 });
    } finally {
      server.close();
    }
  });

  describe('against the real API', () => {
    let app: Instance;
    before(async () => {
      app = await startInstance();
    });
    after(() => app.close());

    it('records every simulated point exactly once, with fewer requests than actions', async () => {
      const users = simUsers(4).map((u) => ({ ...u, id: uniqueUser('sim') }));
      const before = await Promise.all(users.map((u) => mysqlScore(app.db, u.id)));
      expect(before.every((s) => s === undefined)).to.equal(true);

      const summary = await runSimulation({
        baseUrl: app.url,
        users,
        token: (id) => tokenFor(id, { name: users.find((u) => u.id === id)?.name }),
        rate: 40,
        durationS: 1.5,
        windowMs: 200,
        maxDelta: app.config.maxScoreIncrement,
      });
      expect(summary.actions).to.be.greaterThan(10);
      expect(summary.requests).to.be.lessThan(summary.actions);
      expect(summary.outcomes).to.include({ rejected: 0, failed: 0 });
      expect(summary.outcomes.applied + summary.outcomes.replayed).to.equal(summary.requests);
      expect(summary.pointsApplied).to.equal(summary.points);

      const after = await Promise.all(users.map((u) => mysqlScore(app.db, u.id)));
      const total = after.reduce((sum, s) => sum + Number(s ?? 0), 0);
      expect(total).to.equal(summary.points);
    });

    it('plays several boards: every point lands exactly once, on the board its request named', async () => {
      const board = `simb-${Date.now().toString(36)}`;
      const created = await app.request
        .post('/api/v1/boards')
        .set('Authorization', `Bearer ${adminToken()}`)
        .send({ id: board, title: 'Sim', windows: ['all', 'day'] });
      expect(created.status, created.text).to.equal(201);
      const users = simUsers(4).map((u) => ({ ...u, id: uniqueUser('simb') }));
      const summary = await runSimulation({
        baseUrl: app.url,
        users,
        token: (id) => tokenFor(id),
        rate: 60,
        durationS: 1.5,
        windowMs: 100,
        maxDelta: app.config.maxScoreIncrement,
        boards: ['global', board],
      });
      expect(summary.outcomes).to.include({ rejected: 0, failed: 0 });
      const [rows] = await app.db.raw(
        `SELECT board_id, SUM(delta) AS points FROM score_events WHERE user_id IN (${users.map(() => '?').join(',')})
         GROUP BY board_id`,
        users.map((u) => u.id),
      );
      const byBoard = new Map(
        (rows as Array<{ board_id: string; points: number }>).map((r) => [r.board_id, Number(r.points)]),
      );
      expect([...byBoard.keys()].sort()).to.deep.equal([board, 'global'].sort());
      expect(byBoard.get(board)! + byBoard.get('global')!).to.equal(summary.points);
      const [windows] = await app.db.raw(
        `SELECT window_name, SUM(score) AS points FROM board_scores WHERE board_id = ? AND user_id IN (${users.map(() => '?').join(',')})
         GROUP BY window_name ORDER BY window_name`,
        [board, ...users.map((u) => u.id)],
      );
      // Both windows of the board hold the board's points (unless the day turned during the run).
      expect(Number((windows as Array<{ points: number }>)[0].points)).to.equal(byBoard.get(board));
    });
  });
});

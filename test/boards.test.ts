import { expect } from 'chai';
import { deleteRunKeys, isolatedStore, withScratchDatabase } from './helpers/database';
import { insertUser } from './helpers/assertions';
import { adminToken } from './helpers/api';
import { expectProblem } from './helpers/assertions';
import { tokenFor, uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { openRawStream } from './helpers/sse';
import WebSocket from 'ws';
import { redisKeys } from '../src/leaderboard/ranking';

interface Entry {
  rank: number;
  userId: string;
  displayName: string;
  score: number;
}

/** Boards and windows on two instances: the API, writes to every window, rollover, archives, pages. */
describe('boards and windows', function () {
  this.timeout(120_000);
  const store = isolatedStore('boards');
  let a: Instance;
  let b: Instance;
  const fast = {
    SNAPSHOT_TICK_MS: '100',
    MIRROR_SYNC_INTERVAL_MS: '200',
    BOARDS_MISS_RELOAD_MS: '0',
    CLOSED_CYCLE_GRACE_MS: '2000',
  };

  before(async () => {
    a = await startInstance({ ...store.env, ...fast });
    b = await startInstance({ ...store.env, ...fast });
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  const createBoard = (app: Instance, body: object, token = adminToken()) =>
    app.request.post('/api/v1/boards').set('Authorization', `Bearer ${token}`).send(body);
  const write = (app: Instance, userId: string, boardId: string | undefined, scoreIncrement: number) =>
    app.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${adminToken()}`)
      .send({ userId, scoreIncrement, ...(boardId ? { boardId } : {}) });
  /** A player's first point on the board (provisions the user), then the rest as an admin's correction. */
  async function give(app: Instance, userId: string, boardId: string, total: number) {
    const first = await app.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${tokenFor(userId, { name: `N ${userId}` })}`)
      .send({ scoreIncrement: 1, boardId });
    expect(first.status, first.text).to.equal(201);
    if (total > 1) expect((await write(app, userId, boardId, total - 1)).status).to.equal(201);
  }
  const top = async (app: Instance, board: string, query = '') => {
    const res = await app.request.get(`/api/v1/boards/${board}/top${query}`);
    expect(res.status, res.text).to.equal(200);
    return { etag: res.headers.etag as string, body: JSON.parse(res.text) as Entry[], text: res.text };
  };

  it('the migration moves the one board into global/all and back, and refuses to go back over other boards', async () => {
    await withScratchDatabase('boards-migration', async (_url, db) => {
      const boardsMigration = { name: '20261203000001_boards_and_windows' };
      await db.migrate.down(boardsMigration); // back to the one-board schema
      await insertUser(db, 'm1');
      await insertUser(db, 'm2');
      await db.raw(
        `INSERT INTO scores (user_id, score, reached_at, version, last_event_id) VALUES
         ('m1', 10, '2026-11-01 10:00:00.123456', 3, NULL), ('m2', 10, '2026-11-01 10:00:00.123457', 1, NULL)`,
      );
      const before = (
        await db.raw('SELECT user_id, score, reached_at, version FROM scores ORDER BY user_id')
      )[0];
      await db.migrate.latest();
      const moved = (
        await db.raw(
          `SELECT user_id, score, reached_at, version FROM board_scores
           WHERE board_id = 'global' AND window_name = 'all' AND cycle_start = '1970-01-01' ORDER BY user_id`,
        )
      )[0];
      expect(moved).to.deep.equal(before);
      await db.migrate.down(boardsMigration);
      expect(
        (await db.raw('SELECT user_id, score, reached_at, version FROM scores ORDER BY user_id'))[0],
      ).to.deep.equal(before);
      await db.migrate.latest();
      await db('boards').insert({ id: 'other', title: 'Other' });
      await db('score_events').insert({
        user_id: 'm1',
        board_id: 'other',
        delta: 1,
        score_after: 1,
        actor_id: 'm1',
      });
      let error: unknown;
      await db.migrate.down(boardsMigration).catch((err: unknown) => (error = err));
      expect(String(error)).to.match(/cannot go back to one board/);
    });
  });

  it('lists global with all, day, week and month, each with its current cycle and next reset', async () => {
    const res = await a.request.get('/api/v1/boards');
    expect(res.status).to.equal(200);
    const global = res.body.boards.find((x: { id: string }) => x.id === 'global');
    expect(global.windows.map((w: { name: string }) => w.name)).to.deep.equal([
      'all',
      'day',
      'week',
      'month',
    ]);
    const [all, day, week, month] = global.windows;
    expect(all).to.include({ reset: null, cycle: 'all', cycleStart: null, nextReset: null });
    const now = new Date();
    const midnight = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
    expect(day.cycle).to.equal(midnight.toISOString().replace('.000Z', 'Z'));
    expect(day.nextReset).to.equal(new Date(midnight.getTime() + 86_400_000).toISOString());
    expect(new Date(week.cycleStart).getUTCDay()).to.equal(1);
    expect(new Date(month.cycleStart).getUTCDate()).to.equal(1);
    expect((await a.request.get('/api/v1/boards/global')).body).to.deep.equal(global);
    expectProblem(await a.request.get('/api/v1/boards/nope'), 404);
    expectProblem(await a.request.get('/api/v1/boards/Not_Valid'), 400);
  });

  it('admins create boards (presets and cron windows mixed) and rename them; everything else is a clear 4xx', async () => {
    const created = await createBoard(a, {
      id: 'chess',
      title: 'Chess',
      windows: ['all', 'day', { name: 'quarter-hour', reset: '*/15 * * * *' }],
    });
    expect(created.status, created.text).to.equal(201);
    expect(created.headers.location).to.equal('/api/v1/boards/chess');
    expect(created.body.windows.map((w: { name: string; reset: string }) => [w.name, w.reset])).to.deep.equal(
      [
        ['all', null],
        ['day', '0 0 * * *'],
        ['quarter-hour', '*/15 * * * *'],
      ],
    );
    expectProblem(await createBoard(a, { id: 'chess', title: 'Again', windows: ['all'] }), 409);
    expectProblem(
      await createBoard(a, { id: 'p', title: 'P', windows: ['all'] }, tokenFor(uniqueUser('p'))),
      403,
    );
    expectProblem(
      await a.request.post('/api/v1/boards').send({ id: 'x', title: 'x', windows: ['all'] }),
      401,
    );
    const bad: object[] = [
      { id: 'Upper', title: 'x', windows: ['all'] },
      { id: '-lead', title: 'x', windows: ['all'] },
      { id: 'x'.repeat(65), title: 'x', windows: ['all'] },
      { id: 'ok1', title: '', windows: ['all'] },
      { id: 'ok1', title: 'bidi \u202e', windows: ['all'] },
      { id: 'ok1', title: 'x', windows: [] },
      { id: 'ok1', title: 'x', windows: ['year'] },
      { id: 'ok1', title: 'x', windows: ['all', 'all'] },
      { id: 'ok1', title: 'x', windows: ['day', { name: 'day', reset: '0 1 * * *' }] },
      { id: 'ok1', title: 'x', windows: [{ name: 'Bad Name', reset: '* * * * *' }] },
      { id: 'ok1', title: 'x', windows: [{ name: 'w', reset: '0 0 0 * * *' }] },
      { id: 'ok1', title: 'x', windows: [{ name: 'w', reset: '0 0 30 2 *' }] },
      { id: 'ok1', title: 'x', windows: [{ name: 'w', reset: '@daily' }] },
      {
        id: 'ok1',
        title: 'x',
        windows: Array.from({ length: 9 }, (_, i) => ({ name: `w${i}`, reset: null })),
      },
      { id: 'ok1', title: 'x', windows: ['all'], extra: 1 },
    ];
    for (const body of bad) expectProblem(await createBoard(a, body), 400);
    expect((await a.request.get('/api/v1/boards/ok1')).status).to.equal(404); // nothing was created

    const renamed = await a.request
      .patch('/api/v1/boards/chess')
      .set('Authorization', `Bearer ${adminToken()}`)
      .send({ title: 'Chess Club' });
    expect(renamed.status, renamed.text).to.equal(200);
    expect(renamed.body.title).to.equal('Chess Club');
    const patch = (body: object, id = 'chess') =>
      a.request.patch(`/api/v1/boards/${id}`).set('Authorization', `Bearer ${adminToken()}`).send(body);
    expectProblem(await patch({ windows: ['all'] }), 400); // windows are fixed at creation
    expectProblem(await patch({ title: 'x' }, 'nope'), 404);
    // The other instance knows the new board at its first request for it.
    expect((await b.request.get('/api/v1/boards/chess')).body.title).to.be.oneOf(['Chess', 'Chess Club']);
  });

  it('MAX_BOARDS holds: past it creating is 409', async () => {
    const count = (await a.request.get('/api/v1/boards')).body.boards.length;
    const c = await startInstance({ ...store.env, ...fast, MAX_BOARDS: String(count + 1) });
    try {
      expect((await createBoard(c, { id: 'last-one', title: 'Last', windows: ['all'] })).status).to.equal(
        201,
      );
      expectProblem(await createBoard(c, { id: 'one-too-many', title: 'More', windows: ['all'] }), 409);
      expect((await a.request.get('/api/v1/boards/one-too-many')).status).to.equal(404);
    } finally {
      await c.close();
    }
  });

  it('a delta lands in every window of its board and names it; an unknown board is 404 and changes nothing', async () => {
    const u = uniqueUser('bw');
    const res = await a.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${tokenFor(u)}`)
      .send({ scoreIncrement: 4, boardId: 'chess' });
    expect(res.status, res.text).to.equal(201);
    expect(res.body.boardId).to.equal('chess');
    expect(Object.keys(res.body.windows)).to.deep.equal(['all', 'day', 'quarter-hour']);
    for (const w of Object.values(res.body.windows) as Array<{ score: number; rank: number }>)
      expect(w.score).to.equal(4);
    const [rows] = await store.db.raw(
      'SELECT window_name, score FROM board_scores WHERE user_id = ? ORDER BY window_name',
      [u],
    );
    expect(
      rows.map((r: { window_name: string; score: number }) => [r.window_name, Number(r.score)]),
    ).to.deep.equal([
      ['all', 4],
      ['day', 4],
      ['quarter-hour', 4],
    ]);
    const before = await store.db.raw('CHECKSUM TABLE board_scores, score_events');
    expectProblem(await write(a, u, 'no-such-board', 1), 404);
    expectProblem(await write(a, u, 'Bad Id', 1), 400);
    expect(await store.db.raw('CHECKSUM TABLE board_scores, score_events')).to.deep.equal(before);
    // The history names the board.
    const events = await a.request
      .get(`/api/v1/scores/users/${u}/events`)
      .set('Authorization', `Bearer ${adminToken()}`);
    expect(events.body.events[0]).to.include({ scoreIncrement: 4, boardId: 'chess', score: 4 });
  });

  it('N parallel +1 on two instances into global add exactly N in every window, in MySQL and Redis', async () => {
    const u = uniqueUser('par');
    await give(a, u, 'global', 1);
    const n = 60;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => write(i % 2 ? a : b, u, undefined, 1).then((r) => r.status)),
    );
    expect(results.filter((s) => s === 201)).to.have.length(n);
    const [rows] = await store.db.raw(
      'SELECT window_name, cycle_start, score FROM board_scores WHERE user_id = ?',
      [u],
    );
    expect(rows).to.have.length(4);
    for (const r of rows) expect(Number(r.score), r.window_name).to.equal(n + 1);
    const keys = redisKeys(store.prefix);
    const windows = (await a.request.get('/api/v1/boards/global')).body.windows as Array<{
      name: string;
      cycle: string;
    }>;
    await eventually(async () => {
      for (const w of windows)
        if ((await a.redis.zscore(keys.cycle('global', w.name, w.cycle).scores, u)) !== String(n + 1))
          return false;
      return true;
    }, 5000);
  });

  it('a write on one instance reaches polls on another that alone holds that board window, within a tick', async () => {
    const u = uniqueUser('far');
    const before = await top(b, 'chess', '?window=day'); // the day window now lives on b only
    await give(a, u, 'chess', 77);
    const started = Date.now();
    await eventually(
      async () => (await top(b, 'chess', '?window=day')).body.some((e) => e.userId === u),
      2000,
      10,
    );
    expect(Date.now() - started).to.be.below(1000);
    expect((await top(b, 'chess', '?window=day')).etag).to.not.equal(before.etag);
  });

  it('after our Redis keys are flushed mid-cycle every window heals from MySQL', async () => {
    const u = uniqueUser('heal');
    await give(a, u, 'chess', 9);
    const keys = redisKeys(store.prefix);
    const windows = (await a.request.get('/api/v1/boards/chess')).body.windows as Array<{
      name: string;
      cycle: string;
    }>;
    await deleteRunKeys(store.prefix);
    await eventually(async () => {
      for (const w of windows)
        if ((await a.redis.zscore(keys.cycle('chess', w.name, w.cycle).scores, u)) !== '9') return false;
      return true;
    }, 10_000);
    const standing = await b.request.get(`/api/v1/boards/chess/users/${u}?window=quarter-hour`);
    expect(standing.status, standing.text).to.equal(200);
    expect(standing.body).to.include({ userId: u, score: 9, boardId: 'chess', window: 'quarter-hour' });
  });

  it('/scores/top is global/all byte for byte, with the same ETag; windows have their own versions', async () => {
    await give(a, uniqueUser('same'), 'global', 3);
    await eventually(async () => {
      const old = await a.request.get('/api/v1/scores/top');
      const now = await top(a, 'global', '?window=all');
      return old.text === now.text && old.headers.etag === now.etag;
    }, 3000);
    const day = await top(a, 'global', '?window=day');
    expect(day.etag).to.not.equal((await top(a, 'global')).etag);
    const again = await a.request.get('/api/v1/boards/global/top?window=day').set('If-None-Match', day.etag);
    expect(again.status).to.equal(304);
    expect(again.headers['x-poll-interval']).to.equal('5');
  });

  it('a ban hides the user from every board and window; unbanning brings them back', async () => {
    const u = uniqueUser('ban');
    await give(a, u, 'global', 5e12);
    await give(a, u, 'chess', 5e12);
    const shows = async (app: Instance, board: string, window: string) =>
      (await top(app, board, `?window=${window}`)).body.some((e) => e.userId === u);
    const everywhere = async (want: boolean) => {
      for (const app of [a, b])
        for (const [board, window] of [
          ['global', 'all'],
          ['global', 'week'],
          ['chess', 'all'],
          ['chess', 'quarter-hour'],
        ])
          if ((await shows(app, board, window)) !== want) return false;
      return true;
    };
    await eventually(() => everywhere(true), 3000);
    const ban = (status: string) =>
      a.request.patch(`/api/v1/users/${u}`).set('Authorization', `Bearer ${adminToken()}`).send({ status });
    expect((await ban('banned')).status).to.equal(200);
    await eventually(() => everywhere(false), 3000);
    expect((await b.request.get(`/api/v1/boards/chess/users/${u}?window=day`)).status).to.equal(404);
    expect((await ban('active')).status).to.equal(200);
    await eventually(() => everywhere(true), 3000);
  });

  it('pages the whole board in rank order with cursors bound to the cycle; ties by earlier reach, then id', async () => {
    expect(
      (await createBoard(a, { id: 'pages', title: 'Pages', windows: ['all', 'week'] })).status,
    ).to.be.oneOf([201, 409]);
    // Scores sent in this order: equal scores are ranked by who reached them first.
    const sent: Array<[string, number]> = [];
    for (const [i, score] of [5, 9, 5, 1, 9, 7, 5].entries()) {
      const u = `pg-${i}-${uniqueUser('x')}`;
      await give(a, u, 'pages', score);
      sent.push([u, score]);
    }
    // The oracle, from what was sent: score desc, then send order (reach time), competition ranks.
    const order = sent.map(([u, s], i) => ({ u, s, i })).sort((x, y) => y.s - x.s || x.i - y.i);
    const expected = order.map((e) => ({
      userId: e.u,
      score: e.s,
      rank: 1 + order.filter((o) => o.s > e.s).length,
    }));
    const seen: Array<{ userId: string; score: number; rank: number }> = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await b.request.get(
        `/api/v1/boards/pages/entries?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.status, res.text).to.equal(200);
      expect(res.body).to.include({ boardId: 'pages', window: 'all', cycle: 'all' });
      seen.push(...res.body.entries.map((e: Entry) => ({ userId: e.userId, score: e.score, rank: e.rank })));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).to.equal(3);
    expect(seen).to.deep.equal(expected);
    const first = await a.request.get('/api/v1/boards/pages/entries?limit=2');
    const c = first.body.nextCursor as string;
    expectProblem(await a.request.get(`/api/v1/boards/pages/entries?window=week&cursor=${c}`), 400);
    expectProblem(await a.request.get(`/api/v1/boards/chess/entries?cursor=${c}`), 400);
    expectProblem(await a.request.get('/api/v1/boards/pages/entries?cursor=garbage'), 400);
    expectProblem(await a.request.get('/api/v1/boards/pages/entries?limit=101'), 400);
    expectProblem(await a.request.get('/api/v1/boards/pages/entries?limit=0'), 400);

    // Around-me: neighbours with their ranks, cut at the edges of the board.
    const leader = expected[0].userId;
    const last = expected[expected.length - 1].userId;
    const mid = expected[3].userId;
    const around = async (u: string, n: number) => {
      const res = await a.request.get(`/api/v1/boards/pages/users/${u}?around=${n}`);
      expect(res.status, res.text).to.equal(200);
      return res.body;
    };
    const strip = (xs: Entry[]) => xs.map((e) => ({ userId: e.userId, score: e.score, rank: e.rank }));
    const atTop = await around(leader, 2);
    expect(atTop.above).to.deep.equal([]);
    expect(strip(atTop.below)).to.deep.equal(expected.slice(1, 3));
    const atEnd = await around(last, 2);
    expect(strip(atEnd.above)).to.deep.equal(expected.slice(4, 6));
    expect(atEnd.below).to.deep.equal([]);
    const inMiddle = await around(mid, 25);
    expect(strip(inMiddle.above)).to.deep.equal(expected.slice(0, 3));
    expect(strip(inMiddle.below)).to.deep.equal(expected.slice(4));
    expect(inMiddle).to.include({ rank: expected[3].rank, score: expected[3].score });
    expectProblem(await a.request.get(`/api/v1/boards/pages/users/${mid}?around=26`), 400);
    expectProblem(await a.request.get(`/api/v1/boards/pages/users/${mid}?window=nope`), 404);
    expectProblem(await a.request.get(`/api/v1/boards/pages/users/nobody-here`), 404);
  });

  it('keeps a board window live only while it is read: idle ones are dropped, streamed ones kept', async () => {
    const c = await startInstance({ ...store.env, ...fast, BOARD_SNAPSHOT_IDLE_MS: '1000' });
    try {
      const live = () => c.services.boards.feeds().map((f) => `${f.board}/${f.window}`);
      expect(live()).to.deep.equal(['global/all']); // nothing else until read
      await top(c, 'chess', '?window=day');
      const stream = openRawStream(`${c.url}/api/v1/boards/chess/stream?window=all`);
      await stream.ready;
      expect(live()).to.include.members(['chess/day', 'chess/all']);
      await eventually(() => !live().includes('chess/day'), 4000, 100);
      expect(live()).to.include.members(['global/all', 'chess/all']); // streamed, and the one always kept
      stream.close();
      await eventually(() => !live().includes('chess/all'), 4000, 100);
      // Read again, it comes back with the current top.
      expect((await top(c, 'chess', '?window=day')).text).to.equal(
        (await top(a, 'chess', '?window=day')).text,
      );
    } finally {
      await c.close();
    }
  });

  it('reads with at=: a future instant or one before the board existed is 404, a bad one 400', async () => {
    expectProblem(await a.request.get('/api/v1/boards/chess/top?window=day&at=2999-01-01T00:00:00Z'), 404);
    expectProblem(await a.request.get('/api/v1/boards/chess/top?window=day&at=2001-01-01T00:00:00Z'), 404);
    expectProblem(await a.request.get('/api/v1/boards/chess/top?window=day&at=yesterday'), 400);
    expectProblem(await a.request.get('/api/v1/boards/chess/top?window=nope'), 404);
    expectProblem(await a.request.get('/api/v1/boards/chess/top?window=day&extra=1'), 400);
    expectProblem(await a.request.get('/api/v1/boards/nope/top'), 404);
  });

  it('rolls over for real: a per-minute window empties at the minute on both instances, polls and streams; the last cycle stays readable', async function () {
    this.timeout(150_000);
    expect(
      (
        await createBoard(a, {
          id: 'minute',
          title: 'Minute',
          windows: ['all', { name: 'min', reset: '* * * * *' }],
        })
      ).status,
    ).to.equal(201);
    // Start early in a minute, so the write and the checks surely fall in one cycle.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 40_000) await new Promise((r) => setTimeout(r, 60_500 - intoMinute));
    const u = uniqueUser('min');
    const second = uniqueUser('min2');
    await give(a, u, 'minute', 42);
    await give(b, second, 'minute', 1);
    const cycle = (await a.request.get('/api/v1/boards/minute')).body.windows[1].cycle as string;
    const staleCursor = (await a.request.get('/api/v1/boards/minute/entries?window=min&limit=1')).body
      .nextCursor;
    expect(staleCursor).to.be.a('string');
    for (const app of [a, b])
      await eventually(
        async () => (await top(app, 'minute', '?window=min')).body.some((e) => e.userId === u),
        3000,
      );
    const streams = [a, b].map((app) => openRawStream(`${app.url}/api/v1/boards/minute/stream?window=min`));
    await Promise.all(streams.map((s) => s.ready));
    // A WebSocket that follows the minute window and global's day window on one socket.
    const socketMessages: Array<{
      type: string;
      board?: string;
      window?: string;
      cycle?: string;
      version?: string;
      top?: Entry[];
    }> = [];
    const socket = new WebSocket(`${b.url.replace('http', 'ws')}/ws/scores?board=minute&window=min`);
    socket.on('message', (data) => socketMessages.push(JSON.parse(data.toString())));
    await new Promise((r) => socket.once('open', r));
    socket.send(JSON.stringify({ type: 'subscribe', board: 'global', window: 'day' }));
    const minuteMessages = () =>
      socketMessages.filter((m) => m.type === 'scoreboard' && m.board === 'minute');
    await eventually(() => minuteMessages().some((m) => m.top!.some((e) => e.userId === u)), 3000);
    expect(minuteMessages().at(-1)!.cycle).to.equal(cycle);
    await eventually(() => streams.every((s) => s.events().length === 1), 3000);
    expect(JSON.parse(streams[0].events()[0].data)[0]).to.include({ userId: u, score: 42 });

    const boundary = new Date(cycle).getTime() + 60_000;
    await new Promise((r) => setTimeout(r, Math.max(0, boundary - Date.now())));
    for (const app of [a, b]) {
      await eventually(async () => (await top(app, 'minute', '?window=min')).text === '[]', 3000);
      const live = await app.request.get(`/api/v1/boards/minute/users/${u}?window=min`);
      expect(live.status).to.equal(404);
    }
    await eventually(
      () => streams.every((s) => s.events().length >= 2 && s.events().at(-1)!.data === '[]'),
      3000,
    );
    const [ea, eb] = [
      (await top(a, 'minute', '?window=min')).etag,
      (await top(b, 'minute', '?window=min')).etag,
    ];
    expect(ea).to.equal(eb);
    expect(streams[0].events().at(-1)!.id).to.equal(ea);
    for (const s of streams) s.close();
    // The socket got the rollover too: the next cycle, an empty top, the version polls answer.
    await eventually(() => minuteMessages().at(-1)!.cycle !== cycle, 3000);
    const next = new Date(new Date(cycle).getTime() + 60_000).toISOString().replace('.000Z', 'Z');
    await eventually(
      () => minuteMessages().at(-1)!.top!.length === 0 || minuteMessages().at(-1)!.version === eb,
      3000,
    );
    expect(minuteMessages().at(-1)).to.deep.include({ cycle: next, top: [], version: eb });
    expect(
      socketMessages.some((m) => m.type === 'scoreboard' && m.board === 'global' && m.window === 'day'),
    ).to.equal(true);
    socket.close();
    // All time still holds the points, and the closed minute answers by `at=`, from MySQL.
    expect((await top(b, 'minute')).body.some((e) => e.userId === u)).to.equal(true);
    const archived = await top(b, 'minute', `?window=min&at=${encodeURIComponent(cycle)}`);
    expect(archived.body).to.deep.equal([
      { rank: 1, userId: u, displayName: `N ${u}`, score: 42 },
      { rank: 2, userId: second, displayName: `N ${second}`, score: 1 },
    ]);
    const standing = await a.request.get(
      `/api/v1/boards/minute/users/${u}?window=min&at=${encodeURIComponent(cycle)}`,
    );
    expect(standing.body).to.include({ score: 42, rank: 1, cycle });

    // The closed minute leaves Redis CLOSED_CYCLE_GRACE_MS (here 2 s) after its end; MySQL keeps it.
    const closedKey = redisKeys(store.prefix).cycle('minute', 'min', cycle).scores;
    await eventually(async () => (await a.redis.exists(closedKey)) === 0, 6000, 200);
    expect((await top(a, 'minute', `?window=min&at=${encodeURIComponent(cycle)}`)).text).to.equal(
      archived.text,
    );

    // The closed cycle is immutable: new points land in the new minute, the archive stays as it was.
    await give(a, u, 'minute', 5);
    const stillArchived = await top(a, 'minute', `?window=min&at=${encodeURIComponent(cycle)}`);
    expect(stillArchived.text).to.equal(archived.text);
    await eventually(async () => (await top(a, 'minute', '?window=min')).body[0]?.score === 5, 3000);
    // A cursor from the ended cycle is refused on the live one, and still pages its own cycle with `at`.
    expectProblem(await a.request.get(`/api/v1/boards/minute/entries?window=min&cursor=${staleCursor}`), 400);
    const rest = await a.request.get(
      `/api/v1/boards/minute/entries?window=min&at=${encodeURIComponent(cycle)}&cursor=${staleCursor}`,
    );
    expect(rest.body.entries.map((e: Entry) => e.userId)).to.deep.equal([second]);
  });
});

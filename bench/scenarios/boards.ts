import { boardId, createBoards, GLOBAL_WINDOWS, scoreOn, topPath, watch } from '../lib/board-api';
import { mb, round, type BenchContext, type Row, type ScenarioResult, type Target } from '../lib/context';
import { seedBenchDatabase } from '../lib/data';
import { interleaved, type Measured } from '../lib/load';
import { treeRss, waitFor } from '../lib/proc';
import { startService, type RunningService } from '../lib/service';
import { poll } from './polls';
import { postWrites } from './writes';

const BOARDS = 1000;
const SPREAD = 100;
const POLLED = boardId(500);
const ONE = boardId(BOARDS);
/** Written while somebody watches them (a live snapshot each, like every board people look at). */
const WATCHED = Array.from({ length: SPREAD }, (_, i) => boardId(1 + i));
/** Written with nobody reading them: what the write path costs without the snapshots' rebuilds. */
const UNWATCHED = Array.from({ length: SPREAD }, (_, i) => boardId(1 + SPREAD + i));
/** Players who put scores on the polled board, so its top N is full like global's. */
const POLLED_PLAYERS = 20;

/**
 * boards: what 1,000 boards cost. One service holds only `global` (the main database); another holds
 * `global` and 1,000 boards with only `all`, created through the API, each player playing on one board.
 * Compared in interleaved rounds: polls of one board window among the thousand against polls of the single
 * board; writes spread over 100 boards, and writes to `global`'s four windows, against writes to one board.
 */
export async function boardsScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const url = ctx.database('boards');
  const users = ctx.main.userIds.length;
  ctx.log(`boards: seeding ${users.toLocaleString('en')} users for the 1,000-board service`);
  await seedBenchDatabase(url, users);

  const services: RunningService[] = [];
  const start = async (databaseUrl: string, name: string, env?: Record<string, string>) => {
    const s = await startService({
      databaseUrl,
      redisUrl: ctx.redisUrl,
      redisPrefix: `${ctx.prefix}boards-${name}:`,
      jwtSecret: ctx.jwtSecret,
      workers: ctx.workers,
      env,
      profileDir: ctx.profileDir,
    });
    services.push(s);
    return s;
  };
  try {
    // The main database holds only `global`; nothing writes to it while this scenario runs.
    const single = await start(ctx.main.url, 'single');
    // MAX_BOARDS counts `global` too.
    const many = await start(url, 'many', { MAX_BOARDS: String(BOARDS + 1) });

    ctx.log(`boards: creating ${BOARDS} boards through POST /api/v1/boards`);
    const createStarted = Date.now();
    const ids = Array.from({ length: BOARDS }, (_, i) => boardId(i + 1));
    await createBoards(many.url, ctx.main.adminToken, ids, ['all']);
    const createMs = Date.now() - createStarted;
    const listed = (await (await fetch(`${many.url}/api/v1/boards`)).json()) as { boards: unknown[] };
    if (listed.boards.length !== BOARDS + 1) throw new Error(`${listed.boards.length} boards listed`);

    // Warm the polled board: scores from a few players, then wait until its snapshot shows them all, so the
    // ETag the polls send stays current (nothing writes to it afterwards).
    await scoreOn(many.url, POLLED, ctx.main.tokens.slice(0, POLLED_PLAYERS), `${ctx.runId}-polled`);
    await waitFor(
      `the snapshot of ${POLLED}`,
      async () => {
        const top = (await (await fetch(`${many.url}${topPath(POLLED)}`)).json()) as Array<{ score: number }>;
        return top.length > 0 && top[0].score === POLLED_PLAYERS;
      },
      10_000,
      many,
    );

    // Each player plays on one board (its index mod 100): a spread run writes 10,000 (user, board) rows like
    // a one-board run, only split over 100 boards.
    let tag = 0;
    const writes =
      (boards: string[] | string, watched: string[] | undefined, windows?: string[]) => async () => {
        if (watched) await watch(many.url, watched, windows);
        const boardOf = typeof boards === 'string' ? () => boards : (u: number) => boards[u % boards.length];
        return postWrites(ctx, many.url, ctx.main, `boards${tag++}`, boardOf);
      };
    ctx.log(`boards: ${ctx.rounds} interleaved round(s) of polls and writes`);
    const m = await interleaved(
      ctx.rounds,
      {
        pollsSingle: () => poll(ctx, single.url, true, topPath('global')),
        pollsUnversioned: () => poll(ctx, single.url, true),
        pollsMany: () => poll(ctx, many.url, true, topPath(POLLED)),
        writesOne: writes(ONE, [ONE]),
        writesSpread: writes(WATCHED, WATCHED),
        writesUnwatched: writes(UNWATCHED, undefined),
        writesGlobal: writes('global', ['global'], GLOBAL_WINDOWS),
      },
      ctx.log,
    );
    const rss = { single: mb(treeRss(single.pid)), many: mb(treeRss(many.pid)) };
    return {
      rows: rowsOf(m, rss),
      targets: targetsOf(m),
      details: {
        boards: BOARDS,
        createBoardsMs: createMs,
        createBoardsPerS: round(BOARDS / (createMs / 1000), 0),
        polled: `${POLLED}/all`,
        spread: SPREAD,
        serviceStartMs: { single: single.startMs, many: many.startMs },
        rounds: m,
      },
    };
  } finally {
    for (const s of services) await s.stop();
  }
}

type Runs = Record<
  | 'pollsSingle'
  | 'pollsUnversioned'
  | 'pollsMany'
  | 'writesOne'
  | 'writesSpread'
  | 'writesUnwatched'
  | 'writesGlobal',
  Measured
>;
const ratio = (a: Measured, b: Measured) => round(b.throughput / a.throughput);

function rowsOf(m: Runs, rss: { single: number; many: number }): Row[] {
  const row = (variant: string, r: Measured, rssMb: number, base?: Measured, note?: string): Row => ({
    scenario: 'boards',
    variant,
    unit: 'req/s',
    ...r,
    rssMb,
    ratio: base && ratio(base, r),
    // Not the bare baselines' plain 'baseline': these are service runs too, and the runner fails on their errors.
    note: base ? note : 'baseline (service)',
  });
  return [
    row('polls 304, global/all, 1 board', m.pollsSingle, rss.single),
    row(`polls 304, ${POLLED}/all of ${BOARDS} boards`, m.pollsMany, rss.many, m.pollsSingle),
    // The same snapshot through the route that predates boards: how much the board route itself costs.
    row(
      'polls 304, /scores/top, 1 board',
      m.pollsUnversioned,
      rss.single,
      m.pollsSingle,
      'same bytes, older route',
    ),
    row(`writes, 1 board (all), watched`, m.writesOne, rss.many),
    row(`writes, ${SPREAD} boards (all), watched`, m.writesSpread, rss.many, m.writesOne),
    row(
      `writes, ${SPREAD} boards (all), unwatched`,
      m.writesUnwatched,
      rss.many,
      m.writesOne,
      'no snapshots',
    ),
    row('writes, global (4 windows), watched', m.writesGlobal, rss.many, m.writesOne),
  ];
}

function targetsOf(m: Runs): Target[] {
  const errors = (...rs: Measured[]) => rs.reduce((n, r) => n + r.errors, 0);
  const polls = ratio(m.pollsSingle, m.pollsMany);
  const spread = ratio(m.writesOne, m.writesSpread);
  const windows = ratio(m.writesOne, m.writesGlobal);
  return [
    {
      scenario: 'boards',
      target: `polls of 1 board window among ${BOARDS} within 10% of 1 board`,
      measured: `${polls}×, ${errors(m.pollsSingle, m.pollsMany)} errors`,
      met: Math.abs(polls - 1) <= 0.1 && errors(m.pollsSingle, m.pollsMany) === 0,
    },
    {
      scenario: 'boards',
      target: `writes over ${SPREAD} boards within 20% of 1 board`,
      measured: `${spread}× (unwatched ${ratio(m.writesOne, m.writesUnwatched)}×), ${errors(m.writesOne, m.writesSpread)} errors`,
      met: Math.abs(spread - 1) <= 0.2 && errors(m.writesOne, m.writesSpread) === 0,
    },
    {
      scenario: 'boards',
      target: 'writes to global (4 windows) ≥ 0.8× 1 window (issue 17)',
      measured: `${windows}×, p99 ${m.writesGlobal.p99Ms} vs ${m.writesOne.p99Ms} ms`,
      met: windows >= 0.8 && errors(m.writesGlobal) === 0,
    },
  ];
}

import type { Logger } from 'pino';
import type { Db } from '../../platform/db';
import { inTransaction, type Statement } from '../../platform/pipelined-tx';
import { ABOVE_SQL, rankFromAbove } from '../ranking';
import type { Mirror, MirrorEntry, RankQuery } from '../cache/mirror';
import type { PendingRank } from './store';
import type { UpdateResult } from './rules';

/**
 * After a batch committed: its rows go into the Redis mirror and its totals are ranked there, in one script
 * call, with no MySQL lock held. While the mirror cannot answer (Redis down, a rebuild running) the ranks
 * come from MySQL's committed rows instead. The ranks are filled into the answers, then stored with their
 * events (so a replay answers exactly the first answer) by one UPDATE for everything ranked meanwhile.
 */
export function createRanker(deps: { db: Db; mirror: Pick<Mirror, 'applyAndRank'>; logger: Logger }) {
  let waiting: UpdateResult[] = [];
  let storing: Promise<void> | undefined;

  async function mirrorAndRank(mirror: MirrorEntry[], toRank: PendingRank[]): Promise<void> {
    const asked = toRank.filter((p) => p.active);
    const queries: RankQuery[] = asked.map((p) => ({
      board: p.result.boardId,
      window: p.window,
      cycle: p.result.windows[p.window].cycle,
      score: p.result.windows[p.window].score,
    }));
    const ranks = (await deps.mirror.applyAndRank(mirror, queries)) ?? (await fromDatabase(asked));
    asked.forEach((p, i) => {
      p.result.windows[p.window].rank = ranks[i];
      if (p.first) p.result.rank = ranks[i];
    });
    const results = [...new Set(toRank.map((p) => p.result))];
    if (results.length) store(results);
  }

  /** The degraded path: one plus the active users above each total, counted in MySQL in one round trip. */
  async function fromDatabase(asked: PendingRank[]): Promise<number[]> {
    if (asked.length === 0) return [];
    const statements: Statement[] = asked.map((p) => ({
      sql: ABOVE_SQL,
      values: [p.result.boardId, p.window, p.start, p.result.windows[p.window].score],
    }));
    const counts = (await inTransaction(deps.db, (tx) => tx.commit(statements))) as Array<
      Array<{ above: number }>
    >;
    return counts.map((c) => rankFromAbove(Number(c[0].above)));
  }

  /** Queues results for the next UPDATE; one runs at a time and takes everything queued meanwhile. */
  function store(results: UpdateResult[]): void {
    waiting.push(...results);
    storing ??= (async () => {
      while (waiting.length) {
        const batch = waiting;
        waiting = [];
        await storeNow(batch).catch((err) =>
          // A replay of these events ranks them anew (src/leaderboard/write/store.ts): nothing is wrong, only
          // a replay's rank may then differ from the first answer's.
          deps.logger.warn({ err: (err as Error).message, events: batch.length }, 'could not store ranks'),
        );
      }
      storing = undefined;
    })();
  }

  async function storeNow(results: UpdateResult[]): Promise<void> {
    const ids = results.map((r) => r.eventId);
    await deps.db.raw(
      `UPDATE score_events SET
         rank_after = CASE id ${ids.map(() => 'WHEN ? THEN ?').join(' ')} END,
         windows_after = CASE id ${ids.map(() => 'WHEN ? THEN ?').join(' ')} END
       WHERE id IN (${ids.map(() => '?').join(', ')})`,
      [
        ...results.flatMap((r) => [r.eventId, r.rank]),
        ...results.flatMap((r) => [r.eventId, JSON.stringify(r.windows)]),
        ...ids,
      ],
    );
  }

  return {
    mirrorAndRank,
    /** Resolves once every queued rank is stored (graceful shutdown, tests). */
    flush: async () => {
      while (storing) await storing;
    },
  };
}

export type Ranker = ReturnType<typeof createRanker>;

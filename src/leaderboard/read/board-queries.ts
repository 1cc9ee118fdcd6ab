import { rawRows, type Db } from '../../platform/db';
import { ABOVE_SQL, IN_CYCLE_SQL, rankFromAbove, rankOrderSql } from '../ranking';
import type { CycleRef } from '../boards/registry';
import type { ScoreboardEntry } from '../snapshot/engine';
import type { Standing } from '../cache/mirror';

/**
 * Reads of one cycle straight from MySQL: standings, neighbours and pages in rank order. Each is a few
 * index range reads on board_scores_ranking plus rank COUNTs; routes run them only through the bounded
 * fallback gates (src/leaderboard/read/db-fallback.ts). Keyset positions compare the reach time as MySQL's
 * own microsecond string, never a JavaScript Date (which keeps milliseconds only).
 */

const REACHED = "DATE_FORMAT(s.reached_at, '%Y-%m-%d %H:%i:%s.%f')";
const at = (c: CycleRef) => [c.board, c.window, c.cycle.start];

interface Row {
  user_id: string;
  display_name: string;
  score: number;
  reached: string;
}

/** A place in the rank order: score, reach time, user id. */
export interface Place {
  score: number;
  reached: string;
  userId: string;
}

const BEFORE =
  '(s.score > ? OR (s.score = ? AND (s.reached_at < ? OR (s.reached_at = ? AND s.user_id < ?))))';
const AFTER = '(s.score < ? OR (s.score = ? AND (s.reached_at > ? OR (s.reached_at = ? AND s.user_id > ?))))';
const placeValues = (p: Place) => [p.score, p.score, p.reached, p.reached, p.userId];

const FROM = `FROM board_scores s JOIN users u ON u.id = s.user_id WHERE ${IN_CYCLE_SQL} AND u.status = 'active'`;
const COLUMNS = `s.user_id, u.display_name, s.score, ${REACHED} AS reached`;

async function aboveCount(db: Db, c: CycleRef, score: number): Promise<number> {
  const [{ above }] = await rawRows<{ above: number }>(db, ABOVE_SQL, [...at(c), score]);
  return Number(above);
}

/** Competition ranks for consecutive rows, given the first row's position and rank. */
function ranked(
  rows: Row[],
  firstPosition: number,
  firstRank: number,
): Array<ScoreboardEntry & { reached: string }> {
  const out: Array<ScoreboardEntry & { reached: string }> = [];
  rows.forEach((r, i) => {
    const score = Number(r.score);
    const rank = i === 0 ? firstRank : score === out[i - 1].score ? out[i - 1].rank : firstPosition + i;
    out.push({ rank, userId: r.user_id, displayName: r.display_name, score, reached: r.reached });
  });
  return out;
}

export type Neighbour = ScoreboardEntry;

/** A user's standing in a cycle, with up to `around` active neighbours on each side. */
export async function standingAround(
  db: Db,
  c: CycleRef,
  userId: string,
  around: number,
): Promise<(Standing & { above: Neighbour[]; below: Neighbour[] }) | undefined> {
  const [me] = await rawRows<Row>(db, `SELECT ${COLUMNS} ${FROM} AND s.user_id = ?`, [...at(c), userId]);
  if (!me) return undefined;
  const place = { score: Number(me.score), reached: me.reached, userId };
  const rank = rankFromAbove(await aboveCount(db, c, place.score));
  if (around === 0) return { displayName: me.display_name, score: place.score, rank, above: [], below: [] };
  const [{ n_before: before }] = await rawRows<{ n_before: number }>(
    db,
    `SELECT COUNT(*) AS n_before ${FROM} AND ${BEFORE}`,
    [...at(c), ...placeValues(place)],
  );
  const position = Number(before) + 1;
  const aboveRows = (
    await rawRows<Row>(
      db,
      `SELECT ${COLUMNS} ${FROM} AND s.score >= ? AND ${BEFORE}
       ORDER BY s.score ASC, s.reached_at DESC, s.user_id DESC LIMIT ?`,
      [...at(c), place.score, ...placeValues(place), around],
    )
  ).reverse();
  const belowRows = await rawRows<Row>(
    db,
    `SELECT ${COLUMNS} ${FROM} AND s.score <= ? AND ${AFTER} ORDER BY ${rankOrderSql('s')} LIMIT ?`,
    [...at(c), place.score, ...placeValues(place), around],
  );
  const top = aboveRows[0];
  const topRank = top ? rankFromAbove(await aboveCount(db, c, Number(top.score))) : rank;
  const strip = (e: ScoreboardEntry & { reached: string }): Neighbour => ({
    rank: e.rank,
    userId: e.userId,
    displayName: e.displayName,
    score: e.score,
  });
  const column = ranked([...aboveRows, me, ...belowRows], position - aboveRows.length, topRank);
  return {
    displayName: me.display_name,
    score: place.score,
    rank,
    above: column.slice(0, aboveRows.length).map(strip),
    below: column.slice(aboveRows.length + 1).map(strip),
  };
}

/** Where a page of /entries ends: the last entry's place, position and rank. */
export interface PageEnd extends Place {
  position: number;
  rank: number;
}

/** One page of a cycle in rank order, after `after` (the first page when undefined). */
export async function entriesPage(
  db: Db,
  c: CycleRef,
  limit: number,
  after?: PageEnd,
): Promise<{ entries: ScoreboardEntry[]; end: PageEnd | null }> {
  const rows = after
    ? await rawRows<Row>(
        db,
        `SELECT ${COLUMNS} ${FROM} AND s.score <= ? AND ${AFTER} ORDER BY ${rankOrderSql('s')} LIMIT ?`,
        [...at(c), after.score, ...placeValues(after), limit + 1],
      )
    : await rawRows<Row>(db, `SELECT ${COLUMNS} ${FROM} ORDER BY ${rankOrderSql('s')} LIMIT ?`, [
        ...at(c),
        limit + 1,
      ]);
  const position = after ? after.position + 1 : 1;
  const firstRank = !after || !rows[0] ? 1 : Number(rows[0].score) === after.score ? after.rank : position;
  const page = ranked(rows.slice(0, limit), position, firstRank);
  const last = page[page.length - 1];
  return {
    entries: page.map(({ reached: _, ...e }) => e),
    end:
      rows.length > limit && last
        ? {
            score: last.score,
            reached: last.reached,
            userId: last.userId,
            position: position + page.length - 1,
            rank: last.rank,
          }
        : null,
  };
}

/** A user's standing in a cycle from MySQL (for when the mirror cannot answer, and for closed cycles). */
export async function standingInCycle(db: Db, c: CycleRef, userId: string): Promise<Standing | undefined> {
  const found = await standingAround(db, c, userId, 0);
  return found && { displayName: found.displayName, score: found.score, rank: found.rank };
}

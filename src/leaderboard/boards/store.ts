import { rawRows, type Db } from '../../platform/db';

export interface BoardWindow {
  name: string;
  /** A 5-field cron expression in UTC, or null for a window that never resets. */
  reset: string | null;
}

export interface Board {
  id: string;
  title: string;
  /** Fixed at creation, in the order given then; the first is the one the write answer's `score` is of. */
  windows: BoardWindow[];
  createdAt: Date;
}

interface BoardRow {
  id: string;
  title: string;
  created_at: Date;
  name: string;
  reset: string | null;
}

/** Every board with its windows. Boards are never deleted and windows never change, so a cache only grows. */
export async function loadBoards(db: Db): Promise<Board[]> {
  const rows = await rawRows<BoardRow>(
    db,
    `SELECT b.id, b.title, b.created_at, w.name, w.reset FROM boards b JOIN board_windows w ON w.board_id = b.id
     ORDER BY b.id, w.position`,
  );
  const boards = new Map<string, Board>();
  for (const r of rows) {
    let b = boards.get(r.id);
    if (!b) boards.set(r.id, (b = { id: r.id, title: r.title, windows: [], createdAt: r.created_at }));
    b.windows.push({ name: r.name, reset: r.reset });
  }
  return [...boards.values()];
}

export type CreateBoardResult =
  { kind: 'created'; board: Board } | { kind: 'duplicate' } | { kind: 'too_many' };

/**
 * Creates a board and its windows in one transaction. The `global` row is locked first, so concurrent
 * creations are serialised and the MAX_BOARDS count holds exactly.
 */
export async function createBoard(
  db: Db,
  board: Omit<Board, 'createdAt'>,
  maxBoards: number,
): Promise<CreateBoardResult> {
  return db.transaction(async (trx) => {
    await trx.raw("SELECT id FROM boards WHERE id = 'global' FOR UPDATE");
    const [{ n }] = await rawRows<{ n: number }>(trx, 'SELECT COUNT(*) AS n FROM boards');
    const [existing] = await rawRows<{ id: string }>(trx, 'SELECT id FROM boards WHERE id = ?', [board.id]);
    if (existing) return { kind: 'duplicate' };
    if (Number(n) >= maxBoards) return { kind: 'too_many' };
    await trx('boards').insert({ id: board.id, title: board.title });
    await trx('board_windows').insert(
      board.windows.map((w, position) => ({ board_id: board.id, name: w.name, reset: w.reset, position })),
    );
    const [row] = await rawRows<{ created_at: Date }>(trx, 'SELECT created_at FROM boards WHERE id = ?', [
      board.id,
    ]);
    return { kind: 'created', board: { ...board, createdAt: row.created_at } };
  });
}

/** Renames a board (the only change a board takes); false when there is none by that id. */
export async function renameBoard(db: Db, id: string, title: string): Promise<boolean> {
  await db('boards').where({ id }).update({ title });
  const [row] = await rawRows<{ id: string }>(db, 'SELECT id FROM boards WHERE id = ?', [id]);
  return row !== undefined; // (an unchanged title updates no row, so the count cannot say)
}

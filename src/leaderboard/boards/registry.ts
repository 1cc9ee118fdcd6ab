import type { Logger } from 'pino';
import type { Db } from '../../platform/db';
import { cycleAt, previousCycle, type Cycle } from './cycles';
import { loadBoards, type Board, type BoardWindow } from './store';

/** One cycle of one board window. */
export interface CycleRef {
  board: string;
  window: string;
  cycle: Cycle;
}

/**
 * This instance's copy of the boards (ids, titles, windows). Boards are never deleted and their windows never
 * change, so the copy is only ever missing boards created on another instance since it last loaded: it
 * reloads every `refreshMs`, and on a request for a board it lacks, at most once per `missReloadMs`, so
 * unknown board ids from the public cannot make MySQL work harder than that.
 */
export function createBoardRegistry(deps: {
  db: Db;
  logger: Logger;
  refreshMs: number;
  missReloadMs: number;
}) {
  let boards = new Map<string, Board>();
  let loadedAt = 0;
  let loading: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  function reload(): Promise<void> {
    loading ??= loadBoards(deps.db)
      .then((list) => {
        boards = new Map(list.map((b) => [b.id, b]));
        loadedAt = Date.now();
      })
      .finally(() => (loading = undefined));
    return loading;
  }

  return {
    get: (id: string) => boards.get(id),
    list: () => [...boards.values()],
    /** The board, reloading once (rate-limited) when this instance does not know it yet. */
    async find(id: string): Promise<Board | undefined> {
      const known = boards.get(id);
      if (known || Date.now() - loadedAt < deps.missReloadMs) return known;
      await reload().catch((err) =>
        deps.logger.warn({ err: (err as Error).message }, 'boards reload failed'),
      );
      return boards.get(id);
    },
    /** A board this instance created or renamed: known here at once. */
    put(board: Board): void {
      boards.set(board.id, board);
    },
    /** The window of a board, or undefined. */
    window(boardId: string, name: string): BoardWindow | undefined {
      return boards.get(boardId)?.windows.find((w) => w.name === name);
    },
    /**
     * Every cycle the Redis mirror holds at `now`: each window's current cycle, and the previous one while it
     * is within `graceMs` of its end.
     */
    liveCycles(now: Date, graceMs: number): CycleRef[] {
      const out: CycleRef[] = [];
      for (const b of boards.values())
        for (const w of b.windows) {
          const current = cycleAt(w.reset, now);
          out.push({ board: b.id, window: w.name, cycle: current });
          const previous = previousCycle(w.reset, current);
          if (previous !== current && previous.end!.getTime() + graceMs > now.getTime())
            out.push({ board: b.id, window: w.name, cycle: previous });
        }
      return out;
    },
    /** The earliest start of a resetting window's cycle that the mirror holds at `now`. */
    liveSince(now: Date, graceMs: number): Date {
      const starts = this.liveCycles(now, graceMs)
        .filter((c) => c.cycle.end !== null)
        .map((c) => c.cycle.start.getTime());
      return new Date(starts.length ? Math.min(...starts) : now.getTime());
    },
    async start(): Promise<void> {
      await reload();
      timer = setInterval(
        () => void reload().catch((err) => deps.logger.warn({ err: err.message }, 'boards reload failed')),
        deps.refreshMs,
      );
      timer.unref();
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}

export type BoardRegistry = ReturnType<typeof createBoardRegistry>;

import type { SnapshotEngine } from './engine';

/**
 * Where a push transport finds the live snapshot of a board window. Today the service has one board window,
 * `global`/`all` (cycle `all`), served by the one snapshot engine; many boards and time windows will answer
 * here as well, so transports never need to know how boards are stored.
 */
export interface BoardWindowFeed {
  board: string;
  window: string;
  cycle: string;
  snapshot: SnapshotEngine;
}

export function createBoardWindows(deps: { snapshot: SnapshotEngine }) {
  const global: BoardWindowFeed = { board: 'global', window: 'all', cycle: 'all', snapshot: deps.snapshot };
  return {
    /** The feed of a board window, or undefined for one that does not exist. */
    resolve(board: string, window: string): BoardWindowFeed | undefined {
      return board === global.board && window === global.window ? global : undefined;
    },
  };
}

export type BoardWindows = ReturnType<typeof createBoardWindows>;

/** Board set-up through the public API, as an operator would do it (so the bench exercises the real path). */

/** b0001 .. b1000: zero-padded, so the ids sort the way they are numbered. */
export const boardId = (i: number) => `b${String(i).padStart(4, '0')}`;

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) throw new Error(`${what}: ${res.status} ${await res.text()}`);
}

/**
 * Creates the boards with POST /api/v1/boards as an admin. A few requests at a time: the service serialises
 * creations on the `global` row anyway, and a few in flight hide the round trips.
 */
export async function createBoards(
  url: string,
  adminToken: string,
  ids: string[],
  windows: unknown[],
  parallel = 4,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++];
      const res = await fetch(`${url}/api/v1/boards`, {
        method: 'POST',
        headers: { authorization: adminToken, 'content-type': 'application/json' },
        body: JSON.stringify({ id, title: `Bench board ${id}`, windows }),
      });
      await expectStatus(res, 201, `creating board ${id}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/** The windows of the board `global`, which always exists. */
export const GLOBAL_WINDOWS = ['all', 'day', 'week', 'month'];

export const topPath = (board: string, window = 'all') => `/api/v1/boards/${board}/top?window=${window}`;

/**
 * Reads each board window's top once, so this instance keeps a live snapshot of it (as it does for anything
 * somebody watches) until BOARD_SNAPSHOT_IDLE_MS without readers; also refreshes that idle clock.
 */
export async function watch(url: string, boards: string[], windows: string[] = ['all']): Promise<void> {
  for (const b of boards)
    for (const w of windows)
      await expectStatus(await fetch(`${url}${topPath(b, w)}`), 200, `reading ${b}/${w}`);
}

/** One delta per player on a board, the i-th player scoring `count - i`, so the top N is full and settled. */
export async function scoreOn(url: string, board: string, tokens: string[], tag: string): Promise<void> {
  for (const [i, token] of tokens.entries()) {
    const res = await fetch(`${url}/api/v1/scores/update`, {
      method: 'POST',
      headers: { authorization: token, 'content-type': 'application/json' },
      body: JSON.stringify({ scoreIncrement: tokens.length - i, boardId: board, actionId: `${tag}-${i}` }),
    });
    await expectStatus(res, 201, `scoring on ${board}`);
  }
}

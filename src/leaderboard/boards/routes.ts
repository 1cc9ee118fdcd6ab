import Router from '@koa/router';
import type { CallerLoader } from '../../auth/caller';
import { authenticate, type TokenVerifier } from '../../auth/tokens';
import { readJsonBody } from '../../http/body';
import { conflict, forbidden, notFound } from '../../http/errors';
import { validate } from '../../http/validation';
import type { Db } from '../../platform/db';
import { cycleAt } from './cycles';
import type { BoardRegistry } from './registry';
import { boardIdParam, createBoardSchema, patchBoardSchema } from './schemas';
import { createBoard, renameBoard, type Board } from './store';

/** A board as the API shows it: each window with its current cycle and next reset (this instance's clock). */
export function boardView(board: Board, now = new Date()) {
  return {
    id: board.id,
    title: board.title,
    createdAt: board.createdAt.toISOString(),
    windows: board.windows.map((w) => {
      const c = cycleAt(w.reset, now);
      return {
        name: w.name,
        reset: w.reset,
        cycle: c.name,
        cycleStart: w.reset === null ? null : c.start.toISOString(),
        nextReset: c.end ? c.end.toISOString() : null,
      };
    }),
  };
}

/** /boards: anyone lists and reads boards; admins create them and rename them. */
export function boardRoutes(
  router: Router,
  deps: {
    db: Db;
    boards: BoardRegistry;
    loadCaller: CallerLoader;
    verifyToken: TokenVerifier;
    maxBoards: number;
    maxWindows: number;
    maxBodyBytes: number;
  },
) {
  const createSchema = createBoardSchema(deps.maxWindows);

  router.get('/boards', (ctx) => {
    const now = new Date();
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = {
      boards: deps.boards
        .list()
        .sort((a, b) => (a.id < b.id ? -1 : 1))
        .map((b) => boardView(b, now)),
    };
  });

  router.get('/boards/:boardId', async (ctx) => {
    const id = validate(boardIdParam, ctx.params.boardId, 'path');
    const board = await deps.boards.find(id);
    if (!board) throw notFound(`No board "${id}".`);
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = boardView(board);
  });

  router.post('/boards', authenticate(deps.verifyToken), async (ctx) => {
    const body = validate(createSchema, await readJsonBody(ctx, deps.maxBodyBytes));
    const caller = await deps.loadCaller(ctx);
    if (caller.role !== 'admin') throw forbidden('Only admins may create boards.');
    const created = await createBoard(deps.db, body, deps.maxBoards);
    if (created.kind === 'duplicate') throw conflict(`A board "${body.id}" already exists.`);
    if (created.kind === 'too_many')
      throw conflict(`This service holds its maximum of ${deps.maxBoards} boards (MAX_BOARDS).`);
    deps.boards.put(created.board);
    ctx.status = 201;
    ctx.set('Location', `${ctx.path.replace(/\/$/, '')}/${created.board.id}`);
    ctx.body = boardView(created.board);
  });

  router.patch('/boards/:boardId', authenticate(deps.verifyToken), async (ctx) => {
    const id = validate(boardIdParam, ctx.params.boardId, 'path');
    const body = validate(patchBoardSchema, await readJsonBody(ctx, deps.maxBodyBytes));
    const caller = await deps.loadCaller(ctx);
    if (caller.role !== 'admin') throw forbidden('Only admins may rename boards.');
    if (!(await renameBoard(deps.db, id, body.title))) throw notFound(`No board "${id}".`);
    const board = await deps.boards.find(id);
    const renamed = { ...(board ?? { id, windows: [], createdAt: new Date() }), title: body.title };
    deps.boards.put(renamed);
    ctx.body = boardView(renamed);
  });
}

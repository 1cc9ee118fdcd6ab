import Router from '@koa/router';
import type { Middleware } from 'koa';
import type { CallerLoader } from '../../auth/caller';
import { authenticate, type TokenVerifier } from '../../auth/tokens';
import { readJsonBody } from '../../http/body';
import { badRequest, forbidden, HttpError, notFound, unavailable, unprocessable } from '../../http/errors';
import { validate } from '../../http/validation';
import { ACTION_ID, updateBodySchema } from './schemas';
import type { ScoreService } from './service';
import type { RejectReason } from './store';

/** What each of the store's reasons means to an HTTP caller. */
function rejection(reason: RejectReason, userId: string, boardId: string): HttpError {
  switch (reason) {
    case 'unknown_board':
      return notFound(`No board "${boardId}".`);
    case 'actor_banned':
      return forbidden('This account is banned.');
    case 'actor_not_admin':
      return forbidden('This account is no longer an admin.');
    case 'unknown_user':
      return notFound(`User "${userId}" does not exist.`);
    case 'target_banned':
      return forbidden('This account is banned from scoring.');
    case 'out_of_range':
      return unprocessable('The new total would leave the supported score range.');
    case 'conflicting_replay':
      return unprocessable('This actionId was already used for this user with a different scoreIncrement.');
  }
}

export function scoreWriteRoutes(
  router: Router,
  deps: {
    loadCaller: CallerLoader;
    verifyToken: TokenVerifier;
    /** Per-user write limit; runs after the token is verified and before any database work. */
    writeLimit: Middleware;
    scores: ScoreService;
    /** Whether a board exists (reloading this instance's copy, rate-limited, for one created elsewhere). */
    findBoard: (id: string) => Promise<unknown>;
    maxScoreIncrement: number;
    maxBodyBytes: number;
    retryAfterS: number;
  },
) {
  const schemas = {
    player: updateBodySchema(deps.maxScoreIncrement, false),
    admin: updateBodySchema(deps.maxScoreIncrement, true),
  };

  router.post('/scores/update', authenticate(deps.verifyToken), deps.writeLimit, async (ctx) => {
    // Validate the shape before touching the database (malformed input never provisions a user), using the
    // admins' rules, the wider ones; the caller's role from the database then narrows them for players.
    const raw = await readJsonBody(ctx, deps.maxBodyBytes);
    let body = validate(schemas.admin, raw);
    const headerKey = ctx.get('idempotency-key') || undefined;
    if (headerKey !== undefined)
      validate(ACTION_ID.label('Idempotency-Key'), headerKey, 'Idempotency-Key header');
    if (headerKey !== undefined && body.actionId !== undefined && headerKey !== body.actionId) {
      throw badRequest('The Idempotency-Key header and the actionId field disagree.');
    }
    const caller = await deps.loadCaller(ctx);
    if (caller.role === 'player') body = validate(schemas.player, raw);
    const userId = body.userId ?? caller.id;
    if (userId !== caller.id && caller.role !== 'admin')
      throw forbidden('Players may only add to their own score.');

    if (!(await deps.findBoard(body.boardId))) throw notFound(`No board "${body.boardId}".`);
    const outcome = await deps.scores.submit({
      userId,
      boardId: body.boardId,
      delta: body.scoreIncrement,
      actionId: body.actionId ?? headerKey,
      actorId: caller.id,
      actorIsAdmin: caller.role === 'admin',
    });
    if (outcome.kind === 'overloaded')
      throw unavailable('Too many score updates are waiting; retry shortly.', deps.retryAfterS);
    if (outcome.kind === 'rejected') throw rejection(outcome.reason, userId, body.boardId);
    if (outcome.kind === 'replayed') ctx.set('Idempotent-Replayed', 'true');
    ctx.status = outcome.kind === 'applied' ? 201 : 200;
    ctx.body = outcome.result;
  });
}

import Router from '@koa/router';
import type { CallerLoader } from '../../auth/caller';
import { authenticate, type TokenClaims, type TokenVerifier } from '../../auth/tokens';
import { readJsonBody } from '../../http/body';
import { badRequest, forbidden, HttpError, notFound, unavailable, unprocessable } from '../../http/errors';
import { validate } from '../../http/validation';
import { ACTION_ID, updateBodySchema } from './schemas';
import type { ScoreService } from './service';
import type { LimitDecision } from './write-limit';
import type { RejectReason } from './store';

/** What each of the store's reasons means to an HTTP caller. */
function rejection(reason: RejectReason, userId: string, boardId: string): HttpError {
  switch (reason) {
    case 'unknown_board':
      return notFound(`No board "${boardId}".`);
    case 'unknown_caller':
      return forbidden('This user is not registered.');
    case 'actor_banned':
      return forbidden('This account is banned.');
    case 'actor_not_admin':
      return forbidden('This account is no longer an admin.');
    case 'not_own_score':
      return forbidden('Players may only add to their own score.');
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

/** The write limit's RateLimit-* headers (the same on 201, 200 and 429 answers). */
const limitHeaders = (d: LimitDecision) => ({
  'RateLimit-Limit': String(d.limit),
  'RateLimit-Remaining': String(d.remaining),
  'RateLimit-Reset': String(d.resetS),
});

function limitedError(d: LimitDecision): HttpError {
  return new HttpError(
    429,
    'Too Many Requests',
    `Rate limit "writes" exceeded; retry in ${d.resetS} s.`,
    {},
    { 'Retry-After': String(d.resetS), ...limitHeaders(d) },
  );
}

export function scoreWriteRoutes(
  router: Router,
  deps: {
    /** The caller's row (cached), only for an increment only admins may send. */
    loadCaller: CallerLoader;
    verifyToken: TokenVerifier;
    scores: ScoreService;
    /** Whether a board exists (reloading this instance's copy, rate-limited, for one created elsewhere). */
    findBoard: (id: string) => Promise<unknown>;
    autoProvision: boolean;
    maxScoreIncrement: number;
    maxBodyBytes: number;
    retryAfterS: number;
  },
) {
  const schemas = {
    player: updateBodySchema(deps.maxScoreIncrement, false),
    admin: updateBodySchema(deps.maxScoreIncrement, true),
  };

  router.post('/scores/update', authenticate(deps.verifyToken), async (ctx) => {
    // Validate the shape before anything else (malformed input never provisions a user), using the admins'
    // rules, the wider ones. A body the players' rules also allow needs no store here: the batch's
    // transaction authorizes the caller against its row (src/leaderboard/write/rules.ts). Only an increment
    // outside the players' range looks the caller's role up first, to answer a player 400 as before.
    const raw = await readJsonBody(ctx, deps.maxBodyBytes);
    const asPlayer = schemas.player.validate(raw, { abortEarly: false, convert: false });
    const body = asPlayer.error ? validate(schemas.admin, raw) : asPlayer.value;
    const headerKey = ctx.get('idempotency-key') || undefined;
    if (headerKey !== undefined)
      validate(ACTION_ID.label('Idempotency-Key'), headerKey, 'Idempotency-Key header');
    if (headerKey !== undefined && body.actionId !== undefined && headerKey !== body.actionId) {
      throw badRequest('The Idempotency-Key header and the actionId field disagree.');
    }
    const claims: TokenClaims = ctx.state.claims;
    let requiresAdmin = false;
    if (asPlayer.error) {
      // A caller without a row would be provisioned as a player: refuse without creating it.
      const caller = await deps.loadCaller.existing(ctx);
      if (caller?.role !== 'admin') validate(schemas.player, raw);
      requiresAdmin = true;
    }
    const userId = body.userId ?? claims.userId;

    if (!(await deps.findBoard(body.boardId))) throw notFound(`No board "${body.boardId}".`);
    const outcome = await deps.scores.submit({
      userId,
      boardId: body.boardId,
      delta: body.scoreIncrement,
      actionId: body.actionId ?? headerKey,
      actorId: claims.userId,
      authority: 'caller',
      requiresAdmin,
      limitKey: claims.userId,
      provision: deps.autoProvision
        ? { id: claims.userId, displayName: claims.name ?? claims.userId }
        : undefined,
    });
    if (outcome.kind === 'limited') throw limitedError(outcome.limit);
    if (outcome.kind === 'overloaded')
      throw unavailable('Too many score updates are waiting; retry shortly.', deps.retryAfterS);
    if (outcome.limit) ctx.set(limitHeaders(outcome.limit));
    if (outcome.kind === 'rejected') throw rejection(outcome.reason, userId, body.boardId);
    if (outcome.kind === 'replayed') ctx.set('Idempotent-Replayed', 'true');
    ctx.status = outcome.kind === 'applied' ? 201 : 200;
    ctx.body = outcome.result;
  });
}

import Router from '@koa/router';
import Joi from 'joi';
import type { CallerLoader } from '../../auth/caller';
import { authenticate, type TokenVerifier } from '../../auth/tokens';
import type { Db } from '../../platform/db';
import { forbidden, notFound, unavailable } from '../../http/errors';
import { userIdParam } from '../../users/routes';
import { validate } from '../../http/validation';
import type { DbFallback } from './db-fallback';
import type { Mirror, Standing } from '../cache/mirror';
import { userHistory } from './queries';
import { standingInCycle } from './board-queries';
import { cycleAt } from '../boards/cycles';

/** The one-board routes (/scores/*) are `global`/`all`. */
const GLOBAL_ALL = { board: 'global', window: 'all', cycle: 'all' };

const historyQuery = Joi.object({
  limit: Joi.number().integer().min(1).max(200).default(50),
  before: Joi.number().integer().min(1).max(Number.MAX_SAFE_INTEGER),
}).unknown(false);

export function scoreReadRoutes(
  router: Router,
  deps: {
    db: Db;
    mirror: Mirror;
    fallback: DbFallback<unknown>;
    retryAfterS: number;
    loadCaller: CallerLoader;
    verifyToken: TokenVerifier;
  },
) {
  /**
   * One user's score and competition rank, public. From Redis (a user the complete mirror lacks is 404 right
   * there); from MySQL only while the mirror cannot answer, and then through the bounded fallback.
   */
  router.get('/scores/users/:userId', async (ctx) => {
    const userId = validate(userIdParam, ctx.params.userId, 'path');
    const found = await deps.mirror.lookup(GLOBAL_ALL, userId);
    let standing: Standing | undefined;
    if (found.kind === 'found') standing = found.standing;
    else if (found.kind === 'unknown') {
      const answer = await deps.fallback.run(`standing:global/all/all:${userId}`, () =>
        standingInCycle(
          deps.db,
          { board: 'global', window: 'all', cycle: cycleAt(null, new Date()) },
          userId,
        ),
      );
      if (answer.kind === 'busy')
        throw unavailable(
          'Rankings are being rebuilt and this instance is busy; retry shortly.',
          deps.retryAfterS,
        );
      standing = answer.value as Standing | undefined;
    }
    if (!standing) throw notFound(`No ranked user "${userId}".`);
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = { userId, displayName: standing.displayName, score: standing.score, rank: standing.rank };
  });

  /** A user's score history, newest first, paged by event id. Only that user or an admin. */
  router.get('/scores/users/:userId/events', authenticate(deps.verifyToken), async (ctx) => {
    const userId = validate(userIdParam, ctx.params.userId, 'path');
    const query = validate(historyQuery, ctx.query, 'query', true);
    const caller = await deps.loadCaller(ctx);
    if (caller.id !== userId && caller.role !== 'admin')
      throw forbidden("Only admins may read another user's history.");
    const page = await userHistory(deps.db, userId, query.limit, query.before);
    ctx.set('Cache-Control', 'private, no-cache');
    ctx.body = { userId, ...page };
  });
}

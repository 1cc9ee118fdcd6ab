import Router from '@koa/router';
import Joi from 'joi';
import type { CallerLoader } from '../auth/caller';
import { authenticate, type TokenVerifier } from '../auth/tokens';
import type { Db } from '../db';
import { forbidden, notFound } from '../errors';
import { userIdParam } from '../users/routes';
import { validate } from '../validation';
import type { Mirror } from './mirror';
import { userHistory, userStandingFromDatabase } from './queries';

const historyQuery = Joi.object({
  limit: Joi.number().integer().min(1).max(200).default(50),
  before: Joi.number().integer().min(1).max(Number.MAX_SAFE_INTEGER),
}).unknown(false);

export function scoreReadRoutes(
  router: Router,
  deps: { db: Db; mirror: Mirror; loadCaller: CallerLoader; verifyToken: TokenVerifier },
) {
  /** One user's score and competition rank: from Redis, from MySQL when Redis cannot answer. */
  router.get('/scores/users/:userId', async (ctx) => {
    const userId = validate(userIdParam, ctx.params.userId, 'path');
    const standing = (await deps.mirror.lookup(userId)) ?? (await userStandingFromDatabase(deps.db, userId));
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

import type Router from '@koa/router';
import type { Context } from 'koa';
import type { CallerLoader } from '../auth/caller';
import { authenticate, type TokenVerifier } from '../auth/tokens';
import { forbidden, notFound } from '../http/errors';
import { userIdParam } from '../users/routes';
import { validate } from '../http/validation';
import type { CheatDetector } from './detector';

/** Admin: list cheat flags (newest first) and clear a user's flags. */
export function cheatRoutes(
  router: Router,
  deps: { loadCaller: CallerLoader; verifyToken: TokenVerifier; cheat: CheatDetector },
) {
  const requireAdmin = async (ctx: Context) => {
    const caller = await deps.loadCaller(ctx);
    if (caller.role !== 'admin') throw forbidden('Only admins may see cheat flags.');
  };
  router.get('/admin/flags', authenticate(deps.verifyToken), async (ctx) => {
    await requireAdmin(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { flags: await deps.cheat.list() };
  });
  router.delete('/admin/flags/:userId', authenticate(deps.verifyToken), async (ctx) => {
    const userId = validate(userIdParam, ctx.params.userId, 'path');
    await requireAdmin(ctx);
    if ((await deps.cheat.clear(userId)) === 0) throw notFound(`No flags for "${userId}".`);
    ctx.status = 204;
  });
}

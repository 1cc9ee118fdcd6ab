import Router from '@koa/router';
import Joi from 'joi';
import type { CallerLoader } from '../auth/caller';
import { authenticate, USER_ID_PATTERN, type TokenVerifier } from '../auth/tokens';
import { readJsonBody } from '../body';
import type { Db } from '../db';
import { forbidden, notFound, unprocessable } from '../errors';
import type { Mirror } from '../scores/mirror';
import { validate } from '../validation';
import { updateUser, type UserChanges } from './store';

const patchSchema = Joi.object<UserChanges>({
  status: Joi.string().valid('active', 'banned'),
  displayName: Joi.string().trim().min(1).max(100),
  role: Joi.string().valid('player', 'admin'),
})
  .min(1)
  .unknown(false);

export const userIdParam = Joi.string().pattern(USER_ID_PATTERN, 'user id').required();

export function userRoutes(
  router: Router,
  deps: {
    db: Db;
    loadCaller: CallerLoader;
    verifyToken: TokenVerifier;
    mirror: Mirror;
    onChanged: () => void;
    maxBodyBytes: number;
  },
) {
  /** Admin: ban or unban, rename, change role. Bans leave the top N and rank answers within one tick. */
  router.patch('/users/:userId', authenticate(deps.verifyToken), async (ctx) => {
    const userId = validate(userIdParam, ctx.params.userId, 'path');
    const changes = validate(patchSchema, await readJsonBody(ctx, deps.maxBodyBytes));
    const caller = await deps.loadCaller(ctx);
    if (caller.role !== 'admin') throw forbidden('Only admins may change users.');
    if (userId === caller.id && (changes.status === 'banned' || changes.role === 'player')) {
      throw unprocessable('Admins cannot ban or demote themselves.');
    }
    const updated = await updateUser(deps.db, userId, changes);
    if (!updated) throw notFound(`User "${userId}" does not exist.`);
    deps.loadCaller.invalidate(userId); // this instance sees the new role and status at once
    const { user, mirror } = updated;
    if (mirror) {
      await deps.mirror.apply([
        { userId, ...mirror, active: user.status === 'active', displayName: user.displayName },
      ]);
    }
    deps.onChanged();
    ctx.body = { userId: user.id, displayName: user.displayName, role: user.role, status: user.status };
  });
}

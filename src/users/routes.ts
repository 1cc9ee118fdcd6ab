import Router from '@koa/router';
import Joi from 'joi';
import type { CallerLoader } from '../auth/caller';
import { authenticate, USER_ID_PATTERN, type TokenVerifier } from '../auth/tokens';
import { readJsonBody } from '../http/body';
import type { Db } from '../platform/db';
import { conflict, forbidden, notFound, unprocessable } from '../http/errors';
import type { Mirror } from '../leaderboard/cache/mirror';
import { validate } from '../http/validation';
import { checkDisplayName, DISPLAY_NAME_PROBLEMS } from './display-name';
import { updateUser, type UserChanges } from './store';

/** A display name as the one rule in ./display-name.ts has it: normalised, or refused with the reason. */
export const displayNameSchema = Joi.string()
  .custom((value: string, helpers) => {
    const check = checkDisplayName(value);
    return check.ok
      ? check.name
      : helpers.message({ custom: `"displayName" ${DISPLAY_NAME_PROBLEMS[check.reason]}` });
  })
  .max(1000);

const patchSchema = Joi.object<UserChanges>({
  status: Joi.string().valid('active', 'banned'),
  displayName: displayNameSchema,
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
    /** The earliest start of a cycle the mirror holds (older rows are archives). */
    liveSince: () => Date;
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
    const liveSince = deps.liveSince();
    const updated = await updateUser(deps.db, userId, changes, caller.id, liveSince);
    if (updated.kind === 'not_found') throw notFound(`User "${userId}" does not exist.`);
    if (updated.kind === 'actor_not_admin') {
      deps.loadCaller.invalidate(caller.id);
      throw forbidden('This account is no longer an admin.');
    }
    if (updated.kind === 'last_admin')
      throw conflict('This change would leave no active admin; promote another admin first.');
    deps.loadCaller.invalidate(userId); // this instance sees the new role and status at once
    const { user } = updated;
    if (updated.scoresChanged) await deps.mirror.syncUser(userId, liveSince);
    deps.onChanged();
    ctx.body = { userId: user.id, displayName: user.displayName, role: user.role, status: user.status };
  });
}

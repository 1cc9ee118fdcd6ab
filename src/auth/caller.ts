import type { Context } from 'koa';
import type { Db } from '../db';
import { forbidden } from '../errors';
import { findUser, provisionUser, type User } from '../users/store';
import type { TokenVerifier } from './tokens';

/**
 * Authenticates the bearer token, then authorizes against the database: the user must exist (or be created
 * from the token when auto-provisioning is on) and must not be banned.
 */
export function createCallerLoader(deps: { db: Db; verifyToken: TokenVerifier; autoProvision: boolean }) {
  return async function loadCaller(ctx: Context): Promise<User> {
    const claims = deps.verifyToken(ctx);
    ctx.state.userId = claims.userId;
    let user = await findUser(deps.db, claims.userId);
    if (!user) {
      if (!deps.autoProvision) throw forbidden('This user is not registered.');
      user = await provisionUser(deps.db, {
        id: claims.userId,
        displayName: claims.name ?? claims.userId,
        role: claims.role ?? 'player',
      });
    }
    if (user.status === 'banned') throw forbidden('This account is banned.');
    return user;
  };
}

export type CallerLoader = ReturnType<typeof createCallerLoader>;

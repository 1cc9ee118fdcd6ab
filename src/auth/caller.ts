import type { Context } from 'koa';
import type { Db } from '../platform/db';
import { forbidden } from '../http/errors';
import { findUser, provisionUser, type User } from '../users/store';
import type { TokenClaims } from './tokens';

/** Enough for every active player of a busy instance; past it the oldest entries go first. */
const MAX_CACHED_USERS = 100_000;

/**
 * Authorizes the caller that authenticate() verified, against the database: the user must exist (or be
 * created from the token when auto-provisioning is on) and must not be banned. Roles come from the row only.
 *
 * With `cacheTtlMs > 0` a user's row (role, status) is kept in memory for that long, so a busy player costs
 * one `SELECT ... FROM users` per TTL instead of one per request. How fresh that is, and why it is safe:
 * - Bans stop writes at once, on every instance, cache or not: the write transaction re-reads the target's
 *   and an admin actor's status under lock (src/leaderboard/write/store.ts). Only reads that need a token (a player's
 *   own history) may still be answered to a banned user for up to the TTL.
 * - Role changes reach other instances within the TTL: a demoted admin's writes are refused at once (the
 *   transaction re-checks an admin actor's role), other admin routes honour the old role for up to the TTL.
 * - A change made through this instance (PATCH /users/:id) calls `invalidate`, so it applies here at once.
 */
export function createCallerLoader(deps: {
  db: Db;
  autoProvision: boolean;
  /** AUTH_CACHE_TTL_MS; 0 or absent reads the users table on every request. */
  cacheTtlMs?: number;
  now?: () => number;
}) {
  const ttl = deps.cacheTtlMs ?? 0;
  const now = deps.now ?? Date.now;
  const cache = new Map<string, { user: User; expires: number }>();
  // Bumped by every invalidation: a lookup that started before it may hold the old row, so it is not cached.
  let epoch = 0;

  async function fromDatabase(claims: TokenClaims, provision: boolean): Promise<User | undefined> {
    const user = await findUser(deps.db, claims.userId);
    if (user || !provision) return user;
    if (!deps.autoProvision) throw forbidden('This user is not registered.');
    return provisionUser(deps.db, { id: claims.userId, displayName: claims.name ?? claims.userId });
  }

  async function lookup(ctx: Context, provision: boolean): Promise<User | undefined> {
    const claims: TokenClaims = ctx.state.claims; // set by authenticate(), which every caller's route runs first
    ctx.state.userId = claims.userId;
    let user: User | undefined;
    const hit = ttl > 0 ? cache.get(claims.userId) : undefined;
    if (hit && hit.expires > now()) {
      user = hit.user;
    } else {
      const started = epoch;
      user = await fromDatabase(claims, provision);
      if (user && ttl > 0 && started === epoch) remember(user);
    }
    if (user?.status === 'banned') throw forbidden('This account is banned.');
    return user;
  }

  /** The caller's row, created from the token if it has none (and auto-provisioning is on). */
  const loadCaller = async (ctx: Context): Promise<User> => (await lookup(ctx, true))!;

  /** The caller's row if there is one; creates nothing (for decisions made before input is accepted). */
  const existing = (ctx: Context): Promise<User | undefined> => lookup(ctx, false);

  function remember(user: User): void {
    cache.delete(user.id); // re-insert at the end, so the Map's order is oldest-first
    if (cache.size >= MAX_CACHED_USERS) cache.delete(cache.keys().next().value!);
    cache.set(user.id, { user, expires: now() + ttl });
  }

  /** Forgets a user's cached row (this instance changed it); the next request reads the database. */
  function invalidate(userId: string): void {
    epoch++;
    cache.delete(userId);
  }

  return Object.assign(loadCaller, { invalidate, existing });
}

export type CallerLoader = ReturnType<typeof createCallerLoader>;

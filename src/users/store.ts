import { rawRows, retryOnDeadlock, type Db } from '../platform/db';
import { ALL_CYCLE_START } from '../leaderboard/boards/cycles';

/**
 * A user's rows in the cycles the mirror may hold (`all`, and cycles starting at or after a given instant).
 * Values: user id, ALL_CYCLE_START, the instant.
 */
export const USER_LIVE_ROWS = 'user_id = ? AND (cycle_start = ? OR cycle_start >= ?)';

export interface User {
  id: string;
  displayName: string;
  role: 'player' | 'admin';
  status: 'active' | 'banned';
}

interface UserRow {
  id: string;
  display_name: string;
  role: User['role'];
  status: User['status'];
}

const toUser = (r: UserRow): User => ({
  id: r.id,
  displayName: r.display_name,
  role: r.role,
  status: r.status,
});

export async function findUser(db: Db, id: string): Promise<User | undefined> {
  const [row] = await rawRows<UserRow>(db, 'SELECT id, display_name, role, status FROM users WHERE id = ?', [
    id,
  ]);
  return row && toUser(row);
}

/**
 * Creates the user if missing (concurrent first requests are fine) and returns what the database holds.
 * Always as a player: admins are made by an admin or by the operator's command, never by a token.
 */
export async function provisionUser(db: Db, user: Pick<User, 'id' | 'displayName'>): Promise<User> {
  await provisionUsers(db, [user]);
  return (await findUser(db, user.id))!;
}

/**
 * Creates the users that are missing, as players. Existing rows are only read (a consistent read, no lock):
 * locking a hot user's row here would queue behind, and could deadlock with, the write transactions that lock
 * it. Missing ones are inserted in one autocommit statement, in id order like every lock, and a deadlock with
 * another instance creating the same users retries it.
 */
export async function provisionUsers(db: Db, users: Array<Pick<User, 'id' | 'displayName'>>): Promise<void> {
  const ids = users.map((u) => u.id);
  const existing = await rawRows<{ id: string }>(
    db,
    `SELECT id FROM users WHERE id IN (${ids.map(() => '?').join(', ')})`,
    ids,
  );
  const have = new Set(existing.map((r) => r.id));
  const missing = users
    .filter((u) => !have.has(u.id))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (missing.length === 0) return;
  await retryOnDeadlock(() =>
    db.raw(
      `INSERT INTO users (id, display_name, role) VALUES ${missing.map(() => "(?, ?, 'player')").join(', ')}
       ON DUPLICATE KEY UPDATE id = id`,
      missing.flatMap((u) => [u.id, u.displayName]),
    ),
  );
}

export interface UserChanges {
  status?: User['status'];
  displayName?: string;
  role?: User['role'];
}

export type UpdateUserResult =
  | { kind: 'updated'; user: User; scoresChanged: boolean }
  | { kind: 'not_found' }
  /** The acting admin is no longer an active admin (demoted or banned on another instance). */
  | { kind: 'actor_not_admin' }
  /** The change would leave no active admin. */
  | { kind: 'last_admin' };

/**
 * Applies an admin's change in one transaction. A change that affects the scoreboard (status, name) bumps the
 * user's scores row version, so the Redis mirror orders it against concurrent score writes.
 *
 * A role or status change first locks every active admin row, in id order, and re-checks under that lock
 * that the actor (when given) is still an active admin and that at least one active admin remains. So two
 * admins demoting each other at the same moment are serialised: the second finds it is no longer an admin.
 */
export async function updateUser(
  db: Db,
  id: string,
  changes: UserChanges,
  actorId?: string,
  /** The earliest start of a cycle the Redis mirror holds: older rows are archives, read from MySQL only. */
  liveSince: Date = new Date(0),
): Promise<UpdateUserResult> {
  return db.transaction(async (trx) => {
    const guarded = changes.role !== undefined || changes.status !== undefined;
    const admins = guarded
      ? (
          await rawRows<{ id: string }>(
            trx,
            "SELECT id FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id FOR UPDATE",
          )
        ).map((r) => r.id)
      : [];
    const [row] = await rawRows<UserRow>(
      trx,
      'SELECT id, display_name, role, status FROM users WHERE id = ? FOR UPDATE',
      [id],
    );
    if (actorId !== undefined && guarded && !admins.includes(actorId)) return { kind: 'actor_not_admin' };
    if (!row) return { kind: 'not_found' };
    const set: Record<string, string> = {};
    if (changes.status !== undefined) set.status = changes.status;
    if (changes.displayName !== undefined) set.display_name = changes.displayName;
    if (changes.role !== undefined) set.role = changes.role;
    const after = { ...row, ...set } as UserRow;
    const losesAdmin = admins.includes(id) && (after.role !== 'admin' || after.status !== 'active');
    if (losesAdmin && admins.length <= 1) return { kind: 'last_admin' };
    await trx('users').where({ id }).update(set);
    const user = toUser(after);
    if (changes.status === undefined && changes.displayName === undefined)
      return { kind: 'updated', user, scoresChanged: false };
    await trx.raw(`UPDATE board_scores SET version = version + 1 WHERE ${USER_LIVE_ROWS}`, [
      id,
      ALL_CYCLE_START,
      liveSince,
    ]);
    return { kind: 'updated', user, scoresChanged: true };
  });
}

/**
 * The operator's way to make an admin (`npm run user -- promote <id>`): creates the user when it has never
 * logged in, so the first admin can exist before the first request. Returns the user as stored.
 */
export async function promoteUser(db: Db, id: string, displayName = id): Promise<User> {
  await db.raw(
    `INSERT INTO users (id, display_name, role) VALUES (?, ?, 'admin')
     ON DUPLICATE KEY UPDATE role = 'admin'`,
    [id, displayName],
  );
  return (await findUser(db, id))!;
}

import { rawRows, type Db } from '../db';

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

/** Creates the user if missing (concurrent first requests are fine) and returns what the database holds. */
export async function provisionUser(db: Db, user: Pick<User, 'id' | 'displayName' | 'role'>): Promise<User> {
  await db.raw(
    'INSERT INTO users (id, display_name, role) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE id = id',
    [user.id, user.displayName, user.role],
  );
  return (await findUser(db, user.id))!;
}

export interface UserChanges {
  status?: User['status'];
  displayName?: string;
  role?: User['role'];
}

/**
 * Applies an admin's change in one transaction. A change that affects the scoreboard (status, name) bumps the
 * user's scores row version, so the Redis mirror orders it against concurrent score writes.
 */
export async function updateUser(
  db: Db,
  id: string,
  changes: UserChanges,
): Promise<{ user: User; mirror?: { score: number; version: number } } | undefined> {
  return db.transaction(async (trx) => {
    const [row] = await rawRows<UserRow>(
      trx,
      'SELECT id, display_name, role, status FROM users WHERE id = ? FOR UPDATE',
      [id],
    );
    if (!row) return undefined;
    const set: Record<string, string> = {};
    if (changes.status !== undefined) set.status = changes.status;
    if (changes.displayName !== undefined) set.display_name = changes.displayName;
    if (changes.role !== undefined) set.role = changes.role;
    await trx('users').where({ id }).update(set);
    const user = toUser({ ...row, ...set } as UserRow);
    if (changes.status === undefined && changes.displayName === undefined) return { user };
    await trx.raw('UPDATE scores SET version = version + 1 WHERE user_id = ?', [id]);
    const [score] = await rawRows<{ score: number; version: number }>(
      trx,
      'SELECT score, version FROM scores WHERE user_id = ?',
      [id],
    );
    return { user, mirror: score && { score: Number(score.score), version: Number(score.version) } };
  });
}

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

const toUser = (r: UserRow): User => ({ id: r.id, displayName: r.display_name, role: r.role, status: r.status });

export async function findUser(db: Db, id: string): Promise<User | undefined> {
  const [row] = await rawRows<UserRow>(db, 'SELECT id, display_name, role, status FROM users WHERE id = ?', [id]);
  return row && toUser(row);
}

/** Creates the user if missing (concurrent first requests are fine) and returns what the database holds. */
export async function provisionUser(db: Db, user: Pick<User, 'id' | 'displayName' | 'role'>): Promise<User> {
  await db.raw('INSERT INTO users (id, display_name, role) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE id = id', [
    user.id,
    user.displayName,
    user.role,
  ]);
  return (await findUser(db, user.id))!;
}

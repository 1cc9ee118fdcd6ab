import { parseArgs } from 'node:util';
import { USER_ID_PATTERN } from '../auth/tokens';
import { loadDatabaseConfig } from '../config';
import { createDb, rawRows, type Db } from '../platform/db';
import { checkDisplayName, DISPLAY_NAME_PROBLEMS } from '../users/display-name';
import { promoteUser, updateUser } from '../users/store';

/**
 * The operator's user commands; a token can never make an admin, so this is how the first one is made:
 *   npm run user -- promote <userId> [--name "Display Name"]   (creates the user if it never logged in)
 *   npm run user -- demote <userId>                            (refused for the last active admin)
 *   npm run user -- admins                                     (lists the active admins)
 * From the image: `node dist/src/cli/user.js promote <userId>`.
 */
const USAGE = `usage: user promote <userId> [--name NAME] | user demote <userId> | user admins`;

export async function runUserCommand(db: Db, argv: string[]): Promise<{ code: number; out: string }> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { name: { type: 'string' } },
  });
  const [command, userId] = positionals;
  if (command === 'admins' && positionals.length === 1) {
    const rows = await rawRows<{ id: string }>(
      db,
      "SELECT id FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id",
    );
    return { code: 0, out: rows.map((r) => r.id).join('\n') };
  }
  if (!['promote', 'demote'].includes(command) || positionals.length !== 2) return { code: 2, out: USAGE };
  if (!USER_ID_PATTERN.test(userId)) return { code: 2, out: `"${userId}" is not a valid user id` };
  if (command === 'promote') {
    let name: string | undefined;
    if (values.name !== undefined) {
      const check = checkDisplayName(values.name);
      if (!check.ok) return { code: 2, out: `--name ${DISPLAY_NAME_PROBLEMS[check.reason]}` };
      name = check.name;
    }
    const user = await promoteUser(db, userId, name);
    return { code: 0, out: `${user.id} is an admin (status ${user.status})` };
  }
  const result = await updateUser(db, userId, { role: 'player' });
  if (result.kind === 'not_found') return { code: 1, out: `no user "${userId}"` };
  if (result.kind === 'last_admin')
    return { code: 1, out: `"${userId}" is the last active admin; promote another first` };
  return { code: 0, out: `${userId} is a player` };
}

if (require.main === module) {
  const db = createDb(loadDatabaseConfig());
  runUserCommand(db, process.argv.slice(2))
    .then(({ code, out }) => {
      (code === 0 ? console.log : console.error)(out);
      process.exitCode = code;
    })
    .catch((err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    })
    .finally(() => db.destroy());
}

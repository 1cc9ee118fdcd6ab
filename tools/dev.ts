import { parseDatabaseUrl } from '../knexfile';
import { loadConfigOrExit, type Config } from '../src/config';
import { runUntilSignalled, startServer } from '../src/main';
import { createDatabase, migrateLatest, runSeeds } from '../src/cli/db';
import { DEV_JWT_SECRET, mintToken, TokenCliError } from './token';

/**
 * `npm run dev`: the quick start. Creates the database if it is missing, migrates, seeds the demo users,
 * starts the service (with a well-known development secret when no JWT key is configured) and prints the
 * URL, a demo token for the seeded user `ada` and a curl command to post a score with it.
 * `npm start` is the production entry point and never falls back to a development secret.
 */
const DEMO_USER = 'ada';

function warnDevSecret(): void {
  const line = '!'.repeat(100);
  console.warn(
    [
      line,
      '!!  WARNING: neither JWT_SECRET nor JWT_PUBLIC_KEY is set, so this development server uses a FIXED,',
      '!!  PUBLICLY KNOWN secret. Anyone can forge tokens for it. NEVER use it in production: set JWT_SECRET',
      '!!  (32+ random bytes) or JWT_PUBLIC_KEY, and run the built service with `npm start`.',
      line,
    ].join('\n'),
  );
}

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/** A token for the demo user, or why none could be made (RS256/ES256 without JWT_PRIVATE_KEY). */
function demoToken(config: Config): { token?: string; problem?: string } {
  try {
    return { token: mintToken(config.jwt, { sub: DEMO_USER }, '24h') };
  } catch (err) {
    if (err instanceof TokenCliError) return { problem: err.message };
    throw err;
  }
}

function printBanner(config: Config, port: number): void {
  const url = `http://${displayHost(config.host)}:${port}`;
  const { token, problem } = demoToken(config);
  const lines = ['', `Scoreboard (development) is listening on ${url}`, ''];
  if (token) {
    lines.push(
      `Demo token for the seeded user "${DEMO_USER}" (valid 24h):`,
      '',
      `  ${token}`,
      '',
      'Post a score:',
      '',
      `  curl -sS -X POST ${url}/api/v1/scores/update \\`,
      `    -H 'Authorization: Bearer ${token}' \\`,
      `    -H 'Content-Type: application/json' \\`,
      `    -d '{"scoreIncrement": 10}'`,
      '',
      'More tokens: npm run token -- <userId> [--name "Ada"] [--ttl 1h]  (in the same environment; the seeded',
      '"admin" is an admin by its row in MySQL; make others with npm run user -- promote <userId>)',
    );
  } else {
    lines.push(`No demo token: ${problem}`);
  }
  lines.push('Stop with Ctrl+C.', '');
  console.log(lines.join('\n'));
}

async function prepareDatabase(databaseUrl: string): Promise<void> {
  const { host, port, database } = parseDatabaseUrl(databaseUrl);
  try {
    await createDatabase(databaseUrl);
    const applied = await migrateLatest(databaseUrl);
    const seeded = await runSeeds(databaseUrl);
    console.log(
      `database "${database}" on ${host}:${port}: ${applied.length ? `applied ${applied.join(', ')}` : 'schema up to date'}; ` +
        `seeded (${seeded.length} file(s))`,
    );
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (
      code === 'ECONNREFUSED' ||
      code === 'ETIMEDOUT' ||
      code === 'ENOTFOUND' ||
      code === 'ER_ACCESS_DENIED_ERROR'
    ) {
      throw new Error(
        `Cannot use MySQL at ${host}:${port} (${code}). Start MySQL/MariaDB there (user root, empty password), ` +
          'or point DATABASE_URL at one, e.g. DATABASE_URL=mysql://user:pass@host:3306/scoreboard npm run dev',
        { cause: err },
      );
    }
    throw err;
  }
}

async function main(): Promise<void> {
  if (!process.env.JWT_SECRET && !process.env.JWT_PUBLIC_KEY) {
    process.env.JWT_SECRET = DEV_JWT_SECRET;
    warnDevSecret();
  }
  process.env.NODE_ENV ??= 'development';
  process.env.SEED_DEMO ??= 'true'; // the demo board and its admin are for development only

  const config = loadConfigOrExit();

  await prepareDatabase(config.databaseUrl);
  let instance;
  try {
    instance = await startServer(config);
  } catch (err) {
    if ((err as { code?: string }).code === 'EADDRINUSE') {
      throw new Error(
        `Port ${config.port} is already in use: stop what runs there, or start with PORT=3001 npm run dev`,
        { cause: err },
      );
    }
    throw err;
  }
  runUntilSignalled(instance, config);
  printBanner(config, instance.port);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

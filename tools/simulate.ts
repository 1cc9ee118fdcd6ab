import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../src/config';
import { formatSummary, runSimulation } from './simulator/run';
import { simUsers } from './simulator/traffic';
import { DEV_JWT_SECRET, mintToken, TokenCliError } from './token';

/**
 * `npm run simulate`: realistic traffic through the real HTTP API, so the live page visibly moves. Tokens are
 * signed with the key from the same environment as the service (the development secret of `npm run dev`
 * when none is set), exactly as `npm run token` signs them.
 */
const USAGE = `usage: npm run simulate -- [--url URL] [--users N] [--rate R] [--duration S] [--window MS]
                                  [--boards N] [--admin ID]

  --url URL       the service (default http://127.0.0.1:$PORT, PORT defaulting to 3000)
  --users N       players taking part: the seeded ones first, then generated sim-001... (default 20)
  --rate R        actions per second across all players (default 10)
  --duration S    seconds to run; 0 runs until Ctrl+C (default 60)
  --window MS     debounce window: a player's actions within it become one request (default 1000)
  --boards N      play N boards: global, then sim-2 ... sim-N, created when missing with windows all, day,
                  week, month and a per-minute one (default 1)
  --admin ID      the admin who creates missing boards (default admin, an admin in the dev seeds)

Watch the result at the service's / page. Ctrl+C stops, sends what is pending, and prints the summary.`;

const TOKEN_TTL_S = 2 * 3600;

class UsageError extends Error {}

function numberOption(
  name: string,
  raw: string,
  opts: { min: number; max: number; integer?: boolean },
): number {
  const value = Number(raw);
  if (
    !Number.isFinite(value) ||
    value < opts.min ||
    value > opts.max ||
    (opts.integer && !Number.isInteger(value))
  ) {
    throw new UsageError(
      `--${name} must be ${opts.integer ? 'a whole number' : 'a number'} from ${opts.min} to ${opts.max}`,
    );
  }
  return value;
}

/** Tokens per user, re-signed before they expire so a long run keeps going. */
function tokenSource(config: Config, env: NodeJS.ProcessEnv, names: Map<string, string>) {
  const cache = new Map<string, { token: string; renewAt: number }>();
  return (userId: string): string => {
    const hit = cache.get(userId);
    if (hit && hit.renewAt > Date.now()) return hit.token;
    const token = mintToken(config.jwt, { sub: userId, name: names.get(userId) }, TOKEN_TTL_S, env);
    cache.set(userId, { token, renewAt: Date.now() + (TOKEN_TTL_S / 2) * 1000 });
    return token;
  };
}

async function reachable(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/api/v1/scores/top`, { signal: AbortSignal.timeout(3000) });
    await res.arrayBuffer();
    return res.ok ? undefined : `GET /api/v1/scores/top answered ${res.status}`;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return cause ?? (err as Error).message;
  }
}

/** The boards a run plays: global, then sim-2 ... sim-N. */
export const simBoards = (n: number) => [
  'global',
  ...Array.from({ length: n - 1 }, (_, i) => `sim-${i + 2}`),
];

/** Creates the boards that do not exist yet (as an admin); a problem to print, or undefined. */
async function ensureBoards(url: string, ids: string[], adminToken: string): Promise<string | undefined> {
  for (const id of ids) {
    const res = await fetch(`${url}/api/v1/boards`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        id,
        title: `Simulated ${id.slice(4)}`,
        windows: ['all', 'day', 'week', 'month', { name: 'minute', reset: '* * * * *' }],
      }),
    });
    await res.arrayBuffer();
    if (res.status === 201 || res.status === 409) continue; // 409: it exists already
    return res.status === 403
      ? 'Creating boards needs an admin: pass --admin with one (npm run user -- promote <id>).'
      : `Could not create board ${id}: POST /api/v1/boards answered ${res.status}.`;
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      users: { type: 'string', default: '20' },
      rate: { type: 'string', default: '10' },
      duration: { type: 'string', default: '60' },
      window: { type: 'string', default: '1000' },
      boards: { type: 'string', default: '1' },
      admin: { type: 'string', default: 'admin' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const userCount = numberOption('users', values.users, { min: 1, max: 10_000, integer: true });
  const rate = numberOption('rate', values.rate, { min: 0.1, max: 10_000 });
  const durationS = numberOption('duration', values.duration, { min: 0, max: 7 * 86_400 });
  const windowMs = numberOption('window', values.window, { min: 0, max: 60_000, integer: true });
  const boardCount = numberOption('boards', values.boards, { min: 1, max: 50, integer: true });

  const env = { ...process.env };
  if (!env.JWT_SECRET && !env.JWT_PUBLIC_KEY) {
    env.JWT_SECRET = DEV_JWT_SECRET;
    console.error('note: no JWT key set; signing with the development secret that `npm run dev` uses.');
  }
  const config = loadConfig(env);
  const url = (values.url ?? `http://127.0.0.1:${config.port}`).replace(/\/$/, '');
  const users = simUsers(userCount);
  const token = tokenSource(config, env, new Map(users.map((u) => [u.id, u.name])));
  token(users[0].id); // fails now, with the signing problem, rather than on the first request

  const problem = await reachable(url);
  if (problem) {
    console.error(
      `Cannot use the service at ${url} (${problem}). Start it with \`npm run dev\`, or pass --url.`,
    );
    return 1;
  }

  const boards = simBoards(boardCount);
  const missing = await ensureBoards(url, boards.slice(1), token(values.admin));
  if (missing) {
    console.error(missing);
    return 1;
  }

  console.log(
    `simulating ${userCount} players on ${boards.join(', ')} at ${rate} actions/s, debounced per ${windowMs} ms, ` +
      `${durationS ? `for ${durationS} s` : 'until Ctrl+C'}: watch ${url}/`,
  );
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  const summary = await runSimulation({
    baseUrl: url,
    users,
    token,
    rate,
    durationS,
    windowMs,
    maxDelta: config.maxScoreIncrement,
    boards,
    signal: stop.signal,
    log: (line) => console.log(line),
  });
  console.log(formatSummary(summary, url));
  const recorded = summary.outcomes.applied + summary.outcomes.replayed;
  return summary.stoppedBecause || (summary.requests > 0 && recorded === 0) ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        console.error(`${(err as Error).message}\n\n${USAGE}`);
        process.exit(2);
      }
      if (err instanceof ConfigError || err instanceof TokenCliError) {
        console.error(err.message);
        process.exit(1);
      }
      console.error(err);
      process.exit(1);
    },
  );
}

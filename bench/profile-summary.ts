import fs from 'node:fs';
import path from 'node:path';

/**
 * `npx tsx bench/profile-summary.ts <file.cpuprofile> [top]`: where a V8 CPU profile (`node --cpu-prof`,
 * written by `npm run bench -- --profile`) spends its time, by self time per function and per package.
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

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
// Counted in hits (samples with the function on top), not in time deltas: on a busy machine the profiler
// thread is sometimes descheduled, and the one sample taken after such a gap would carry the whole gap.
const selfUs = new Map<number, number>(profile.nodes.map((n) => [n.id, n.hitCount]));
const total = profile.nodes.reduce((a, n) => a + n.hitCount, 0);
const interval = (profile.timeDeltas.reduce((a, b) => a + b, 0) / Math.max(1, total)) | 0;

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

console.log(`${path.basename(file)}: ${total} samples, ~${interval} µs apart`);
print('self time by package', pkgTotals);
print('self time by function', fnTotals);
print('inclusive time of src/ functions', inclusive);

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { addPoints } from './api';
import { uniqueUser } from './env';
import { startInstance } from './instance';

const run = promisify(execFile);

/** Series every Prometheus target has without the service exporting them. */
export const SYNTHETIC_SERIES = ['up'];

const NOT_METRICS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression reads. Not a full parser, enough for rules and dashboards: strings,
 * label matchers, ranges, label lists and Grafana variables are removed, then every remaining identifier
 * that is not a function call or a keyword is a metric name (recording rules included).
 */
export function metricNames(expr: string): string[] {
  let s = expr.trim();
  const labelValues = /^label_values\((.*),\s*\w+\s*\)$/s.exec(s); // a Grafana variable query
  if (labelValues) s = labelValues[1];
  s = s
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{?\w+\}?/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\boffset\s+-?\w+/g, '');
  const names = new Set<string>();
  // A whole identifier (not the tail of a number or of another name), not followed by "(" (a function).
  for (const [, name] of s.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!NOT_METRICS.has(name.toLowerCase())) names.add(name);
  }
  return [...names].sort();
}

/** Every series name a Prometheus text exposition offers: samples, plus the suffixes each TYPE implies. */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      const [, name, kind] = type;
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      else if (kind === 'summary') for (const s of ['', '_sum', '_count']) names.add(name + s);
      else names.add(name);
    } else if (line && !line.startsWith('#')) {
      names.add(/^[\w:]+/.exec(line)![0]);
    }
  }
  return names;
}

/**
 * What a running instance exports at /metrics after a write and a poll (so the histograms have series),
 * plus the series Prometheus adds to every target.
 */
export async function liveMetricNames(): Promise<Set<string>> {
  const app = await startInstance();
  try {
    await addPoints(app, uniqueUser('metrics'), 1);
    await app.request.get('/api/v1/scores/top').expect(200);
    const res = await app.request.get('/metrics').expect(200);
    const names = exposedNames(res.text);
    for (const name of SYNTHETIC_SERIES) names.add(name);
    return names;
  } finally {
    await app.close();
  }
}

export const PROMTOOL = process.env.PROMTOOL ?? 'promtool';

/** Runs Debian's promtool; resolves with its output, rejects with it on a non-zero exit. */
export async function promtool(args: string[], cwd: string): Promise<string> {
  try {
    const { stdout, stderr } = await run(PROMTOOL, args, { cwd, timeout: 60_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { code?: string; stdout?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT')
      throw new Error(`${PROMTOOL} not found: apt-get install -y prometheus`, { cause: err });
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`, {
      cause: err,
    });
  }
}

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}

/** The rules in deploy/prometheus/scoreboard.rules.yml, every group's. */
export function loadRules(): Rule[] {
  const file = path.resolve(__dirname, '../../deploy/prometheus/scoreboard.rules.yml');
  return (parse(fs.readFileSync(file, 'utf8')).groups as Array<{ rules: Rule[] }>).flatMap((g) => g.rules);
}

/** The series the recording rules produce. */
export const recordedNames = (rules: Rule[]) => new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));

/** Names the expressions read that are not in `known` (exported, synthetic or recorded). */
export function unknownNames(exprs: string[], known: Set<string>): string[] {
  return [...new Set(exprs.flatMap(metricNames))].filter((n) => !known.has(n)).sort();
}

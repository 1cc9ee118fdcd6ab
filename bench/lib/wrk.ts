import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Measured } from './load';

/**
 * `wrk` (the Debian package, a C load generator driven by LuaJIT) as a second HTTP load generator beside
 * autocannon: it runs outside the harness's node process and costs far less CPU per request, which matters on
 * a 2-core machine where the generator competes with the service and MariaDB. `WRK_BIN` names the binary.
 */
export function wrkBinary(): string | undefined {
  // WRK_BIN, when set, is the only candidate (WRK_BIN=none runs without wrk).
  const candidates =
    process.env.WRK_BIN !== undefined ? [process.env.WRK_BIN] : ['/usr/bin/wrk', '/usr/local/bin/wrk'];
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  if (process.env.WRK_BIN !== undefined) return undefined;
  try {
    const found = execFileSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).trim();
    return found || undefined;
  } catch {
    return undefined;
  }
}

let installTried = false;

/**
 * wrk's path, installing Debian's package first when it is missing (as root, where apt-get works). Undefined,
 * with the reason logged once, when it is neither installed nor installable: the scenarios then run their
 * autocannon variants only. WRK_BIN=none opts out.
 */
export function ensureWrk(log: (msg: string) => void): string | undefined {
  const found = wrkBinary();
  if (found || process.env.WRK_BIN !== undefined) return found;
  if (installTried) return undefined;
  installTried = true;
  log('wrk is not installed: trying apt-get install -y wrk');
  try {
    execFileSync(
      'sh',
      ['-c', 'apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)'],
      {
        stdio: 'ignore',
        timeout: 300_000,
      },
    );
  } catch {
    // reported below
  }
  const installed = wrkBinary();
  if (!installed)
    log(
      'wrk could not be installed (needs root and a Debian package mirror; or set WRK_BIN): autocannon only',
    );
  return installed;
}

/** A Lua string literal (long strings would need no escaping, but a token could end with `]`). */
export const luaString = (s: string) =>
  `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

/** Writes `values` as a Lua file defining the global table `name` (for a wrk script to `dofile`). */
export function writeLuaTable(file: string, name: string, values: string[]): void {
  fs.writeFileSync(file, `${name} = {\n${values.map((v) => `  ${luaString(v)},`).join('\n')}\n}\n`);
}

export interface WrkOptions {
  /** The URL wrk connects to; a script's `request()` may send other paths on the same host. */
  url: string;
  connections: number;
  /** wrk threads (each an event loop); default 2, never more than the connections. */
  threads?: number;
  durationS: number;
  /** Seconds of unmeasured load first (a separate wrk run). */
  warmupS?: number;
  /** Statuses that count as success; any other answer is an error (counted in the script's `response`). */
  expect: number[];
  /**
   * Lua that defines `request()` (and optionally `init(args)`), run in every wrk thread. It may use the globals
   * `run` (a string unique to each wrk invocation, warm-up included) and `tid` (1, 2, ... per thread, set before
   * `init`), and must not define `setup`, `response` or `done`: the runner does.
   */
  script: string;
  /** Passed to the script's `init(args)`. */
  args?: string[];
  timeoutS?: number;
}

let wrkRuns = 0;

/**
 * Runs wrk with `--latency` and the given script, and reports it like autocannon's runs: throughput of expected
 * answers, p50/p99 from wrk's latency distribution, errors = unexpected statuses + socket errors.
 */
export async function wrkLoad(opts: WrkOptions): Promise<Measured> {
  const bin = wrkBinary();
  if (!bin) throw new Error('wrk is not installed (apt-get install wrk, or WRK_BIN=/path/to/wrk)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scoreboard-wrk-'));
  const scriptFor = (phase: string) => {
    const file = path.join(dir, `${phase}.lua`);
    const run = `${process.pid.toString(36)}${(wrkRuns++).toString(36)}${phase[0]}`;
    fs.writeFileSync(file, `run = ${luaString(run)}\n${opts.script}\n${harness(opts.expect)}`);
    return file;
  };
  try {
    if (opts.warmupS) await runWrk(bin, scriptFor('warmup'), { ...opts, durationS: opts.warmupS });
    return parseWrk(await runWrk(bin, scriptFor('measured'), opts), opts.durationS);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Counts unexpected statuses per thread and prints their sum once the run is over. */
function harness(expect: number[]): string {
  return `
local __threads = {}
local __expected = { ${expect.map((s) => `[${s}] = true`).join(', ')} }
__unexpected = {}

function setup(thread)
  table.insert(__threads, thread)
  thread:set("tid", #__threads)
end

function response(status, headers, body)
  if not __expected[status] then
    __unexpected[status] = (__unexpected[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(__threads) do
    for status, n in pairs(t:get("__unexpected")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local line = "WRK_UNEXPECTED"
  for status, n in pairs(counts) do
    line = line .. " " .. status .. "=" .. n
  end
  io.write(line .. "\\n")
end
`;
}

function runWrk(bin: string, script: string, opts: WrkOptions): Promise<string> {
  const threads = Math.max(1, Math.min(opts.threads ?? 2, opts.connections));
  const argv = [
    `-t${threads}`,
    `-c${opts.connections}`,
    `-d${Math.max(1, Math.round(opts.durationS))}s`,
    `--timeout`,
    `${opts.timeoutS ?? 10}s`,
    '--latency',
    '-s',
    script,
    opts.url,
    ...(opts.args?.length ? ['--', ...opts.args] : []),
  ];
  return new Promise((resolve, reject) => {
    // Through a shell for `ulimit -n`, like the harness's other children: 128+ sockets fit anyway, more may not.
    const child = spawn('sh', ['-c', 'ulimit -n 65536 2>/dev/null; exec "$@"', 'sh', bin, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${err || out}`)),
    );
  });
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const ms = (value: string, unit: string) => Number(value) * UNIT_MS[unit];

/** Parses wrk's text report (with `--latency`) and the harness's `WRK_UNEXPECTED` line. */
export function parseWrk(out: string, fallbackDurationS: number): Measured {
  const time = '([\\d.]+)(us|ms|s|m|h)';
  const pct = (p: number) => {
    const m = new RegExp(`^\\s*${p}(?:\\.0+)?%\\s+${time}`, 'm').exec(out);
    return m ? ms(m[1], m[2]) : NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(out);
  if (!total) throw new Error(`cannot parse wrk's output:\n${out}`);
  const requests = Number(total[1]);
  const durationS = ms(total[2], total[3]) / 1000 || fallbackDurationS;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1, 5).reduce((n, v) => n + Number(v), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  // The script's count covers 2xx/3xx answers other than the expected ones too; wrk's own non-2xx count is the
  // fallback if the script's report is missing.
  const unexpectedLine = /^WRK_UNEXPECTED(.*)$/m.exec(out);
  const statusCodes: Record<string, number> = {};
  for (const [, status, n] of (unexpectedLine?.[1] ?? '').matchAll(/(\d+)=(\d+)/g))
    statusCodes[status] = Number(n);
  const unexpected = unexpectedLine ? Object.values(statusCodes).reduce((a, b) => a + b, 0) : non2xx;
  const ok = requests - unexpected;
  return {
    throughput: ok / durationS,
    p50Ms: pct(50),
    p99Ms: pct(99),
    errors: unexpected + socketErrors,
    operations: ok,
    durationS,
    ...(Object.keys(statusCodes).length ? { statusCodes } : {}),
  };
}

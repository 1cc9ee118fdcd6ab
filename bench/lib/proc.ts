import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

/** How many descriptors a child asks for: 10,000 SSE sockets plus pools, logs and slack. */
const NOFILE = 65_536;

export interface NodeChild {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  /** Everything it wrote to stderr (the last 64 KB), for error messages. */
  stderr: () => string;
  stop: (signal?: NodeJS.Signals, timeoutMs?: number) => Promise<void>;
}

/**
 * Runs a TypeScript file under node + tsx in its own process. A shell raises the descriptor limit first
 * (`ulimit -n`: root may raise the hard limit too, anyone else up to it), because 10,000 sockets do not fit
 * in the usual 1,024. `exec` keeps the node process's pid the one we measure.
 */
export function spawnNode(
  file: string,
  opts: { args?: string[]; env?: Record<string, string>; nodeArgs?: string[]; ipc?: boolean } = {},
): NodeChild {
  const script = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const argv = [...(opts.nodeArgs ?? []), '--import', 'tsx', file, ...(opts.args ?? [])];
  const child = spawn('bash', ['-c', script, 'bash', process.execPath, ...argv], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'ignore', 'pipe', ...(opts.ipc ? (['ipc'] as const) : [])],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr = (stderr + c).slice(-65_536)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    exited,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A TCP port that was free a moment ago (the child binds it right after). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Polls `check` until it is true; fails with `what` (and the child's stderr) after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  child?: NodeChild,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.child.exitCode !== null)
      throw new Error(`${what}: the process exited (${child.child.exitCode})\n${child.stderr()}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms\n${child?.stderr() ?? ''}`);
    await sleep(100);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resident memory of a process and all its descendants (cluster workers, if WORKERS > 1), in bytes, from
 * /proc (Linux only; 0 elsewhere).
 */
export function treeRss(pid: number): number {
  return treeSum(pid, rssOf);
}

/**
 * CPU time (user + system) of a process and its descendants, in seconds, from /proc (0 elsewhere). Read
 * before and after a run, it tells a service that waits from one that is busy.
 */
export function treeCpuS(pid: number): number {
  return treeSum(pid, cpuOf);
}

function treeSum(pid: number, of: (pid: number) => number): number {
  let procs: string[];
  try {
    procs = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return 0;
  }
  const children = new Map<number, number[]>();
  for (const p of procs) {
    try {
      // The command name (field 2) may contain spaces; fields after its closing parenthesis are safe to split.
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
    } catch {
      // the process ended while we looked
    }
  }
  let total = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    total += of(p);
    todo.push(...(children.get(p) ?? []));
  }
  return total;
}

/** utime + stime (fields 14 and 15 of /proc/<pid>/stat), at the usual 100 ticks per second. */
function cpuOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

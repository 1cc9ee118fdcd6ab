import { randomBytes } from 'node:crypto';
import { createCoalescer } from './coalescer';
import { postDelta, type Outcome } from './score-client';
import { actionPoints, burstLength, MEAN_BURST, poissonGapMs, weightedPicker, type SimUser } from './traffic';

export interface SimulationOptions {
  baseUrl: string;
  users: SimUser[];
  token: (userId: string) => string;
  /** Actions per second across all users. */
  rate: number;
  /** Seconds; 0 runs until `signal` aborts. */
  durationS: number;
  /** Debounce window per user, in ms. */
  windowMs: number;
  /** The server's MAX_SCORE_INCREMENT: larger sums are split. */
  maxDelta: number;
  /** Boards to play, one picked per burst (default: the service's default board only). */
  boards?: string[];
  signal?: AbortSignal;
  log?: (line: string) => void;
  progressEveryMs?: number;
}

export interface Summary {
  seconds: number;
  users: number;
  actions: number;
  points: number;
  requests: number;
  outcomes: Record<Outcome, number>;
  pointsApplied: number;
  retries: { network: number; '5xx': number; '429': number };
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  problems: string[];
  stoppedBecause?: string;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

/**
 * Drives realistic traffic through the real API: bursts of actions from users picked by activity, each
 * user's rapid actions coalesced into one POST with an actionId, retried with the same actionId on network
 * errors, 5xx and 429. Stops after `durationS` (or on abort), sends what is pending, and sums up.
 */
export async function runSimulation(opts: SimulationOptions): Promise<Summary> {
  const runId = randomBytes(4).toString('hex');
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const started = performance.now();
  const stats = {
    actions: 0,
    points: 0,
    requests: 0,
    pointsApplied: 0,
    outcomes: { applied: 0, replayed: 0, rejected: 0, failed: 0 } as Record<Outcome, number>,
    retries: { network: 0, '5xx': 0, '429': 0 },
    latencies: [] as number[],
    problems: new Set<string>(),
    stoppedBecause: undefined as string | undefined,
  };
  let sequence = 0;

  const coalescer = createCoalescer({
    windowMs: opts.windowMs,
    maxDelta: opts.maxDelta,
    async send(key, delta) {
      const [userId, boardId] = key.split('\u0000');
      stats.requests++;
      const result = await postDelta({
        baseUrl: opts.baseUrl,
        token: opts.token(userId),
        delta,
        boardId: boardId || undefined,
        actionId: `sim-${runId}-${++sequence}`,
        onRetry: (reason) => stats.retries[reason]++,
      });
      stats.outcomes[result.outcome]++;
      if (result.outcome === 'applied' || result.outcome === 'replayed') {
        stats.pointsApplied += delta;
        stats.latencies.push(result.ms);
      } else if (result.detail && stats.problems.size < 5) {
        stats.problems.add(`${userId}: ${result.detail}`);
      }
      if (result.status === 401 && !stop.signal.aborted) {
        stats.stoppedBecause =
          'the service refused the token (401): run the simulator with the JWT settings the service uses';
        stop.abort();
      }
    },
  });

  const pick = weightedPicker(opts.users);
  const bursts = new Set<Promise<void>>();
  const boards = opts.boards?.length ? opts.boards : [''];
  /** One burst is one session of play: one user on one board. */
  async function burst(user: SimUser): Promise<void> {
    const board = boards[Math.floor(Math.random() * boards.length)];
    for (let n = burstLength(); n > 0 && !stop.signal.aborted; n--) {
      const points = actionPoints();
      stats.actions++;
      stats.points += points;
      coalescer.add(`${user.id}\u0000${board}`, points);
      if (n > 1) await sleep(60 + Math.random() * 240, stop.signal);
    }
  }

  const deadline = opts.durationS > 0 ? setTimeout(() => stop.abort(), opts.durationS * 1000) : undefined;
  const progress = setInterval(() => {
    const s = ((performance.now() - started) / 1000).toFixed(0);
    opts.log?.(
      `  ${s} s: ${stats.actions} actions, ${stats.requests} requests, ${stats.outcomes.applied} applied, ` +
        `${stats.outcomes.rejected + stats.outcomes.failed} not`,
    );
  }, opts.progressEveryMs ?? 10_000);

  while (!stop.signal.aborted) {
    const running = burst(pick());
    bursts.add(running);
    void running.then(() => bursts.delete(running));
    await sleep(poissonGapMs(opts.rate / MEAN_BURST), stop.signal);
  }
  clearTimeout(deadline);
  clearInterval(progress);
  opts.signal?.removeEventListener('abort', onAbort);
  await Promise.all(bursts);
  await coalescer.drain();

  const sorted = stats.latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0;
  return {
    seconds: (performance.now() - started) / 1000,
    users: opts.users.length,
    actions: stats.actions,
    points: stats.points,
    requests: stats.requests,
    outcomes: stats.outcomes,
    pointsApplied: stats.pointsApplied,
    retries: stats.retries,
    latencyMs: { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), max: sorted.at(-1) ?? 0 },
    problems: [...stats.problems],
    stoppedBecause: stats.stoppedBecause,
  };
}

export function formatSummary(s: Summary, baseUrl: string): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const lines = [
    `simulated ${s.seconds.toFixed(1)} s against ${baseUrl} with ${s.users} users`,
    `  actions   ${n(s.actions)} (${(s.actions / Math.max(s.seconds, 0.001)).toFixed(1)}/s), ${n(s.points)} points`,
    `  requests  ${n(s.requests)} POSTs (${(s.actions / Math.max(s.requests, 1)).toFixed(1)} actions each after debouncing)`,
    `  outcomes  ${n(s.outcomes.applied)} applied, ${n(s.outcomes.replayed)} replayed, ` +
      `${n(s.outcomes.rejected)} rejected, ${n(s.outcomes.failed)} failed; ${n(s.pointsApplied)} points recorded`,
    `  retries   ${s.retries.network} network, ${s.retries['5xx']} 5xx, ${s.retries['429']} rate-limited`,
    `  latency   p50 ${ms(s.latencyMs.p50)}, p95 ${ms(s.latencyMs.p95)}, p99 ${ms(s.latencyMs.p99)}, max ${ms(s.latencyMs.max)}`,
  ];
  for (const p of s.problems) lines.push(`  problem   ${p}`);
  if (s.stoppedBecause) lines.push(`  stopped   ${s.stoppedBecause}`);
  return lines.join('\n');
}

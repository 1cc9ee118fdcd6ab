import autocannon from 'autocannon';

/** One measured run: what every scenario reports, whatever produced it. */
export interface Measured {
  /** Completed operations per second over the measured window. */
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  /** Connection errors, timeouts and answers with an unexpected status. */
  errors: number;
  operations: number;
  durationS: number;
  statusCodes?: Record<string, number>;
}

export interface LoadOptions {
  url: string;
  connections: number;
  durationS: number;
  /** Statuses that count as success (anything else is an error). */
  expect: number[];
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** Builds each request's varying part (a token, a fresh actionId). */
  vary?: () => { headers?: Record<string, string>; body?: string };
  /** Seconds of unmeasured load first (JIT, pools, caches). */
  warmupS?: number;
}

/**
 * HTTP load with autocannon: keep-alive connections, each with one request in flight (no pipelining, as
 * browsers and back ends send), latency from its HdrHistogram.
 */
export async function httpLoad(opts: LoadOptions): Promise<Measured> {
  if (opts.warmupS) await fire({ ...opts, durationS: opts.warmupS });
  return fire(opts);
}

async function fire(opts: LoadOptions): Promise<Measured> {
  const request: autocannon.Request = {
    method: opts.method ?? 'GET',
    headers: opts.headers,
  };
  if (opts.vary) {
    const vary = opts.vary;
    request.setupRequest = (req) => {
      const v = vary();
      return { ...req, headers: { ...opts.headers, ...v.headers }, body: v.body };
    };
  }
  const result = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.durationS,
    requests: [request],
    timeout: 10,
  });
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) {
    statusCodes[code] = Number((stat as { count: number | string }).count);
  }
  const ok = opts.expect.reduce((n, code) => n + (statusCodes[code] ?? 0), 0);
  const answered = Object.values(statusCodes).reduce((a, b) => a + b, 0);
  return {
    throughput: ok / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + (answered - ok),
    operations: ok,
    durationS: result.duration,
    statusCodes,
  };
}

/** Nearest-rank percentile of an unsorted sample (sorts a copy). */
export function percentiles(values: ArrayLike<number>, ps: number[]): number[] {
  const sorted = Float64Array.from(values).sort();
  return ps.map((p) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN,
  );
}

/**
 * Runs each measurement `rounds` times, interleaved (a, b, c, a, b, c, ...), so that drift on a shared
 * machine (other jobs starting or stopping) hits every variant alike; returns each one's median round.
 */
export async function interleaved<K extends string, M extends Measured = Measured>(
  rounds: number,
  runs: Record<K, () => Promise<M>>,
  log: (msg: string) => void,
): Promise<Record<K, M & { rounds: number[] }>> {
  const got = {} as Record<K, M[]>;
  for (let r = 1; r <= rounds; r++) {
    for (const k of Object.keys(runs) as K[]) {
      log(`  round ${r}/${rounds}: ${k}`);
      (got[k] ??= []).push(await runs[k]());
    }
  }
  const out = {} as Record<K, M & { rounds: number[] }>;
  for (const k of Object.keys(got) as K[])
    out[k] = { ...median(got[k]), rounds: got[k].map((m) => Math.round(m.throughput)) };
  return out;
}

/**
 * The median round by throughput (with whatever else that round measured), with the errors and operations of
 * all rounds.
 */
export function median<M extends Measured>(ms: M[]): M {
  const sorted = [...ms].sort((a, b) => a.throughput - b.throughput);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)];
  return {
    ...mid,
    errors: ms.reduce((n, m) => n + m.errors, 0),
    operations: ms.reduce((n, m) => n + m.operations, 0),
  };
}

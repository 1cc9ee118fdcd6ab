/** Posts score deltas the way a careful client does: one actionId per delta, kept across retries. */

export type Outcome = 'applied' | 'replayed' | 'rejected' | 'failed';

export interface PostResult {
  outcome: Outcome;
  status?: number;
  attempts: number;
  /** Latency of the attempt that settled it. */
  ms: number;
  detail?: string;
}

export interface PostOptions {
  baseUrl: string;
  token: string;
  delta: number;
  actionId: string;
  /** The board (the service's default, `global`, when left out). */
  boardId?: string;
  maxAttempts?: number;
  timeoutMs?: number;
  /** Called before each retry, with why (for the summary). */
  onRetry?: (reason: 'network' | '5xx' | '429') => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * POST /api/v1/scores/update. Network errors, timeouts, 5xx and 429 are retried with the same actionId (the
 * server applies it at most once, so a retry after a lost answer is safe), waiting Retry-After when given,
 * else an exponential backoff with jitter. Other 4xx answers are final.
 */
export async function postDelta(opts: PostOptions): Promise<PostResult> {
  const maxAttempts = opts.maxAttempts ?? 6;
  const url = `${opts.baseUrl.replace(/\/$/, '')}/api/v1/scores/update`;
  const body = JSON.stringify({
    scoreIncrement: opts.delta,
    actionId: opts.actionId,
    ...(opts.boardId ? { boardId: opts.boardId } : {}),
  });
  let detail: string | undefined;
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    let wait: number | undefined;
    let reason: 'network' | '5xx' | '429';
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { Authorization: `Bearer ${opts.token}`, 'Content-Type': 'application/json' },
        body,
        signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
      });
      const text = await res.text();
      const ms = performance.now() - started;
      if (res.status === 201 || res.status === 200) {
        return {
          outcome: res.status === 201 ? 'applied' : 'replayed',
          status: res.status,
          attempts: attempt,
          ms,
        };
      }
      detail = `${res.status} ${problemDetail(text)}`;
      if (res.status !== 429 && res.status < 500) {
        return { outcome: 'rejected', status: res.status, attempts: attempt, ms, detail };
      }
      reason = res.status === 429 ? '429' : '5xx';
      const retryAfter = Number(res.headers.get('retry-after'));
      if (retryAfter > 0) wait = retryAfter * 1000;
    } catch (err) {
      reason = 'network';
      detail = (err as Error).message;
    }
    if (attempt >= maxAttempts) {
      return { outcome: 'failed', attempts: attempt, ms: performance.now() - started, detail };
    }
    opts.onRetry?.(reason);
    await sleep(wait ?? Math.min(8000, 200 * 2 ** (attempt - 1)) * (0.5 + Math.random()));
  }
}

function problemDetail(text: string): string {
  try {
    const problem = JSON.parse(text) as { detail?: string; title?: string };
    return problem.detail ?? problem.title ?? '';
  } catch {
    return text.slice(0, 200);
  }
}

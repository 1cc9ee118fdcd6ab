import { tokenFor } from './env';

/** One write as the client saw it. */
export interface WriteOutcome {
  userId: string;
  delta: number;
  actionId?: string;
  status: number; // 0: no HTTP answer (connection failed)
  ms: number;
  retryAfter: string | null;
  body: Record<string, unknown> | undefined;
  error?: string;
}

/** POSTs one delta as the user (the user's own token) and records what came back, never throwing. */
export async function postDelta(
  baseUrl: string,
  userId: string,
  delta: number,
  actionId?: string,
  timeoutMs = 10_000,
): Promise<WriteOutcome> {
  const started = Date.now();
  const out: WriteOutcome = { userId, delta, actionId, status: 0, ms: 0, retryAfter: null, body: undefined };
  try {
    const res = await fetch(`${baseUrl}/api/v1/scores/update`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${tokenFor(userId)}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(
        actionId === undefined ? { scoreIncrement: delta } : { scoreIncrement: delta, actionId },
      ),
      signal: AbortSignal.timeout(timeoutMs),
    });
    out.status = res.status;
    out.retryAfter = res.headers.get('retry-after');
    const text = await res.text();
    try {
      out.body = JSON.parse(text);
    } catch {
      out.body = { unparsable: text };
    }
  } catch (err) {
    out.error = (err as Error).message;
  }
  out.ms = Date.now() - started;
  return out;
}

/**
 * Writers that loop until stopped, each posting +1..+5 for a random user of `users`, every delta with a fresh
 * actionId (so a retry after the run can prove it was applied at most once).
 */
export function startWriteLoad(
  baseUrl: string,
  users: string[],
  opts: { workers?: number; label?: string } = {},
) {
  const outcomes: WriteOutcome[] = [];
  let running = true;
  let n = 0;
  const label = opts.label ?? 'load';
  const worker = async () => {
    while (running) {
      const userId = users[Math.floor(Math.random() * users.length)];
      outcomes.push(await postDelta(baseUrl, userId, 1 + Math.floor(Math.random() * 5), `${label}-${++n}`));
    }
  };
  const workers = Array.from({ length: opts.workers ?? 6 }, worker);
  return {
    outcomes,
    async stop(): Promise<WriteOutcome[]> {
      running = false;
      await Promise.all(workers);
      return outcomes;
    },
  };
}

export interface PollOutcome {
  status: number;
  etag: string | null;
  ms: number;
  error?: string;
}

/** A client polling /scores/top with If-None-Match, as the live page does (but without pausing). */
export function startPollLoad(baseUrl: string, opts: { workers?: number } = {}) {
  const outcomes: PollOutcome[] = [];
  let running = true;
  const worker = async () => {
    let etag: string | null = null;
    while (running) {
      const started = Date.now();
      try {
        const res: Response = await fetch(`${baseUrl}/api/v1/scores/top`, {
          headers: etag ? { 'If-None-Match': etag } : {},
          signal: AbortSignal.timeout(5000),
        });
        await res.arrayBuffer();
        etag = res.headers.get('etag') ?? etag;
        outcomes.push({ status: res.status, etag: res.headers.get('etag'), ms: Date.now() - started });
      } catch (err) {
        outcomes.push({ status: 0, etag: null, ms: Date.now() - started, error: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const workers = Array.from({ length: opts.workers ?? 2 }, worker);
  return {
    outcomes,
    async stop(): Promise<PollOutcome[]> {
      running = false;
      await Promise.all(workers);
      return outcomes;
    },
  };
}

/**
 * Client-side debouncing the way a site should do it: a user's rapid actions within `windowMs` of the first
 * one become one request carrying their sum. A user has at most one request in flight, so their deltas
 * arrive in order; actions made meanwhile wait for the next window. A sum above `maxDelta` (the server's
 * MAX_SCORE_INCREMENT) is sent as several requests. The key is whatever one request is for: a user, or a
 * user on one board.
 */
export function createCoalescer(opts: {
  windowMs: number;
  maxDelta: number;
  send: (userId: string, delta: number) => Promise<void>;
}) {
  interface Pending {
    delta: number;
    timer?: NodeJS.Timeout;
    /** Resolves when everything handed to `send` for this user so far has settled. */
    inFlight: Promise<void>;
  }
  const users = new Map<string, Pending>();

  function flush(userId: string): void {
    const p = users.get(userId);
    if (!p || p.delta === 0) return;
    clearTimeout(p.timer);
    p.timer = undefined;
    let delta = p.delta;
    p.delta = 0;
    const chunks: number[] = [];
    while (delta > 0) {
      chunks.push(Math.min(delta, opts.maxDelta));
      delta -= opts.maxDelta;
    }
    p.inFlight = p.inFlight.then(async () => {
      for (const chunk of chunks) await opts.send(userId, chunk).catch(() => undefined); // send counts failures
    });
  }

  return {
    /** Records one action of `delta` points (a positive whole number). */
    add(userId: string, delta: number): void {
      let p = users.get(userId);
      if (!p) users.set(userId, (p = { delta: 0, inFlight: Promise.resolve() }));
      p.delta += delta;
      p.timer ??= setTimeout(() => flush(userId), opts.windowMs);
    },
    /** Sends whatever is pending now and waits for every request to settle (for a clean stop). */
    async drain(): Promise<void> {
      for (const userId of users.keys()) flush(userId);
      await Promise.all([...users.values()].map((p) => p.inFlight));
    },
  };
}

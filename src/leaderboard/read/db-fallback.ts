/**
 * Bounds what public reads may ask of MySQL when the Redis mirror cannot answer: at most `concurrency`
 * fallback reads run at once on this instance (past that the caller is told `busy`, which the route turns
 * into 503 + Retry-After), concurrent reads of the same key share one query, and each answer (a miss too)
 * is reused for `cacheMs`. So however many unauthenticated requests arrive, MySQL sees at most `concurrency`
 * of them at a time, and a hot key at most once per `cacheMs`.
 */
export function createDbFallback<T>(opts: { concurrency: number; cacheMs: number; maxEntries?: number }) {
  const maxEntries = opts.maxEntries ?? 10_000;
  const cache = new Map<string, { at: number; value: T }>(); // insertion order = age, oldest first
  const inFlight = new Map<string, Promise<T>>();
  let running = 0;

  function remember(key: string, value: T): void {
    if (opts.cacheMs <= 0) return;
    cache.delete(key);
    cache.set(key, { at: Date.now(), value });
    while (cache.size > maxEntries) cache.delete(cache.keys().next().value as string);
  }

  return {
    async run(
      key: string,
      query: () => Promise<T>,
    ): Promise<{ kind: 'answer'; value: T; source: 'cache' | 'mysql' } | { kind: 'busy' }> {
      const hit = cache.get(key);
      if (hit && Date.now() - hit.at < opts.cacheMs)
        return { kind: 'answer', value: hit.value, source: 'cache' };
      if (hit) cache.delete(key);
      const shared = inFlight.get(key);
      if (shared) return { kind: 'answer', value: await shared, source: 'cache' };
      if (running >= opts.concurrency) return { kind: 'busy' };
      running++;
      const pending = query().finally(() => {
        running--;
        inFlight.delete(key);
      });
      inFlight.set(key, pending);
      const value = await pending;
      remember(key, value);
      return { kind: 'answer', value, source: 'mysql' };
    },
    /** Fallback reads running right now. */
    running: () => running,
  };
}

export type DbFallback<T> = ReturnType<typeof createDbFallback<T>>;

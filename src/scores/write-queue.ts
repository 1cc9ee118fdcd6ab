/**
 * Group commit: requests that arrive while transactions are running are coalesced into the next batch.
 * At low load a request runs at once (a batch of one); under load each transaction carries up to `maxBatch`
 * requests, so commits (the expensive, fsync-bound part) are shared. `maxBatch: 1` switches batching off.
 */
export interface WriteQueueOptions<Req, Out> {
  maxBatch: number;
  /** Extra time to wait for a fuller batch when one could start; 0 relies on natural batching only. */
  maxWaitMs: number;
  /** Transactions in flight at once. */
  concurrency: number;
  run: (batch: Req[]) => Promise<Out[]>;
}

interface Pending<Req, Out> {
  req: Req;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

export function createWriteQueue<Req, Out>(opts: WriteQueueOptions<Req, Out>) {
  const queue: Array<Pending<Req, Out>> = [];
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let idleWaiters: Array<() => void> = [];

  function pump(): void {
    while (inFlight < opts.concurrency && queue.length > 0) {
      if (opts.maxWaitMs > 0 && queue.length < opts.maxBatch && inFlight > 0) {
        timer ??= setTimeout(() => {
          timer = undefined;
          flush();
        }, opts.maxWaitMs);
        return;
      }
      flush();
    }
  }

  function flush(): void {
    const batch = queue.splice(0, opts.maxBatch);
    if (batch.length === 0) return;
    inFlight++;
    opts
      .run(batch.map((p) => p.req))
      .then(
        (outs) => batch.forEach((p, i) => p.resolve(outs[i])),
        (err) => batch.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        inFlight--;
        if (inFlight === 0 && queue.length === 0) {
          idleWaiters.forEach((w) => w());
          idleWaiters = [];
        }
        pump();
      });
  }

  return {
    submit(req: Req): Promise<Out> {
      return new Promise<Out>((resolve, reject) => {
        queue.push({ req, resolve, reject });
        pump();
      });
    },
    /** Resolves when nothing is queued or running (graceful shutdown). */
    drain(): Promise<void> {
      if (inFlight === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((r) => idleWaiters.push(r));
    },
    stats: () => ({ queued: queue.length, inFlight }),
  };
}

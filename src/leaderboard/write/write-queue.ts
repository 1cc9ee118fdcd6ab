/**
 * Group commit: requests that arrive while a transaction runs are coalesced into the next batch. At low load a
 * request runs at once (a batch of one); under load each transaction carries up to `maxBatch` requests, so
 * the per-transaction costs (round trips, the commit, the Redis mirror) are shared. `maxBatch: 1` switches
 * batching off.
 *
 * A second transaction starts beside a running one only when a full batch is waiting, or when a partial
 * batch has waited `maxWaitMs` for the running one to end. Starting partial batches as soon as a slot is free
 * (what this did first) splits the same load into many small commits: measured on 2 cores, mean batches of 4
 * and half the throughput of one transaction at a time. The wait bounds what a slow transaction (a lock
 * wait on a hot row) can add to everyone queued behind it.
 */
export interface WriteQueueOptions<Req, Out> {
  maxBatch: number;
  /** How long a partial batch waits for a running transaction before it starts beside it. */
  maxWaitMs: number;
  /** Transactions in flight at once. */
  concurrency: number;
  /**
   * Requests waiting for a transaction, at most (WRITE_QUEUE_MAX). Past it `submit` answers `full` at once:
   * under a flood a bounded queue sheds load instead of growing memory and everyone's latency.
   */
  maxQueued: number;
  /**
   * Runs one batch. It holds a slot until it settles or calls `release` (after its commit: the Redis mirror
   * and the answers need no MySQL slot), whichever comes first.
   */
  run: (batch: Req[], release: () => void) => Promise<Out[]>;
}

interface Pending<Req, Out> {
  req: Req;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

/** What `submit` answers when the queue is at its bound; nothing was queued. */
export const QUEUE_FULL = Symbol('write queue full');

export function createWriteQueue<Req, Out>(opts: WriteQueueOptions<Req, Out>) {
  const queue: Array<Pending<Req, Out>> = [];
  let inFlight = 0; // batches holding a slot
  let active = 0; // batches not yet settled (holding a slot or finishing)
  let timer: NodeJS.Timeout | undefined;
  let idleWaiters: Array<() => void> = [];

  function pump(): void {
    while (inFlight < opts.concurrency && queue.length > 0) {
      if (inFlight > 0 && queue.length < opts.maxBatch) {
        timer ??= setTimeout(() => {
          timer = undefined;
          if (inFlight < opts.concurrency && queue.length > 0) {
            flush();
            pump();
          }
        }, opts.maxWaitMs);
        return;
      }
      flush();
    }
  }

  function flush(): void {
    clearTimeout(timer);
    timer = undefined;
    const batch = queue.splice(0, opts.maxBatch);
    if (batch.length === 0) return;
    inFlight++;
    active++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      inFlight--;
      pump();
    };
    opts
      .run(
        batch.map((p) => p.req),
        release,
      )
      .then(
        (outs) => batch.forEach((p, i) => p.resolve(outs[i])),
        (err) => batch.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        active--;
        release();
        if (active === 0 && queue.length === 0) {
          idleWaiters.forEach((w) => w());
          idleWaiters = [];
        }
      });
  }

  return {
    submit(req: Req): Promise<Out | typeof QUEUE_FULL> {
      if (queue.length >= opts.maxQueued) return Promise.resolve(QUEUE_FULL);
      return new Promise<Out>((resolve, reject) => {
        queue.push({ req, resolve, reject });
        pump();
      });
    },
    /** Resolves when nothing is queued, running or finishing (graceful shutdown). */
    drain(): Promise<void> {
      if (active === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((r) => idleWaiters.push(r));
    },
  };
}

import type { Logger } from 'pino';
import type { Events } from '../../events';
import type { Db } from '../../platform/db';
import { isDatabaseUnavailable } from '../../http/errors';
import type { Mirror } from '../cache/mirror';
import { applyBatch, type DeltaOutcome, type DeltaRequest, type WindowsOf } from './store';
import { createWriteQueue, QUEUE_FULL } from './write-queue';

export interface WriteBatching {
  maxBatch: number;
  maxWaitMs: number;
  concurrency: number;
  maxQueued: number;
}

/**
 * The write path: requests are group-committed to MySQL, and each committed batch is mirrored into Redis
 * with one script call before its requests are answered. A mirror failure never fails a write (MySQL is the
 * truth); the mirror's catch-up loop repairs Redis afterwards.
 */
export function createScoreService(deps: {
  db: Db;
  mirror: Mirror;
  /** Where a request's board and its windows are known (boards never change their windows). */
  windowsOf: WindowsOf;
  logger: Logger;
  batching: WriteBatching;
  /** Told of every batch after its commit (snapshot, metrics, cheat signals subscribe in the container). */
  events: Pick<Events, 'emit'>;
  /** Test hook: runs after commit, before the Redis mirror (fault tests kill the process here). */
  afterCommit?: () => Promise<void> | void;
}) {
  async function runBatch(requests: DeltaRequest[], release: () => void): Promise<DeltaOutcome[]> {
    let result;
    try {
      result = await applyBatch(deps.db, requests, deps.mirror.ranks, deps.windowsOf);
      release(); // committed: the next batch may start while this one is mirrored and answered
    } catch (err) {
      // One request that breaks the SQL must not fail its neighbours: retry each on its own.
      if (requests.length > 1 && !isDatabaseUnavailable(err)) {
        deps.logger.warn(
          { err: (err as Error).message, size: requests.length },
          'batch failed; retrying one by one',
        );
        return Promise.all(requests.map(async (r) => (await runBatch([r], () => {}))[0]));
      }
      throw err;
    }
    const changed = result.mirror.length > 0;
    deps.events.emit('batchCommitted', {
      requests,
      outcomes: result.outcomes,
      changed,
      mirror: result.mirror,
    });
    if (changed) {
      await deps.afterCommit?.();
      await deps.mirror.apply(result.mirror);
    }
    return result.outcomes;
  }

  const queue = createWriteQueue<DeltaRequest, DeltaOutcome>({ ...deps.batching, run: runBatch });
  return {
    /** The request's outcome once its batch committed; `overloaded` at once when the queue is full. */
    async submit(req: DeltaRequest): Promise<DeltaOutcome | { kind: 'overloaded' }> {
      const out = await queue.submit(req);
      return out === QUEUE_FULL ? { kind: 'overloaded' } : out;
    },
    drain: queue.drain,
  };
}

export type ScoreService = ReturnType<typeof createScoreService>;

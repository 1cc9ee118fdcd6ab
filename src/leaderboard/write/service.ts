import type { Logger } from 'pino';
import type { Events } from '../../events';
import type { Db } from '../../platform/db';
import { isDatabaseUnavailable } from '../../http/errors';
import type { Mirror } from '../cache/mirror';
import { applyBatch, type DeltaOutcome, type DeltaRequest, type WindowsOf } from './store';
import { createWriteQueue, QUEUE_FULL } from './write-queue';
import { createRanker } from './ranks';
import type { LimitDecision, WriteLimiter } from './write-limit';
import { provisionUsers } from '../../users/store';

export interface WriteBatching {
  maxBatch: number;
  maxWaitMs: number;
  concurrency: number;
  maxQueued: number;
}

/** A request's outcome, with the write limit's decision for an HTTP caller's request. */
export type SubmitOutcome =
  | (DeltaOutcome & { limit?: LimitDecision })
  | { kind: 'limited'; limit: LimitDecision }
  | { kind: 'overloaded' };

/** Users this instance knows exist, at most (users are never deleted); past it the set starts again. */
const MAX_KNOWN_USERS = 100_000;

/**
 * The write path. Requests are group-committed, and every store round trip is paid per batch, never per
 * request: one Redis pipeline for the write limit of every caller in the batch; one INSERT for callers this
 * instance has not seen yet (AUTO_PROVISION_USERS); one MySQL transaction that authorizes every caller under
 * lock, decides idempotency and applies the deltas to every window (src/leaderboard/write/store.ts); after
 * commit, one Redis script that mirrors the rows and ranks the new totals (src/leaderboard/write/ranks.ts).
 * No Redis call runs while MySQL locks are held. A mirror failure never fails a write (MySQL is the truth);
 * the mirror's catch-up loop repairs Redis afterwards and the ranks come from MySQL meanwhile.
 */
export function createScoreService(deps: {
  db: Db;
  mirror: Mirror;
  /** Per-user write limit (RATE_LIMIT_WRITES_PER_MIN), for requests that carry a `limitKey`. */
  limiter: WriteLimiter;
  /** Where a request's board and its windows are known (boards never change their windows). */
  windowsOf: WindowsOf;
  logger: Logger;
  batching: WriteBatching;
  /** Told of every batch after its commit (snapshot, metrics, cheat signals subscribe in the container). */
  events: Pick<Events, 'emit'>;
  /** Test hook: runs after commit, before the Redis mirror (fault tests kill the process here). */
  afterCommit?: () => Promise<void> | void;
}) {
  const ranker = createRanker({ db: deps.db, mirror: deps.mirror, logger: deps.logger });
  let known = new Set<string>();

  async function runBatch(requests: DeltaRequest[], release: () => void): Promise<SubmitOutcome[]> {
    // The write limit, for every caller of the batch at once; refused requests leave the batch here.
    const limited = requests.filter((r) => r.limitKey !== undefined);
    const decisions = new Map<DeltaRequest, LimitDecision>();
    (await deps.limiter.take(limited.map((r) => r.limitKey!))).forEach((d, i) =>
      decisions.set(limited[i], d),
    );
    for (const [r, d] of decisions)
      if (!d.admitted) deps.events.emit('rateLimited', { limit: 'writes', userId: r.limitKey });
    const admitted = requests.filter((r) => decisions.get(r)?.admitted !== false);
    const outcomes = admitted.length ? await commit(admitted, release) : [];
    const byRequest = new Map(admitted.map((r, i) => [r, outcomes[i]]));
    return requests.map((r) => {
      const limit = decisions.get(r);
      if (limit && !limit.admitted) return { kind: 'limited', limit };
      return { ...byRequest.get(r)!, limit };
    });
  }

  async function commit(requests: DeltaRequest[], release: () => void): Promise<DeltaOutcome[]> {
    await provision(requests);
    let result;
    try {
      result = await applyBatch(deps.db, requests, deps.windowsOf);
      release(); // committed: the next batch may start while this one is mirrored and answered
    } catch (err) {
      // One request that breaks the SQL must not fail its neighbours: retry each on its own.
      if (requests.length > 1 && !isDatabaseUnavailable(err)) {
        deps.logger.warn(
          { err: (err as Error).message, size: requests.length },
          'batch failed; retrying one by one',
        );
        return Promise.all(requests.map(async (r) => (await commit([r], () => {}))[0]));
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
    if (changed) await deps.afterCommit?.();
    await ranker.mirrorAndRank(result.mirror, result.toRank);
    return result.outcomes;
  }

  /** Creates the users the batch asks for that this instance has not seen, in one statement. */
  async function provision(requests: DeltaRequest[]): Promise<void> {
    const wanted = new Map<string, string>();
    for (const r of requests)
      if (r.provision && !known.has(r.provision.id)) wanted.set(r.provision.id, r.provision.displayName);
    if (wanted.size === 0) return;
    await provisionUsers(
      deps.db,
      [...wanted].map(([id, displayName]) => ({ id, displayName })),
    );
    if (known.size + wanted.size > MAX_KNOWN_USERS) known = new Set();
    for (const id of wanted.keys()) known.add(id);
  }

  const queue = createWriteQueue<DeltaRequest, SubmitOutcome>({ ...deps.batching, run: runBatch });
  return {
    /**
     * The request's outcome once its batch committed; `overloaded` at once when the queue is full, `limited`
     * at once when its caller is known to be out of budget.
     */
    async submit(req: DeltaRequest): Promise<SubmitOutcome> {
      const spent = req.limitKey === undefined ? undefined : deps.limiter.known(req.limitKey);
      if (spent) {
        deps.events.emit('rateLimited', { limit: 'writes', userId: req.limitKey });
        return { kind: 'limited', limit: spent };
      }
      const out = await queue.submit(req);
      return out === QUEUE_FULL ? { kind: 'overloaded' } : out;
    },
    async drain(): Promise<void> {
      await queue.drain();
      await ranker.flush();
    },
  };
}

export type ScoreService = ReturnType<typeof createScoreService>;

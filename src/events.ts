import type { Logger } from './platform/logger';
import type { DeltaOutcome, DeltaRequest } from './leaderboard/write/store';
import type { Snapshot } from './leaderboard/snapshot/engine';
import type { MirrorEntry } from './leaderboard/cache/mirror';

/**
 * The few things features tell each other, typed. A feature emits what happened; whoever cares subscribes in
 * the container (src/container.ts), so no callback has to be threaded through the wiring.
 */
export interface EventMap {
  /** A batch of deltas committed (or was decided without a write): one outcome per request, in order. */
  batchCommitted: {
    requests: DeltaRequest[];
    outcomes: DeltaOutcome[];
    changed: boolean;
    /** Every changed row: board window, cycle, user, new total, active. */
    mirror: MirrorEntry[];
  };
  /** A request was refused by a rate limit; `userId` for the per-user write limit. */
  rateLimited: { limit: string; userId?: string };
  /** An instance adopted a top-N snapshot with new content. */
  snapshotChanged: { board: string; window: string; snapshot: Snapshot };
  /** A snapshot this instance built became the shared one: exactly one instance hears of each version. */
  snapshotShared: { board: string; window: string; snapshot: Snapshot };
}

export interface Events {
  on<K extends keyof EventMap>(name: K, listener: (event: EventMap[K]) => void): void;
  emit<K extends keyof EventMap>(name: K, event: EventMap[K]): void;
}

/** Listeners run synchronously, in order; one that throws is logged and never stops the others or the emitter. */
export function createEvents(logger: Logger): Events {
  const listeners = new Map<keyof EventMap, Array<(event: never) => void>>();
  return {
    on(name, listener) {
      listeners.set(name, [...(listeners.get(name) ?? []), listener as (event: never) => void]);
    },
    emit(name, event) {
      for (const listener of listeners.get(name) ?? []) {
        try {
          (listener as (e: typeof event) => void)(event);
        } catch (err) {
          logger.error({ err, event: name }, 'event listener failed');
        }
      }
    },
  };
}

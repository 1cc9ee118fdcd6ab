/**
 * The write rules, decided for a whole batch against the rows its transaction locked: who may apply what,
 * replays and conflicting replays of an actionId, and the safe-integer range of a total. Pure: the store
 * (./store.ts) reads and writes MySQL around it.
 */

export interface DeltaRequest {
  userId: string;
  delta: number;
  actionId?: string;
  actorId: string;
  actorIsAdmin: boolean;
}

export interface UpdateResult {
  userId: string;
  score: number;
  rank: number | null;
  scoreIncrement: number;
  eventId: number;
}

export type DeltaOutcome =
  | { kind: 'applied'; result: UpdateResult }
  | { kind: 'replayed'; result: UpdateResult }
  | { kind: 'rejected'; reason: RejectReason };

/**
 * Why the store refused a delta, decided under the users' locks. Domain reasons, not HTTP: the route (or any
 * other intake) decides what each one means to its caller (src/leaderboard/write/routes.ts).
 */
export type RejectReason =
  | 'actor_banned'
  | 'actor_not_admin'
  | 'unknown_user'
  | 'target_banned'
  | 'out_of_range'
  | 'conflicting_replay';

/** The locked state the rules need of a target user, and of an acting admin. */
export interface LockedUser {
  status: string;
  score: number | null;
}
export interface Actor {
  role: string;
  status: string;
}
/** An event already committed under the same (target, actor, actionId). */
export interface PriorEvent {
  delta: number;
  result: UpdateResult;
}

/** A request to write (`pending`, by its index among the accepted) or a replay of an earlier one in the batch. */
export type Decision = DeltaOutcome | { kind: 'pending'; index: number } | { kind: 'follow'; of: number };

/** Idempotency keys belong to their author: one per (target, actor, actionId), as the unique key says. */
export const actionKey = (userId: string, actorId: string, actionId: string) =>
  `${userId}\u0000${actorId}\u0000${actionId}`;

const rejected = (reason: RejectReason): DeltaOutcome => ({ kind: 'rejected', reason });

/**
 * One decision per request, in order, against the running totals; only accepted requests become events.
 * `actors` holds every acting admin's row (targets included), `prior` the committed events by actionKey.
 */
export function decideBatch(
  requests: DeltaRequest[],
  users: Map<string, LockedUser>,
  actors: Map<string, Actor>,
  prior: Map<string, PriorEvent>,
) {
  const decisions: Decision[] = [];
  const accepted: Array<{ req: DeltaRequest; scoreAfter: number }> = [];
  const firstInBatch = new Map<string, number>(); // actionKey -> request index that applies it
  const running = new Map<string, number>();
  for (const [i, req] of requests.entries()) {
    const user = users.get(req.userId);
    const decision = decide(req, user);
    if (decision) {
      decisions.push(decision);
      continue;
    }
    const scoreAfter = (running.get(req.userId) ?? Number(user!.score)) + req.delta;
    if (!Number.isSafeInteger(scoreAfter)) {
      decisions.push(rejected('out_of_range'));
      continue;
    }
    running.set(req.userId, scoreAfter);
    if (req.actionId !== undefined) firstInBatch.set(actionKey(req.userId, req.actorId, req.actionId), i);
    decisions.push({ kind: 'pending', index: accepted.length });
    accepted.push({ req, scoreAfter });
  }
  return { decisions, accepted, running };

  /** Rejections and replays, decided before any arithmetic. */
  function decide(req: DeltaRequest, user: LockedUser | undefined): Decision | undefined {
    if (req.actorIsAdmin) {
      const actor = actors.get(req.actorId);
      if (actor?.status !== 'active') return rejected('actor_banned');
      if (actor.role !== 'admin') return rejected('actor_not_admin');
    }
    if (!user) return rejected('unknown_user');
    if (user.status !== 'active' && !req.actorIsAdmin) return rejected('target_banned');
    if (req.actionId === undefined) return undefined;
    const k = actionKey(req.userId, req.actorId, req.actionId);
    const done = prior.get(k);
    if (done)
      return done.delta === req.delta
        ? { kind: 'replayed', result: done.result }
        : rejected('conflicting_replay');
    const leader = firstInBatch.get(k);
    if (leader === undefined) return undefined;
    return requests[leader].delta === req.delta
      ? { kind: 'follow', of: leader }
      : rejected('conflicting_replay');
  }
}

/**
 * The write rules, decided for a whole batch against the rows its transaction locked: who may apply what,
 * replays and conflicting replays of an actionId, and the safe-integer range of every window's total. Pure:
 * the store (./store.ts) reads and writes MySQL around it.
 */

export interface DeltaRequest {
  userId: string;
  /** The board the delta applies to: every one of its windows, in the current cycle. */
  boardId: string;
  delta: number;
  actionId?: string;
  actorId: string;
  /**
   * Who vouches for the actor. `caller`: an HTTP caller, checked under lock against its users row (it must
   * exist and be active; writing to another user or outside the players' range takes the admin role).
   * `trusted`: an intake whose credentials are the authority (the broker); its actor is not checked.
   */
  authority: 'caller' | 'trusted';
  /** The caller was admitted as an admin (an increment only admins may send): the row must still say so. */
  requiresAdmin?: boolean;
  /** Per-user write limit key (the caller); none for trusted intakes. */
  limitKey?: string;
  /** Create this user (as a player) before the batch if it does not exist (AUTO_PROVISION_USERS). */
  provision?: { id: string; displayName: string };
}

/** A window's cycle, total and rank after the delta. */
export interface WindowResult {
  cycle: string;
  score: number;
  rank: number | null;
}

/**
 * The answer to an applied delta. `score` and `rank` are the board's first window's (for `global`, `all`),
 * so the fields of the one-board API keep their meaning; `windows` has every window.
 */
export interface UpdateResult {
  userId: string;
  score: number;
  rank: number | null;
  scoreIncrement: number;
  eventId: number;
  boardId: string;
  windows: Record<string, WindowResult>;
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
  | 'unknown_board'
  | 'unknown_caller'
  | 'actor_banned'
  | 'not_own_score'
  | 'actor_not_admin'
  | 'unknown_user'
  | 'target_banned'
  | 'out_of_range'
  | 'conflicting_replay';

/** The locked state the rules need of a target user, and of an acting admin. */
export interface LockedUser {
  status: string;
}
export interface Actor {
  role: string;
  status: string;
}
/** An event already committed under the same (target, actor, actionId). */
export interface PriorEvent {
  delta: number;
  boardId: string;
  result: UpdateResult;
}

/** A request to write (`pending`, by its index among the accepted) or a replay of an earlier one in the batch. */
export type Decision = DeltaOutcome | { kind: 'pending'; index: number } | { kind: 'follow'; of: number };

/** Idempotency keys belong to their author: one per (target, actor, actionId), as the unique key says. */
export const actionKey = (userId: string, actorId: string, actionId: string) =>
  `${userId}\u0000${actorId}\u0000${actionId}`;

/** A user's rows on one board: the unit a batch updates once, however many of its deltas it holds. */
export const userBoardKey = (userId: string, boardId: string) => `${userId}\u0000${boardId}`;

const rejected = (reason: RejectReason): DeltaOutcome => ({ kind: 'rejected', reason });

/**
 * One decision per request, in order, against the running totals; only accepted requests become events.
 * `actors` holds every caller's row (targets included), `prior` the committed events by actionKey,
 * `totals` each (user, board)'s current totals, one per window in the board's order (0 for a new row), or
 * undefined for a board that does not exist.
 */
export function decideBatch(
  requests: DeltaRequest[],
  users: Map<string, LockedUser>,
  actors: Map<string, Actor>,
  prior: Map<string, PriorEvent>,
  totals: (userId: string, boardId: string) => number[] | undefined,
) {
  const decisions: Decision[] = [];
  const accepted: Array<{ req: DeltaRequest; scoresAfter: number[] }> = [];
  const firstInBatch = new Map<string, number>(); // actionKey -> request index that applies it
  const running = new Map<string, number[]>(); // userBoardKey -> totals per window
  for (const [i, req] of requests.entries()) {
    const user = users.get(req.userId);
    const decision = decide(req, user);
    if (decision) {
      decisions.push(decision);
      continue;
    }
    const k = userBoardKey(req.userId, req.boardId);
    const scoresAfter = (running.get(k) ?? totals(req.userId, req.boardId)!).map((s) => s + req.delta);
    if (!scoresAfter.every(Number.isSafeInteger)) {
      decisions.push(rejected('out_of_range'));
      continue;
    }
    running.set(k, scoresAfter);
    if (req.actionId !== undefined) firstInBatch.set(actionKey(req.userId, req.actorId, req.actionId), i);
    decisions.push({ kind: 'pending', index: accepted.length });
    accepted.push({ req, scoresAfter });
  }
  return { decisions, accepted, running };

  /** Rejections and replays, decided before any arithmetic. */
  function decide(req: DeltaRequest, user: LockedUser | undefined): Decision | undefined {
    if (totals(req.userId, req.boardId) === undefined) return rejected('unknown_board');
    let asAdmin = false;
    if (req.authority === 'caller') {
      const actor = actors.get(req.actorId);
      if (!actor) return rejected('unknown_caller');
      if (actor.status !== 'active') return rejected('actor_banned');
      asAdmin = actor.role === 'admin';
      if (req.requiresAdmin && !asAdmin) return rejected('actor_not_admin');
      if (req.userId !== req.actorId && !asAdmin) return rejected('not_own_score');
    }
    if (!user) return rejected('unknown_user');
    if (user.status !== 'active' && !asAdmin) return rejected('target_banned');
    if (req.actionId === undefined) return undefined;
    const k = actionKey(req.userId, req.actorId, req.actionId);
    const done = prior.get(k);
    // A replay is the same delta to the same board; anything else under a used key is a conflict.
    if (done)
      return done.delta === req.delta && done.boardId === req.boardId
        ? { kind: 'replayed', result: done.result }
        : rejected('conflicting_replay');
    const leader = firstInBatch.get(k);
    if (leader === undefined) return undefined;
    return requests[leader].delta === req.delta && requests[leader].boardId === req.boardId
      ? { kind: 'follow', of: leader }
      : rejected('conflicting_replay');
  }
}

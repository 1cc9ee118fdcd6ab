import Joi from 'joi';
import type { Logger } from 'pino';
import { USER_ID_PATTERN } from '../auth/tokens';
import type { Db } from '../platform/db';
import { isDatabaseUnavailable } from '../http/errors';
import { BOARD_ID_PATTERN } from '../leaderboard/boards/schemas';
import { ACTION_ID } from '../leaderboard/write/schemas';
import type { ScoreService } from '../leaderboard/write/service';
import type { DeltaSource, Disposition } from './ports';

/**
 * A delta message: `{"userId", "scoreIncrement", "actionId", "boardId"?}`. Producers are trusted by their broker
 * credentials, so the admin rules apply (any non-zero increment within the safe range); `actionId` is required,
 * because delivery is at least once and the idempotency key is what makes the effect exactly once.
 */
const messageSchema = Joi.object({
  userId: Joi.string().pattern(USER_ID_PATTERN, 'user id').required(),
  scoreIncrement: Joi.number()
    .integer()
    .min(-Number.MAX_SAFE_INTEGER)
    .max(Number.MAX_SAFE_INTEGER)
    .invalid(0)
    .required(),
  actionId: ACTION_ID.required(),
  boardId: Joi.string().pattern(BOARD_ID_PATTERN, 'board id').default('global'),
}).unknown(false);

export interface IntakeCounts {
  applied: number;
  replayed: number;
  dead: number;
  retried: number;
}

/**
 * Consumes deltas from the broker into the same group-commit queue as HTTP writes. A message is acknowledged
 * only after the transaction that applied it (or found it a replay) committed; one that can never apply is
 * dead-lettered with the reason; one that failed because MySQL is unavailable (or the queue is full) is
 * returned to the queue after a backoff that grows while the failures last, so consumption pauses rather
 * than spinning on redeliveries.
 */
export function createIntake(deps: {
  source: DeltaSource;
  scores: Pick<ScoreService, 'submit'>;
  db: Db;
  findBoard: (id: string) => Promise<unknown>;
  actorId: string;
  autoProvision: boolean;
  retryMaxMs: number;
  logger: Logger;
  onOutcome?: (outcome: keyof IntakeCounts) => void;
}) {
  const counts: IntakeCounts = { applied: 0, replayed: 0, dead: 0, retried: 0 };
  let failures = 0; // consecutive availability failures, for the backoff
  const count = (k: keyof IntakeCounts) => {
    counts[k]++;
    deps.onOutcome?.(k);
  };

  function decode(body: unknown): unknown {
    if (Buffer.isBuffer(body) || typeof body === 'string') {
      try {
        return JSON.parse(body.toString());
      } catch {
        return undefined;
      }
    }
    return body;
  }

  const dead = (reason: string): Disposition => (count('dead'), { kind: 'dead', reason });

  async function handle(body: unknown): Promise<Disposition> {
    const value = decode(body);
    if (value === undefined) return dead('invalid_json');
    const { error, value: m } = messageSchema.validate(value, { abortEarly: false });
    if (error) return dead(`invalid: ${error.details.map((d) => d.message).join('; ')}`);
    try {
      if (!(await deps.findBoard(m.boardId))) return dead('unknown_board');
      const outcome = await deps.scores.submit({
        userId: m.userId,
        boardId: m.boardId,
        delta: m.scoreIncrement,
        actionId: m.actionId,
        actorId: deps.actorId,
        authority: 'trusted', // no role to check: the broker's credentials are the authority
        provision: deps.autoProvision ? { id: m.userId, displayName: m.userId } : undefined,
      });
      if (outcome.kind === 'overloaded') return retryLater('the write queue is full');
      failures = 0;
      if (outcome.kind === 'rejected') return dead(outcome.reason);
      count(outcome.kind === 'applied' ? 'applied' : 'replayed');
      return { kind: 'ack' };
    } catch (err) {
      // Unexpected errors are retried the same way; the queue's x-delivery-limit dead-letters a message that
      // keeps failing, so nothing loops for ever.
      if (!isDatabaseUnavailable(err)) deps.logger.error({ err }, 'broker delta failed unexpectedly');
      return retryLater((err as Error).message);
    }
  }

  async function retryLater(why: string): Promise<Disposition> {
    failures++;
    const wait = Math.min(deps.retryMaxMs, 200 * 2 ** Math.min(failures - 1, 20));
    deps.logger.warn(
      { why, waitMs: wait },
      'broker delta not applied now; returning it to the queue after a pause',
    );
    count('retried');
    await new Promise((r) => setTimeout(r, wait));
    return { kind: 'retry' };
  }

  return {
    counts: () => ({ ...counts }),
    async start(): Promise<void> {
      // The author of every broker delta must exist (score_events.actor_id references users).
      await deps.db.raw(
        "INSERT INTO users (id, display_name, role) VALUES (?, 'Message broker', 'player') ON DUPLICATE KEY UPDATE id = id",
        [deps.actorId],
      );
      deps.source.start(handle);
    },
    stop: () => deps.source.stop(),
  };
}

export type Intake = ReturnType<typeof createIntake>;

import { rawRows, type Db } from '../../platform/db';

export interface HistoryEvent {
  eventId: number;
  boardId: string;
  scoreIncrement: number;
  score: number;
  actorId: string;
  actionId: string | null;
  createdAt: string;
}

/** A page of a user's history, newest first; `before` is the cursor (an event id) from the previous page. */
export async function userHistory(
  db: Db,
  userId: string,
  limit: number,
  before?: number,
): Promise<{ events: HistoryEvent[]; nextBefore: number | null }> {
  const rows = await rawRows<{
    id: number;
    board_id: string;
    delta: number;
    score_after: number;
    actor_id: string;
    action_id: string | null;
    created_at: Date;
  }>(
    db,
    `SELECT id, board_id, delta, score_after, actor_id, action_id, created_at FROM score_events
     WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`,
    [userId, before ?? Number.MAX_SAFE_INTEGER, limit + 1],
  );
  const page = rows.slice(0, limit).map((r) => ({
    eventId: Number(r.id),
    boardId: r.board_id,
    scoreIncrement: Number(r.delta),
    score: Number(r.score_after),
    actorId: r.actor_id,
    actionId: r.action_id,
    createdAt: r.created_at.toISOString(),
  }));
  return { events: page, nextBefore: rows.length > limit ? page[page.length - 1].eventId : null };
}

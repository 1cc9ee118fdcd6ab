import type { Snapshot } from '../../leaderboard/snapshot/engine';
import type { BoardWindowFeed } from '../../leaderboard/snapshot/board-windows';
import { BOARD_ID_PATTERN, WINDOW_NAME_PATTERN } from '../../leaderboard/boards/schemas';

/**
 * The WebSocket protocol's messages (JSON text frames), documented in the README and the OpenAPI document.
 * A scoreboard message is built once per snapshot and the same bytes go to every socket: `top` is spliced in
 * as the exact /top body, never re-serialized.
 */
export function scoreboardMessage(feed: BoardWindowFeed, snapshot: Snapshot): Buffer {
  const head =
    `{"type":"scoreboard","board":${JSON.stringify(feed.board)},"window":${JSON.stringify(feed.window)},` +
    `"cycle":${JSON.stringify(snapshot.cycle)},"version":${JSON.stringify(snapshot.etag)},"top":`;
  return Buffer.concat([Buffer.from(head), snapshot.body, Buffer.from('}')]);
}

export type ReplyType = 'subscribed' | 'unsubscribed' | 'error';

export function reply(type: ReplyType, fields: Record<string, string | undefined>): string {
  return JSON.stringify({ type, ...fields });
}

export interface ClientMessage {
  type: 'subscribe' | 'unsubscribe';
  board: string;
  window: string;
  since?: string;
}

const SINCE = /^[\x21-\x7e]{1,128}$/;

/** Parses one client message: the message, or the error code and text to answer with. */
export function parseClientMessage(text: string): ClientMessage | { code: string; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { code: 'invalid_json', message: 'Messages are JSON objects.' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { code: 'invalid_message', message: 'Messages are JSON objects.' };
  const m = value as Record<string, unknown>;
  if (m.type !== 'subscribe' && m.type !== 'unsubscribe')
    return { code: 'unknown_type', message: 'type is "subscribe" or "unsubscribe".' };
  const board = m.board ?? 'global';
  const window = m.window ?? 'all';
  if (
    typeof board !== 'string' ||
    !BOARD_ID_PATTERN.test(board) ||
    typeof window !== 'string' ||
    !WINDOW_NAME_PATTERN.test(window)
  )
    return { code: 'invalid_message', message: 'board and window are lower-case names.' };
  if (m.since !== undefined && (typeof m.since !== 'string' || !SINCE.test(m.since)))
    return { code: 'invalid_message', message: 'since is a version (an ETag) from an earlier message.' };
  return { type: m.type, board, window, since: m.since as string | undefined };
}

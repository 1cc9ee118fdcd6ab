import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { BoardWindows } from '../../leaderboard/snapshot/board-windows';
import type { Metrics } from '../../platform/metrics';
import type { Slots } from '../slots';
import type { WsHub } from './hub';
import { BOARD_ID_PATTERN, WINDOW_NAME_PATTERN } from '../../leaderboard/boards/schemas';

/** The two spellings of the endpoint: the specification's and the versioned one. Nothing else upgrades. */
export const WS_PATHS = ['/ws/scores', '/api/v1/ws'];
const SINCE = /^[\x21-\x7e]{1,128}$/;

/**
 * Decides an HTTP upgrade before it becomes a WebSocket, answering a plain HTTP problem (the same limits as
 * SSE: 503 when the instance is full, 429 when the client holds its share, both with Retry-After):
 * the path, the Origin (CORS_ORIGINS plus our own host, against cross-site WebSocket hijacking; clients that
 * send none are not browsers and are let in), and the first board window from the query.
 */
export function createUpgradeHandler(deps: {
  hub: WsHub;
  boards: BoardWindows;
  /** Loads a board this instance does not know yet (created elsewhere; rate-limited reload). */
  findBoard: (id: string) => Promise<unknown>;
  slots: Slots;
  /** The slot key of an address (src/http/rate-limit/client-key.ts). */
  clientKey: (ip: string) => string;
  trustProxyHops: number;
  corsOrigins: string[];
  retryAfterS: number;
  metrics: Metrics;
}) {
  const anyOrigin = deps.corsOrigins.includes('*');

  function refuse(socket: Duplex, status: number, title: string, detail: string, reason: string): void {
    deps.metrics.wsRejected.inc({ reason });
    const body = JSON.stringify({ type: 'about:blank', title, status, detail });
    const retry = status === 429 || status === 503 ? `Retry-After: ${deps.retryAfterS}\r\n` : '';
    socket.end(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\n${retry}` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  function originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || anyOrigin || deps.corsOrigins.includes(origin)) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }

  /** The client's address as Koa reads it: X-Forwarded-For only as far as our own proxies appended to it. */
  function clientIp(req: IncomingMessage): string {
    const forwarded = req.headers['x-forwarded-for'];
    if (deps.trustProxyHops > 0 && typeof forwarded === 'string') {
      const hops = forwarded.split(/\s*,\s*/).slice(-deps.trustProxyHops);
      if (hops[0]) return hops[0];
    }
    return req.socket.remoteAddress ?? '';
  }

  // The server's `upgrade` listener: nothing it does may throw into the HTTP server.
  return function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    upgrade(req, socket, head).catch(() => socket.destroy());
  };

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://upgrade.invalid');
    if (!WS_PATHS.includes(url.pathname))
      return refuse(socket, 404, 'Not Found', 'No WebSocket endpoint at this path.', 'path');
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket')
      return refuse(socket, 400, 'Bad Request', 'Only WebSocket upgrades are accepted.', 'protocol');
    if (!originAllowed(req))
      return refuse(socket, 403, 'Forbidden', 'This Origin may not open a WebSocket here.', 'origin');
    const board = url.searchParams.get('board') ?? 'global';
    const window = url.searchParams.get('window') ?? 'all';
    const since = url.searchParams.get('since') ?? undefined;
    if (
      !BOARD_ID_PATTERN.test(board) ||
      !WINDOW_NAME_PATTERN.test(window) ||
      (since !== undefined && !SINCE.test(since))
    )
      return refuse(socket, 400, 'Bad Request', 'board, window and since are invalid.', 'query');
    if (!deps.boards.resolve(board, window)) {
      await deps.findBoard(board).catch(() => undefined);
      if (socket.destroyed) return;
      if (!deps.boards.resolve(board, window))
        return refuse(socket, 404, 'Not Found', `No board window ${board}/${window}.`, 'unknown');
    }
    const client = deps.clientKey(clientIp(req));
    if (!deps.slots.hasRoom())
      return refuse(socket, 503, 'Service Unavailable', 'No room for another stream; poll instead.', 'full');
    if (!deps.slots.clientHasRoom(client))
      return refuse(socket, 429, 'Too Many Requests', 'Too many open streams from this address.', 'client');
    // ws completes the handshake synchronously (no verifyClient), so the slot is taken right after the check.
    deps.hub.wss.handleUpgrade(req, socket, head, (ws) =>
      deps.hub.accept(ws, { board, window, since }, deps.slots.take(client)),
    );
  }
}

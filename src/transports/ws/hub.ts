import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import type { BoardWindowFeed, BoardWindows } from '../../leaderboard/snapshot/board-windows';
import type { Metrics } from '../../platform/metrics';
import type { Slots } from '../slots';
import { parseClientMessage, reply, scoreboardMessage } from './messages';

export interface WsOptions {
  maxPayloadBytes: number;
  pingIntervalMs: number;
  maxSubscriptions: number;
  maxMessagesPer10s: number;
  /** The SSE slow-client limit: a socket holding more unsent bytes than this is closed 1013. */
  maxBufferBytes: number;
}

/** One board window this instance pushes: its current message and the sockets that follow it. */
interface Feed {
  message: Buffer;
  etag: string;
  sockets: Set<Peer>;
  stop: () => void;
}

interface Peer {
  ws: WebSocket;
  subscriptions: Set<string>;
  /** Per board window, only the newest message a slow socket has not been sent yet. */
  pending: Map<string, Buffer>;
  alive: boolean;
  messages: number;
  since: number;
  release: () => void;
}

const key = (board: string, window: string) => `${board}/${window}`;
/** How often sockets that fell behind are checked for a drained buffer. */
const FLUSH_EVERY_MS = 25;

/**
 * WebSocket, the second push transport: fed by exactly the snapshots SSE and polls serve (one serialization
 * per snapshot, shared by every socket), with the same slots and the same slow-client policy as SSE. A socket
 * that does not keep up skips to the newest message per board window and is closed 1013 past
 * `maxBufferBytes`; nothing waits for it. Server pings find dead peers.
 */
export function createWsHub(deps: {
  boards: BoardWindows;
  /** Loads a board this instance does not know yet (created elsewhere; rate-limited reload). */
  findBoard: (id: string) => Promise<unknown>;
  slots: Slots;
  options: WsOptions;
  metrics: Metrics;
  logger: Logger;
}) {
  const { options, logger, metrics } = deps;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayloadBytes,
    perMessageDeflate: false, // the same bytes for every socket, no per-socket compression state
    clientTracking: false,
  });
  const peers = new Set<Peer>();
  const feeds = new Map<string, Feed>();
  const stats = { cutOff: 0, skipped: 0 };

  function feedFor(source: BoardWindowFeed): Feed {
    const k = key(source.board, source.window);
    const feed = feeds.get(k);
    if (feed) return feed;
    const current = source.snapshot.current();
    const created: Feed = {
      message: scoreboardMessage(source, current),
      etag: current.etag,
      sockets: new Set(),
      stop: source.snapshot.onChange((s) => {
        created.message = scoreboardMessage(source, s);
        created.etag = s.etag;
        for (const peer of created.sockets) send(peer, k, created.message);
      }),
    };
    feeds.set(k, created);
    return created;
  }

  // Sockets holding messages they could not take yet; a timer hands them over once their buffer drains.
  const behind = new Set<Peer>();
  let flushTimer: NodeJS.Timeout | undefined;

  /**
   * A socket whose buffer is empty gets the message at once (no per-send callback: the common case costs one
   * write). One with bytes still unsent keeps only the newest message per board window, and is closed 1013
   * once it holds more than `maxBufferBytes`.
   */
  function send(peer: Peer, feedKey: string, message: Buffer): void {
    if (peer.ws.readyState !== WebSocket.OPEN) return;
    if (peer.ws.bufferedAmount > 0) {
      if (peer.pending.has(feedKey)) stats.skipped++;
      peer.pending.set(feedKey, message); // only the newest snapshot of each board window matters
      if (peer.ws.bufferedAmount > options.maxBufferBytes) return cutOff(peer);
      behind.add(peer);
      flushTimer ??= setTimeout(flush, FLUSH_EVERY_MS);
      return;
    }
    metrics.wsMessagesSent.inc();
    peer.ws.send(message, { binary: false });
  }

  function flush(): void {
    flushTimer = undefined;
    for (const peer of behind) {
      if (peer.ws.readyState !== WebSocket.OPEN) behind.delete(peer);
      else if (peer.ws.bufferedAmount === 0) {
        behind.delete(peer);
        const waiting = [...peer.pending];
        peer.pending.clear();
        for (const [k, m] of waiting) send(peer, k, m);
      }
    }
    if (behind.size > 0) flushTimer = setTimeout(flush, FLUSH_EVERY_MS);
  }

  function cutOff(peer: Peer): void {
    stats.cutOff++;
    logger.info({ buffered: peer.ws.bufferedAmount }, 'closing a slow WebSocket client');
    peer.pending.clear();
    behind.delete(peer);
    peer.ws.close(1013, 'too slow: reconnect later');
    setTimeout(() => peer.ws.terminate(), 1000).unref();
  }

  function subscribe(peer: Peer, board: string, window: string, since?: string): string | undefined {
    const source = deps.boards.resolve(board, window);
    if (!source) return 'unknown_board_window';
    const k = key(board, window);
    if (!peer.subscriptions.has(k)) {
      if (peer.subscriptions.size >= options.maxSubscriptions) return 'too_many_subscriptions';
      peer.subscriptions.add(k);
      feedFor(source).sockets.add(peer);
    }
    const feed = feeds.get(k)!;
    // A board window read for the first time here has no snapshot yet: its first one arrives as a change.
    if (since !== feed.etag && source.snapshot.hasData()) send(peer, k, feed.message);
    return undefined;
  }

  function unsubscribe(peer: Peer, k: string): void {
    peer.subscriptions.delete(k);
    peer.pending.delete(k);
    const feed = feeds.get(k);
    if (!feed) return;
    feed.sockets.delete(peer);
    if (feed.sockets.size === 0) {
      feed.stop();
      feeds.delete(k);
    }
  }

  function onMessage(peer: Peer, data: Buffer, isBinary: boolean): void {
    metrics.wsMessagesReceived.inc();
    if (isBinary) return peer.ws.close(1003, 'text frames only');
    const now = Date.now();
    if (now - peer.since > 10_000) {
      peer.since = now;
      peer.messages = 0;
    }
    if (++peer.messages > options.maxMessagesPer10s) return peer.ws.close(1008, 'too many messages');
    const m = parseClientMessage(data.toString('utf8'));
    if ('code' in m) return void peer.ws.send(reply('error', { code: m.code, message: m.message }));
    if (m.type === 'unsubscribe') {
      unsubscribe(peer, key(m.board, m.window));
      return void peer.ws.send(reply('unsubscribed', { board: m.board, window: m.window }));
    }
    void subscribeKnown(peer, m);
  }

  /** Subscribes, first loading a board this instance has not heard of yet, then answers. */
  async function subscribeKnown(
    peer: Peer,
    m: { board: string; window: string; since?: string },
  ): Promise<void> {
    if (!deps.boards.resolve(m.board, m.window)) await deps.findBoard(m.board).catch(() => undefined);
    if (peer.ws.readyState !== WebSocket.OPEN) return;
    const problem = subscribe(peer, m.board, m.window, m.since);
    if (problem) {
      const message =
        problem === 'unknown_board_window'
          ? `No board window ${m.board}/${m.window}.`
          : `At most ${options.maxSubscriptions} board windows per socket.`;
      return void peer.ws.send(reply('error', { code: problem, message, board: m.board, window: m.window }));
    }
    peer.ws.send(reply('subscribed', { board: m.board, window: m.window }));
  }

  const pinger = setInterval(() => {
    for (const peer of peers) {
      if (!peer.alive) {
        peer.ws.terminate(); // missed the last ping's pong
        continue;
      }
      peer.alive = false;
      peer.ws.ping();
    }
  }, options.pingIntervalMs);
  pinger.unref();

  return {
    wss,
    size: () => peers.size,
    stats: () => ({ ...stats, sockets: peers.size, feeds: feeds.size }),
    /**
     * Takes over an upgraded socket, holding a slot taken by the caller (`release` gives it back), and
     * subscribes it to its first board window (checked to exist by the caller).
     */
    accept(
      ws: WebSocket,
      first: { board: string; window: string; since?: string },
      release: () => void,
    ): void {
      const peer: Peer = {
        ws,
        subscriptions: new Set(),
        pending: new Map(),
        alive: true,
        messages: 0,
        since: Date.now(),
        release,
      };
      peers.add(peer);
      metrics.wsConnections.inc();
      ws.on('pong', () => (peer.alive = true));
      ws.on('message', (data, isBinary) => onMessage(peer, data as Buffer, isBinary));
      ws.on('error', () => ws.terminate()); // a protocol error (ws has sent its close code, e.g. 1009, 1007)
      ws.on('close', () => {
        peers.delete(peer);
        behind.delete(peer);
        for (const k of [...peer.subscriptions]) unsubscribe(peer, k);
        peer.release();
      });
      subscribe(peer, first.board, first.window, first.since);
    },
    /** Shutdown: every socket gets 1001 with a reason, then is dropped if it does not close in time. */
    close(): void {
      clearInterval(pinger);
      clearTimeout(flushTimer);
      for (const peer of peers) {
        peer.ws.close(1001, 'server shutting down');
        setTimeout(() => peer.ws.terminate(), 1000).unref();
      }
    },
  };
}

export type WsHub = ReturnType<typeof createWsHub>;

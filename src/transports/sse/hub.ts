import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Snapshot } from '../../leaderboard/snapshot/engine';
import type { BoardWindowFeed } from '../../leaderboard/snapshot/board-windows';
import type { Slots } from '../slots';

/** One SSE event. Every line of `data` gets its own `data:` field, so no content can break the framing. */
export function sseEvent(event: string, id: string, data: string): Buffer {
  const lines = data.split(/\r\n|\r|\n/).map((l) => `data: ${l}\n`);
  return Buffer.from(`event: ${event}\nid: ${id.replace(/[\r\n]/g, '')}\n${lines.join('')}\n`);
}

const HEARTBEAT = Buffer.from(':\n\n');

interface Client {
  res: ServerResponse;
  /** The newest event this client has not been sent yet because its buffer was full. */
  pending?: Buffer;
}

/** One board window streamed here: its current event bytes and the clients that follow it. */
interface Feed {
  event: Buffer;
  etag: string;
  clients: Set<Client>;
  stop: () => void;
}

export interface StreamOptions {
  heartbeatMs: number;
  maxBufferBytes: number;
  retryMs: number;
}

/**
 * Fans each board window's snapshots out to this instance's subscribers of it: serialized once, the same bytes
 * written to every connection. A client whose socket does not drain skips to the newest snapshot and is cut
 * off once it holds more than `maxBufferBytes`; nothing waits for it.
 */
export function createStreamHub(deps: {
  /** Shared with the WebSocket transport: one instance limit, one per-client limit for both. */
  slots: Slots;
  options: StreamOptions;
  logger: Logger;
  /** Told of every stream opened (the connection rate in /metrics). */
  onAttach?: () => void;
}) {
  const { options, logger, slots } = deps;
  const clients = new Set<Client>();
  const feeds = new Map<string, Feed>();
  const stats = { cutOff: 0, skipped: 0, events: 0 };

  function toEvent(s: Snapshot): Buffer {
    return sseEvent('scoreboard', s.etag, s.body.toString());
  }

  /** A retry hint with jitter, so a fleet of clients does not reconnect in one storm. */
  const retryHint = () =>
    Buffer.from(`retry: ${options.retryMs + Math.floor(Math.random() * options.retryMs)}\n\n`);

  function send(client: Client, bytes: Buffer): void {
    const { res } = client;
    if (res.destroyed) return;
    if (res.writableNeedDrain) {
      if (client.pending) stats.skipped++;
      client.pending = bytes; // only the latest snapshot matters
      if (res.writableLength + bytes.length > options.maxBufferBytes) {
        stats.cutOff++;
        logger.info({ buffered: res.writableLength }, 'cutting off a slow stream client');
        res.destroy();
      }
      return;
    }
    res.write(bytes);
  }

  /** The feed of a board window, following its snapshots while any client here streams it. */
  function feedFor(source: BoardWindowFeed): Feed {
    const k = `${source.board}/${source.window}`;
    const held = feeds.get(k);
    if (held) return held;
    const current = source.snapshot.current();
    const feed: Feed = {
      event: toEvent(current),
      etag: current.etag,
      clients: new Set(),
      stop: source.snapshot.onChange((s) => {
        feed.event = toEvent(s);
        feed.etag = s.etag;
        stats.events++;
        for (const c of feed.clients) send(c, feed.event);
      }),
    };
    feeds.set(k, feed);
    const stop = feed.stop;
    feed.stop = () => {
      stop();
      feeds.delete(k);
    };
    return feed;
  }

  const heartbeat = setInterval(() => {
    for (const c of clients) if (!c.res.writableNeedDrain) c.res.write(HEARTBEAT);
  }, options.heartbeatMs);
  heartbeat.unref();

  return {
    size: () => clients.size,
    stats: () => ({ ...stats, clients: clients.size }),
    /** False when this instance is at its stream limit (or shutting down): answer 503 instead. */
    hasRoom: () => slots.hasRoom(),
    /** False when this client key already holds its share of streams: answer 429. */
    ipHasRoom: (client: string) => slots.clientHasRoom(client),
    /** Takes over an HTTP response whose headers are already set, until the client goes away. */
    attach(res: ServerResponse, source: BoardWindowFeed, lastEventId: string | undefined, ip: string): void {
      const client: Client = { res };
      const feed = feedFor(source);
      clients.add(client);
      feed.clients.add(client);
      const giveBack = slots.take(ip);
      deps.onAttach?.();
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        giveBack();
        clients.delete(client);
        feed.clients.delete(client);
        if (feed.clients.size === 0) feed.stop();
        client.pending = undefined;
      };
      res.on('close', release);
      res.on('error', release);
      res.on('drain', () => {
        const next = client.pending;
        client.pending = undefined;
        if (next) send(client, next);
      });
      res.write(retryHint());
      if (lastEventId !== feed.etag) res.write(feed.event);
    },
    /** Ends every stream cleanly with a retry hint, so clients reconnect to another instance. */
    close(): void {
      slots.close();
      clearInterval(heartbeat);
      for (const f of [...feeds.values()]) f.stop();
      for (const c of clients) {
        if (!c.res.writableNeedDrain) c.res.write(retryHint());
        c.res.end();
      }
      clients.clear();
    },
  };
}

export type StreamHub = ReturnType<typeof createStreamHub>;

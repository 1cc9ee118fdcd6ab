import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy between the app and a real server, for fault injection without touching the shared server:
 * add latency, refuse new connections, reset open ones, or black-hole traffic (accept, never answer).
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  let mode: 'pass' | 'refuse' | 'blackhole' = 'pass';
  let latencyMs = 0;
  // Bytes that arrived during a black hole, per direction, delivered on heal. TCP never loses bytes inside a
  // live connection: a partition that heals delivers them late (retransmission), or the connection dies.
  // Dropping them instead would desynchronise request/reply protocols in a way no real network can.
  const flushers = new Set<() => void>();

  const server = net.createServer((client) => {
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (mode === 'blackhole') return; // swallow everything, answer nothing
    const upstream = net.connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    const relay = (from: net.Socket, to: net.Socket) => {
      // One FIFO per direction: delayed bytes keep their order whatever the latency does meanwhile (a timer
      // per chunk would not: timers of different durations that expire together fire in no promised order).
      const delayed: Array<{ at: number; chunk: Buffer }> = [];
      let timer: NodeJS.Timeout | undefined;
      const pump = () => {
        timer = undefined;
        while (delayed.length && delayed[0].at <= Date.now()) {
          const { chunk } = delayed.shift()!;
          if (to.writable) to.write(chunk);
        }
        if (delayed.length) timer = setTimeout(pump, Math.max(1, delayed[0].at - Date.now()));
      };
      const send = (chunk: Buffer) => {
        if (latencyMs === 0 && delayed.length === 0) {
          if (to.writable) to.write(chunk);
          return;
        }
        delayed.push({ at: Date.now() + latencyMs, chunk });
        timer ??= setTimeout(pump, Math.max(0, delayed[0].at - Date.now()));
      };
      let held: Buffer[] = [];
      const flush = () => {
        const chunks = held;
        held = [];
        chunks.forEach(send);
      };
      flushers.add(flush);
      from.on('close', () => {
        flushers.delete(flush);
        clearTimeout(timer);
      });
      from.on('data', (chunk: Buffer) => {
        if (mode === 'blackhole' || held.length) held.push(chunk);
        else send(chunk);
      });
    };
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    /** Resets every open connection and refuses new ones. */
    cut() {
      mode = 'refuse';
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    /**
     * Keeps connections open but lets nothing through (held until heal, as TCP retransmits across a partition),
     * and accepts new ones that never get an answer.
     */
    blackhole() {
      mode = 'blackhole';
    },
    /** Back to passing traffic: bytes held by a black hole are delivered, late. */
    heal() {
      mode = 'pass';
      latencyMs = 0;
      for (const flush of flushers) flush();
    },
    setLatency(ms: number) {
      latencyMs = ms;
    },
    /** Drops new connections at once (as a full accept queue or a firewall would) but leaves open ones be. */
    refuseNew() {
      mode = 'refuse';
    },
    /** Resets open connections but keeps accepting new ones. */
    resetOpen() {
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    /** Open connections (both legs), for tests that check nothing lingers. */
    connections: () => sockets.size,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

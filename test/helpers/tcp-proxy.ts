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
    const relay = (from: net.Socket, to: net.Socket) =>
      from.on('data', (chunk) => {
        if (mode === 'blackhole') return;
        if (latencyMs > 0) setTimeout(() => to.writable && to.write(chunk), latencyMs);
        else if (to.writable) to.write(chunk);
      });
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
    /** Keeps connections open but lets nothing through, and accepts new ones that never get an answer. */
    blackhole() {
      mode = 'blackhole';
    },
    heal() {
      mode = 'pass';
      latencyMs = 0;
    },
    setLatency(ms: number) {
      latencyMs = ms;
    },
    /** Resets open connections but keeps accepting new ones. */
    resetOpen() {
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

import net from 'node:net';
import WebSocket from 'ws';
import { percentiles } from './load';

/**
 * A child process holding many SSE subscribers (so the server's memory and CPU are measured apart from
 * theirs). It opens `count` raw TCP connections in waves, reads each stream as a browser's EventSource would
 * (events end at a blank line), and for every `scoreboard` event notes when it arrived. The change driver
 * puts the time it sent a change into the leader's score, so latency = arrival - that score.
 *
 * With a fourth argument `ws`, the subscribers are WebSocket clients (the `ws` library) of `path` instead,
 * and every `scoreboard` message counts as an event.
 *
 * argv: port path count [ws]; IPC in: {cmd: 'report', sent: number[]} | {cmd: 'close'}; IPC out: progress,
 * {type: 'ready'} and the report.
 */
const [port, path, countArg, mode] = process.argv.slice(2);
const count = Number(countArg);
const WAVE = 250;
// Spread over loopback addresses: each has its own ephemeral ports, so back-to-back runs of 10,000 never
// run out of ports while the previous run's connections sit in TIME_WAIT.
const LOCAL_ADDRESSES = 32;

const arrivals = new Map<number, number[]>(); // change (send time) -> arrival times
const sockets: net.Socket[] = [];
let open = 0;
let dropped = 0;
let failed = 0;

function onEventBlock(block: string, at: number): void {
  if (!block.includes('event: scoreboard') && !block.startsWith('{"type":"scoreboard"')) return;
  const i = block.indexOf('"score":');
  if (i === -1) return;
  const t = parseInt(block.slice(i + 8, i + 30), 10);
  let list = arrivals.get(t);
  if (!list) arrivals.set(t, (list = []));
  list.push(at);
}

/** A WebSocket subscriber: one message is one event. */
function subscribeWs(index: number): Promise<void> {
  return new Promise((resolve) => {
    let opened = false;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, {
      localAddress: `127.0.0.${2 + (index % LOCAL_ADDRESSES)}`,
      perMessageDeflate: false,
    });
    ws.on('open', () => {
      opened = true;
      open++;
      settle();
    });
    ws.on('message', (data) => onEventBlock(data.toString(), Date.now()));
    ws.on('error', () => {});
    ws.on('close', () => {
      if (opened) {
        open--;
        dropped++;
      } else failed++;
      settle();
    });
    wsClients.push(ws);
  });
}
const wsClients: WebSocket[] = [];

function subscribe(index: number): Promise<void> {
  if (mode === 'ws') return subscribeWs(index);
  return new Promise((resolve) => {
    let buffered = '';
    let headersDone = false;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    const socket = net.connect({
      host: '127.0.0.1',
      port: Number(port),
      localAddress: `127.0.0.${2 + (index % LOCAL_ADDRESSES)}`,
    });
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`),
    );
    socket.on('data', (chunk: string) => {
      const at = Date.now();
      buffered += chunk;
      if (!headersDone) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        if (!buffered.startsWith('HTTP/1.1 200')) {
          failed++;
          socket.destroy();
          settle();
          return;
        }
        headersDone = true;
        open++;
        buffered = buffered.slice(end + 4);
        settle();
      }
      let cut: number;
      while ((cut = buffered.indexOf('\n\n')) !== -1) {
        onEventBlock(buffered.slice(0, cut), at);
        buffered = buffered.slice(cut + 2);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (headersDone) {
        open--;
        dropped++;
      } else failed++;
      settle();
    });
    sockets.push(socket);
  });
}

async function main(): Promise<void> {
  for (let i = 0; i < count; i += WAVE) {
    await Promise.all(Array.from({ length: Math.min(WAVE, count - i) }, (_, j) => subscribe(i + j)));
    process.send!({ type: 'progress', open, failed });
  }
  process.send!({ type: 'ready', open, failed });
}

process.on('message', (msg: { cmd: string; sent?: number[] }) => {
  if (msg.cmd === 'close') {
    for (const s of sockets) s.destroy();
    for (const w of wsClients) w.terminate();
    setTimeout(() => process.exit(0), 100);
    return;
  }
  const sent = msg.sent ?? [];
  const latencies: number[] = [];
  const spread: number[] = [];
  let missing = 0; // a published change some subscriber did not get
  let coalesced = 0; // a change no subscriber got: the server never published it on its own
  for (const t of sent) {
    const list = arrivals.get(t) ?? [];
    if (list.length === 0) coalesced++;
    else missing += Math.max(0, count - list.length);
    const first = list.reduce((a, b) => Math.min(a, b), Infinity);
    for (const at of list) {
      latencies.push(at - t);
      spread.push(at - first);
    }
  }
  const [p50, p99, max] = percentiles(latencies, [50, 99, 100]);
  const [spreadP50, spreadP99] = percentiles(spread, [50, 99]);
  process.send!({
    type: 'report',
    open,
    failed,
    dropped,
    changes: sent.length,
    deliveries: latencies.length,
    missing,
    coalesced,
    p50,
    p99,
    max,
    spreadP50,
    spreadP99,
  });
});

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

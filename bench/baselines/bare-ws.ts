import { createHash } from 'node:crypto';
import http from 'node:http';
import { topBody } from './top-body';
import { WebSocketServer, type WebSocket } from 'ws';

/**
 * The WebSocket baseline: node:http and `ws` alone. POST /publish with a number T builds a top-10 message
 * like the service's (T as the leader's score), serialized once, and sends it to every open socket. No
 * framework, no database, no backpressure policy.
 */
const sockets = new Set<WebSocket>();
let current = message(0);

function message(t: number): Buffer {
  const body = topBody(t);
  const id = createHash('sha256').update(body).digest('base64url').slice(0, 27);
  return Buffer.from(
    `{"type":"scoreboard","board":"global","window":"all","cycle":"all","version":"\\"${id}\\"","top":${body}}`,
  );
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      current = message(Number(text));
      for (const s of sockets) s.send(current, { binary: false });
      res.end('ok');
    });
    return;
  }
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  sockets.add(ws);
  ws.send(current, { binary: false });
  ws.on('close', () => sockets.delete(ws));
  ws.on('error', () => ws.terminate());
});
server.listen(Number(process.env.PORT), '127.0.0.1', 4096);

import { createHash } from 'node:crypto';
import http from 'node:http';
import { topBody } from './top-body';

/**
 * The stream baseline: node:http alone. GET opens an SSE stream; POST /publish with a number T builds a
 * top-10 body like the service's (T as the leader's score), serializes one event and writes the same bytes
 * to every open stream. No framework, no database, no backpressure policy.
 */
const streams = new Set<http.ServerResponse>();
let current = event(0);

function event(t: number): Buffer {
  const body = topBody(t);
  const id = createHash('sha256').update(body).digest('base64url').slice(0, 27);
  return Buffer.from(`event: scoreboard\nid: "${id}"\ndata: ${body}\n\n`);
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      current = event(Number(text));
      for (const s of streams) s.write(current);
      res.end('ok');
    });
    return;
  }
  req.socket.setNoDelay(true);
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache' });
  res.write(current);
  streams.add(res);
  res.on('close', () => streams.delete(res));
});
server.listen(Number(process.env.PORT), '127.0.0.1', 4096);

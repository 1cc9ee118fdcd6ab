import type { Config } from '../../config';
import { ref } from '../../web/openapi-components';
import { apiErrors, h, p, TOP_EXAMPLE, type Json } from '../../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function stream(config: Config): Json {
  const event = [
    `retry: ${config.sse.retryMs + 1217}`,
    '',
    'event: scoreboard',
    'id: "mT0k0cJ8bJwq0l7Qn2zv3Jw1g2E"',
    `data: ${JSON.stringify(TOP_EXAMPLE.slice(0, 2))}`,
    '',
    ':',
    '',
  ].join('\n');
  return {
    tags: ['Scores'],
    operationId: 'streamTop',
    summary: 'The top N as Server-Sent Events',
    description: [
      'Public. Subscribe with `EventSource`. The stream carries the same snapshots and versions as ' +
        '`GET /scores/top`:',
      '',
      `- On connect: a \`retry:\` hint in milliseconds (${config.sse.retryMs} plus random jitter, so ` +
        'reconnects do not arrive as a storm), then the current snapshot as an event named `scoreboard`, ' +
        'unless `Last-Event-ID` already equals the current version.',
      '- Each `scoreboard` event: `id:` is exactly the `ETag` that `/scores/top` answers for that version ' +
        '(quotes included, usable as `If-None-Match`), and `data:` is exactly the `/scores/top` body ' +
        '(a `Top` array). Text with line breaks is split over several `data:` lines, as SSE requires.',
      `- After that, one event per change, at most one per ${config.snapshotTickMs} ms; a client that reads ` +
        'slowly skips to the newest snapshot, and one that stops reading is disconnected.',
      `- A comment line (\`:\`) every ${config.sse.heartbeatMs / 1000} s keeps idle proxies from closing ` +
        'the connection.',
      '- When the instance shuts down it sends a last `retry:` hint and ends the stream; `EventSource` ' +
        'reconnects (to another instance behind the load balancer) with `Last-Event-ID`.',
      `- At most ${config.streams.maxClients} streams per instance: past that, \`503\` with \`Retry-After\`; ` +
        'poll `/scores/top` meanwhile.',
      '',
      'Behind nginx: `proxy_buffering off; proxy_read_timeout` above the heartbeat, HTTP/1.1 upstream.',
    ].join('\n'),
    parameters: [p('LastEventId')],
    responses: {
      '200': {
        description: 'An endless `text/event-stream`. Never compressed.',
        headers: { 'Cache-Control': h('Cache-Control'), 'X-Accel-Buffering': h('X-Accel-Buffering') },
        content: {
          'text/event-stream': {
            schema: { type: 'string', description: "SSE framing; each event's data is a `Top` array." },
            example: event,
            'x-sse-events': { scoreboard: { id: 'the ETag of /scores/top', data: ref('schemas', 'Top') } },
          },
        },
      },
      '503': {
        description: 'This instance has no room for another stream. Poll /scores/top; retry later.',
        headers: { 'Retry-After': h('Retry-After') },
        content: { 'application/problem+json': { schema: ref('schemas', 'Problem') } },
      },
      ...apiErrors,
    },
  };
}

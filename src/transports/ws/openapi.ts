import type { Config } from '../../config';
import { ref } from '../../web/openapi-components';
import { TOP_EXAMPLE, type Json } from '../../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function webSocket(config: Config, operationId: string): Json {
  const message = {
    type: 'scoreboard',
    board: 'global',
    window: 'all',
    cycle: 'all',
    version: '"mT0k0cJ8bJwq0l7Qn2zv3Jw1g2E"',
    top: TOP_EXAMPLE.slice(0, 2),
  };
  const problem = (description: string) => ({
    description,
    content: { 'application/problem+json': { schema: ref('schemas', 'Problem') } },
  });
  return {
    tags: ['Scores'],
    operationId,
    summary: 'The top N over WebSocket',
    description: [
      'Public. Open with `new WebSocket(url)`; the same snapshots and versions as `GET /scores/top` and ' +
        'the SSE stream. Query: `board` and `window` (default `global`/`all`, the only board window so far) ' +
        'and `since` (a version: the first message is skipped when it is still current).',
      '',
      'Server to client, JSON text frames:',
      `- \`${JSON.stringify(message)}\`: on connect and on every change; \`version\` is the \`ETag\` of ` +
        '`/scores/top` for that version and `top` is exactly its body.',
      '- `{"type":"subscribed"|"unsubscribed","board":…,"window":…}` answers a subscription change;',
      '- `{"type":"error","code":…,"message":…}`: `invalid_json`, `invalid_message`, `unknown_type`, ' +
        '`unknown_board_window`, `too_many_subscriptions`.',
      '',
      'Client to server: `{"type":"subscribe","board":"global","window":"all","since":"…"}` and ' +
        `\`{"type":"unsubscribe",…}\`, at most ${config.ws.maxSubscriptions} board windows per socket and ` +
        `${config.ws.maxMessagesPer10s} messages per 10 s.`,
      '',
      'Close codes: `1001` shutdown (reconnect elsewhere), `1003` a binary frame, `1007` invalid UTF-8, ' +
        `\`1008\` too many messages, \`1009\` a message over ${config.ws.maxPayloadBytes} bytes, \`1013\` a ` +
        'client too slow to keep up (reconnect later). The server pings every ' +
        `${config.ws.pingIntervalMs / 1000} s and drops peers that do not answer.`,
      '',
      'The connection counts against the same per-address and per-instance limits as SSE streams; the ' +
        '`Origin` must be one of CORS_ORIGINS or this host.',
    ].join('\n'),
    parameters: [
      { name: 'board', in: 'query', schema: { type: 'string', default: 'global' } },
      { name: 'window', in: 'query', schema: { type: 'string', default: 'all' } },
      {
        name: 'since',
        in: 'query',
        schema: { type: 'string' },
        description: 'A version from an earlier message.',
      },
    ],
    responses: {
      '101': { description: 'Switching Protocols: the WebSocket is open.' },
      '400': problem('Not a WebSocket upgrade, or an invalid query.'),
      '403': problem('The Origin may not open a WebSocket here.'),
      '404': problem('No such board window.'),
      '426': problem('Upgrade Required: a plain GET without `Upgrade: websocket`.'),
      '429': problem('This address holds its share of streams; see Retry-After.'),
      '503': problem('This instance holds all the streams it can; poll, or retry after Retry-After.'),
    },
  };
}

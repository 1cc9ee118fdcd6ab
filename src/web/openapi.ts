import type { Config } from '../config';
import { headers, parameters, ref, responses, schemas } from './openapi-components';

type Json = Record<string, unknown>;

/** The versioned API answers under both base paths: /api is the current version, as first specified. */
const API_SERVERS = [
  { url: '/api/v1', description: 'Version 1' },
  { url: '/api', description: 'The current version (the same operations as /api/v1)' },
];

const h = (name: string) => ref('headers', name);
const p = (name: string) => ref('parameters', name);
const r = (name: string) => ref('responses', name);

const json = (schema: Json, example?: unknown) => ({
  'application/json': example === undefined ? { schema } : { schema, example },
});
const html = { 'text/html': { schema: { type: 'string' } } };
const notModified = (extra: Json = {}) => ({
  description: 'Not Modified: your If-None-Match matches; no body.',
  headers: { ETag: h('ETag'), 'Cache-Control': h('Cache-Control'), ...extra },
});

const TOP_EXAMPLE = [
  { rank: 1, userId: 'ada', displayName: 'Ada Lovelace', score: 1200 },
  { rank: 2, userId: 'grace', displayName: 'Grace Hopper', score: 1150 },
  { rank: 2, userId: 'alan', displayName: 'Alan Turing', score: 1150 },
  { rank: 4, userId: 'edsger', displayName: 'Edsger Dijkstra', score: 990 },
];

/**
 * The OpenAPI 3.1 description of every route the service answers. test/openapi.test.ts fails when a route
 * exists that this does not describe, or the other way round, and validates the document.
 */
export function openApiDocument(config: Config): Json {
  const paths: Record<string, Json> = {
    '/': { get: page() },
    '/assets/{file}': { get: asset() },
    '/openapi.json': { get: openApiJson() },
    '/docs': { get: docsPage() },
    '/scores/top': { servers: API_SERVERS, get: top(config, false), head: top(config, true) },
    '/scores/stream': { servers: API_SERVERS, get: stream(config) },
    '/scores/update': { servers: API_SERVERS, post: update() },
    '/scores/users/{userId}': { servers: API_SERVERS, parameters: [p('UserId')], get: standing() },
    '/scores/users/{userId}/events': { servers: API_SERVERS, parameters: [p('UserId')], get: history() },
    '/users/{userId}': { servers: API_SERVERS, parameters: [p('UserId')], patch: patchUser() },
    '/healthz': { get: healthz() },
    '/readyz': { get: readyz() },
    '/metrics': { get: metrics() },
    '/admin/flags': { servers: API_SERVERS, get: listFlags() },
    '/admin/flags/{userId}': { servers: API_SERVERS, parameters: [p('UserId')], delete: clearFlag() },
  };
  for (const item of Object.values(paths)) {
    for (const op of Object.values(item)) if (isOperation(op)) addRequestId(op);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Scoreboard API',
      version: '1.0.0',
      summary: 'Durable score deltas and a live top N, by polling or Server-Sent Events.',
      description: overview(config),
    },
    servers: [{ url: '/', description: 'This server' }],
    tags: [
      { name: 'Scores', description: "The top N, one user's standing and history, and score updates." },
      { name: 'Users', description: 'Administration of users.' },
      { name: 'Admin', description: 'Cheat signals raised by the service.' },
      { name: 'Operations', description: 'Liveness, readiness and metrics for operators.' },
      { name: 'Web', description: 'The live scoreboard page and this reference.' },
    ],
    paths,
    components: {
      schemas: schemas(config),
      headers: headers(config),
      parameters: parameters(),
      responses: responses(),
      securitySchemes: {
        metricsAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'The operator token METRICS_TOKEN (an opaque string, not a JWT), for /metrics only.',
        },
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            `A JWT signed with the configured key (${config.jwt.algorithm}); \`sub\` is the user id and \`exp\` ` +
            'is required. An unknown user is created from the token (`sub`, `name`) when AUTO_PROVISION_USERS ' +
            'is on.',
        },
      },
    },
  };
}

function overview(config: Config): string {
  return [
    "A live scoreboard: the site posts score deltas with the user's token; everyone watching sees the new top " +
      `${config.scoreboardSize} within a fraction of a second.`,
    '',
    '**Base paths.** Scores and users live under `/api/v1`; the same operations answer under `/api` (the ' +
      'current version). Every response carries `X-Request-Id`.',
    '',
    '**Errors** are RFC 9457 `application/problem+json` with the request id. Unknown paths answer `404`; a ' +
      'known path with the wrong method answers `405` with `Allow`. Browsers on origins in CORS_ORIGINS may ' +
      'call the API; `ETag`, `X-Poll-Interval`, `Retry-After`, `X-Request-Id` and `Idempotent-Replayed` are ' +
      'exposed to them.',
    '',
    '**Watching the top N.** Either subscribe to `GET /api/v1/scores/stream` with `EventSource`, or poll ' +
      '`GET /api/v1/scores/top` every `X-Poll-Interval` seconds sending the last `ETag` as `If-None-Match`: ' +
      "an unchanged board costs a `304` with no body. The stream's event id is that same ETag, so a client " +
      'can switch between the two without a gap. When the stream answers `503`, poll and try the stream ' +
      'again later.',
    '',
    '**Posting scores.** Send an `actionId` (or `Idempotency-Key`) with every delta and retry network errors ' +
      'and `5xx`/`429` answers with the same one: it is applied at most once, and a replay answers `200` ' +
      "with `Idempotent-Replayed: true` and the first answer's body. Coalesce rapid actions on the client " +
      'into one request.',
  ].join('\n');
}

function isOperation(value: unknown): value is Json & { responses: Record<string, Json> } {
  return typeof value === 'object' && value !== null && 'responses' in value;
}

/** Every route takes an X-Request-Id and returns one. */
function addRequestId(op: Json & { responses: Record<string, Json> }): void {
  op.parameters = [...((op.parameters as unknown[]) ?? []), p('XRequestId')];
  for (const [status, response] of Object.entries(op.responses)) {
    if ('$ref' in response) continue; // shared problem responses get it below
    response.headers = { ...((response.headers as Json) ?? {}), 'X-Request-Id': h('X-Request-Id') };
    op.responses[status] = response;
  }
}

// ---- web ------------------------------------------------------------------------------------------------

function page(): Json {
  return {
    tags: ['Web'],
    operationId: 'getPage',
    summary: 'The live scoreboard page',
    description:
      'A small HTML page that shows the top N, subscribes to the stream and falls back to polling. Served ' +
      'with a strict Content-Security-Policy (same origin only).',
    parameters: [p('IfNoneMatch')],
    responses: {
      '200': {
        description: 'The page.',
        headers: {
          ETag: h('ETag'),
          'Cache-Control': h('Cache-Control'),
          'Content-Security-Policy': h('Content-Security-Policy'),
        },
        content: html,
      },
      '304': notModified(),
    },
  };
}

function asset(): Json {
  return {
    tags: ['Web'],
    operationId: 'getAsset',
    summary: 'A static file of the page or of the reference (script, style sheet, icon)',
    description:
      'Cached for a year when requested with its current `v` (the page links them that way), revalidated ' +
      'otherwise. Gzip when accepted.',
    parameters: [
      { name: 'file', in: 'path', required: true, schema: { type: 'string', examples: ['app.js'] } },
      { name: 'v', in: 'query', description: 'Content version, for caching.', schema: { type: 'string' } },
      p('IfNoneMatch'),
    ],
    responses: {
      '200': {
        description: 'The file.',
        headers: { ETag: h('ETag'), 'Cache-Control': h('Cache-Control') },
        content: {
          'text/javascript': { schema: { type: 'string' } },
          'text/css': { schema: { type: 'string' } },
          'image/svg+xml': { schema: { type: 'string' } },
        },
      },
      '304': notModified(),
      '404': r('NotFound'),
    },
  };
}

function openApiJson(): Json {
  return {
    tags: ['Web'],
    operationId: 'getOpenApi',
    summary: 'This OpenAPI 3.1 document',
    parameters: [p('IfNoneMatch')],
    responses: {
      '200': {
        description: 'The document.',
        headers: { ETag: h('ETag'), 'Cache-Control': h('Cache-Control') },
        content: json({ type: 'object', description: 'An OpenAPI 3.1 document.' }),
      },
      '304': notModified(),
    },
  };
}

function docsPage(): Json {
  return {
    tags: ['Web'],
    operationId: 'getDocs',
    summary: 'This reference, rendered from /openapi.json',
    parameters: [p('IfNoneMatch')],
    responses: {
      '200': {
        description: 'The reference page.',
        headers: {
          ETag: h('ETag'),
          'Cache-Control': h('Cache-Control'),
          'Content-Security-Policy': h('Content-Security-Policy'),
        },
        content: html,
      },
      '304': notModified(),
    },
  };
}

// ---- scores -----------------------------------------------------------------------------------------------

const apiErrors = { '429': r('TooManyRequests'), '500': r('InternalError') };
/** Routes outside the rate limits (admin changes other than reads). */
const unlimitedErrors = { '500': r('InternalError') };

function top(config: Config, head: boolean): Json {
  const okHeaders = {
    ETag: h('ETag'),
    'Cache-Control': h('Cache-Control'),
    'X-Poll-Interval': h('X-Poll-Interval'),
  };
  return {
    tags: ['Scores'],
    operationId: head ? 'headTop' : 'getTop',
    summary: head ? "The top N's current version, without the body" : 'The top N',
    description: head
      ? 'Exactly the headers of GET, without the body.'
      : `Public. Answered from memory on every instance (never stale by more than ${config.snapshotTickMs} ms ` +
        'after a write), with a strong ETag that every instance computes the same way. Poll every ' +
        '`X-Poll-Interval` seconds with `If-None-Match`.',
    parameters: [p('IfNoneMatch')],
    responses: {
      '200': {
        description: 'The current top N.',
        headers: okHeaders,
        ...(head ? {} : { content: json(ref('schemas', 'Top'), TOP_EXAMPLE) }),
      },
      '304': notModified({ 'X-Poll-Interval': h('X-Poll-Interval') }),
      ...apiErrors,
    },
  };
}

function stream(config: Config): Json {
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
      `- At most ${config.sse.maxClients} streams per instance: past that, \`503\` with \`Retry-After\`; ` +
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

function update(): Json {
  return {
    tags: ['Scores'],
    operationId: 'updateScore',
    summary: 'Add a score delta',
    description:
      'Records the delta in MySQL (a `201` means it is committed) and answers the new total and competition ' +
      "rank. Players add to their own score; admins may change anyone's, including negative corrections. " +
      'Roles come from the users table only, never from a token claim. An `actionId` belongs to its ' +
      'author: it is unique per (target user, acting user).',
    security: [{ bearerAuth: [] }],
    parameters: [p('IdempotencyKey')],
    requestBody: {
      required: true,
      content: {
        'application/json': {
          schema: ref('schemas', 'UpdateRequest'),
          examples: {
            player: {
              summary: 'A player scores',
              value: { scoreIncrement: 10, actionId: 'level-7-complete' },
            },
            admin: { summary: 'An admin corrects', value: { userId: 'ada', scoreIncrement: -50 } },
          },
        },
      },
    },
    responses: {
      '201': {
        description: 'Applied and committed.',
        content: json(ref('schemas', 'UpdateResult'), {
          userId: 'ada',
          score: 1210,
          rank: 1,
          scoreIncrement: 10,
          eventId: 4711,
        }),
      },
      '200': {
        description:
          "A replay: this caller already applied this actionId for this user. The first answer's body.",
        headers: { 'Idempotent-Replayed': h('Idempotent-Replayed') },
        content: json(ref('schemas', 'UpdateResult')),
      },
      '400': r('BadRequest'),
      '401': r('Unauthorized'),
      '403': r('Forbidden'),
      '404': r('NotFound'),
      '413': r('ContentTooLarge'),
      '415': r('UnsupportedMediaType'),
      '422': r('Unprocessable'),
      '503': r('ServiceUnavailable'),
      ...apiErrors,
    },
  };
}

function standing(): Json {
  return {
    tags: ['Scores'],
    operationId: 'getUserStanding',
    summary: "One user's score and rank",
    description:
      'Public. From Redis; a user the complete mirror does not hold is 404 without asking MySQL. Only while ' +
      'the mirror cannot answer (Redis down, mirror rebuilding) does MySQL answer, at most ' +
      'DB_FALLBACK_CONCURRENCY such reads at once per instance (503 with Retry-After past it), each answer ' +
      'reused for DB_FALLBACK_CACHE_MS.',
    responses: {
      '200': {
        description: "The user's standing.",
        headers: { 'Cache-Control': h('Cache-Control') },
        content: json(ref('schemas', 'UserStanding'), {
          userId: 'grace',
          displayName: 'Grace Hopper',
          score: 1150,
          rank: 2,
        }),
      },
      '400': r('BadRequest'),
      '404': { ...(r('NotFound') as Json), description: 'Unknown, never scored or banned user.' },
      '503': {
        ...(r('ServiceUnavailable') as Json),
        description:
          'The mirror cannot answer and this instance already runs DB_FALLBACK_CONCURRENCY MySQL fallbacks, ' +
          'or MySQL is unreachable. Retry after `Retry-After` seconds.',
      },
      ...apiErrors,
    },
  };
}

function history(): Json {
  return {
    tags: ['Scores'],
    operationId: 'getUserHistory',
    summary: "One user's score history",
    description: 'Newest first, paged by event id. Only that user or an admin.',
    security: [{ bearerAuth: [] }],
    parameters: [
      { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
      {
        name: 'before',
        in: 'query',
        description: "Only events older than this event id: the previous page's `nextBefore`.",
        schema: { type: 'integer', minimum: 1 },
      },
    ],
    responses: {
      '200': {
        description: 'A page of events.',
        headers: { 'Cache-Control': h('Cache-Control') },
        content: json(ref('schemas', 'HistoryPage')),
      },
      '400': r('BadRequest'),
      '401': r('Unauthorized'),
      '403': r('Forbidden'),
      '503': r('ServiceUnavailable'),
      ...apiErrors,
    },
  };
}

function patchUser(): Json {
  return {
    tags: ['Users'],
    operationId: 'patchUser',
    summary: 'Ban or unban, rename, change role (admin)',
    security: [{ bearerAuth: [] }],
    requestBody: {
      required: true,
      content: json(ref('schemas', 'UserPatch'), { status: 'banned' }),
    },
    responses: {
      '200': {
        description: 'The user after the change.',
        content: json(ref('schemas', 'User'), {
          userId: 'linus',
          displayName: 'Linus Torvalds',
          role: 'player',
          status: 'banned',
        }),
      },
      '400': r('BadRequest'),
      '401': r('Unauthorized'),
      '403': r('Forbidden'),
      '404': r('NotFound'),
      '409': {
        description: 'The change would leave no active admin (checked under a lock). Nothing was changed.',
        content: { 'application/problem+json': { schema: ref('schemas', 'Problem') } },
      },
      '413': r('ContentTooLarge'),
      '415': r('UnsupportedMediaType'),
      '422': r('Unprocessable'),
      '503': r('ServiceUnavailable'),
      ...unlimitedErrors,
    },
  };
}

// ---- operations ---------------------------------------------------------------------------------------

function healthz(): Json {
  return {
    tags: ['Operations'],
    operationId: 'healthz',
    summary: 'Liveness: the process is up',
    responses: {
      '200': {
        description: 'Alive.',
        headers: { 'Cache-Control': h('Cache-Control') },
        content: json(ref('schemas', 'Health'), { status: 'ok' }),
      },
    },
  };
}

function readyz(): Json {
  return {
    tags: ['Operations'],
    operationId: 'readyz',
    summary: 'Readiness: MySQL reachable and not shutting down',
    description: 'MySQL is pinged at most once per READYZ_CACHE_MS, however many probes arrive.',
    responses: {
      '200': {
        description: 'Ready (with Redis unreachable: `degraded`, still ready).',
        headers: { 'Cache-Control': h('Cache-Control') },
        content: json(ref('schemas', 'Readiness'), { status: 'ready', mysql: 'up', redis: 'up' }),
      },
      '503': {
        description: 'Not ready: MySQL unreachable, or the instance is shutting down.',
        headers: { 'Cache-Control': h('Cache-Control') },
        content: json(ref('schemas', 'Readiness'), { status: 'unavailable', mysql: 'down', redis: 'up' }),
      },
    },
  };
}

function metrics(): Json {
  return {
    tags: ['Operations'],
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    description:
      'With METRICS_TOKEN set, only for `Authorization: Bearer <METRICS_TOKEN>`. With METRICS_PORT set, served ' +
      'on that port only (and 404 here). The shipped nginx configuration never exposes it.',
    security: [{}, { metricsAuth: [] }],
    responses: {
      '200': {
        description: 'The Prometheus text exposition format (`text/plain; version=0.0.4`).',
        headers: { 'Cache-Control': h('Cache-Control') },
        content: {
          'text/plain': {
            schema: { type: 'string' },
            example: '# TYPE http_request_duration_seconds histogram\n...',
          },
        },
      },
      '401': {
        ...(r('Unauthorized') as Json),
        description: 'METRICS_TOKEN is set and the request does not carry it.',
      },
    },
  };
}

function listFlags(): Json {
  return {
    tags: ['Admin'],
    operationId: 'listFlags',
    summary: 'Users flagged by cheat signals (admin)',
    description: 'Flags never block writes by themselves; they tell an admin where to look.',
    security: [{ bearerAuth: [] }],
    responses: {
      '200': {
        description: 'The current flags, most recently raised first (at most 200).',
        headers: { 'Cache-Control': h('Cache-Control') },
        content: json(ref('schemas', 'CheatFlags'), {
          flags: [
            {
              userId: 'mallory',
              reason: 'points_rate',
              count: 2,
              detail: '7300 points in the last minute',
              firstAt: '2026-11-22T17:01:02.000Z',
              lastAt: '2026-11-22T17:03:09.000Z',
            },
          ],
        }),
      },
      '401': r('Unauthorized'),
      '403': r('Forbidden'),
      '503': r('ServiceUnavailable'),
      ...apiErrors,
    },
  };
}

function clearFlag(): Json {
  return {
    tags: ['Admin'],
    operationId: 'clearFlag',
    summary: "Clear a user's flag (admin)",
    security: [{ bearerAuth: [] }],
    responses: {
      '204': { description: "The user's flags are cleared." },
      '400': r('BadRequest'),
      '401': r('Unauthorized'),
      '403': r('Forbidden'),
      '404': { ...(r('NotFound') as Json), description: 'The user has no flags.' },
      '503': r('ServiceUnavailable'),
      ...unlimitedErrors,
    },
  };
}

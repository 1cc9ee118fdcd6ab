import type { Config } from '../config';
import { headers, parameters, responses, schemas } from './openapi-components';
import { API_SERVERS, h, json, notModified, p, r, type Json } from './openapi-kit';
import { top } from '../leaderboard/snapshot/openapi';
import { stream } from '../transports/sse/openapi';
import { webSocket } from '../transports/ws/openapi';
import { update } from '../leaderboard/write/openapi';
import { standing, history } from '../leaderboard/read/openapi';
import { patchUser } from '../users/openapi';
import { boardOperations, boardParameters, boardSchemas } from '../leaderboard/boards/openapi';
import { healthz, readyz, metrics } from '../ops/openapi';
import { listFlags, clearFlag } from '../cheat/openapi';

const html = { 'text/html': { schema: { type: 'string' } } };

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
    '/ws/scores': { get: webSocket(config, 'webSocketTop') },
    '/api/v1/ws': { get: webSocket(config, 'webSocketTopV1') },
    '/scores/update': { servers: API_SERVERS, post: update() },
    '/scores/users/{userId}': { servers: API_SERVERS, parameters: [p('UserId')], get: standing() },
    '/scores/users/{userId}/events': { servers: API_SERVERS, parameters: [p('UserId')], get: history() },
    '/boards': { servers: API_SERVERS, get: boardOperations.list(), post: boardOperations.create(config) },
    '/boards/{boardId}': {
      servers: API_SERVERS,
      parameters: [p('BoardId')],
      get: boardOperations.get(),
      patch: boardOperations.patch(),
    },
    '/boards/{boardId}/top': {
      servers: API_SERVERS,
      parameters: [p('BoardId')],
      get: boardOperations.top(config, false),
      head: boardOperations.top(config, true),
    },
    '/boards/{boardId}/stream': {
      servers: API_SERVERS,
      parameters: [p('BoardId')],
      get: boardOperations.stream(),
    },
    '/boards/{boardId}/users/{userId}': {
      servers: API_SERVERS,
      parameters: [p('BoardId'), p('UserId')],
      get: boardOperations.standing(config),
    },
    '/boards/{boardId}/entries': {
      servers: API_SERVERS,
      parameters: [p('BoardId')],
      get: boardOperations.entries(config),
    },
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
      { name: 'Boards', description: 'Many boards, each with all-time and resetting (cron) windows.' },
      { name: 'Users', description: 'Administration of users.' },
      { name: 'Admin', description: 'Cheat signals raised by the service.' },
      { name: 'Operations', description: 'Liveness, readiness and metrics for operators.' },
      { name: 'Web', description: 'The live scoreboard page and this reference.' },
    ],
    paths,
    components: {
      schemas: { ...schemas(config), ...boardSchemas(config) },
      headers: headers(config),
      parameters: { ...parameters(), ...boardParameters(config) },
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
            (config.jwt.mode === 'oidc' || config.jwt.mode === 'jwks'
              ? `An access token from the identity provider (${config.jwt.algorithms.join(', ')}, a published kid)`
              : `A JWT signed with the configured key (${config.jwt.algorithm})`) +
            '; `sub` is the user id and `exp` is required. An unknown user is created from the token (`sub`, ' +
            '`name`) as a player when AUTO_PROVISION_USERS is on; roles never come from a token.',
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

/** Routes outside the rate limits (admin changes other than reads). */

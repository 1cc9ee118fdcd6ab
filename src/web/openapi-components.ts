import { USER_ID_PATTERN } from '../auth/tokens';
import type { Config } from '../config';
import { ACTION_ID_PATTERN } from '../leaderboard/write/schemas';

/**
 * The reusable parts of the OpenAPI document: schemas, headers, parameters and problem responses. Longer than
 * our other files on purpose: it is one reference table that every feature's operations point into with
 * `$ref`, and splitting it would scatter the targets of those references. Patterns come from the code that
 * enforces them (user id, actionId), never retyped here.
 */

type Json = Record<string, unknown>;

export const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });
const header = (name: string) => ref('headers', name);

const problemExample = (status: number, title: string, detail: string, instance: string) => ({
  type: 'about:blank',
  title,
  status,
  detail,
  instance,
  requestId: '3f0e1c52-6a7b-4d35-9f1e-2b1c7d0a9e44',
});

function problemResponse(description: string, example: Json, headers: Json = {}): Json {
  return {
    description,
    headers: { ...headers, 'X-Request-Id': header('X-Request-Id') },
    content: { 'application/problem+json': { schema: ref('schemas', 'Problem'), example } },
  };
}

export function schemas(config: Pick<Config, 'scoreboardSize' | 'maxScoreIncrement'>): Json {
  const userId = ref('schemas', 'UserId');
  const safeInteger = {
    type: 'integer',
    minimum: -Number.MAX_SAFE_INTEGER,
    maximum: Number.MAX_SAFE_INTEGER,
  };
  return {
    UserId: {
      type: 'string',
      pattern: USER_ID_PATTERN.source,
      description: "A user's id: the `sub` claim of their token.",
      examples: ['ada'],
    },
    TopEntry: {
      type: 'object',
      required: ['rank', 'userId', 'displayName', 'score'],
      additionalProperties: false,
      properties: {
        rank: {
          type: 'integer',
          minimum: 1,
          description: 'Competition rank ("1224"): equal scores share a rank and the next rank skips.',
        },
        userId,
        displayName: { type: 'string', maxLength: 100 },
        score: safeInteger,
      },
    },
    Top: {
      type: 'array',
      maxItems: config.scoreboardSize,
      description:
        'The top N in ranking order: score descending, then the earlier time the score was reached, then ' +
        'user id. Banned users are left out.',
      items: ref('schemas', 'TopEntry'),
    },
    UpdateRequest: {
      type: 'object',
      required: ['scoreIncrement'],
      additionalProperties: false,
      properties: {
        userId: {
          ...userId,
          description: 'Whose score to change; defaults to the caller. Only admins may name someone else.',
        },
        scoreIncrement: {
          ...safeInteger,
          not: { const: 0 },
          description:
            `Players: a whole number from 1 to ${config.maxScoreIncrement} (MAX_SCORE_INCREMENT). ` +
            'Admins: any non-zero whole number within the safe integer range, negative for corrections.',
        },
        actionId: ref('schemas', 'ActionId'),
        boardId: { ...ref('schemas', 'BoardId'), description: 'The board (default `global`); unknown: 404.' },
      },
    },
    ActionId: {
      type: 'string',
      pattern: ACTION_ID_PATTERN.source,
      description:
        'Idempotency key, unique per (user, author): the same key again from the same caller is applied at ' +
        'most once. Equivalent to the ' +
        '`Idempotency-Key` header.',
      examples: ['level-7-complete'],
    },
    UpdateResult: {
      type: 'object',
      required: ['userId', 'score', 'rank', 'scoreIncrement', 'eventId', 'boardId', 'windows'],
      properties: {
        boardId: ref('schemas', 'BoardId'),
        windows: {
          type: 'object',
          description:
            "Every window of the board: its cycle, the new total and rank. `score`/`rank` are the board's first window's.",
          additionalProperties: ref('schemas', 'WindowResult'),
        },
        userId,
        score: { ...safeInteger, description: 'The new total, committed in MySQL.' },
        rank: {
          type: ['integer', 'null'],
          minimum: 1,
          description: 'Competition rank after this change; null for a banned user (admin corrections).',
        },
        scoreIncrement: safeInteger,
        eventId: { type: 'integer', minimum: 1, description: 'The id of the recorded history event.' },
      },
    },
    UserStanding: {
      type: 'object',
      required: ['userId', 'displayName', 'score', 'rank'],
      properties: {
        userId,
        displayName: { type: 'string' },
        score: safeInteger,
        rank: { type: 'integer', minimum: 1 },
      },
    },
    HistoryEvent: {
      type: 'object',
      required: ['eventId', 'boardId', 'scoreIncrement', 'score', 'actorId', 'actionId', 'createdAt'],
      properties: {
        eventId: { type: 'integer', minimum: 1 },
        boardId: ref('schemas', 'BoardId'),
        scoreIncrement: safeInteger,
        score: { ...safeInteger, description: "The board's first window's total right after this event." },
        actorId: { ...userId, description: 'Who made the change: the user, or an admin.' },
        actionId: { type: ['string', 'null'] },
        createdAt: { type: 'string', format: 'date-time' },
      },
    },
    HistoryPage: {
      type: 'object',
      required: ['userId', 'events', 'nextBefore'],
      properties: {
        userId,
        events: { type: 'array', items: ref('schemas', 'HistoryEvent'), description: 'Newest first.' },
        nextBefore: {
          type: ['integer', 'null'],
          description: 'Pass as `before` for the next (older) page; null on the last page.',
        },
      },
    },
    UserPatch: {
      type: 'object',
      minProperties: 1,
      additionalProperties: false,
      properties: {
        status: {
          enum: ['active', 'banned'],
          description: 'A ban removes the user from the top N and rank answers within one tick.',
        },
        displayName: {
          type: 'string',
          minLength: 1,
          maxLength: 100,
          description:
            'Normalised to NFC with whitespace runs collapsed to one space; control, bidirectional-override, ' +
            'zero-width and other format characters are refused (`400`). Names need not be unique: answers ' +
            'always carry the user id, and the live page shows it beside a name two users share.',
        },
        role: {
          enum: ['player', 'admin'],
          description: 'Refused with `409` when it would leave no active admin.',
        },
      },
    },
    User: {
      type: 'object',
      required: ['userId', 'displayName', 'role', 'status'],
      properties: {
        userId,
        displayName: { type: 'string' },
        role: { enum: ['player', 'admin'] },
        status: { enum: ['active', 'banned'] },
      },
    },
    Problem: {
      type: 'object',
      description: 'RFC 9457 problem details. Never contains a stack trace.',
      required: ['type', 'title', 'status', 'requestId'],
      properties: {
        type: { type: 'string', const: 'about:blank' },
        title: { type: 'string' },
        status: { type: 'integer', minimum: 400, maximum: 599 },
        detail: { type: 'string' },
        instance: { type: 'string', description: 'The request path.' },
        requestId: { type: 'string', description: 'Same as the X-Request-Id response header.' },
        errors: {
          type: 'array',
          description: 'On 400: one entry per invalid field.',
          items: {
            type: 'object',
            required: ['field', 'message'],
            properties: { field: { type: 'string' }, message: { type: 'string' } },
          },
        },
      },
    },
    Health: {
      type: 'object',
      required: ['status'],
      properties: { status: { const: 'ok' } },
    },
    Readiness: {
      type: 'object',
      required: ['status', 'mysql', 'redis'],
      description:
        'MySQL decides readiness; Redis being unreachable degrades it without failing. Fails while the ' +
        'instance shuts down, and with an identity provider while its keys could never be loaded.',
      properties: {
        status: { enum: ['ready', 'degraded', 'unavailable', 'shutting-down'] },
        mysql: { enum: ['up', 'down', 'unknown'] },
        redis: { enum: ['up', 'degraded'] },
        jwks: { enum: ['loaded', 'unavailable'], description: 'Only with OIDC_ISSUER or JWT_JWKS_URL.' },
        broker: {
          type: 'object',
          description:
            'Only with AMQP_URL; never fails readiness. `consumed`: delta messages applied, replayed, dead-lettered ' +
            'and retried here; `relay`: whether this instance is the event relay, the last event the broker ' +
            'confirmed and the newest committed one.',
          properties: {
            connected: { type: 'boolean' },
            consumed: { type: 'object', additionalProperties: { type: 'integer' } },
            relay: { type: 'object' },
          },
        },
      },
    },
    CheatFlag: {
      type: 'object',
      required: ['userId', 'reason', 'count', 'detail', 'firstAt', 'lastAt'],
      properties: {
        userId,
        reason: {
          enum: ['points_rate', 'rate_limited'],
          description:
            '`points_rate`: more points per minute than SUSPICIOUS_POINTS_PER_MIN; `rate_limited`: hit the ' +
            'write limit again and again.',
        },
        count: { type: 'integer', minimum: 1, description: 'How often the signal fired.' },
        detail: { type: 'string' },
        firstAt: { type: 'string', format: 'date-time' },
        lastAt: { type: 'string', format: 'date-time' },
      },
    },
    CheatFlags: {
      type: 'object',
      required: ['flags'],
      properties: { flags: { type: 'array', items: ref('schemas', 'CheatFlag') } },
    },
  };
}

export function headers(config: Pick<Config, 'pollIntervalS' | 'retryAfterS' | 'pollSharedMaxAgeS'>): Json {
  return {
    ETag: {
      description:
        'Strong entity tag of the representation. For /scores/top it is identical on every instance for the ' +
        'same content and equals the SSE event id.',
      schema: { type: 'string', examples: ['"mT0k0cJ8bJwq0l7Qn2zv3Jw1g2E"'] },
    },
    'Cache-Control': {
      description:
        'On poll answers: `public, max-age=0, s-maxage=N, stale-while-revalidate=N` (N = POLL_SHARED_MAX_AGE_S; ' +
        'browsers revalidate every poll, shared caches may keep it N seconds), or `no-cache` when N is 0.',
      schema: {
        type: 'string',
        examples: [
          `public, max-age=0, s-maxage=${config.pollSharedMaxAgeS}, stale-while-revalidate=${config.pollSharedMaxAgeS}`,
          'no-cache',
        ],
      },
    },
    'X-Poll-Interval': {
      description: 'How many seconds a polling client should wait before its next request.',
      schema: { type: 'integer', minimum: 1, examples: [config.pollIntervalS] },
    },
    'X-Request-Id': {
      description: "The request's id (the caller's X-Request-Id when it is acceptable, else a new one).",
      schema: { type: 'string' },
    },
    'Retry-After': {
      description: 'Seconds to wait before trying again.',
      schema: { type: 'integer', minimum: 1, examples: [config.retryAfterS] },
    },
    'Idempotent-Replayed': {
      description: 'Present on a replay: this actionId was already applied and nothing changed.',
      schema: { type: 'string', const: 'true' },
    },
    'RateLimit-Limit': {
      description:
        'Requests allowed per minute in this limit (draft-ietf-httpapi-ratelimit-headers-06). Writes carry ' +
        'the RateLimit-* fields on every answer; reads once at most half of the budget is left; every 429 has them.',
      schema: { type: 'integer' },
    },
    'RateLimit-Remaining': { description: 'Requests left in this window.', schema: { type: 'integer' } },
    'RateLimit-Reset': { description: 'Seconds until the window resets.', schema: { type: 'integer' } },
    'WWW-Authenticate': { schema: { type: 'string', examples: ['Bearer realm="scoreboard"'] } },
    'Content-Security-Policy': { schema: { type: 'string' } },
    'X-Accel-Buffering': {
      description: 'Tells nginx not to buffer the stream.',
      schema: { type: 'string', const: 'no' },
    },
  };
}

export function parameters(): Json {
  return {
    UserId: { name: 'userId', in: 'path', required: true, schema: ref('schemas', 'UserId') },
    IfNoneMatch: {
      name: 'If-None-Match',
      in: 'header',
      description:
        'The ETag you hold (RFC 9110: a list of tags, weak comparison, or `*`). A match answers 304 with no body.',
      schema: { type: 'string', examples: ['"mT0k0cJ8bJwq0l7Qn2zv3Jw1g2E"'] },
    },
    IdempotencyKey: {
      name: 'Idempotency-Key',
      in: 'header',
      description: "Same as the body's `actionId`; when both are sent they must be equal (else 400).",
      schema: ref('schemas', 'ActionId'),
    },
    LastEventId: {
      name: 'Last-Event-ID',
      in: 'header',
      description:
        'Sent by EventSource when it reconnects: the id of the last event received. When it equals the ' +
        'current version the initial event is skipped.',
      schema: { type: 'string' },
    },
    XRequestId: {
      name: 'X-Request-Id',
      in: 'header',
      description: 'Your id for this request (1-128 of letters, digits, `_ . : -`), echoed back and logged.',
      schema: { type: 'string', pattern: '^[\\w.:-]{1,128}$' },
    },
  };
}

export function responses(): Json {
  const retry = { 'Retry-After': header('Retry-After') };
  return {
    BadRequest: {
      description: 'The request is invalid; `errors` lists each invalid field.',
      headers: { 'X-Request-Id': header('X-Request-Id') },
      content: {
        'application/problem+json': {
          schema: ref('schemas', 'Problem'),
          example: {
            ...problemExample(400, 'Bad Request', 'The request body is invalid.', '/api/v1/scores/update'),
            errors: [
              { field: 'scoreIncrement', message: '"scoreIncrement" must be greater than or equal to 1' },
            ],
          },
        },
      },
    },
    Unauthorized: problemResponse(
      'No bearer token, or one that is invalid or expired (the answer does not say which check failed).',
      problemExample(401, 'Unauthorized', 'The bearer token is invalid or expired.', '/api/v1/scores/update'),
      { 'WWW-Authenticate': header('WWW-Authenticate') },
    ),
    Forbidden: problemResponse(
      'Authenticated, but not allowed: banned, not registered, or not an admin where one is required.',
      problemExample(403, 'Forbidden', 'Players may only add to their own score.', '/api/v1/scores/update'),
    ),
    NotFound: problemResponse(
      'No such user (or no such resource).',
      problemExample(404, 'Not Found', 'No ranked user "nobody".', '/api/v1/scores/users/nobody'),
    ),
    ContentTooLarge: problemResponse(
      'The body is larger than MAX_BODY_BYTES.',
      problemExample(
        413,
        'Content Too Large',
        'The body must not exceed 4096 bytes.',
        '/api/v1/scores/update',
      ),
    ),
    UnsupportedMediaType: problemResponse(
      'The body is not UTF-8 `application/json`.',
      problemExample(
        415,
        'Unsupported Media Type',
        'Send the body as application/json.',
        '/api/v1/scores/update',
      ),
    ),
    Unprocessable: problemResponse(
      'Well-formed but impossible: an actionId reused with a different increment, a total that would leave ' +
        'the safe integer range, or an admin banning or demoting themselves.',
      problemExample(
        422,
        'Unprocessable Content',
        'This actionId was already used for this user with a different scoreIncrement.',
        '/api/v1/scores/update',
      ),
    ),
    TooManyRequests: problemResponse(
      'Rate limited: score writes per user, reads per client address, open streams per client address. ' +
        'Wait Retry-After seconds (and retry a write with the same actionId).',
      problemExample(
        429,
        'Too Many Requests',
        'Rate limit "writes" exceeded; retry in 12 s.',
        '/api/v1/scores/update',
      ),
      {
        ...retry,
        'RateLimit-Limit': header('RateLimit-Limit'),
        'RateLimit-Remaining': header('RateLimit-Remaining'),
        'RateLimit-Reset': header('RateLimit-Reset'),
      },
    ),
    ServiceUnavailable: problemResponse(
      'The database cannot be reached right now, or (writes) more than WRITE_QUEUE_MAX updates are waiting. ' +
        'Nothing was changed; retry after Retry-After seconds (with the same actionId for writes).',
      problemExample(
        503,
        'Service Unavailable',
        'The score database is unreachable; try again shortly.',
        '/api/v1/scores/update',
      ),
      retry,
    ),
    InternalError: problemResponse(
      'An unexpected error; the request id identifies it in the logs.',
      problemExample(
        500,
        'Internal Server Error',
        'Something went wrong on our side.',
        '/api/v1/scores/update',
      ),
    ),
  };
}

import type { Config } from '../../config';
import { ref } from '../../web/openapi-components';
import { apiErrors, h, json, notModified, p, r, TOP_EXAMPLE, type Json } from '../../web/openapi-kit';
import { BOARD_ID_PATTERN, WINDOW_NAME_PATTERN } from './schemas';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts): boards and their reads. */

const s = (name: string) => ref('schemas', name);
const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: s('Problem') } },
});

export function boardSchemas(config: Config): Record<string, Json> {
  const entry = s('TopEntry');
  return {
    BoardId: { type: 'string', pattern: BOARD_ID_PATTERN.source, examples: ['global', 'chess'] },
    Window: {
      type: 'object',
      required: ['name', 'reset', 'cycle', 'cycleStart', 'nextReset'],
      properties: {
        name: { type: 'string', pattern: WINDOW_NAME_PATTERN.source },
        reset: {
          type: ['string', 'null'],
          description: '5-field cron expression in UTC; null never resets.',
        },
        cycle: { type: 'string', description: '`all`, or the current cycle start (ISO 8601, UTC).' },
        cycleStart: { type: ['string', 'null'], format: 'date-time' },
        nextReset: { type: ['string', 'null'], format: 'date-time' },
      },
    },
    Board: {
      type: 'object',
      required: ['id', 'title', 'createdAt', 'windows'],
      properties: {
        id: s('BoardId'),
        title: { type: 'string' },
        createdAt: { type: 'string', format: 'date-time' },
        windows: { type: 'array', items: s('Window') },
      },
    },
    BoardList: {
      type: 'object',
      required: ['boards'],
      properties: { boards: { type: 'array', items: s('Board') } },
    },
    BoardCreate: {
      type: 'object',
      required: ['id', 'title', 'windows'],
      additionalProperties: false,
      properties: {
        id: s('BoardId'),
        title: {
          type: 'string',
          maxLength: 100,
          description: 'Shown to every viewer: the display-name rule.',
        },
        windows: {
          type: 'array',
          minItems: 1,
          maxItems: config.boards.maxWindows,
          description: 'Fixed at creation. Presets, or {name, reset}; names unique.',
          items: {
            oneOf: [
              { type: 'string', enum: ['all', 'day', 'week', 'month'] },
              {
                type: 'object',
                required: ['name', 'reset'],
                additionalProperties: false,
                properties: {
                  name: { type: 'string', pattern: WINDOW_NAME_PATTERN.source },
                  reset: { type: ['string', 'null'], examples: ['* * * * *', '0 6 * * 1'] },
                },
              },
            ],
          },
        },
      },
    },
    BoardPatch: {
      type: 'object',
      required: ['title'],
      additionalProperties: false,
      properties: { title: { type: 'string', maxLength: 100 } },
    },
    WindowResult: {
      type: 'object',
      required: ['cycle', 'score', 'rank'],
      properties: {
        cycle: { type: 'string' },
        score: { type: 'integer' },
        rank: { type: ['integer', 'null'] },
      },
    },
    BoardStanding: {
      type: 'object',
      required: ['userId', 'displayName', 'score', 'rank', 'boardId', 'window', 'cycle'],
      properties: {
        userId: s('UserId'),
        displayName: { type: 'string' },
        score: { type: 'integer' },
        rank: { type: 'integer', minimum: 1 },
        boardId: s('BoardId'),
        window: { type: 'string' },
        cycle: { type: 'string' },
        above: {
          type: 'array',
          items: entry,
          description: 'With `around`: up to N entries above, in rank order.',
        },
        below: {
          type: 'array',
          items: entry,
          description: 'With `around`: up to N entries below, in rank order.',
        },
      },
    },
    EntriesPage: {
      type: 'object',
      required: ['boardId', 'window', 'cycle', 'entries', 'nextCursor'],
      properties: {
        boardId: s('BoardId'),
        window: { type: 'string' },
        cycle: { type: 'string' },
        entries: { type: 'array', items: entry },
        nextCursor: {
          type: ['string', 'null'],
          description: 'Opaque; bound to this board window and cycle.',
        },
      },
    },
  };
}

export function boardParameters(config: Config): Record<string, Json> {
  return {
    BoardId: { name: 'boardId', in: 'path', required: true, schema: s('BoardId') },
    Window: {
      name: 'window',
      in: 'query',
      description: 'The window (default `all`); unknown on this board: 404.',
      schema: { type: 'string', pattern: WINDOW_NAME_PATTERN.source, default: 'all' },
    },
    At: {
      name: 'at',
      in: 'query',
      description:
        'An ISO 8601 instant: read the cycle that contains it (a closed cycle comes from MySQL, cached for ' +
        `${config.boards.archiveCacheMs} ms). In the future or before the board existed: 404.`,
      schema: { type: 'string', format: 'date-time' },
    },
  };
}

const windowParams = [p('Window'), p('At')];

export const boardOperations = {
  list: (): Json => ({
    tags: ['Boards'],
    operationId: 'listBoards',
    summary: 'Every board, its windows, their current cycles and next resets',
    responses: { '200': { description: 'The boards.', content: json(s('BoardList')) }, ...apiErrors },
  }),
  get: (): Json => ({
    tags: ['Boards'],
    operationId: 'getBoard',
    summary: 'One board',
    responses: {
      '200': { description: 'The board.', content: json(s('Board')) },
      '400': r('BadRequest'),
      '404': r('NotFound'),
      ...apiErrors,
    },
  }),
  create: (config: Config): Json => ({
    tags: ['Boards'],
    operationId: 'createBoard',
    summary: 'Create a board (admin)',
    description: `At most ${config.boards.max} boards (MAX_BOARDS), ${config.boards.maxWindows} windows each.`,
    security: [{ bearerAuth: [] }],
    requestBody: {
      required: true,
      content: json(s('BoardCreate'), {
        id: 'chess',
        title: 'Chess',
        windows: ['all', 'day', { name: 'minute', reset: '* * * * *' }],
      }),
    },
    responses: {
      '201': {
        description: 'Created.',
        headers: { Location: { schema: { type: 'string' } } },
        content: json(s('Board')),
      },
      '400': r('BadRequest'),
      '401': r('Unauthorized'),
      '403': r('Forbidden'),
      '409': problem('A board with this id exists, or MAX_BOARDS is reached.'),
      ...apiErrors,
    },
  }),
  patch: (): Json => ({
    tags: ['Boards'],
    operationId: 'renameBoard',
    summary: 'Rename a board (admin); windows never change',
    security: [{ bearerAuth: [] }],
    requestBody: { required: true, content: json(s('BoardPatch')) },
    responses: {
      '200': { description: 'Renamed.', content: json(s('Board')) },
      '400': r('BadRequest'),
      '401': r('Unauthorized'),
      '403': r('Forbidden'),
      '404': r('NotFound'),
      ...apiErrors,
    },
  }),
  top: (config: Config, head: boolean): Json => ({
    tags: ['Boards'],
    operationId: head ? 'headBoardTop' : 'getBoardTop',
    summary: "A board window's top N",
    description:
      'Exactly like `/scores/top` (strong ETag, 304, X-Poll-Interval), for the current cycle from memory ' +
      `(snapshots tick every ${config.snapshotTickMs} ms). A resetting window's version names its cycle, so a ` +
      'rollover is a new version. With `at`, a past cycle.',
    parameters: [...windowParams, p('IfNoneMatch')],
    responses: {
      '200': {
        description: 'The top N.',
        headers: {
          ETag: h('ETag'),
          'Cache-Control': h('Cache-Control'),
          'X-Poll-Interval': h('X-Poll-Interval'),
        },
        ...(head ? {} : { content: json(s('Top'), TOP_EXAMPLE) }),
      },
      '304': notModified({ 'X-Poll-Interval': h('X-Poll-Interval') }),
      '400': r('BadRequest'),
      '404': r('NotFound'),
      '503': r('ServiceUnavailable'),
      ...apiErrors,
    },
  }),
  stream: (): Json => ({
    tags: ['Boards'],
    operationId: 'streamBoardTop',
    summary: "A board window's top N as Server-Sent Events",
    description: 'Exactly like `/scores/stream`; a cycle rollover is a change (the new, empty top at once).',
    parameters: [p('Window'), p('LastEventId')],
    responses: {
      '200': {
        description: 'An endless `text/event-stream`.',
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      },
      '400': r('BadRequest'),
      '404': r('NotFound'),
      '503': r('ServiceUnavailable'),
      ...apiErrors,
    },
  }),
  standing: (config: Config): Json => ({
    tags: ['Boards'],
    operationId: 'getBoardStanding',
    summary: "A user's score and rank in a cycle, with neighbours",
    parameters: [
      ...windowParams,
      {
        name: 'around',
        in: 'query',
        description: `Up to N entries above and below (N <= ${config.boards.maxAround}).`,
        schema: { type: 'integer', minimum: 0, maximum: config.boards.maxAround, default: 0 },
      },
    ],
    responses: {
      '200': { description: 'The standing.', content: json(s('BoardStanding')) },
      '400': r('BadRequest'),
      '404': r('NotFound'),
      '503': r('ServiceUnavailable'),
      ...apiErrors,
    },
  }),
  entries: (config: Config): Json => ({
    tags: ['Boards'],
    operationId: 'listBoardEntries',
    summary: 'The whole board window in rank order, keyset paged',
    parameters: [
      ...windowParams,
      {
        name: 'limit',
        in: 'query',
        schema: { type: 'integer', minimum: 1, maximum: config.boards.maxPage, default: 50 },
      },
      {
        name: 'cursor',
        in: 'query',
        description: "From the previous page; another cycle's cursor is 400.",
        schema: { type: 'string' },
      },
    ],
    responses: {
      '200': { description: 'A page.', content: json(s('EntriesPage')) },
      '400': r('BadRequest'),
      '404': r('NotFound'),
      '503': r('ServiceUnavailable'),
      ...apiErrors,
    },
  }),
};

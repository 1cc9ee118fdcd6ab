import { ref } from '../../web/openapi-components';
import { apiErrors, h, json, r, type Json } from '../../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function standing(): Json {
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

export function history(): Json {
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

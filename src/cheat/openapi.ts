import { ref } from '../web/openapi-components';
import { apiErrors, h, json, r, unlimitedErrors, type Json } from '../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function listFlags(): Json {
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

export function clearFlag(): Json {
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

import { ref } from '../web/openapi-components';
import { json, r, unlimitedErrors, type Json } from '../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function patchUser(): Json {
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

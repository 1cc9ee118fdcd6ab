import { ref } from '../../web/openapi-components';
import { apiErrors, h, json, p, r, type Json } from '../../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function update(): Json {
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

import type { Config } from '../../config';
import { ref } from '../../web/openapi-components';
import { apiErrors, h, json, notModified, p, TOP_EXAMPLE, type Json } from '../../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function top(config: Config, head: boolean): Json {
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

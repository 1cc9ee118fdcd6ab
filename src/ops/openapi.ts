import { ref } from '../web/openapi-components';
import { h, json, r, type Json } from '../web/openapi-kit';

/** This feature's part of the OpenAPI document (assembled in src/web/openapi.ts). */
export function healthz(): Json {
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

export function readyz(): Json {
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

export function metrics(): Json {
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

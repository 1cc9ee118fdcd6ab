import { ref } from './openapi-components';

/**
 * The small builders every feature's part of the OpenAPI document uses (src/<feature>/openapi.ts); the
 * document itself is assembled in src/web/openapi.ts.
 */
export type Json = Record<string, unknown>;

/** The versioned API answers under both base paths: /api is the current version, as first specified. */
export const API_SERVERS = [
  { url: '/api/v1', description: 'Version 1' },
  { url: '/api', description: 'The current version (the same operations as /api/v1)' },
];

export const h = (name: string) => ref('headers', name);
export const p = (name: string) => ref('parameters', name);
export const r = (name: string) => ref('responses', name);

export const json = (schema: Json, example?: unknown) => ({
  'application/json': example === undefined ? { schema } : { schema, example },
});
export const notModified = (extra: Json = {}) => ({
  description: 'Not Modified: your If-None-Match matches; no body.',
  headers: { ETag: h('ETag'), 'Cache-Control': h('Cache-Control'), ...extra },
});

export const TOP_EXAMPLE = [
  { rank: 1, userId: 'ada', displayName: 'Ada Lovelace', score: 1200 },
  { rank: 2, userId: 'grace', displayName: 'Grace Hopper', score: 1150 },
  { rank: 2, userId: 'alan', displayName: 'Alan Turing', score: 1150 },
  { rank: 4, userId: 'edsger', displayName: 'Edsger Dijkstra', score: 990 },
];

/** Errors every rate-limited API route can answer, and those of the routes without a limit. */
export const apiErrors = { '429': r('TooManyRequests'), '500': r('InternalError') };
export const unlimitedErrors = { '500': r('InternalError') };

import { createHash } from 'node:crypto';

/** A strong ETag derived from the bytes alone, so every instance names the same content the same way. */
export function etagFor(body: Buffer | string): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
}

/**
 * RFC 9110 If-None-Match: `*` matches any current representation; otherwise a comma-separated list of
 * entity tags compared weakly (a W/ prefix on either side is ignored).
 */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const value = header.trim();
  if (value === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  for (const raw of value.match(/(?:W\/)?"[^"]*"/g) ?? []) {
    if (raw.replace(/^W\//, '') === opaque) return true;
  }
  return false;
}

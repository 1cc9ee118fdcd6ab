import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Context } from 'koa';
import { etagFor, ifNoneMatchHits } from '../http/etag';

/** A file held in memory with its validator, and a gzip copy when that is worth sending. */
export interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
  gzip?: { body: Buffer; etag: string };
  /** A short content hash, used as the `?v=` cache-busting version of asset URLs. */
  version: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export function contentTypeFor(file: string): string {
  const type = TYPES[path.extname(file).toLowerCase()];
  if (!type) throw new Error(`No content type known for ${file}`);
  return type;
}

export function staticFile(body: Buffer | string, type: string): StaticFile {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const etag = etagFor(bytes);
  const file: StaticFile = { body: bytes, type, etag, version: etag.slice(1, 11) };
  // Text compresses well; tiny files are not worth the Vary dance.
  if (bytes.length >= 1024 && !type.startsWith('image/')) {
    file.gzip = { body: gzipSync(bytes, { level: 9 }), etag: `${etag.slice(0, -1)}-gz"` };
  }
  return file;
}

export function loadStaticFile(filePath: string): StaticFile {
  return staticFile(readFileSync(filePath), contentTypeFor(filePath));
}

/**
 * The `public/` folder at the repository root, whether running from `src/web` (tsx) or `dist/src/web`
 * (compiled). Missing files are a packaging mistake: fail at start-up, not on the first visitor.
 */
export function findPublicDir(): string {
  const candidates = [path.resolve(__dirname, '../../public'), path.resolve(__dirname, '../../../public')];
  const found = candidates.find((dir) => existsSync(path.join(dir, 'index.html')));
  if (!found)
    throw new Error(`The web page's files are missing: looked for index.html in ${candidates.join(', ')}`);
  return found;
}

/**
 * Answers with a static file: the right type, an ETag, 304 on a matching If-None-Match, and the gzip copy
 * when the client accepts it (its own ETag, since it is a different representation).
 */
export function sendStatic(ctx: Context, file: StaticFile, cacheControl: string): void {
  const gzip = file.gzip && ctx.acceptsEncodings('gzip', 'identity') === 'gzip' ? file.gzip : undefined;
  const etag = gzip ? gzip.etag : file.etag;
  if (file.gzip) ctx.vary('Accept-Encoding');
  ctx.set('Cache-Control', cacheControl);
  ctx.set('ETag', etag);
  ctx.set('X-Content-Type-Options', 'nosniff');
  if (ifNoneMatchHits(ctx.get('if-none-match'), etag)) {
    ctx.status = 304;
    return;
  }
  ctx.type = file.type;
  if (gzip) ctx.set('Content-Encoding', 'gzip');
  ctx.body = gzip ? gzip.body : file.body;
}

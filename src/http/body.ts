import getRawBody from 'raw-body';
import type { Context } from 'koa';
import { badRequest, HttpError } from './errors';

/**
 * Reads a small JSON body: 415 unless it is UTF-8 JSON, 413 past the limit (checked while streaming, so a
 * large body is never buffered), 400 when it does not parse.
 */
export async function readJsonBody(ctx: Context, limitBytes: number): Promise<unknown> {
  const hasBody = Boolean(ctx.get('transfer-encoding')) || Number(ctx.get('content-length') || 0) > 0;
  if (!hasBody) throw badRequest('A JSON request body is required.');
  if (!ctx.is('application/json')) {
    throw new HttpError(
      415,
      'Unsupported Media Type',
      'Send the body as application/json.',
      {},
      { Accept: 'application/json' },
    );
  }
  const charset = (ctx.request.charset || 'utf-8').toLowerCase();
  if (charset !== 'utf-8' && charset !== 'utf8') {
    throw new HttpError(415, 'Unsupported Media Type', 'Only UTF-8 JSON is accepted.');
  }
  let text: string;
  try {
    text = await getRawBody(ctx.req, {
      limit: limitBytes,
      length: ctx.get('content-length') || undefined,
      encoding: 'utf-8',
    });
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') {
      throw new HttpError(
        413,
        'Content Too Large',
        `The body must not exceed ${limitBytes} bytes.`,
        {},
        { Connection: 'close' },
      );
    }
    if (type === 'request.size.invalid') throw badRequest('The body length does not match Content-Length.');
    throw badRequest('The request body could not be read.');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw badRequest('The body is not valid JSON.');
  }
}

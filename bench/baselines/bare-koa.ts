import http from 'node:http';
import Koa from 'koa';

/**
 * The polls baseline: Koa with one handler that answers the bytes and ETag it was given, with a 304 on a
 * matching If-None-Match. No router, no middleware, no logging: the floor for a Koa JSON poll.
 */
const body = Buffer.from(process.env.BARE_BODY_B64 ?? '', 'base64');
const etag = process.env.BARE_ETAG ?? '"none"';

const app = new Koa();
app.use((ctx) => {
  ctx.set('ETag', etag);
  ctx.set('Cache-Control', 'no-cache');
  if (ctx.get('if-none-match') === etag) {
    ctx.status = 304;
    return;
  }
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = body;
});
http.createServer(app.callback()).listen(Number(process.env.PORT), '127.0.0.1');

import { expect } from 'chai';
import { expectProblem } from './helpers/assertions';
import { startInstance, type Instance } from './helpers/instance';

/** The page, its assets, /openapi.json and /docs over plain HTTP: types, caching, validators, CSP. */
describe('web routes', () => {
  let app: Instance;

  before(async () => {
    app = await startInstance();
  });
  after(() => app.close());

  it('serves the page with a strict same-origin CSP, revalidated by ETag', async () => {
    const res = await app.request.get('/');
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.equal('text/html; charset=utf-8');
    expect(res.headers['cache-control']).to.equal('no-cache');
    expect(res.headers['x-content-type-options']).to.equal('nosniff');
    const csp = res.headers['content-security-policy'];
    expect(csp).to.include("default-src 'none'");
    expect(csp).to.include("script-src 'self'");
    expect(csp).to.include("connect-src 'self'");
    expect(csp).to.include("frame-ancestors 'none'");
    expect(csp).to.not.match(/unsafe|\*|https?:/);
    expect(res.text).to.match(/src="\/assets\/app\.js\?v=[\w-]+"/);
    expect(res.text).to.not.match(/https?:\/\//); // nothing from a CDN

    const again = await app.request.get('/').set('If-None-Match', res.headers.etag);
    expect(again.status).to.equal(304);
    expect(again.text).to.equal('');
    const head = await app.request.head('/');
    expect(head.status).to.equal(200);
    expect(head.headers.etag).to.be.a('string');
  });

  it('caches assets for a year only under their current version, compresses them, 304s them', async () => {
    const page = await app.request.get('/');
    const script = /src="(\/assets\/app\.js\?v=[\w-]+)"/.exec(page.text)![1];
    const style = /href="(\/assets\/app\.css\?v=[\w-]+)"/.exec(page.text)![1];

    const js = await app.request.get(script).set('Accept-Encoding', 'gzip');
    expect(js.status).to.equal(200);
    expect(js.headers['content-type']).to.equal('text/javascript; charset=utf-8');
    expect(js.headers['cache-control']).to.equal('public, max-age=31536000, immutable');
    expect(js.headers['content-encoding']).to.equal('gzip');
    expect(js.headers.vary).to.match(/accept-encoding/i);
    expect(js.text).to.include('EventSource');

    const plain = await app.request.get('/assets/app.js').set('Accept-Encoding', 'identity');
    expect(plain.headers['cache-control']).to.equal('no-cache');
    expect(plain.headers['content-encoding']).to.equal(undefined);
    expect(plain.headers.etag).to.not.equal(js.headers.etag); // a different representation
    for (const [encoding, etag] of [
      ['identity', plain.headers.etag],
      ['gzip', js.headers.etag],
    ]) {
      const revalidated = await app.request
        .get('/assets/app.js')
        .set('Accept-Encoding', encoding)
        .set('If-None-Match', etag);
      expect(revalidated.status, encoding).to.equal(304);
    }

    const css = await app.request.get(style);
    expect(css.headers['content-type']).to.equal('text/css; charset=utf-8');
    const icon = await app.request.get('/assets/favicon.svg');
    expect(icon.headers['content-type']).to.equal('image/svg+xml');
  });

  it('answers unknown assets and wrong methods as problems', async () => {
    expectProblem(await app.request.get('/assets/nope.js'), 404);
    expectProblem(await app.request.get('/assets/..%2Fpackage.json'), 404);
    expectProblem(await app.request.get('/assets/../package.json'), 404);
    const post = await app.request.post('/').send({});
    expectProblem(post, 405);
    expect(post.headers.allow).to.include('GET');
  });

  it('serves the OpenAPI document and the reference page with its renderer from our origin', async () => {
    const spec = await app.request.get('/openapi.json');
    expect(spec.status).to.equal(200);
    expect(spec.headers['content-type']).to.equal('application/json; charset=utf-8');
    expect(spec.body.openapi).to.equal('3.1.0');
    expect((await app.request.get('/openapi.json').set('If-None-Match', spec.headers.etag)).status).to.equal(
      304,
    );

    const docs = await app.request.get('/docs');
    expect(docs.status).to.equal(200);
    expect(docs.headers['content-type']).to.equal('text/html; charset=utf-8');
    expect(docs.headers['content-security-policy']).to.include("script-src 'self';");
    expect(docs.text).to.include('spec-url="/openapi.json"');
    const renderer = /src="(\/assets\/redoc\.standalone\.js\?v=[\w.-]+)"/.exec(docs.text)![1];
    const bundle = await app.request.get(renderer).set('Accept-Encoding', 'gzip');
    expect(bundle.status).to.equal(200);
    expect(bundle.headers['content-type']).to.equal('text/javascript; charset=utf-8');
    expect(bundle.headers['content-encoding']).to.equal('gzip');
    expect(bundle.text).to.not.include('cdn.redoc.ly/redoc/logo-mini.svg');
  });
});

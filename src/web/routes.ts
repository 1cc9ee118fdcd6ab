import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import type { Config } from '../config';
import { notFound } from '../http/errors';
import { openApiDocument } from './openapi';
import { DOCS_CSP, PAGE_CSP, setDocumentHeaders } from './page-headers';
import {
  contentTypeFor,
  findPublicDir,
  loadStaticFile,
  sendStatic,
  staticFile,
  type StaticFile,
} from './static-files';

const REVALIDATE = 'no-cache';
const IMMUTABLE = 'public, max-age=31536000, immutable';

interface Asset {
  version: string;
  file: () => StaticFile;
}

/**
 * The live page (`/`), its assets, the OpenAPI document and the API reference (`/docs`). Everything is read
 * at start-up and answered from memory; HTML revalidates on every visit (ETag, 304), assets referenced with
 * their content version are cached for a year.
 */
export function webRoutes(router: Router, deps: { config: Config; publicDir?: string }) {
  const publicDir = deps.publicDir ?? findPublicDir();
  const assets = loadAssets(publicDir);
  const page = staticFile(
    versioned(readFileSync(path.join(publicDir, 'index.html'), 'utf8'), assets),
    'text/html; charset=utf-8',
  );
  const docs = staticFile(
    versioned(readFileSync(path.join(publicDir, 'docs.html'), 'utf8'), assets),
    'text/html; charset=utf-8',
  );
  const openapi = staticFile(
    `${JSON.stringify(openApiDocument(deps.config), null, 2)}\n`,
    'application/json; charset=utf-8',
  );

  router.get('/', (ctx) => {
    setDocumentHeaders(ctx, PAGE_CSP);
    sendStatic(ctx, page, REVALIDATE);
  });

  router.get('/docs', (ctx) => {
    setDocumentHeaders(ctx, DOCS_CSP);
    sendStatic(ctx, docs, REVALIDATE);
  });

  router.get('/openapi.json', (ctx) => sendStatic(ctx, openapi, REVALIDATE));

  router.get('/assets/:file', (ctx) => {
    const asset = assets.get(ctx.params.file);
    if (!asset) throw notFound(`No asset named "${ctx.params.file}".`);
    // Only a URL carrying the current version may be cached for good; anything else revalidates.
    sendStatic(ctx, asset.file(), ctx.query.v === asset.version ? IMMUTABLE : REVALIDATE);
  });
}

/** Everything in public/assets, plus the API reference renderer served from its npm package (no CDN). */
function loadAssets(publicDir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const dir = path.join(publicDir, 'assets');
  for (const name of readdirSync(dir)) {
    const file = loadStaticFile(path.join(dir, name));
    assets.set(name, { version: file.version, file: () => file });
  }
  const bundle = require.resolve('redoc/bundles/redoc.standalone.js');
  const { version } = JSON.parse(readFileSync(path.join(bundle, '../../package.json'), 'utf8')) as {
    version: string;
  };
  let loaded: StaticFile | undefined;
  // 1 MB that only /docs readers need: read (and compressed) on first use, not by every instance at start-up.
  assets.set('redoc.standalone.js', { version, file: () => (loaded ??= loadRenderer(bundle)) });
  return assets;
}

/**
 * The renderer's sidebar credit shows a logo from the vendor's CDN. The reference makes no third-party
 * requests (its CSP would refuse this one and log an error), so the logo becomes an empty inline image;
 * the credit's text and link stay.
 */
const VENDOR_LOGO = 'https://cdn.redoc.ly/redoc/logo-mini.svg';
const EMPTY_IMAGE = 'data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7';

function loadRenderer(file: string): StaticFile {
  const source = readFileSync(file, 'utf8').split(VENDOR_LOGO).join(EMPTY_IMAGE);
  return staticFile(source, contentTypeFor(file));
}

/** Points `/assets/<name>` references at `/assets/<name>?v=<version>`, so a deploy never mixes versions. */
function versioned(html: string, assets: Map<string, Asset>): string {
  return html.replace(/(["'])\/assets\/([\w.-]+)\1/g, (match, quote: string, name: string) => {
    const asset = assets.get(name);
    return asset ? `${quote}/assets/${name}?v=${asset.version}${quote}` : match;
  });
}

import { expect } from 'chai';
import { createApp } from '../src/app';
import { createContainer } from '../src/container';
import { openApiDocument } from '../src/web/openapi';
import { testConfig } from './helpers/env';
import { listRoutes } from './helpers/routes';

type Json = Record<string, unknown>;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** The app exactly as the server wires it, without listening: only its routers are read. */
function buildApp() {
  const config = testConfig();
  const container = createContainer(config);
  return { app: createApp(container), config, close: () => container.disconnect() };
}

/**
 * "METHOD /full/path" for every route, with `:param` written `{param}`. HEAD is left out where GET is there
 * too: the router answers HEAD for every GET by itself (RFC 9110), documented or not.
 */
function normalise(routes: Array<{ method: string; path: string }>): string[] {
  const keys = new Set(routes.map((r) => `${r.method.toUpperCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`));
  for (const key of keys) if (key.startsWith('HEAD ') && keys.has(`GET ${key.slice(5)}`)) keys.delete(key);
  return [...keys].sort();
}

/** Every operation of the document at its full paths: each path's (or the document's) servers + the path. */
function documentedRoutes(doc: Json): Array<{ method: string; path: string }> {
  const rootServers = (doc.servers as Array<{ url: string }>) ?? [{ url: '/' }];
  const out: Array<{ method: string; path: string }> = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
    const servers = (item.servers as Array<{ url: string }>) ?? rootServers;
    for (const { url } of servers) {
      const full = `${url.replace(/\/$/, '')}${path}` || '/';
      for (const method of METHODS) if (item[method]) out.push({ method, path: full });
    }
  }
  return out;
}

/** Walks a JSON value, calling `visit` with each object and its JSON pointer. */
function walk(value: unknown, visit: (node: Json, pointer: string) => void, pointer = '#'): void {
  if (Array.isArray(value)) value.forEach((v, i) => walk(v, visit, `${pointer}/${i}`));
  else if (value && typeof value === 'object') {
    visit(value as Json, pointer);
    for (const [k, v] of Object.entries(value))
      walk(v, visit, `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
  }
}

function resolvePointer(doc: Json, ref: string): unknown {
  return ref
    .slice(2)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node as Json | undefined)?.[key], doc);
}

describe('OpenAPI document', () => {
  let built: ReturnType<typeof buildApp>;
  let doc: Json;

  before(() => {
    built = buildApp();
    doc = openApiDocument(built.config);
  });
  after(() => built.close());

  it('describes every route the app answers, and no route it does not', () => {
    const inApp = normalise(listRoutes(built.app));
    const inDoc = normalise(documentedRoutes(doc));
    expect(inApp.length).to.be.greaterThan(10);
    const undocumented = inApp.filter((r) => !inDoc.includes(r));
    const phantom = inDoc.filter((r) => !inApp.includes(r));
    expect(undocumented, 'routes the app answers that src/web/openapi.ts does not describe').to.deep.equal(
      [],
    );
    expect(phantom, 'routes src/web/openapi.ts describes that the app does not answer').to.deep.equal([]);
  });

  it('documents HEAD only where the app answers GET', () => {
    const inApp = normalise(listRoutes(built.app));
    for (const { method, path } of documentedRoutes(doc)) {
      if (method === 'head')
        expect(inApp, `HEAD ${path}`).to.include(`GET ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const { Validator } = await import('@seriousme/openapi-schema-validator');
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).to.deep.equal([]);
    expect(result.valid).to.equal(true);
    expect(validator.version).to.equal('3.1');
  });

  it('has no dangling $ref, unique operation ids, and declares every path parameter', () => {
    const dangling: string[] = [];
    walk(doc, (node, pointer) => {
      if (typeof node.$ref === 'string' && resolvePointer(doc, node.$ref) === undefined)
        dangling.push(`${pointer}: ${node.$ref}`);
    });
    expect(dangling).to.deep.equal([]);

    const ids: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
      const shared = (item.parameters as Json[]) ?? [];
      for (const method of METHODS) {
        const op = item[method] as Json | undefined;
        if (!op) continue;
        ids.push(op.operationId as string);
        const declared = [...shared, ...((op.parameters as Json[]) ?? [])]
          .map((p) => (p.$ref ? (resolvePointer(doc, p.$ref as string) as Json) : p))
          .filter((p) => p.in === 'path')
          .map((p) => p.name);
        const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        expect(declared.sort(), `${method.toUpperCase()} ${path}`).to.deep.equal(inPath.sort());
        expect(Object.keys(op.responses as Json), `${method} ${path} responses`).to.have.length.greaterThan(
          0,
        );
      }
    }
    expect(ids.every(Boolean), 'every operation has an operationId').to.equal(true);
    expect(new Set(ids).size).to.equal(ids.length);
  });

  it('names the headers clients rely on and answers errors as problem+json', () => {
    const text = JSON.stringify(doc);
    for (const name of [
      'ETag',
      'X-Poll-Interval',
      'Idempotent-Replayed',
      'Retry-After',
      'X-Request-Id',
      'Idempotency-Key',
      'Last-Event-ID',
      'If-None-Match',
    ]) {
      expect(text, name).to.include(`"${name}"`);
    }
    const problems = (doc.components as { responses: Record<string, { content: Json }> }).responses;
    for (const [name, response] of Object.entries(problems)) {
      expect(Object.keys(response.content), name).to.deep.equal(['application/problem+json']);
    }
    const stream = (doc.paths as Record<string, Record<string, Json>>)['/scores/stream'].get as {
      responses: Record<string, { content?: Json }>;
    };
    expect(stream.responses['200'].content).to.have.property('text/event-stream');
  });
});

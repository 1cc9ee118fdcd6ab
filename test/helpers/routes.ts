import type Router from '@koa/router';
import type Koa from 'koa';

/**
 * Every method and path the app's routers answer (HEAD included where GET implies it), read from the
 * @koa/router dispatchers mounted on `app`. test/openapi.test.ts holds the OpenAPI document against it.
 */
export function listRoutes(app: Koa): Array<{ method: string; path: string }> {
  const routes: Array<{ method: string; path: string }> = [];
  for (const middleware of app.middleware as Array<{ router?: Router }>) {
    for (const layer of middleware.router?.stack ?? []) {
      for (const method of layer.methods) routes.push({ method, path: String(layer.path) });
    }
  }
  return routes;
}

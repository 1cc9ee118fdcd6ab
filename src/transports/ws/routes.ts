import Router from '@koa/router';
import { HttpError } from '../../http/errors';
import { ROUTER_OPTIONS } from '../../http/routing';
import { WS_PATHS } from './upgrade';

/**
 * The WebSocket endpoints answer a plain GET (no Upgrade header) with 426 Upgrade Required, so the paths
 * exist for every client and proxy; the upgrade itself never reaches Koa (src/transports/ws/upgrade.ts).
 */
export function wsRoutes(): Router {
  const router = new Router(ROUTER_OPTIONS);
  for (const path of WS_PATHS) {
    router.get(path, () => {
      throw new HttpError(
        426,
        'Upgrade Required',
        'This endpoint speaks WebSocket: send an Upgrade: websocket request.',
        {},
        { Upgrade: 'websocket', Connection: 'Upgrade' },
      );
    });
  }
  return router;
}

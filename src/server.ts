import http from 'node:http';
import { createApp } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { createDb } from './db';
import { createLogger } from './logger';
import { createRedis } from './redis';
import { createServices } from './services';

/**
 * The one entry point: load config, connect, listen, and shut down cleanly on SIGTERM/SIGINT
 * (a second signal exits at once).
 */
export async function startServer(config: Config) {
  const logger = createLogger(config.logLevel);
  const db = createDb(config);
  const redis = createRedis(config, logger);
  const subscriber = createRedis(config);
  const services = createServices({ config, db, redis, subscriber, logger });
  const app = createApp({ config, logger, db, redis, ...services });
  const server = http.createServer(app.callback());
  await services.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, host: config.host }, 'scoreboard listening');

  let closing: Promise<void> | undefined;
  function close(): Promise<void> {
    closing ??= (async () => {
      logger.info('shutting down');
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      await services.stop();
      await closed;
      redis.disconnect();
      subscriber.disconnect();
      await db.destroy();
      logger.info('shut down cleanly');
    })();
    return closing;
  }
  return { server, port, close, logger };
}

export type ServerInstance = Awaited<ReturnType<typeof startServer>>;

/**
 * Shuts the instance down on SIGTERM/SIGINT and exits 0 once it has closed (1 if closing fails or takes
 * longer than SHUTDOWN_TIMEOUT_MS). A second signal exits at once. Shared by `npm start` and `npm run dev`.
 */
export function runUntilSignalled(
  instance: Pick<ServerInstance, 'close' | 'logger'>,
  config: Pick<Config, 'shutdownTimeoutMs'>,
): void {
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      instance.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    const timer = setTimeout(() => {
      instance.logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    instance.close().then(
      () => process.exit(0),
      (err) => {
        instance.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  runUntilSignalled(await startServer(config), config);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

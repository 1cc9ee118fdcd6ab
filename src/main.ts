import { applyServerLimits } from './http/server-limits';
import cluster from 'node:cluster';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createApp } from './app';
import { loadConfigOrExit, type Config } from './config';
import { createContainer, type ContainerHooks } from './container';
import { createMetricsApp } from './ops/routes';

/**
 * The one entry point: load config, connect (the container), listen, and shut down cleanly on SIGTERM/SIGINT
 * (a second signal exits at once). `startServer` is also how the test instances start, so they are wired
 * exactly as production is.
 */
export async function startServer(config: Config, hooks: ContainerHooks = {}) {
  const services = createContainer(config, hooks);
  const { logger } = services;
  const app = createApp(services);
  // Node enforces requestTimeout/headersTimeout only when it sweeps its connections, every 30 s by default, so a
  // slow body could hold a connection up to 30 s past REQUEST_TIMEOUT_MS (test/attacks.test.ts): sweep at a
  // quarter of the timeout instead.
  const connectionsCheckingInterval = Math.min(
    30_000,
    Math.max(250, Math.floor(config.requestTimeoutMs / 4)),
  );
  const server = config.tls
    ? https.createServer(
        {
          cert: fs.readFileSync(config.tls.certFile),
          key: fs.readFileSync(config.tls.keyFile),
          connectionsCheckingInterval,
        },
        app.callback(),
      )
    : http.createServer({ connectionsCheckingInterval }, app.callback());
  applyServerLimits(server, config);
  server.on('upgrade', services.onUpgrade); // WebSocket, on the same listener, TLS and limits
  await services.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  // Metrics on a port of their own, for an operator network that the public never reaches.
  const metricsServer =
    config.metricsPort === undefined
      ? undefined
      : http.createServer(
          createMetricsApp({
            metrics: services.metrics,
            collect: services.collect,
            token: config.metricsToken,
            logger,
            retryAfterS: config.retryAfterS,
          }).callback(),
        );
  if (metricsServer) {
    await new Promise<void>((resolve, reject) => {
      metricsServer.once('error', reject);
      metricsServer.listen(config.metricsPort, config.host, resolve);
    });
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(
    { port, host: config.host, tls: Boolean(config.tls), pid: process.pid },
    'scoreboard listening',
  );

  let closing: Promise<void> | undefined;
  /**
   * Readiness fails first (load balancers stop sending), then after SHUTDOWN_DELAY_MS the listener closes,
   * streams end with a retry hint, in-flight requests and queued writes finish, and the pools close.
   */
  function close(): Promise<void> {
    closing ??= (async () => {
      logger.info('shutting down');
      services.beginShutdown();
      if (config.shutdownDelayMs > 0) await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      await services.stop();
      await closed;
      await services.disconnect();
      logger.info('shut down cleanly');
    })();
    return closing;
  }
  return { server, port, metricsServer, close, logger, services };
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

/**
 * WORKERS > 1: the primary forks that many workers sharing the port (node:cluster), restarts one that dies,
 * and on SIGTERM/SIGINT passes the signal on and exits once every worker has shut down.
 */
function runPrimary(config: Config): void {
  let stopping = false;
  const fork = () => cluster.fork();
  for (let i = 0; i < config.workers; i++) fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    console.error(
      JSON.stringify({
        level: 50,
        msg: 'worker died; starting another',
        pid: worker.process.pid,
        code,
        signal,
      }),
    );
    setTimeout(fork, 1000);
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 1000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config);
  runUntilSignalled(await startServer(config, crashHooks(config)), config);
}

/**
 * Fault tests only (test/faults.test.ts): with NODE_ENV=test and TEST_CRASH_AFTER_COMMIT=1 the process kills
 * itself with SIGKILL after a batch commits and before it is mirrored into Redis, the one moment a real crash
 * can leave Redis behind MySQL. Inert anywhere else.
 */
function crashHooks(config: Config): ContainerHooks {
  if (config.nodeEnv !== 'test' || process.env.TEST_CRASH_AFTER_COMMIT !== '1') return {};
  return { afterCommit: () => void process.kill(process.pid, 'SIGKILL') };
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

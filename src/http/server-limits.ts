import type { Server } from 'node:http';
import type { Config } from '../config';

/**
 * Limits of the listening socket, set in one place for the entry point and the test instances alike.
 * A request must arrive whole within REQUEST_TIMEOUT_MS (slow-body attacks end there; streams are responses,
 * unaffected), and MAX_CONNECTIONS caps the open sockets so one flood cannot exhaust file descriptors: past
 * it Node closes new connections at once.
 */
export function applyServerLimits(server: Server, config: Config): void {
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = Math.min(config.requestTimeoutMs, 10_000);
  if (config.maxConnections !== undefined) server.maxConnections = config.maxConnections;
}

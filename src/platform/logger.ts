import pino, { type Logger } from 'pino';

export type { Logger };

/** JSON logs on stdout. Tokens and secrets are redacted wherever they might appear. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'scoreboard' },
    redact: {
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        'authorization',
        'token',
        '*.token',
        'jwt',
      ],
      censor: '[redacted]',
    },
  });
}

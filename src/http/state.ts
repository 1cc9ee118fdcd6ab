import type { Logger } from 'pino';
import type { TokenClaims } from '../auth/tokens';

/**
 * What middleware leaves on `ctx.state` for the rest of a request, typed in one place (Koa's own type is
 * `any`): the request id and its logger (request-context), the verified token (authenticate) and the caller's
 * id (authenticate, caller loader; the write limit and the access log read it).
 */
declare module 'koa' {
  interface DefaultState {
    requestId: string;
    /** A child logger carrying the request id, made on first use. */
    log: Logger;
    /** Set by authenticate() on routes that need a token. */
    claims: TokenClaims;
    userId?: string;
  }
}

import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Context, Middleware } from 'koa';
import type { Config } from '../config';
import { unauthorized } from '../errors';

export interface TokenClaims {
  userId: string;
  name?: string;
  /** Only used to create a user that does not exist yet; the database decides afterwards. */
  role?: 'player' | 'admin';
}

/** User ids are the token's `sub`: short, printable, and safe in URLs, logs and Redis keys. */
export const USER_ID_PATTERN = /^[A-Za-z0-9._@:|-]{1,64}$/;
const MAX_TOKEN_LENGTH = 8192;

/**
 * Verifies bearer tokens with the one configured algorithm (so `alg: none` and HS/RS confusion are refused),
 * requiring `exp`, checking `iss`/`aud` when configured. Every failure is the same 401: the client learns
 * nothing about which check failed.
 */
export function createTokenVerifier(jwtConfig: Config['jwt']) {
  const options: jwt.VerifyOptions = {
    algorithms: [jwtConfig.algorithm],
    clockTolerance: jwtConfig.clockToleranceS,
    issuer: jwtConfig.issuer,
    audience: jwtConfig.audience,
  };
  // Parsed once: given a string, jsonwebtoken re-parses the key on every call, first trying it as a PEM public
  // key and catching the failure, which was the most expensive step of an authenticated request.
  const key: KeyObject = jwtConfig.algorithm.startsWith('HS')
    ? createSecretKey(Buffer.from(jwtConfig.key))
    : createPublicKey(jwtConfig.key);
  return function verify(ctx: Context): TokenClaims {
    const header = ctx.get('authorization');
    const match = /^Bearer ([A-Za-z0-9_\-.=+/]+)$/.exec(header);
    if (!match) throw unauthorized();
    // A presented token gets the same answer whichever check refuses it, the length cap included.
    if (match[1].length > MAX_TOKEN_LENGTH) throw unauthorized('The bearer token is invalid or expired.');
    let payload: jwt.JwtPayload;
    try {
      const decoded = jwt.verify(match[1], key, options);
      if (typeof decoded === 'string') throw new Error('not a JSON payload');
      payload = decoded;
    } catch (err) {
      ctx.state.log?.info({ reason: (err as Error).message }, 'token rejected');
      throw unauthorized('The bearer token is invalid or expired.');
    }
    if (
      typeof payload.exp !== 'number' ||
      typeof payload.sub !== 'string' ||
      !USER_ID_PATTERN.test(payload.sub)
    ) {
      ctx.state.log?.info('token rejected: missing exp or unusable sub');
      throw unauthorized('The bearer token is invalid or expired.');
    }
    const name = typeof payload.name === 'string' ? payload.name.trim().slice(0, 100) : undefined;
    const role = payload.role === 'admin' ? 'admin' : undefined;
    return { userId: payload.sub, name: name || undefined, role };
  };
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

/** Signs a token with the configured key (developer tools and tests; production tokens come from the site). */
export function signToken(
  jwtConfig: Pick<Config['jwt'], 'algorithm' | 'issuer' | 'audience'> & { signingKey: string },
  claims: { sub: string; name?: string; role?: string },
  ttl: string | number = '1h',
): string {
  const options: jwt.SignOptions = {
    algorithm: jwtConfig.algorithm,
    subject: claims.sub,
    expiresIn: ttl as jwt.SignOptions['expiresIn'],
  };
  if (jwtConfig.issuer) options.issuer = jwtConfig.issuer;
  if (jwtConfig.audience) options.audience = jwtConfig.audience;
  const payload: Record<string, string> = {};
  if (claims.name) payload.name = claims.name;
  if (claims.role) payload.role = claims.role;
  return jwt.sign(payload, jwtConfig.signingKey, options);
}

/**
 * Verifies the bearer token before anything else (401 first), without touching the database: the route then
 * validates its input and only afterwards loads (or provisions) the caller, so bad input never creates a user.
 */
export function authenticate(verify: TokenVerifier): Middleware {
  return async (ctx, next) => {
    ctx.state.claims = verify(ctx);
    ctx.state.userId = ctx.state.claims.userId;
    await next();
  };
}

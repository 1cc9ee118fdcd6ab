import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Context, Middleware } from 'koa';
import type { Config } from '../config';
import { unauthorized } from '../http/errors';
import { normalizeDisplayName } from '../users/display-name';

/**
 * What a token says: who the caller is, and optionally what to call them. Never what they may do: roles and
 * bans live in MySQL only, and a `role` claim (or any other) is ignored.
 */
export interface TokenClaims {
  userId: string;
  name?: string;
}

/** User ids are the token's `sub`: short, printable, and safe in URLs, logs and Redis keys. */
export const USER_ID_PATTERN = /^[A-Za-z0-9._@:|-]{1,64}$/;
const MAX_TOKEN_LENGTH = 8192;

/**
 * Verifies bearer tokens with the one configured algorithm (so `alg: none` and HS/RS confusion are refused),
 * requiring `exp`, checking `iss`/`aud` when configured, `iat` against JWT_MAX_AGE_S and the JOSE `typ` header
 * against JWT_TYP when those are set. Every failure is the same 401: the client learns nothing about which
 * check failed.
 */
export function createTokenVerifier(jwtConfig: Config['jwt']) {
  const options: jwt.VerifyOptions & { complete: true } = {
    algorithms: [jwtConfig.algorithm],
    clockTolerance: jwtConfig.clockToleranceS,
    issuer: jwtConfig.issuer,
    audience: jwtConfig.audience,
    // jsonwebtoken refuses a token without `iat` when maxAge is set, as JWT_MAX_AGE_S promises.
    maxAge: jwtConfig.maxAgeS,
    complete: true,
  };
  const typ = jwtConfig.typ === undefined ? undefined : mediaType(jwtConfig.typ);
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
      if (typeof decoded.payload === 'string') throw new Error('not a JSON payload');
      // RFC 8725 section 3.11: a token of another kind (an ID token where an access token is expected) is refused.
      if (typ !== undefined && mediaType(String(decoded.header.typ ?? '')) !== typ)
        throw new Error('unexpected typ header');
      payload = decoded.payload;
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
    // A name that is not acceptable (control, bidi or zero-width characters) is ignored, not an error: the
    // token is still valid, and the user is shown by id instead.
    const name = typeof payload.name === 'string' ? normalizeDisplayName(payload.name) : undefined;
    return { userId: payload.sub, name: typeof name === 'string' ? name : undefined };
  };
}

/** `typ` is a media type whose `application/` prefix may be left out, compared case-insensitively (RFC 7515). */
const mediaType = (value: string) => value.toLowerCase().replace(/^application\//, '');

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

/** Signs a token with the configured key (developer tools and tests; production tokens come from the site). */
export function signToken(
  jwtConfig: Pick<Config['jwt'], 'algorithm'> &
    Partial<Pick<Config['jwt'], 'issuer' | 'audience' | 'typ'>> & { signingKey: string },
  claims: { sub: string; name?: string; [claim: string]: unknown },
  ttl: string | number = '1h',
): string {
  const options: jwt.SignOptions = {
    algorithm: jwtConfig.algorithm,
    subject: claims.sub,
    expiresIn: ttl as jwt.SignOptions['expiresIn'],
  };
  if (jwtConfig.issuer) options.issuer = jwtConfig.issuer;
  if (jwtConfig.audience) options.audience = jwtConfig.audience;
  if (jwtConfig.typ) options.header = { alg: jwtConfig.algorithm, typ: jwtConfig.typ };
  const payload: Record<string, unknown> = { ...claims };
  delete payload.sub; // it goes in as `subject`
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

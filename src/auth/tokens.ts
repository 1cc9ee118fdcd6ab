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

/**
 * User ids are the token's `sub`, as the identity provider issues it: Auth0's `auth0|…` and
 * `google-oauth2|…`, Keycloak's and Cognito's UUIDs, Google's digits, e-mail-like subjects (`+` included).
 * Short and printable, so safe in URLs, logs and Redis keys; a `sub` outside this is refused (401).
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9._@:|+=-]{1,64}$/;
const MAX_TOKEN_LENGTH = 8192;

/** Where the verifier's keys come from: one configured key, or an identity provider's key set. */
export interface KeySource {
  getKey(header: { alg: string; kid?: string }): Promise<KeyObject | undefined>;
}

/** Why a token was refused, for the log and `token_rejections_total` (never the token itself). */
class Refused extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

const REASONS: Array<[RegExp, string]> = [
  [/expired/, 'expired'],
  [/not active/, 'not_before'],
  [/issuer/, 'issuer'],
  [/audience/, 'audience'],
  [/maxAge|iat required/, 'max_age'],
  [/signature/, 'signature'],
  [/algorithm/, 'algorithm'],
  [/malformed|invalid token|jwt must be provided|Unexpected token|JSON/, 'malformed'],
];
const reasonOf = (err: Error) =>
  err instanceof Refused ? err.reason : (REASONS.find(([re]) => re.test(err.message))?.[1] ?? 'invalid');

/**
 * Verifies bearer tokens. With one configured key (JWT_SECRET, JWT_PUBLIC_KEY) exactly one algorithm is
 * accepted (so `alg: none` and HS/RS confusion are refused); with an identity provider (OIDC_ISSUER,
 * JWT_JWKS_URL) the token's `alg` must be in JWT_ALGORITHMS and its `kid` (with that `alg`) must be one the
 * provider publishes. Always: `exp` required, `iss`/`aud` checked when configured, `iat` against
 * JWT_MAX_AGE_S and the JOSE `typ` header against JWT_TYP when set. Every failure is the same 401: the
 * client learns nothing about which check failed; the log and the metric do.
 */
export function createTokenVerifier(
  jwtConfig: Config['jwt'],
  deps: { keys?: KeySource; onRejected?: (reason: string) => void } = {},
) {
  const provider = jwtConfig.mode === 'oidc' || jwtConfig.mode === 'jwks';
  const algorithms: jwt.Algorithm[] = provider ? jwtConfig.algorithms : [jwtConfig.algorithm];
  const options: jwt.VerifyOptions & { complete: true } = {
    algorithms,
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
  const staticKey: KeyObject | undefined = provider
    ? undefined
    : jwtConfig.algorithm.startsWith('HS')
      ? createSecretKey(Buffer.from(jwtConfig.key!))
      : createPublicKey(jwtConfig.key!);
  if (provider && !deps.keys) throw new Error('an identity provider mode needs its key source');

  /** The provider's key for this token's header: `alg` from the allow-list, `kid` published. */
  async function providerKey(token: string): Promise<KeyObject> {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded) throw new Refused('malformed');
    const { alg, kid } = decoded.header;
    if (!algorithms.includes(alg as jwt.Algorithm)) throw new Refused('algorithm');
    if (kid !== undefined && typeof kid !== 'string') throw new Refused('malformed');
    const key = await deps.keys!.getKey({ alg, kid });
    if (!key) throw new Refused('unknown_key');
    return key;
  }

  function claimsOf(payload: jwt.JwtPayload): TokenClaims {
    if (typeof payload.exp !== 'number') throw new Refused('claims');
    if (typeof payload.sub !== 'string' || !USER_ID_PATTERN.test(payload.sub)) throw new Refused('subject');
    // A name that is not acceptable (control, bidi or zero-width characters) is ignored, not an error: the
    // token is still valid, and the user is shown by id instead.
    const raw = [payload[jwtConfig.nameClaim], payload.preferred_username].find((n) => typeof n === 'string');
    const name = raw === undefined ? undefined : normalizeDisplayName(raw as string);
    return { userId: payload.sub, name };
  }

  return async function verify(ctx: Context): Promise<TokenClaims> {
    const header = ctx.get('authorization');
    const match = /^Bearer ([A-Za-z0-9_\-.=+/]+)$/.exec(header);
    if (!match) {
      deps.onRejected?.('missing');
      throw unauthorized();
    }
    try {
      // A presented token gets the same answer whichever check refuses it, the length cap included.
      if (match[1].length > MAX_TOKEN_LENGTH) throw new Refused('too_long');
      const key = staticKey ?? (await providerKey(match[1]));
      const decoded = jwt.verify(match[1], key, options);
      if (typeof decoded.payload === 'string') throw new Refused('malformed');
      // RFC 8725 section 3.11: a token of another kind (an ID token where an access token is expected) is refused.
      if (typ !== undefined && mediaType(String(decoded.header.typ ?? '')) !== typ) throw new Refused('typ');
      return claimsOf(decoded.payload);
    } catch (err) {
      const reason = reasonOf(err as Error);
      deps.onRejected?.(reason);
      ctx.state.log?.info({ reason, detail: (err as Error).message }, 'token rejected');
      throw unauthorized('The bearer token is invalid or expired.');
    }
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
    ctx.state.claims = await verify(ctx);
    ctx.state.userId = ctx.state.claims.userId;
    await next();
  };
}

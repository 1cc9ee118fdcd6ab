import { createPublicKey } from 'node:crypto';
import { parseArgs } from 'node:util';
import jwt from 'jsonwebtoken';
import { ConfigError, DEV_JWT_SECRET, loadConfig, type Config } from '../src/config';
import { signToken, USER_ID_PATTERN } from '../src/auth/tokens';

/**
 * `npm run token -- <userId> [--name "Ada"] [--ttl 1h]`: prints a bearer token signed with the
 * configured key, for trying the API by hand. HS256/384/512 sign with JWT_SECRET; RS256/ES256 need the
 * private half of JWT_PUBLIC_KEY in JWT_PRIVATE_KEY (PEM). JWT_PRIVATE_KEY is read here only: the service
 * itself never holds a signing key for asymmetric algorithms.
 */

export { DEV_JWT_SECRET };

export class TokenCliError extends Error {}

const USAGE = `usage: npm run token -- <userId> [--name "Ada"] [--ttl 1h]

  <userId>      the token's subject (letters, digits and . _ @ : | -, at most 64)
  --name NAME   display name used when the user is first auto-provisioned
                (a token never makes anyone an admin: use \`npm run user -- promote <userId>\`)
  --ttl TTL     lifetime: seconds, or a timespan such as 30m, 1h, 7d (default 1h)

The key comes from the same environment as the service: JWT_SECRET for HS256/HS384/HS512, or
JWT_PUBLIC_KEY plus JWT_PRIVATE_KEY (the matching PEM private key, read only by this command) for
RS256/ES256. JWT_ALGORITHM, JWT_ISSUER, JWT_AUDIENCE and JWT_TYP are honoured.`;

/** The key that signs tokens the configured service will accept. */
export function signingKeyFor(jwtConfig: Config['jwt'], env: NodeJS.ProcessEnv = process.env): string {
  if (jwtConfig.key === undefined) {
    throw new TokenCliError(
      "With OIDC_ISSUER or JWT_JWKS_URL the service trusts your identity provider's keys: get a token from the " +
        'provider (README: "Using your identity provider"); this command signs only for JWT_SECRET and JWT_PUBLIC_KEY.',
    );
  }
  if (jwtConfig.algorithm.startsWith('HS')) return jwtConfig.key;
  const privateKey = env.JWT_PRIVATE_KEY;
  if (!privateKey) {
    throw new TokenCliError(
      `JWT_ALGORITHM is ${jwtConfig.algorithm}: the service only holds the public key (JWT_PUBLIC_KEY), so ` +
        'signing needs the matching private key. Set JWT_PRIVATE_KEY to it (PEM, "-----BEGIN PRIVATE KEY-----...") ' +
        'for this command only; never give it to the service.',
    );
  }
  try {
    createPublicKey(privateKey);
  } catch {
    throw new TokenCliError('JWT_PRIVATE_KEY is not a readable PEM private key.');
  }
  return privateKey;
}

/** Signs a token and checks that the configured service would accept it (catches a mismatched key pair). */
export function mintToken(
  jwtConfig: Config['jwt'],
  claims: { sub: string; name?: string },
  ttl: string | number,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (!USER_ID_PATTERN.test(claims.sub)) {
    throw new TokenCliError(`"${claims.sub}" is not a valid user id (${USER_ID_PATTERN.source}).`);
  }
  const signingKey = signingKeyFor(jwtConfig, env);
  let token: string;
  try {
    token = signToken({ ...jwtConfig, signingKey }, { sub: claims.sub, name: claims.name }, ttl);
  } catch (err) {
    throw new TokenCliError(`Could not sign the token: ${(err as Error).message}`);
  }
  try {
    jwt.verify(token, jwtConfig.key!, {
      algorithms: [jwtConfig.algorithm],
      issuer: jwtConfig.issuer,
      audience: jwtConfig.audience,
    });
  } catch (err) {
    throw new TokenCliError(
      `The signed token does not verify with the configured key (${(err as Error).message}); ` +
        'is JWT_PRIVATE_KEY the pair of JWT_PUBLIC_KEY, and is JWT_ALGORITHM right for its key type?',
    );
  }
  return token;
}

/** Seconds as a number ("3600"), otherwise a timespan string ("1h", "7d") as jsonwebtoken reads it. */
export function parseTtl(ttl: string): string | number {
  if (/^\d+$/.test(ttl)) return Number(ttl);
  if (!/^\d+(\.\d+)?\s*[a-z]*$/i.test(ttl.trim()))
    throw new TokenCliError(`--ttl "${ttl}" is not a lifetime (try 30m, 1h, 7d).`);
  return ttl.trim();
}

/** Returns the process exit code: 0, 1 for a configuration or signing problem, 2 for bad usage. */
function main(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        ttl: { type: 'string', default: '1h' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }

  const env = { ...process.env };
  if (!env.JWT_SECRET && !env.JWT_PUBLIC_KEY) {
    env.JWT_SECRET = DEV_JWT_SECRET;
    console.error(
      'warning: neither JWT_SECRET nor JWT_PUBLIC_KEY is set; signing with the development secret of ' +
        '`npm run dev`. Only a development server accepts this token.',
    );
  }
  try {
    const config = loadConfig(env);
    const ttl = parseTtl(values.ttl);
    console.log(mintToken(config.jwt, { sub: positionals[0], name: values.name }, ttl, env));
    return 0;
  } catch (err) {
    if (err instanceof TokenCliError || err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}

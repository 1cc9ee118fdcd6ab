import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import { freePort } from './process';

export const AUDIENCE = 'scoreboard';
const RESOURCE = 'https://scoreboard.test/api';
const CLIENT = {
  client_id: 'game-backend',
  client_secret: 'a-client-secret-long-enough-for-tests-0123456789',
};

/** An RSA signing key as oidc-provider takes it (a private JWK with a kid), with its KeyObject. */
export function rsaKey(kid: string): { jwk: Record<string, unknown>; privateKey: KeyObject } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { jwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }, privateKey };
}

/**
 * oidc-provider (the certified OpenID Connect provider for Node) in this process, on a loopback port of its
 * own, issuing RFC 9068 JWT access tokens for our audience through the client credentials grant. Its signing
 * keys are fixed at start; `restart` brings it back on the same port (the same issuer) with other keys, which
 * is how a provider rotates. Requests to its JWKS are counted.
 */
export async function startProvider(keys: Array<Record<string, unknown>>, port = 0) {
  const { default: Provider } = await import('oidc-provider');
  let server: http.Server;
  const stats = { jwksRequests: 0 };
  async function listen(signing: Array<Record<string, unknown>>, at: number) {
    if (at === 0) at = await freePort(); // the issuer names its port, so it must be known before listening
    const issuer = `http://127.0.0.1:${at}`;
    const provider = new Provider(issuer, {
      clients: [{ ...CLIENT, grant_types: ['client_credentials'], redirect_uris: [], response_types: [] }],
      jwks: { keys: signing },
      features: {
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({
            scope: 'scores',
            audience: AUDIENCE,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
    });
    const handler = provider.callback();
    server = http.createServer((req, res) => {
      if (req.url?.startsWith('/jwks')) stats.jwksRequests++;
      handler(req, res);
    });
    await new Promise<void>((r) => server.listen(at, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  }
  let bound = await listen(keys, port);
  const issuer = () => `http://127.0.0.1:${bound}`;
  return {
    get issuer() {
      return issuer();
    },
    get port() {
      return bound;
    },
    stats,
    /** An access token from the token endpoint, as a game back end would get one. */
    async token(): Promise<string> {
      const res = await fetch(`${issuer()}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${CLIENT.client_id}:${CLIENT.client_secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'scores', resource: RESOURCE }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (!res.ok || !body.access_token)
        throw new Error(`token endpoint: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
    /** Back on the same port and issuer with other signing keys (the first one signs). */
    async restart(signing: Array<Record<string, unknown>>) {
      await this.stop();
      bound = await listen(signing, bound);
    },
  };
}

/** A token signed with a key of ours, shaped like the provider's (for the claims it would never issue). */
export function craft(
  key: KeyObject,
  kid: string,
  claims: Record<string, unknown>,
  /** `expiresIn: null` leaves `exp` to the claims. */
  opts: { alg?: jwt.Algorithm; issuer: string; audience?: string; expiresIn?: number | null; typ?: string },
): string {
  return jwt.sign({ ...claims }, key, {
    algorithm: opts.alg ?? 'RS256',
    keyid: kid,
    issuer: opts.issuer,
    audience: opts.audience ?? AUDIENCE,
    ...(opts.expiresIn === null ? {} : { expiresIn: opts.expiresIn ?? 600 }),
    header: { alg: opts.alg ?? 'RS256', kid, typ: opts.typ ?? 'at+jwt' },
  });
}

import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import { BENCH_JWT } from './data';

/**
 * An identity provider's key set for the writes scenario's JWKS mode: one RS256 key, served from this process
 * on a loopback port (the service fetches it once at start-up and caches it), and bearer tokens signed with it.
 */
export async function startJwksServer() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-rs256';
  const body = JSON.stringify({
    keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }],
  });
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  return {
    url,
    tokensFor: (ids: string[]) =>
      ids.map(
        (sub) =>
          `Bearer ${jwt.sign({}, privateKey, { algorithm: 'RS256', keyid: kid, subject: sub, expiresIn: '6h', ...BENCH_JWT })}`,
      ),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

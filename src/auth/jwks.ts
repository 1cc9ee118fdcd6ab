import { KeyObject } from 'node:crypto';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';

export interface JwksOptions {
  /** OIDC_ISSUER: discover `jwks_uri` from its `/.well-known/openid-configuration` (whose `issuer` must match). */
  issuer?: string;
  /** JWT_JWKS_URL: the key set itself, without discovery. */
  jwksUrl?: string;
  timeoutMs: number;
  cooldownMs: number;
  refreshMs: number;
  metrics: Metrics;
  logger: Logger;
}

const MAX_DOCUMENT_BYTES = 1_048_576;

/**
 * The identity provider's signing keys, by `kid` and `alg`. jose (the maintained JOSE library) selects keys
 * from the set as RFC 7517/7518 say (kid, alg, kty, use) and imports them; this wrapper owns when the set is
 * fetched, because the provider's availability must never become ours:
 * - keys are prefetched at start-up and refreshed every `refreshMs` in the background;
 * - a token whose `kid` is not in the set triggers one refetch, at most one per `cooldownMs` whatever the
 *   number of such tokens, and failed fetches count too (jose's own remote set only cools down after a
 *   success), so a flood of random `kid`s costs the provider nothing;
 * - every fetch has a `timeoutMs` deadline; when the provider cannot be reached the keys we have keep
 *   verifying, and an unknown key is a fast `undefined` (a 401), never a hang.
 * Key URLs in tokens (`jku`, `x5u`) and embedded keys (`jwk`, `x5c`) are never looked at.
 */
export function createJwksKeys(opts: JwksOptions) {
  let select: ReturnType<typeof createLocalJWKSet> | undefined;
  let jwksUri = opts.jwksUrl;
  let lastAttempt = 0;
  let lastError: string | undefined;
  let fetching: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function getJson(url: string): Promise<Record<string, unknown>> {
    const res = await fetch(url, {
      signal: AbortSignal.timeout(opts.timeoutMs),
      redirect: 'error',
      headers: { accept: 'application/json' },
    });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    const text = await res.text();
    if (text.length > MAX_DOCUMENT_BYTES)
      throw new Error(`${url} sent more than ${MAX_DOCUMENT_BYTES} bytes`);
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) throw new Error(`${url} did not send a JSON object`);
    return value as Record<string, unknown>;
  }

  async function discover(issuer: string): Promise<string> {
    const doc = await getJson(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (doc.issuer !== issuer)
      throw new Error(`discovery names the issuer ${String(doc.issuer)}, not ${issuer}`);
    if (typeof doc.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
    return doc.jwks_uri;
  }

  /** One fetch at a time; concurrent callers share it. Failures keep the keys we have. */
  function refresh(): Promise<void> {
    fetching ??= (async () => {
      lastAttempt = Date.now();
      try {
        jwksUri ??= await discover(opts.issuer!);
        const set = await getJson(jwksUri);
        if (!Array.isArray(set.keys)) throw new Error('the JWKS has no keys array');
        select = createLocalJWKSet(set as unknown as JSONWebKeySet);
        lastError = undefined;
        opts.metrics.jwksFetches.inc({ result: 'ok' });
      } catch (err) {
        lastError = (err as Error).message;
        opts.metrics.jwksFetches.inc({ result: 'error' });
        opts.logger.warn({ err: lastError }, 'JWKS fetch failed; keeping the keys we have');
      } finally {
        fetching = undefined;
      }
    })();
    return fetching;
  }

  async function fromSet(header: JWSHeaderParameters): Promise<KeyObject | undefined> {
    if (!select) return undefined;
    try {
      const key = await select(header);
      return key instanceof KeyObject ? key : KeyObject.from(key as CryptoKey);
    } catch (err) {
      if (err instanceof errors.JOSEError) return undefined; // no match, several matches, unusable key
      throw err;
    }
  }

  return {
    /** The key for a token's header, or undefined when the provider publishes none that fits. */
    async getKey(header: { alg: string; kid?: string }): Promise<KeyObject | undefined> {
      const wanted: JWSHeaderParameters = { alg: header.alg, kid: header.kid };
      const key = await fromSet(wanted);
      if (key) return key;
      if (Date.now() - lastAttempt < opts.cooldownMs) {
        opts.metrics.jwksCooldownHits.inc();
        return undefined;
      }
      await refresh();
      return fromSet(wanted);
    },
    /** Loaded at least once (readiness), and the last fetch's error if it failed. */
    status: () => ({ loaded: select !== undefined, error: lastError }),
    /** Prefetches the keys (bounded by the timeout) and refreshes them every `refreshMs` from then on. */
    async start(): Promise<void> {
      await refresh();
      timer = setInterval(() => void refresh(), opts.refreshMs);
      timer.unref();
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}

export type JwksKeys = ReturnType<typeof createJwksKeys>;

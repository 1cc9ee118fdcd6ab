import { availableParallelism } from 'node:os';
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../src/config';

const SECRET_32 = 's'.repeat(32);
/** NODE_ENV defaults to production, which requires these two. */
const NAMED = { JWT_ISSUER: 'https://issuer.test', JWT_AUDIENCE: 'scoreboard' };

/** loadConfig's error (issuer and audience set unless `env` says otherwise), or a failure if it did not throw. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig({ ...NAMED, ...env } as NodeJS.ProcessEnv);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('configuration (loadConfig)', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({ ...NAMED, JWT_SECRET: SECRET_32 } as NodeJS.ProcessEnv);
    expect(config).to.include({
      port: 3000,
      databaseUrl: 'mysql://root@127.0.0.1:3306/scoreboard',
      redisUrl: 'redis://127.0.0.1:6379/0',
      redisPrefix: 'scoreboard:',
      autoProvisionUsers: true,
      maxScoreIncrement: 1000,
    });
    expect(config.jwt).to.include({ algorithm: 'HS256', key: SECRET_32, clockToleranceS: 30 });
  });

  it('runs one worker per CPU in production, one elsewhere, and what WORKERS says', () => {
    const env = { ...NAMED, JWT_SECRET: SECRET_32 } as NodeJS.ProcessEnv;
    expect(loadConfig(env).workers).to.equal(Math.min(64, availableParallelism()));
    expect(loadConfig({ ...env, NODE_ENV: 'production' }).workers).to.equal(
      Math.min(64, availableParallelism()),
    );
    expect(loadConfig({ ...env, NODE_ENV: 'development' }).workers).to.equal(1);
    expect(loadConfig({ ...env, NODE_ENV: 'test' }).workers).to.equal(1);
    expect(loadConfig({ ...env, WORKERS: '3' }).workers).to.equal(3);
  });

  it('reads the environment, converting types', () => {
    const config = loadConfig({
      JWT_SECRET: SECRET_32,
      PORT: '8080',
      AUTO_PROVISION_USERS: 'false',
      MAX_SCORE_INCREMENT: '50',
      JWT_ISSUER: 'https://issuer.test',
      JWT_AUDIENCE: 'api',
      JWT_CLOCK_TOLERANCE_S: '5',
    } as NodeJS.ProcessEnv);
    expect(config).to.include({ port: 8080, autoProvisionUsers: false, maxScoreIncrement: 50 });
    expect(config.jwt).to.include({ issuer: 'https://issuer.test', audience: 'api', clockToleranceS: 5 });
  });

  it('fails with one message that names every problem', () => {
    const err = configError({
      ...NAMED,
      PORT: 'not-a-port',
      JWT_SECRET: 'short',
      DATABASE_URL: 'postgres://elsewhere/db',
      MAX_SCORE_INCREMENT: '0',
    });
    for (const name of ['PORT', 'JWT_SECRET', 'DATABASE_URL', 'MAX_SCORE_INCREMENT']) {
      expect(err.message).to.include(`"${name}"`);
    }
    expect(err.message.split('\n').filter((l) => l.startsWith('  - '))).to.have.length(4);
  });

  it('takes one Redis mode at a time: REDIS_URL, REDIS_SENTINELS (host:port list) with a name, or REDIS_CLUSTER_NODES', () => {
    const secret = { JWT_SECRET: 'x'.repeat(32) };
    const sentinel = loadConfig({
      ...NAMED,
      ...secret,
      REDIS_SENTINELS: 'a.example:26379,10.0.0.2:26380',
      REDIS_SENTINEL_NAME: 'scores',
      REDIS_PASSWORD: 'pw',
    } as NodeJS.ProcessEnv);
    expect(sentinel.redis.sentinels).to.deep.equal([
      { host: 'a.example', port: 26379 },
      { host: '10.0.0.2', port: 26380 },
    ]);
    expect(sentinel.redis).to.include({ sentinelName: 'scores', password: 'pw', tls: false });
    expect(loadConfig({ ...NAMED, ...secret } as NodeJS.ProcessEnv).redisUrl).to.equal(
      'redis://127.0.0.1:6379/0',
    );
    const oneMode = 'set only one of "REDIS_URL", "REDIS_SENTINELS" and "REDIS_CLUSTER_NODES"';
    expect(
      configError({ ...secret, REDIS_URL: 'redis://x:6379', REDIS_SENTINELS: 'a:1' }).message,
    ).to.include(oneMode);
    expect(configError({ ...secret, REDIS_SENTINELS: 'a:1', REDIS_CLUSTER_NODES: 'b:2' }).message).to.include(
      oneMode,
    );
    expect(configError({ ...secret, REDIS_SENTINELS: 'no-port' }).message).to.include('REDIS_SENTINELS');
    expect(configError({ ...secret, REDIS_CLUSTER_NODES: 'x:1,bad' }).message).to.include(
      'REDIS_CLUSTER_NODES',
    );
    const cluster = loadConfig({
      ...NAMED,
      ...secret,
      REDIS_CLUSTER_NODES: 'n1.example:7000,10.0.0.3:7001',
    } as NodeJS.ProcessEnv);
    expect(cluster.redis.clusterNodes).to.deep.equal([
      { host: 'n1.example', port: 7000 },
      { host: '10.0.0.3', port: 7001 },
    ]);
  });

  it('refuses a JWT_SECRET shorter than 32 bytes, and accepts one of 32', () => {
    expect(configError({ JWT_SECRET: 's'.repeat(31) }).message).to.match(/"JWT_SECRET".*32/);
    expect(loadConfig({ ...NAMED, JWT_SECRET: SECRET_32 } as NodeJS.ProcessEnv).jwt.key).to.equal(SECRET_32);
  });

  it('requires one of JWT_SECRET and JWT_PUBLIC_KEY', () => {
    const message = configError({ PORT: '3000' }).message;
    expect(message).to.include('JWT_SECRET').and.include('JWT_PUBLIC_KEY');
  });

  describe('with a public key', () => {
    const { publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });

    it('defaults to RS256 and uses the key', () => {
      const config = loadConfig({ ...NAMED, JWT_PUBLIC_KEY: publicKey } as NodeJS.ProcessEnv);
      expect(config.jwt).to.include({ algorithm: 'RS256', key: publicKey });
    });

    it('refuses both a secret and a public key', () => {
      expect(configError({ JWT_SECRET: SECRET_32, JWT_PUBLIC_KEY: publicKey }).message).to.include(
        'JWT_PUBLIC_KEY',
      );
    });

    it('refuses an HMAC algorithm with only a public key, and a key that is not PEM', () => {
      expect(configError({ ...NAMED, JWT_PUBLIC_KEY: publicKey, JWT_ALGORITHM: 'HS256' }).message).to.include(
        'JWT_SECRET',
      );
      expect(configError({ JWT_PUBLIC_KEY: 'not a key' }).message).to.include('JWT_PUBLIC_KEY');
      expect(configError({ JWT_SECRET: SECRET_32, JWT_ALGORITHM: 'RS256' }).message).to.include(
        'JWT_PUBLIC_KEY',
      );
    });

    it('refuses an algorithm it does not support', () => {
      expect(configError({ JWT_SECRET: SECRET_32, JWT_ALGORITHM: 'none' }).message).to.include(
        'JWT_ALGORITHM',
      );
    });
  });
});

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './process';
import { eventually } from './instance';

const REDIS_SERVER = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server';

interface Proc {
  port: number;
  child: ChildProcess;
  kill(signal?: NodeJS.Signals): void;
}

async function start(dir: string, name: string, lines: string[], sentinel = false): Promise<Proc> {
  const port = await freePort();
  const conf = path.join(dir, `${name}.conf`);
  fs.writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', ...lines].join('\n') + '\n',
  );
  const child = spawn(REDIS_SERVER, sentinel ? [conf, '--sentinel'] : [conf], { stdio: 'ignore' });
  await eventually(
    async () => {
      const probe = new Redis({
        port,
        host: '127.0.0.1',
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on('error', () => {});
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    },
    10_000,
    50,
  );
  return { port, child, kill: (signal = 'SIGKILL') => child.kill(signal) };
}

/**
 * A Sentinel-managed Redis of the test's own on loopback ports: one primary, two replicas and three sentinels
 * (quorum 2), in a temporary directory, all stopped and removed by `close`. Never the shared 6379.
 */
export async function startSentinelGroup(name = 'sbtest') {
  if (!fs.existsSync(REDIS_SERVER))
    throw new Error(`These tests need ${REDIS_SERVER}: apt-get install -y redis-server`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-sentinel-'));
  const primary = await start(dir, 'primary', []);
  const replicas = await Promise.all(
    ['replica1', 'replica2'].map((n) =>
      start(dir, n, [`replicaof 127.0.0.1 ${primary.port}`, 'replica-read-only yes']),
    ),
  );
  const sentinels: Proc[] = [];
  for (const n of ['s1', 's2', 's3'])
    sentinels.push(
      await start(
        dir,
        n,
        [
          `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
        ],
        true,
      ),
    );
  const ask = async () => {
    const s = new Redis({ port: sentinels[0].port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    s.on('error', () => {});
    try {
      const [, port] = (await s.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string];
      return Number(port);
    } finally {
      s.disconnect();
    }
  };
  // The sentinels know the replicas and each other before the test may rely on a failover.
  await eventually(
    async () => {
      const s = new Redis({ port: sentinels[0].port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      s.on('error', () => {});
      try {
        const info = (await s.call('SENTINEL', 'master', name)) as string[];
        const field = (k: string) => Number(info[info.indexOf(k) + 1]);
        return field('num-slaves') === 2 && field('num-other-sentinels') === 2;
      } finally {
        s.disconnect();
      }
    },
    20_000,
    200,
  );
  const all = [primary, ...replicas];
  return {
    name,
    sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    primaryPort: primary.port,
    /** The port the sentinels currently name as the primary. */
    currentPrimary: ask,
    /** SIGKILLs the data node on `port`. */
    kill(port: number) {
      all.find((p) => p.port === port)?.kill('SIGKILL');
    },
    async close() {
      for (const p of [...sentinels, ...all]) p.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

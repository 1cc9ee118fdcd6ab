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
  kill(signal?: NodeJS.Signals): void;
  /** Starts the process again on its port with its configuration (and no data: nothing is saved). */
  restart(): Promise<void>;
}

async function answersPing(port: number): Promise<boolean> {
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
}

/** Runs `fn` on a short-lived connection to the node on `port`. */
async function onNode<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

async function start(dir: string, name: string, lines: string[], sentinel = false): Promise<Proc> {
  const port = await freePort();
  const conf = path.join(dir, `${name}.conf`);
  fs.writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', ...lines].join('\n') + '\n',
  );
  let child: ChildProcess;
  const spawnIt = async () => {
    child = spawn(REDIS_SERVER, sentinel ? [conf, '--sentinel'] : [conf], { stdio: 'ignore' });
    await eventually(() => answersPing(port), 10_000, 50);
  };
  await spawnIt();
  return { port, kill: (signal = 'SIGKILL') => child.kill(signal), restart: spawnIt };
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
    /** Starts a killed data node again, empty; the sentinels make it a replica of the current primary. */
    async restart(port: number) {
      await all.find((p) => p.port === port)?.restart();
    },
    /** Whether the sentinels' primary has two connected replicas again (a failover has fully healed). */
    async healthy(): Promise<boolean> {
      const primary = await ask().catch(() => 0);
      if (!primary) return false;
      const info = await onNode(primary, (r) => r.info('replication')).catch(() => '');
      return /role:master/.test(info) && /connected_slaves:2/.test(info);
    },
    async close() {
      for (const p of [...sentinels, ...all]) p.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Redis Cluster of the test's own on loopback ports: three primaries with one replica each, created with
 * `redis-cli --cluster create`, in a temporary directory, all stopped and removed by `close`.
 */
export async function startCluster() {
  if (!fs.existsSync(REDIS_SERVER))
    throw new Error(`These tests need ${REDIS_SERVER}: apt-get install -y redis-server`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-cluster-'));
  const nodes: Proc[] = [];
  for (let i = 0; i < 6; i++)
    nodes.push(
      await start(dir, `n${i}`, [
        'cluster-enabled yes',
        `cluster-config-file nodes-${i}.conf`,
        'cluster-node-timeout 1000',
        // A replica may always stand for election: on two loaded cores its last contact can look old.
        'cluster-replica-validity-factor 0',
        // The bus port is chosen free too (port + 10000 may not be).
        `cluster-port ${await freePort()}`,
      ]),
    );
  const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
  await new Promise<void>((resolve, reject) => {
    const cli = spawn(
      'redis-cli',
      ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    cli.stdout.on('data', (c) => (out += c));
    cli.stderr.on('data', (c) => (out += c));
    cli.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create: ${out}`)),
    );
  });
  const killed = new Set<number>();
  const alive = () => nodes.filter((n) => !killed.has(n.port));
  const stateOk = (port: number) =>
    onNode(port, async (r) => String(await r.call('CLUSTER', 'INFO')).includes('cluster_state:ok')).catch(
      () => false,
    );
  await eventually(
    async () => (await Promise.all(nodes.map((n) => stateOk(n.port)))).every(Boolean),
    30_000,
    200,
  );
  return {
    nodes: addresses.join(','),
    /** The port of the primary serving `key`'s hash slot, as a live node sees it now. */
    async primaryOf(key: string): Promise<number> {
      const port = alive()[0].port;
      return onNode(port, async (r) => {
        const slot = Number(await r.call('CLUSTER', 'KEYSLOT', key));
        const ranges = (await r.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
        const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
        return Number(range[2][1]);
      });
    },
    /** Every live node's count of each error it answered (INFO errorstats), summed. */
    async errorStats(): Promise<Record<string, number>> {
      const total: Record<string, number> = {};
      for (const n of alive()) {
        const info = await onNode(n.port, (r) => r.info('errorstats')).catch(() => '');
        for (const [, name, count] of info.matchAll(/errorstat_(\w+):count=(\d+)/g))
          total[name] = (total[name] ?? 0) + Number(count);
        // Which commands failed, for the message of a test that finds errors.
        const stats = await onNode(n.port, (r) => r.info('commandstats')).catch(() => '');
        for (const line of stats.split('\n')) {
          const [, cmd, rejected, failed] =
            /cmdstat_([\w|]+):.*rejected_calls=(\d+),failed_calls=(\d+)/.exec(line) ?? [];
          const n = Number(rejected ?? 0) + Number(failed ?? 0);
          if (n > 0) total[`failed:${cmd}`] = (total[`failed:${cmd}`] ?? 0) + n;
        }
      }
      return total;
    },
    /** How often each command ran on the live nodes (INFO commandstats, inside scripts too), summed. */
    async commandCalls(): Promise<Record<string, number>> {
      const total: Record<string, number> = {};
      for (const n of alive()) {
        const stats = await onNode(n.port, (r) => r.info('commandstats')).catch(() => '');
        for (const [, cmd, calls] of stats.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g))
          total[cmd] = (total[cmd] ?? 0) + Number(calls);
      }
      return total;
    },
    /** CLUSTER NODES as a live node sees it (for failure messages). */
    async describe(): Promise<string> {
      return onNode(alive()[0].port, async (r) => String(await r.call('CLUSTER', 'NODES'))).catch(String);
    },
    /** Whether every live node says the cluster is ok. */
    async healthy(): Promise<boolean> {
      return (await Promise.all(alive().map((n) => stateOk(n.port)))).every(Boolean);
    },
    kill(port: number) {
      killed.add(port);
      nodes.find((n) => n.port === port)?.kill('SIGKILL');
    },
    /** Starts a killed node again, empty; it keeps its node id and rejoins as a replica of its successor. */
    async restart(port: number) {
      await nodes.find((n) => n.port === port)?.restart();
      killed.delete(port);
    },
    /** The ports of the primaries serving slots now, as a live node sees it. */
    async primaries(): Promise<number[]> {
      const ranges = await onNode(alive()[0].port, (r) => r.call('CLUSTER', 'SLOTS'));
      return [...new Set((ranges as Array<[number, number, [string, number]]>).map((x) => Number(x[2][1])))];
    },
    async close() {
      for (const n of nodes) n.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

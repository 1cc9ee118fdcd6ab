import { mb, round, type BenchContext, type ScenarioResult } from '../lib/context';
import type { Knex } from 'knex';
import { benchDb } from '../lib/data';
import { interleaved, type Measured } from '../lib/load';
import { sleep, treeCpuS, treeRss } from '../lib/proc';
import { BENCH_AMQP_URL, benchRabbit, rabbitNames, type BenchRabbit } from '../lib/rabbit';
import { startService, type RunningService } from '../lib/service';
import { relayRuns } from './broker-relay';
import { postWrites, WRITE_CONNECTIONS } from './writes';

/** Deltas pre-published per second of load: at the target rate a round drains for about `loadS`. */
const DELTAS_PER_S = 3000;
/**
 * The default prefetch is WRITE_BATCH_MAX × (WRITE_CONCURRENCY + 1), 150 with the defaults: enough for every
 * batch slot and the next batch. Four batches' worth shows whether holding more unacknowledged helps.
 */
const DEEP_PREFETCH = '200';

/**
 * broker (issue 16): deltas applied from the RabbitMQ queue against the HTTP write path, in interleaved
 * rounds on the main database; then the outbound relay's throughput and lag (./broker-relay.ts). Everything
 * on the broker is named after the run (sbbench.<tag>.*) and deleted at the end.
 */
export async function brokerScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const names = rabbitNames(ctx.runId);
  const rabbit = benchRabbit();
  ctx.onCleanup(() => rabbit.cleanup(names)); // also on Ctrl-C, when the finally below never runs
  const services: RunningService[] = [];
  let started = 0;
  const start = async (name: string, env: Record<string, string>) => {
    const s = await startService({
      databaseUrl: ctx.main.url,
      redisUrl: ctx.redisUrl,
      redisPrefix: `${ctx.prefix}broker-${started++}-${name}:`,
      jwtSecret: ctx.jwtSecret,
      workers: ctx.workers,
      // Our queue always: with AMQP_URL alone the service would consume the shared default scoreboard.deltas.
      env: { AMQP_URL: BENCH_AMQP_URL, AMQP_DELTAS_QUEUE: names.queue, ...env },
      profileDir: ctx.profileDir,
    });
    services.push(s);
    return s;
  };
  try {
    // The HTTP baseline is the writes scenario's "service, group commit": no broker at all.
    const http = await startService({
      databaseUrl: ctx.main.url,
      redisUrl: ctx.redisUrl,
      redisPrefix: `${ctx.prefix}broker-http:`,
      jwtSecret: ctx.jwtSecret,
      workers: ctx.workers,
      profileDir: ctx.profileDir,
    });
    services.push(http);
    let tag = 0;
    const rss: Record<string, number> = {};
    const intake = (key: string, env: Record<string, string>) => async () => {
      const r = await drainQueue(ctx, rabbit, names, `q${tag++}`, start, env);
      rss[key] = r.rssMb;
      return r;
    };
    ctx.log(`broker: ${ctx.rounds} interleaved round(s) of HTTP writes and deltas from the queue`);
    const m = await interleaved(
      ctx.rounds,
      {
        http: async () => {
          const before = { batches: await batches(http.url), cpuS: treeCpuS(http.pid), at: Date.now() };
          const r = await postWrites(ctx, http.url, ctx.main, `bk${tag++}`);
          return {
            ...r,
            meanBatch: meanBatch(before.batches, await batches(http.url)),
            // Warm-up included: the service's share of a core over the whole round.
            cpu: round((treeCpuS(http.pid) - before.cpuS) / ((Date.now() - before.at) / 1000)),
          };
        },
        queue: intake('queue', {}),
        deep: intake('deep', { AMQP_PREFETCH: DEEP_PREFETCH }),
      },
      ctx.log,
    );
    const ratio = round(m.queue.throughput / m.http.throughput);
    const waiting = (DELTAS_PER_S * ctx.loadS).toLocaleString('en');
    // Half the HTTP write capacity: a load the relay should follow closely, with room to spare.
    const steadyRate = Math.max(50, Math.round(m.http.throughput / 2 / 50) * 50);
    const relay = await relayRuns(ctx, rabbit, names, start, steadyRate);
    return {
      rows: [
        {
          scenario: 'broker',
          variant: `HTTP writes, group commit (${WRITE_CONNECTIONS} conns)`,
          unit: 'req/s',
          ...m.http,
          rssMb: mb(treeRss(http.pid)),
          note: `baseline (service); ${facts(m.http)}`,
        },
        {
          scenario: 'broker',
          variant: `deltas from the queue (${waiting} waiting)`,
          unit: 'deltas/s',
          ...m.queue,
          rssMb: rss.queue,
          ratio,
          note: `${facts(m.queue)}; errors = dead-lettered`,
        },
        {
          scenario: 'broker',
          variant: `deltas from the queue, AMQP_PREFETCH=${DEEP_PREFETCH}`,
          unit: 'deltas/s',
          ...m.deep,
          rssMb: rss.deep,
          ratio: round(m.deep.throughput / m.http.throughput),
          note: `${facts(m.deep)}; default prefetch 150`,
        },
        ...relay.rows,
      ],
      targets: [
        {
          scenario: 'broker',
          target: 'deltas from the queue ≥ 2× HTTP writes (issue 16)',
          measured: `${ratio}× (${Math.round(m.queue.throughput)} vs ${Math.round(m.http.throughput)}/s; prefetch ${DEEP_PREFETCH}: ${round(m.deep.throughput / m.http.throughput)}×), ${m.queue.errors} dead-lettered`,
          met: ratio >= 2 && m.queue.errors === 0,
        },
        ...relay.targets,
      ],
      details: { names, deltasPerRound: DELTAS_PER_S * ctx.loadS, rounds: m, ...relay.details },
    };
  } finally {
    for (const s of services) await s.stop();
    await rabbit.cleanup(names);
  }
}

/**
 * One round: N deltas wait in the queue (declared as the service declares it) before a fresh service starts
 * consuming. Timed from the first count after start-up (the mirror rebuild and JIT warm-up overlap the
 * first messages, so they are left out) until every delta was applied or dead-lettered.
 */
async function drainQueue(
  ctx: BenchContext,
  rabbit: BenchRabbit,
  names: ReturnType<typeof rabbitNames>,
  tag: string,
  start: (name: string, env: Record<string, string>) => Promise<RunningService>,
  env: Record<string, string>,
): Promise<Measured & { rssMb: number; meanBatch: number; cpu: number }> {
  const n = DELTAS_PER_S * ctx.loadS;
  const waiting = await rabbit.declareDeltas(names);
  if (waiting) throw new Error(`broker: ${waiting} messages already in ${names.queue}`);
  const users = ctx.main.userIds;
  await rabbit.publishAll(
    names.queue,
    Array.from({ length: n }, (_, i) => ({
      userId: users[Math.floor(Math.random() * users.length)],
      scoreIncrement: 1,
      actionId: `${ctx.runId}-${tag}-${i}`,
    })),
  );
  // With WORKERS > 1 each /readyz answer is one worker's counters: count the round's events in MySQL instead,
  // by an author of the round's own, less often (that COUNT is not free).
  const actor = `sbbench-${tag}`;
  const db = ctx.workers > 1 ? benchDb(ctx.main.url, 1) : undefined;
  const s = await start(`intake-${tag}`, { ...env, AMQP_ACTOR_ID: actor });
  try {
    const counted = () => (db ? countedInMysql(db, actor) : consumed(s.url));
    const first = await counted();
    const cpuS = treeCpuS(s.pid);
    let last = first;
    const deadline = Date.now() + 120_000;
    while (last.applied + last.dead + last.replayed < n) {
      if (Date.now() > deadline) throw new Error(`broker: ${n - last.applied} deltas not applied in 120 s`);
      await sleep(db ? 200 : 20);
      last = await counted();
    }
    const durationS = (last.at - first.at) / 1000;
    const operations = last.applied - first.applied;
    return {
      meanBatch: meanBatch({ sum: 0, count: 0 }, await batches(s.url)),
      cpu: round((treeCpuS(s.pid) - cpuS) / durationS),
      throughput: operations / durationS,
      p50Ms: NaN, // a backlog has no per-message latency worth the name
      p99Ms: NaN,
      errors: last.dead,
      operations,
      durationS,
      rssMb: mb(treeRss(s.pid)),
    };
  } finally {
    await s.stop();
    await db?.destroy();
  }
}

async function countedInMysql(db: Knex, actor: string) {
  const [rows] = await db.raw('SELECT COUNT(*) AS n FROM score_events WHERE actor_id = ?', [actor]);
  const applied = Number((rows as Array<{ n: number }>)[0].n);
  return { applied, replayed: 0, dead: 0, retried: 0, at: Date.now() };
}

/** What says where a write path's time went: deltas per transaction, and how busy the service was. */
const facts = (r: { meanBatch: number; cpu: number }) => `${r.meanBatch}/batch, ${r.cpu} CPU`;

/** The service's group-commit batches so far (score_write_batch_size; one process's with WORKERS > 1). */
async function batches(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { sum: value('score_write_batch_size_sum'), count: value('score_write_batch_size_count') };
}

/** Deltas per transaction between two readings: how well the group commit filled its batches. */
const meanBatch = (a: { sum: number; count: number }, b: { sum: number; count: number }) =>
  round((b.sum - a.sum) / (b.count - a.count), 1);

/** The intake's counters from /readyz (of one process). */
async function consumed(url: string) {
  const res = await fetch(`${url}/readyz`);
  const body = (await res.json()) as {
    broker?: { consumed?: { applied: number; replayed: number; dead: number; retried: number } };
  };
  const c = body.broker?.consumed;
  if (!c) throw new Error(`broker: /readyz has no broker counters: ${JSON.stringify(body)}`);
  return { ...c, at: Date.now() };
}

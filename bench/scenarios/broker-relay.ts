import { mb, type BenchContext, type Row, type Target } from '../lib/context';
import { benchDb } from '../lib/data';
import { percentiles, type Measured } from '../lib/load';
import { sleep, treeRss } from '../lib/proc';
import type { BenchRabbit, Probe, RabbitNames } from '../lib/rabbit';
import type { RunningService } from '../lib/service';
import { timedWrites } from '../lib/timed-writes';
import { WRITE_CONNECTIONS } from './writes';

/**
 * Backlog per second of load: enough that the rate is a sustained one (measured over up to `loadS`), not a
 * burst, into either probe.
 */
const BACKLOG_PER_S = 3000;

type Start = (name: string, env: Record<string, string>) => Promise<RunningService>;

interface Lag extends Measured {
  /** The same lag from the event's committedAt (the INSERT's time), and commit to 201, p50/p99 in ms. */
  fromCommittedAt: number[];
  committedTo201: number[];
  /** Median lag of the writes answered in each quarter of the run: growing means the relay falls behind. */
  p50ByQuarter: number[];
  missing: number;
  /** Up to 20 writes whose event never came: committed (their score_events id) or not, against the watermark. */
  missingSample: Array<{ actionId: string; eventId?: number }>;
  watermark?: number;
  duplicates: number;
  offeredRate?: number;
}

/**
 * The outbound relay on the main database: its throughput from a backlog (the watermark set K events behind
 * the head, as after an outage), into an exclusive classic probe queue and into a durable quorum one (what a
 * real consumer holds; each of the relay's one-at-a-time publishes waits for the queue's confirm); then,
 * caught up, the lag from a write's 201 to its event at the probe, under a steady load and at full speed.
 */
export async function relayRuns(
  ctx: BenchContext,
  rabbit: BenchRabbit,
  names: RabbitNames,
  start: Start,
  steadyRate: number,
): Promise<{ rows: Row[]; targets: Target[]; details: Record<string, unknown> }> {
  const db = benchDb(ctx.main.url, 1);
  const relayName = `amqp:${names.exchange}`; // the service's event_relay row for this exchange
  const head = async () => {
    const [rows] = await db.raw('SELECT COALESCE(MAX(id), 0) AS head FROM score_events');
    return Number((rows as Array<{ head: number }>)[0].head);
  };
  const setWatermark = async (id: number) =>
    db.raw(
      'INSERT INTO event_relay (name, last_event_id) VALUES (?, ?) ON DUPLICATE KEY UPDATE last_event_id = VALUES(last_event_id)',
      [relayName, id],
    );

  /** Whether writes whose event never arrived were committed, and where the relay's watermark stands. */
  const explainMissing = async (actions: string[]) => {
    if (!actions.length) return { missingSample: [] };
    const [rows] = await db.raw(
      `SELECT id, action_id FROM score_events WHERE action_id IN (${actions.map(() => '?').join(',')})`,
      actions,
    );
    const ids = new Map((rows as Array<{ id: number; action_id: string }>).map((r) => [r.action_id, r.id]));
    const [[mark]] = (await db.raw('SELECT last_event_id FROM event_relay WHERE name = ?', [relayName])) as [
      Array<{ last_event_id: number }>,
    ];
    return {
      missingSample: actions.map((a) => ({ actionId: a, eventId: ids.get(a) && Number(ids.get(a)) })),
      watermark: Number(mark?.last_event_id),
    };
  };

  /** Starts a relaying service K events behind and measures the probe's arrival rate for up to loadS. */
  const backlog = async (kind: 'classic' | 'quorum') => {
    const probe = await rabbit.probe(names, kind);
    const top = await head();
    const k = Math.min(top, BACKLOG_PER_S * ctx.loadS);
    await setWatermark(top - k);
    ctx.log(`broker: relay backlog of ${k.toLocaleString('en')} events into a ${kind} probe queue`);
    const s = await start(`relay-${kind}`, { AMQP_EVENTS_EXCHANGE: names.exchange });
    await waitUntil(
      () => probe.arrivals > 0,
      // GET_LOCK is server-wide: another relay on this MariaDB (a test suite's) holds it meanwhile.
      60_000,
      'the first relayed event (is another relay holding the MySQL lock "scoreboard.event-relay"?)',
    );
    await waitUntil(
      () => probe.arrivals >= k || Date.now() - probe.firstAt >= ctx.loadS * 1000,
      ctx.loadS * 1000 + 10_000,
      'the relay backlog',
    );
    const seen = probe.arrivals;
    const durationS = (probe.lastAt - probe.firstAt) / 1000;
    const m: Measured = {
      throughput: durationS > 0 ? (seen - 1) / durationS : NaN,
      p50Ms: NaN,
      p99Ms: NaN,
      errors: 0,
      operations: seen,
      durationS,
    };
    return { s, probe, m, backlog: k, rss: mb(treeRss(s.pid)) };
  };

  /** Writes through the relaying service, then waits for each answered write's event at the probe. */
  const lag = async (s: RunningService, probe: Probe, tag: string, rate?: number): Promise<Lag> => {
    const base = { url: s.url, tokens: ctx.main.tokens, connections: WRITE_CONNECTIONS, rate };
    const duplicatesBefore = probe.duplicates; // the probe is shared by both lag runs
    await timedWrites({ ...base, tag: `${ctx.runId}-${tag}-warm`, durationS: ctx.warmupS });
    const w = await timedWrites({ ...base, tag: `${ctx.runId}-${tag}`, durationS: ctx.loadS });
    const arrived = () => [...w.answered.keys()].filter((a) => probe.byAction.has(a)).length;
    // Done when everything arrived, or nothing more came for 5 s (an event the relay skipped never comes).
    let last = -1;
    let quietSince = Date.now();
    while (arrived() < w.answered.size && Date.now() - quietSince < 5000) {
      const n = arrived();
      if (n !== last) [last, quietSince] = [n, Date.now()];
      await sleep(100);
    }
    const lags: number[] = [];
    const fromStamp: number[] = [];
    const toAnswer: number[] = [];
    const missing: string[] = [];
    const quarters: number[][] = [[], [], [], []];
    const times = [...w.answered.values()];
    const t0 = times.reduce((a, b) => Math.min(a, b), Infinity);
    const span = Math.max(1, times.reduce((a, b) => Math.max(a, b), -Infinity) - t0);
    for (const [action, at] of w.answered) {
      const got = probe.byAction.get(action);
      if (got === undefined) {
        missing.push(action);
        continue;
      }
      const stamp = probe.committedAt.get(action)!;
      lags.push(got - at);
      quarters[Math.min(3, Math.floor(((at - t0) / span) * 4))].push(got - at);
      fromStamp.push(got - stamp);
      toAnswer.push(at - stamp);
    }
    const [p50, p99] = percentiles(lags, [50, 99]);
    const sample = await explainMissing(missing.slice(0, 20));
    return {
      throughput: w.answered.size / w.durationS,
      p50Ms: p50,
      p99Ms: p99,
      errors: w.errors,
      operations: w.answered.size,
      durationS: w.durationS,
      fromCommittedAt: percentiles(fromStamp, [50, 99]),
      committedTo201: percentiles(toAnswer, [50, 99]),
      p50ByQuarter: quarters.map((q) => percentiles(q, [50])[0]),
      missing: missing.length,
      ...sample,
      duplicates: probe.duplicates - duplicatesBefore,
      offeredRate: rate,
    };
  };

  try {
    const classic = await backlog('classic');
    // Skip what is left of the backlog (moving the watermark forward is safe: the relay only ever raises it),
    // then wait until the relay is quiet: caught up.
    await setWatermark(await head());
    await waitUntil(() => Date.now() - classic.probe.lastAt > 1000, 30_000, 'the relay to catch up');
    ctx.log(`broker: relay lag under ${steadyRate} writes/s, then at full speed`);
    const steady = await lag(classic.s, classic.probe, 'steady', steadyRate);
    const full = await lag(classic.s, classic.probe, 'full');
    const rssMb = mb(treeRss(classic.s.pid));
    await classic.s.stop();
    await classic.probe.close();
    const quorum = await backlog('quorum');
    await quorum.s.stop();
    await quorum.probe.close();

    const row = (variant: string, unit: string, m: Measured, rss: number, note?: string): Row => ({
      scenario: 'broker',
      variant,
      unit,
      ...m,
      rssMb: rss,
      note,
    });
    const lagNote = (l: Lag) =>
      `p50/p99: 201 → probe; ${l.missing} never arrived${l.duplicates ? `, ${l.duplicates} duplicates` : ''}`;
    return {
      rows: [
        row(
          'relay, backlog → classic probe queue',
          'events/s',
          classic.m,
          classic.rss,
          `${classic.m.operations.toLocaleString('en')} seen of a ${classic.backlog.toLocaleString('en')} backlog`,
        ),
        row(
          'relay, backlog → quorum probe queue',
          'events/s',
          quorum.m,
          quorum.rss,
          `${quorum.m.operations.toLocaleString('en')} seen of a ${quorum.backlog.toLocaleString('en')} backlog`,
        ),
        row(`relay lag, steady ${steadyRate} writes/s`, 'writes/s', steady, rssMb, lagNote(steady)),
        row(
          `relay lag, writes at full speed (${WRITE_CONNECTIONS} conns)`,
          'writes/s',
          full,
          rssMb,
          lagNote(full),
        ),
      ],
      targets: [
        {
          scenario: 'broker',
          target: 'relay: the event of every answered write arrives (at least once)',
          measured: `${steady.missing} of ${steady.operations} missing (steady), ${full.missing} of ${full.operations} (full speed)`,
          met: steady.missing === 0 && full.missing === 0,
        },
      ],
      details: {
        relay: { backlog: { classic: classic.backlog, quorum: quorum.backlog }, steady, full },
      },
    };
  } finally {
    await db.destroy();
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`broker: ${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

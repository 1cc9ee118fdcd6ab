import { Connection, type AsyncMessage } from 'rabbitmq-client';

export const BENCH_AMQP_URL = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** This run's names on the shared broker (never the service's defaults), and the names the service derives. */
export function rabbitNames(runId: string) {
  const base = `sbbench.${runId}`;
  const queue = `${base}.deltas`;
  return {
    queue,
    dead: `${queue}.dead`,
    deadExchange: `${queue}.dead-letter`,
    exchange: `${base}.events`,
    probe: (kind: string) => `${base}.probe-${kind}`,
  };
}
export type RabbitNames = ReturnType<typeof rabbitNames>;

/** What a probe queue saw: first arrival per actionId, and when each arrived. */
export interface Probe {
  arrivals: number;
  duplicates: number;
  /** Date.now() of each event's first arrival, by its actionId. */
  byAction: Map<string, number>;
  /** Each event's committedAt (MySQL's clock, the same host's), by actionId: a cross-check of the lag. */
  committedAt: Map<string, number>;
  firstAt: number;
  lastAt: number;
  close: () => Promise<void>;
}

export function benchRabbit(url = BENCH_AMQP_URL) {
  const connection = new Connection({ url, retryLow: 100, retryHigh: 1000 });
  connection.on('error', () => {}); // reconnects by itself; a bench step that needs it fails on its own
  const publisher = connection.createPublisher({ confirm: true, maxAttempts: 3 });
  const probes: Probe[] = [];
  let cleaning: Promise<void> | undefined;

  return {
    connection,
    /**
     * Declares the deltas queue exactly as the service does (src/broker/rabbitmq.ts), so our messages can wait
     * in it before the service starts and its own declaration then matches instead of failing.
     */
    async declareDeltas(names: RabbitNames): Promise<number> {
      const ok = await connection.queueDeclare({
        queue: names.queue,
        durable: true,
        arguments: {
          'x-queue-type': 'quorum',
          'x-dead-letter-exchange': names.deadExchange,
          'x-delivery-limit': 20,
        },
      });
      return ok.messageCount;
    },
    /** Publishes JSON bodies to a queue with confirms, `inFlight` unconfirmed at a time (order is not needed). */
    async publishAll(queue: string, bodies: object[], inFlight = 500): Promise<void> {
      for (let i = 0; i < bodies.length; i += inFlight)
        await Promise.all(
          bodies
            .slice(i, i + inFlight)
            .map((b) =>
              publisher.send({ routingKey: queue, contentType: 'application/json', durable: true }, b),
            ),
        );
    },
    /**
     * A queue bound to the events exchange with `score.#`, consumed here, recording when each event arrives.
     * `quorum` makes it a durable quorum queue (what a real consumer would hold), else an exclusive classic one.
     */
    async probe(names: RabbitNames, kind: 'classic' | 'quorum'): Promise<Probe> {
      const queue = names.probe(kind);
      const p: Probe = {
        arrivals: 0,
        duplicates: 0,
        byAction: new Map(),
        committedAt: new Map(),
        firstAt: 0,
        lastAt: 0,
        close: async () => {
          await consumer.close();
          await connection.queueDelete({ queue }).catch(() => {});
        },
      };
      const consumer = connection.createConsumer(
        {
          queue,
          queueOptions:
            kind === 'quorum'
              ? { durable: true, arguments: { 'x-queue-type': 'quorum' } }
              : { exclusive: true, autoDelete: true },
          exchanges: [{ exchange: names.exchange, type: 'topic', durable: true }],
          queueBindings: [{ queue, exchange: names.exchange, routingKey: 'score.#' }],
          // Enough in flight that the probe is never what holds the relay's confirms back.
          qos: { prefetchCount: 1000 },
          concurrency: 1000,
        },
        async (msg: AsyncMessage) => {
          const now = Date.now();
          p.firstAt ||= now;
          p.lastAt = now;
          p.arrivals++;
          const body = msg.body as { actionId?: unknown; committedAt?: string };
          const action = String(body?.actionId);
          if (p.byAction.has(action)) p.duplicates++;
          else {
            p.byAction.set(action, now);
            p.committedAt.set(action, Date.parse(body?.committedAt ?? ''));
          }
        },
      );
      consumer.on('error', () => {});
      await new Promise<void>((r) => consumer.once('ready', () => r()));
      probes.push(p);
      return p;
    },
    /**
     * Deletes every queue and exchange of the run (the service's dead letters too), then disconnects. Once:
     * the scenario calls it when done, the runner again on exit or Ctrl-C.
     */
    cleanup: (names: RabbitNames): Promise<void> =>
      (cleaning ??= (async () => {
        for (const p of probes) await p.close().catch(() => {});
        for (const queue of [names.queue, names.dead, names.probe('classic'), names.probe('quorum')])
          await connection.queueDelete({ queue }).catch(() => {});
        for (const exchange of [names.deadExchange, names.exchange])
          await connection.exchangeDelete({ exchange }).catch(() => {});
        await publisher.close();
        await connection.close();
      })()),
  };
}
export type BenchRabbit = ReturnType<typeof benchRabbit>;

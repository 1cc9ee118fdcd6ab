import { Connection, ConsumerStatus, type AsyncMessage, type Consumer } from 'rabbitmq-client';
import type { Logger } from 'pino';
import type { BrokerEvent, DeltaSource, Disposition, EventSink } from './ports';

/**
 * RabbitMQ through rabbitmq-client: one connection that reconnects with backoff on its own, re-declaring the
 * queues and exchanges and re-creating the consumer and publishers after every reset. Deltas come from a
 * durable quorum queue; a message that can never apply is republished to the dead-letter queue with its
 * reason in a header (a confirmed publish) and then acknowledged, so it is never redelivered in a loop.
 */
export function createRabbit(deps: { url: string; logger: Logger }) {
  const { logger } = deps;
  const connection = new Connection({
    url: deps.url,
    retryLow: 200,
    retryHigh: 30_000,
    connectionTimeout: 5000,
  });
  connection.on('error', (err) => logger.warn({ err: (err as Error).message }, 'amqp connection error'));
  connection.on('connection', () => logger.info('amqp connected'));

  let sourceDepth: (() => Promise<number | undefined>) | undefined;

  function deltaSource(opts: { queue: string; deadLetterQueue: string; prefetch: number }): DeltaSource {
    const deadExchange = `${opts.queue}.dead-letter`;
    const dead = connection.createPublisher({
      confirm: true,
      maxAttempts: 3,
      exchanges: [{ exchange: deadExchange, type: 'fanout', durable: true }],
      queues: [{ queue: opts.deadLetterQueue, durable: true, arguments: { 'x-queue-type': 'quorum' } }],
      queueBindings: [{ queue: opts.deadLetterQueue, exchange: deadExchange, routingKey: '' }],
    });
    let consumer: Consumer | undefined;
    const source: DeltaSource = {
      start(handle) {
        // The dead-letter queue exists from the start (operators alert on its depth), not at the first use.
        void (async () => {
          await connection.exchangeDeclare({ exchange: deadExchange, type: 'fanout', durable: true });
          await connection.queueDeclare({
            queue: opts.deadLetterQueue,
            durable: true,
            arguments: { 'x-queue-type': 'quorum' },
          });
          await connection.queueBind({ queue: opts.deadLetterQueue, exchange: deadExchange, routingKey: '' });
        })().catch((err) =>
          logger.warn({ err: (err as Error).message }, 'could not declare the dead-letter queue yet'),
        );
        consumer = connection.createConsumer(
          {
            queue: opts.queue,
            queueOptions: {
              durable: true,
              arguments: {
                'x-queue-type': 'quorum',
                // A message that keeps crashing its consumer (never settled) goes to the dead letters too.
                'x-dead-letter-exchange': deadExchange,
                'x-delivery-limit': 20,
              },
            },
            exchanges: [{ exchange: deadExchange, type: 'fanout', durable: true }],
            qos: { prefetchCount: opts.prefetch },
            concurrency: opts.prefetch,
          },
          async (msg: AsyncMessage) => {
            const outcome: Disposition = await handle(msg.body);
            if (outcome.kind === 'ack') return ConsumerStatus.ACK;
            if (outcome.kind === 'retry') return ConsumerStatus.REQUEUE;
            await dead.send(
              {
                exchange: deadExchange,
                routingKey: opts.queue,
                durable: true,
                contentType: msg.contentType,
                messageId: msg.messageId,
                headers: {
                  ...msg.headers,
                  'x-scoreboard-reason': outcome.reason,
                  'x-original-queue': opts.queue,
                },
              },
              msg.body,
            );
            return ConsumerStatus.ACK;
          },
        );
        consumer.on('error', (err) => logger.warn({ err: (err as Error).message }, 'amqp consumer error'));
      },
      async stop() {
        await consumer?.close();
        await dead.close();
      },
      connected: () => connection.ready,
      async depth() {
        if (!connection.ready) return undefined;
        try {
          return (await connection.queueDeclare({ queue: opts.queue, passive: true })).messageCount;
        } catch {
          return undefined;
        }
      },
    };
    sourceDepth = source.depth;
    return source;
  }

  function eventSink(opts: { exchange: string }): EventSink {
    const publisher = connection.createPublisher({
      confirm: true,
      exchanges: [{ exchange: opts.exchange, type: 'topic', durable: true }],
    });
    return {
      async publish(events: BrokerEvent[]) {
        // In order: each waits for its confirm, so a failure leaves no later event published before it.
        for (const e of events)
          await publisher.send(
            { exchange: opts.exchange, routingKey: e.routingKey, messageId: e.messageId, durable: true },
            e.body,
          );
      },
      close: () => publisher.close(),
    };
  }

  return {
    deltaSource,
    eventSink,
    connected: () => connection.ready,
    /** The delta queue's depth, when a source exists and the broker answers. */
    deltaDepth: async () => sourceDepth?.(),
    close: () => connection.close(),
  };
}

export type Rabbit = ReturnType<typeof createRabbit>;

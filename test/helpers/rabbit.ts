import { randomBytes } from 'node:crypto';
import { Connection, type AsyncMessage } from 'rabbitmq-client';

export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/**
 * The test's own queue and exchange names on the shared RabbitMQ (never its defaults), a connection to
 * publish and inspect with, and cleanup that deletes everything the names cover.
 */
export function rabbitNames(label: string) {
  const base = `sbtest.${process.pid}.${randomBytes(3).toString('hex')}.${label}`;
  return {
    queue: `${base}.deltas`,
    dead: `${base}.deltas.dead`,
    deadExchange: `${base}.deltas.dead-letter`,
    exchange: `${base}.events`,
  };
}

export function testRabbit() {
  const connection = new Connection({ url: TEST_AMQP_URL, retryLow: 100, retryHigh: 1000 });
  connection.on('error', () => {});
  const publisher = connection.createPublisher({ confirm: true });
  return {
    connection,
    /** Publishes a JSON delta (or raw bytes) to a queue, confirmed. */
    async send(queue: string, body: object | Buffer, contentType = 'application/json') {
      await publisher.send({ routingKey: queue, contentType, durable: true }, body);
    },
    /** Collects every message of a queue (a consumer of its own) until stopped. */
    collect(queue: string, bind?: { exchange: string; routingKey: string }) {
      const seen: AsyncMessage[] = [];
      const consumer = connection.createConsumer(
        {
          queue,
          queueOptions: bind ? { exclusive: true, autoDelete: true } : { passive: true },
          queueBindings: bind ? [{ queue, exchange: bind.exchange, routingKey: bind.routingKey }] : [],
          exchanges: bind ? [{ exchange: bind.exchange, type: 'topic', durable: true }] : [],
        },
        async (msg) => {
          seen.push(msg);
        },
      );
      consumer.on('error', () => {});
      const ready = new Promise<void>((r) => consumer.once('ready', () => r()));
      return { seen, ready, close: () => consumer.close() };
    },
    async cleanup(names: ReturnType<typeof rabbitNames>) {
      for (const queue of [names.queue, names.dead]) await connection.queueDelete({ queue }).catch(() => {});
      for (const exchange of [names.deadExchange, names.exchange])
        await connection.exchangeDelete({ exchange }).catch(() => {});
      await publisher.close();
      await connection.close();
    },
  };
}

/**
 * What the service needs of a message broker, and nothing more: a source of delta messages with manual
 * acknowledgement, and a sink for events with publisher confirms. RabbitMQ implements both
 * (./rabbitmq.ts); a Kafka adapter would implement the same two (consumer-group offsets committed after the
 * batch, an idempotent producer), and nothing else in the service would change.
 */

/** What became of one delta message: acknowledge it, retry it later, or move it to the dead letters. */
export type Disposition = { kind: 'ack' } | { kind: 'retry' } | { kind: 'dead'; reason: string };

export interface DeltaSource {
  /** Delivers messages to `handle`, at most `prefetch` at once; each is settled by what `handle` returns. */
  start(handle: (body: unknown) => Promise<Disposition>): void;
  /** Stops taking messages and waits for the ones being handled (unsettled ones are redelivered). */
  stop(): Promise<void>;
  /** Connected to the broker right now. */
  connected(): boolean;
  /** Messages waiting in the queue, when the broker says. */
  depth(): Promise<number | undefined>;
}

export interface BrokerEvent {
  routingKey: string;
  /** Unique per event (consumers deduplicate by it). */
  messageId: string;
  body: object;
}

export interface EventSink {
  /** Publishes in order and resolves once the broker confirmed every one; rejects if any was not. */
  publish(events: BrokerEvent[]): Promise<void>;
  close(): Promise<void>;
}

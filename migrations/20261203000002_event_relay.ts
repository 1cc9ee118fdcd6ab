import type { Knex } from 'knex';

/**
 * The outbound relay's watermark: the id of the last score event the broker confirmed. `score_events` is the
 * outbox (every committed delta is a row, ids in commit order); the relay publishes from here on.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('event_relay', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('name', 64).primary(); // one row per relay target (today: the AMQP events exchange)
    t.bigInteger('last_event_id').unsigned().notNullable().defaultTo(0);
    t.datetime('updated_at', { precision: 3 })
      .notNullable()
      .defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('event_relay');
}

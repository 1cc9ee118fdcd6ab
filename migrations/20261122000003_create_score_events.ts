import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('score_events', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin'); // ids are case-sensitive, like the token's `sub`
    t.bigIncrements('id'); // orders all writes
    t.string('user_id', 64).notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.bigInteger('delta').notNullable();
    t.bigInteger('score_after').notNullable();
    // The rank given in the 201, kept so a replay answers with exactly the first response's body.
    t.integer('rank_after').unsigned().nullable();
    t.string('actor_id', 64).notNullable().references('id').inTable('users');
    t.string('action_id', 128).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    // Idempotency: an actionId applies at most once per user (NULLs do not collide).
    t.unique(['user_id', 'action_id'], { indexName: 'score_events_user_action' });
    t.index(['user_id', 'id'], 'score_events_user_history');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('score_events');
}

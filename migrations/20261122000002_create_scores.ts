import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('scores', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin'); // ids are case-sensitive, like the token's `sub`
    t.string('user_id', 64).primary().references('id').inTable('users').onDelete('CASCADE');
    t.bigInteger('score').notNullable().defaultTo(0);
    // When the current score was reached: the ranking tie-breaker (earlier wins).
    t.datetime('reached_at', { precision: 6 }).notNullable();
    // Bumped on every change to this row (a delta, a ban or unban). The Redis mirror only accepts a
    // user's entry with a version at least as new as the one it holds, so it never moves backwards.
    t.bigInteger('version').unsigned().notNullable().defaultTo(0);
    t.bigInteger('last_event_id').unsigned().nullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.datetime('updated_at', { precision: 3 })
      .notNullable()
      .defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
    t.index(['updated_at'], 'scores_updated_at'); // the mirror's catch-up scan
  });
  // Serves the top N in ranking order directly: score desc, earlier reach time, user id.
  // Descending index parts are honoured by MySQL 8 and MariaDB >= 10.8.
  await knex.raw('CREATE INDEX scores_ranking ON scores (score DESC, reached_at ASC, user_id ASC)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('scores');
}

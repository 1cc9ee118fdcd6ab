import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('cheat_flags', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('user_id', 64).notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.enu('reason', ['points_rate', 'rate_limited']).notNullable();
    t.integer('count').unsigned().notNullable().defaultTo(1);
    t.string('detail', 255).notNullable().defaultTo('');
    t.datetime('first_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.datetime('last_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.primary(['user_id', 'reason']);
    t.index(['last_at'], 'cheat_flags_last_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('cheat_flags');
}

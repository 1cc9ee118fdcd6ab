import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin'); // ids are case-sensitive, like the token's `sub`
    t.string('id', 64).primary(); // the token's `sub`
    t.string('display_name', 100).notNullable();
    t.enu('role', ['player', 'admin']).notNullable().defaultTo('player');
    t.enu('status', ['active', 'banned']).notNullable().defaultTo('active');
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.datetime('updated_at', { precision: 3 })
      .notNullable()
      .defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
    t.index(['updated_at'], 'users_updated_at'); // change detection for snapshots (bans, renames)
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('users');
}

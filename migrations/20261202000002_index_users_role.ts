import type { Knex } from 'knex';

/** Lets a role or status change lock just the active admins (the last-admin check) instead of scanning users. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => t.index(['role', 'status'], 'users_role_status'));
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => t.dropIndex(['role', 'status'], 'users_role_status'));
}

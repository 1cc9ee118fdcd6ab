import type { Knex } from 'knex';

/**
 * An idempotency key belongs to its author: a player reusing an admin's actionId for the same target (or the
 * other way round) must get its own outcome, not a replay of the other's. The unique key becomes
 * (target, actor, actionId).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('score_events', (t) => {
    t.unique(['user_id', 'actor_id', 'action_id'], { indexName: 'score_events_user_actor_action' });
  });
  await knex.schema.alterTable('score_events', (t) => {
    t.dropUnique(['user_id', 'action_id'], 'score_events_user_action');
  });
}

export async function down(knex: Knex): Promise<void> {
  // The narrower key cannot hold two authors' uses of one actionId for one target: refuse rather than lose
  // or rewrite history. Clear those keys by hand (the query below lists them) if you must go back.
  const [clashes] = await knex.raw(
    `SELECT user_id, action_id, COUNT(*) AS n FROM score_events WHERE action_id IS NOT NULL
     GROUP BY user_id, action_id HAVING COUNT(*) > 1 LIMIT 5`,
  );
  if ((clashes as unknown[]).length > 0) {
    throw new Error(
      `cannot restore the (user_id, action_id) unique key: ${JSON.stringify(clashes)} were used by more than one actor`,
    );
  }
  await knex.schema.alterTable('score_events', (t) => {
    t.unique(['user_id', 'action_id'], { indexName: 'score_events_user_action' });
  });
  await knex.schema.alterTable('score_events', (t) => {
    t.dropUnique(['user_id', 'actor_id', 'action_id'], 'score_events_user_actor_action');
  });
}

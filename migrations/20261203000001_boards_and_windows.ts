import type { Knex } from 'knex';

/**
 * Boards and windows. A board has a fixed list of windows (`all`, or a cron reset in UTC); scores live per
 * (board, window, cycle, user), a cycle named by its start (the `all` window's one cycle is stored as the
 * epoch). The board `global` (all, day, week, month) is created and today's totals become `global`/`all`,
 * unchanged: score, reach time (the tie-breaker), version and last event. The time windows start empty at the
 * migration. Events name their board.
 *
 * Rolling back restores the `scores` table from `global`/`all`. It refuses while other boards hold events,
 * because those could not be kept.
 */
const ALL = '1970-01-01 00:00:00';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('boards', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('id', 64).primary();
    t.string('title', 200).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.datetime('updated_at', { precision: 3 })
      .notNullable()
      .defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
  });
  await knex.schema.createTable('board_windows', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('board_id', 64).notNullable().references('id').inTable('boards').onDelete('CASCADE');
    t.string('name', 32).notNullable();
    t.string('reset', 100).nullable(); // a 5-field cron expression in UTC; NULL never resets
    t.tinyint('position').unsigned().notNullable();
    t.primary(['board_id', 'name']);
  });
  await knex('boards').insert({ id: 'global', title: 'Global' });
  await knex('board_windows').insert([
    { board_id: 'global', name: 'all', reset: null, position: 0 },
    { board_id: 'global', name: 'day', reset: '0 0 * * *', position: 1 },
    { board_id: 'global', name: 'week', reset: '0 0 * * 1', position: 2 },
    { board_id: 'global', name: 'month', reset: '0 0 1 * *', position: 3 },
  ]);

  await knex.schema.createTable('board_scores', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('board_id', 64).notNullable();
    t.string('window_name', 32).notNullable();
    t.datetime('cycle_start', { precision: 0 }).notNullable();
    t.string('user_id', 64).notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.bigInteger('score').notNullable().defaultTo(0);
    // When the current score was reached in this cycle: the tie-breaker (earlier wins).
    t.datetime('reached_at', { precision: 6 }).notNullable();
    // Bumped on every change of this row (a delta, a ban, an unban, a rename): the Redis mirror only takes an
    // entry at least as new as the one it holds, so it never moves backwards.
    t.bigInteger('version').unsigned().notNullable().defaultTo(0);
    t.bigInteger('last_event_id').unsigned().nullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.datetime('updated_at', { precision: 3 })
      .notNullable()
      .defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
    t.primary(['board_id', 'window_name', 'cycle_start', 'user_id']);
    t.foreign(['board_id', 'window_name']).references(['board_id', 'name']).inTable('board_windows');
    t.index(['updated_at'], 'board_scores_updated_at'); // the mirror's catch-up scan
    t.index(['user_id', 'cycle_start'], 'board_scores_user'); // bans and renames touch a user's live rows
  });
  // Each cycle's top N in ranking order (src/leaderboard/ranking.ts), straight from the index.
  await knex.raw(
    `CREATE INDEX board_scores_ranking ON board_scores
       (board_id, window_name, cycle_start, score DESC, reached_at ASC, user_id ASC)`,
  );
  await knex.raw(
    `INSERT INTO board_scores (board_id, window_name, cycle_start, user_id, score, reached_at, version,
                               last_event_id, created_at, updated_at)
     SELECT 'global', 'all', ?, user_id, score, reached_at, version, last_event_id, created_at, updated_at
     FROM scores`,
    [ALL],
  );
  await knex.schema.dropTable('scores');

  await knex.schema.alterTable('score_events', (t) => {
    t.string('board_id', 64).notNullable().defaultTo('global').references('id').inTable('boards');
    // Every window's cycle, total and rank as the first answer gave them, so a replay answers the same.
    t.text('windows_after').nullable();
    t.index(['board_id', 'id'], 'score_events_board');
  });
}

export async function down(knex: Knex): Promise<void> {
  const [others] = await knex.raw(
    "SELECT board_id, COUNT(*) AS n FROM score_events WHERE board_id <> 'global' GROUP BY board_id LIMIT 5",
  );
  if ((others as unknown[]).length > 0) {
    throw new Error(
      `cannot go back to one board: ${JSON.stringify(others)} hold events; export and delete them first`,
    );
  }
  await knex.schema.createTable('scores', (t) => {
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('user_id', 64).primary().references('id').inTable('users').onDelete('CASCADE');
    t.bigInteger('score').notNullable().defaultTo(0);
    t.datetime('reached_at', { precision: 6 }).notNullable();
    t.bigInteger('version').unsigned().notNullable().defaultTo(0);
    t.bigInteger('last_event_id').unsigned().nullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.datetime('updated_at', { precision: 3 })
      .notNullable()
      .defaultTo(knex.raw('CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)'));
    t.index(['updated_at'], 'scores_updated_at');
  });
  await knex.raw('CREATE INDEX scores_ranking ON scores (score DESC, reached_at ASC, user_id ASC)');
  await knex.raw(
    `INSERT INTO scores (user_id, score, reached_at, version, last_event_id, created_at, updated_at)
     SELECT user_id, score, reached_at, version, last_event_id, created_at, updated_at FROM board_scores
     WHERE board_id = 'global' AND window_name = 'all' AND cycle_start = ?`,
    [ALL],
  );
  await knex.schema.alterTable('score_events', (t) => {
    t.dropForeign(['board_id']);
    t.dropIndex(['board_id', 'id'], 'score_events_board');
  });
  await knex.schema.alterTable('score_events', (t) => {
    t.dropColumn('board_id');
    t.dropColumn('windows_after');
  });
  await knex.schema.dropTable('board_scores');
  await knex.schema.dropTable('board_windows');
  await knex.schema.dropTable('boards');
}

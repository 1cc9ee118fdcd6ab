import type { Knex } from 'knex';

/**
 * Demo users and starting scores, including a well-known admin: loaded only when SEED_DEMO=true (`npm run dev`
 * sets it), so a production database is never seeded with an admin whose id anyone can guess. Idempotent:
 * each starting score is an event with actionId "seed".
 */
export const DEMO_USERS: Array<{ id: string; displayName: string; role: 'player' | 'admin'; score: number }> =
  [
    { id: 'admin', displayName: 'Scoreboard Admin', role: 'admin', score: 0 },
    { id: 'ada', displayName: 'Ada Lovelace', role: 'player', score: 1200 },
    { id: 'grace', displayName: 'Grace Hopper', role: 'player', score: 1150 },
    { id: 'alan', displayName: 'Alan Turing', role: 'player', score: 1150 },
    { id: 'edsger', displayName: 'Edsger Dijkstra', role: 'player', score: 990 },
    { id: 'barbara', displayName: 'Barbara Liskov', role: 'player', score: 870 },
    { id: 'ken', displayName: 'Ken Thompson', role: 'player', score: 760 },
    { id: 'margaret', displayName: 'Margaret Hamilton', role: 'player', score: 640 },
    { id: 'linus', displayName: 'Linus Torvalds', role: 'player', score: 500 },
    { id: 'donald', displayName: 'Donald Knuth', role: 'player', score: 420 },
    { id: 'frances', displayName: 'Frances Allen', role: 'player', score: 310 },
    { id: 'john', displayName: 'John McCarthy', role: 'player', score: 150 },
  ];

export async function seed(knex: Knex): Promise<void> {
  if (process.env.SEED_DEMO !== 'true') {
    console.log('demo users skipped (set SEED_DEMO=true to load them)');
    return;
  }
  for (const u of DEMO_USERS) {
    await knex.transaction(async (trx) => {
      await trx.raw(
        'INSERT INTO users (id, display_name, role) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE id = id',
        [u.id, u.displayName, u.role],
      );
      if (u.score === 0) return;
      const seeded = await trx('score_events').where({ user_id: u.id, action_id: 'seed' }).first('id');
      if (seeded) return;
      // Demo points go to `global`/`all` (the time windows start empty).
      const row_ = {
        board_id: 'global',
        window_name: 'all',
        cycle_start: '1970-01-01 00:00:00',
        user_id: u.id,
      };
      await trx.raw(
        `INSERT INTO board_scores (board_id, window_name, cycle_start, user_id, score, reached_at, version)
         VALUES (?, ?, ?, ?, 0, CURRENT_TIMESTAMP(6), 0) ON DUPLICATE KEY UPDATE user_id = user_id`,
        [row_.board_id, row_.window_name, row_.cycle_start, u.id],
      );
      const [row] = await trx('board_scores').where(row_).forUpdate().select('score');
      const scoreAfter = Number(row.score) + u.score;
      const [eventId] = await trx('score_events').insert({
        user_id: u.id,
        delta: u.score,
        score_after: scoreAfter,
        actor_id: 'admin',
        action_id: 'seed',
      });
      await trx('board_scores')
        .where(row_)
        .update({
          score: scoreAfter,
          reached_at: trx.raw('CURRENT_TIMESTAMP(6)'),
          version: trx.raw('version + 1'),
          last_event_id: eventId,
        });
    });
  }
}

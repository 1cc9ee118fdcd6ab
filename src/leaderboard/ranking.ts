/**
 * The one owner of how a board is ordered and ranked, and of the Redis key names. Everything that orders,
 * ranks or names a key imports it: the snapshot query, the mirror's Lua scripts, the MySQL rank fallbacks,
 * the tests and the benchmark. (The index that serves the order, `scores_ranking` in the create_scores
 * migration, is history and is not rewritten: a change of order needs a new migration beside this file.)
 *
 * Order: score descending, then the earlier time that score was reached, then user id (bytewise).
 * Rank: competition ranking ("1224"): one plus the number of active users with a strictly greater score, so
 * equal scores share a rank and the next rank skips. Banned users are in neither.
 */

/** ORDER BY for the ranking, on a `board_scores` row alias. */
export const rankOrderSql = (alias = 's') =>
  `${alias}.score DESC, ${alias}.reached_at ASC, ${alias}.user_id ASC`;

/** One cycle of a board window: `s.board_id = ? AND s.window_name = ? AND s.cycle_start = ?`. */
export const IN_CYCLE_SQL = 's.board_id = ? AND s.window_name = ? AND s.cycle_start = ?';

/**
 * The users a score's rank counts: active users strictly above it in that cycle. Values: board, window,
 * cycle start, score.
 */
export const ABOVE_SQL = `SELECT COUNT(*) AS above FROM board_scores s JOIN users u ON u.id = s.user_id
  WHERE ${IN_CYCLE_SQL} AND s.score > ? AND u.status = 'active'`;

/** Rank from the number of users strictly above. */
export const rankFromAbove = (above: number) => above + 1;

/**
 * Lua: the number of members of the sorted set KEYS[key] strictly above `score` (a string), the same rule
 * in Redis, where the mirror's sorted set holds active users only.
 */
export const LUA_ABOVE = `local function above(key, score) return redis.call('ZCOUNT', key, '(' .. score, '+inf') end\n`;

/** Competition ranks for entries already in ranking order. */
export function competitionRanks(scores: number[]): number[] {
  const ranks: number[] = [];
  scores.forEach((score, i) => ranks.push(i > 0 && scores[i - 1] === score ? ranks[i - 1] : i + 1));
  return ranks;
}

/**
 * Every Redis key and channel the service uses, under REDIS_PREFIX. Tests, the benchmark and the soak take
 * key names from here too, so a rename cannot silently break them.
 *
 * Redis Cluster: every script and multi-key command touches keys of one hash slot. A board's keys (its
 * cycles' sorted sets and version hashes, its display-name hash, its snapshots) share the hash tag
 * `{b:<board>}`, so the mirror script of one board is one slot and boards spread over the shards; a user's
 * cheat counters share `{u:<user>}`; every other key is used alone. (A REDIS_PREFIX holding `{…}` puts
 * everything in the prefix's one slot, which is still correct.)
 */
export function redisKeys(prefix: string) {
  const board = (id: string) => `${prefix}{b:${id}}`;
  /**
   * One cycle of a board window in the mirror: a sorted set of its active users by score, and a hash of
   * user -> version of the row last mirrored (so the mirror never goes backwards).
   */
  const cycle = (boardId: string, window: string, cycleName: string) => ({
    scores: `${board(boardId)}lb:${window}:${cycleName}`,
    versions: `${board(boardId)}lbv:${window}:${cycleName}`,
  });
  const user = (id: string) => `${prefix}{u:${id}}`;
  return {
    cycle,
    /** `global`/`all`'s sorted set and version hash. */
    scores: cycle('global', 'all', 'all').scores,
    versions: cycle('global', 'all', 'all').versions,
    /** Hash: user -> display name, per board (beside the board's sorted sets, in its slot). */
    names: (boardId: string) => `${board(boardId)}names`,
    /**
     * Set while the mirror is known to be complete. (`v2`: the layout with hash tags; a mirror of the layout
     * before is rebuilt once, and its keys are left for the operator to delete, see README.)
     */
    mirrorReady: `${prefix}mirror:v2:ready`,
    /** A board window's shared top-N snapshot (string). */
    snapshotOf: (boardId: string, window: string) => `${board(boardId)}snapshot:${window}`,
    snapshot: `${board('global')}snapshot:all`,
    /**
     * A board's channel for its windows' snapshot notices (a message names its window). In the board's slot:
     * a shard channel (SPUBLISH) hashes like a key, and the snapshot script publishes on it.
     */
    boardChannel: (boardId: string) => `${board(boardId)}notices`,
    /** The per-user write limit's key prefix: `<writeLimit>:<user>` (one key per script call). */
    writeLimit: `${prefix}ratelimit:writes`,
    /** Cheat signals: a user's points in a minute, whether it was flagged that minute (one slot per user). */
    pointsPerMinute: (userId: string, minute: number) => `${user(userId)}ppm:${minute}`,
    pointsFlagged: (userId: string, minute: number) => `${user(userId)}ppm-flagged:${minute}`,
    rateLimitedHits: (userId: string, bucket: number) => `${prefix}rl-hits:${userId}:${bucket}`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

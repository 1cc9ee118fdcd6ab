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

/** ORDER BY for the ranking, on a `scores` row alias. */
export const rankOrderSql = (alias = 's') =>
  `${alias}.score DESC, ${alias}.reached_at ASC, ${alias}.user_id ASC`;

/** The users a score's rank counts: active users strictly above `?` (the score), on `scores s JOIN users u`. */
export const ABOVE_SQL = `SELECT COUNT(*) AS above FROM scores s JOIN users u ON u.id = s.user_id
  WHERE s.score > ? AND u.status = 'active'`;

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
 */
export function redisKeys(prefix: string) {
  return {
    /** Sorted set: active users by score (the mirror). */
    scores: `${prefix}scores`,
    /** Hash: user -> version of the scores row last mirrored (the mirror never goes backwards). */
    versions: `${prefix}score-versions`,
    /** Hash: user -> display name. */
    names: `${prefix}names`,
    /** Set while the mirror is known to be complete. */
    mirrorReady: `${prefix}mirror:ready`,
    /** The shared top-N snapshot (string) and the channel announcing a newer one. */
    snapshot: `${prefix}snapshot`,
    snapshotChannel: `${prefix}snapshot`,
    /** koa-ratelimit namespace of the per-user write limit. */
    writeLimit: `${prefix}ratelimit:writes`,
    /** Cheat signals: per-user points per minute (the Lua script appends `user:minute`), and 429s per bucket. */
    pointsPerMinute: `${prefix}ppm:`,
    pointsFlagged: `${prefix}ppm-flagged:`,
    rateLimitedHits: (userId: string, bucket: number) => `${prefix}rl-hits:${userId}:${bucket}`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

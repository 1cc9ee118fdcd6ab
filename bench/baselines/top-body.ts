/**
 * The top-10 body both bare broadcasters publish, shaped like the service's: the ticker leads with score T
 * (the send time, so subscribers can measure delivery), nine fixed players follow.
 */
const others = Array.from({ length: 9 }, (_, i) => ({
  rank: i + 2,
  userId: `u${String(i + 2).padStart(7, '0')}`,
  displayName: `Player ${i + 2}`,
  score: 999_999 - i,
}));

export const topBody = (t: number) =>
  JSON.stringify([{ rank: 1, userId: 'ticker', displayName: 'Ticker', score: t }, ...others]);

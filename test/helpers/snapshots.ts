import type { SnapshotEngine } from '../../src/leaderboard/snapshot/engine';

/**
 * Offers half-megabyte snapshots straight to an instance's engine, one every 20 ms, until `done()` (a slow
 * client was cut off) or 200 of them: the quickest way to fill a stuck client's socket buffers. Returns the
 * last version offered, which the clients that keep up must end on.
 */
export async function floodSnapshots(engine: SnapshotEngine, done: () => boolean): Promise<string> {
  const big = 'x'.repeat(500_000);
  const base = engine.current();
  let last = '';
  for (let i = 1; i <= 200 && !done(); i++) {
    last = `"big-${i}"`;
    engine.offer({
      cycle: base.cycle,
      cycleStartMs: base.cycleStartMs,
      body: Buffer.from(JSON.stringify([{ big, i }])),
      etag: last,
      maxEventId: base.maxEventId + i,
      readAtUs: 0,
    });
    await new Promise((r) => setTimeout(r, 20));
  }
  return last;
}

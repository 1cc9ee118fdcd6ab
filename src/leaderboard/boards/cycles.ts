import { CronExpressionParser } from 'cron-parser';

/**
 * Cycle arithmetic: a window's reset schedule (a 5-field cron expression in UTC, or none for `all`) and the
 * cycle that contains an instant. Parsing and stepping are cron-parser's (a maintained library, with DST-free
 * UTC handling and day-of-month/day-of-week rules as cron has them); this file only names cycles.
 *
 * A cycle is the span [start, end) between two resets, named by its start in UTC without milliseconds
 * (`2026-12-02T00:00:00Z`). The `all` window has the single cycle `all`. In MySQL a cycle is its start as a
 * DATETIME; `all` is stored as the epoch (ALL_CYCLE_START), which no cron cycle can start at in practice.
 */

export const PRESETS: Record<string, string | null> = {
  all: null,
  day: '0 0 * * *',
  week: '0 0 * * 1', // ISO weeks start on Monday
  month: '0 0 1 * *',
};

export const ALL_CYCLE = 'all';
/** How `all`'s one cycle is stored in the cycle_start column. */
export const ALL_CYCLE_START = new Date(0);

export interface Cycle {
  /** `all`, or the start instant as ISO 8601 without milliseconds. */
  name: string;
  /** Start of the cycle (ALL_CYCLE_START for `all`). */
  start: Date;
  /** The next reset, or null when the window never resets. */
  end: Date | null;
}

/** Why a reset expression was refused, for a 400 that says which part is wrong. */
export function checkReset(reset: string): string | undefined {
  const fields = reset.trim().split(/\s+/);
  if (fields.length !== 5)
    return 'a reset is a 5-field cron expression (minute hour day-of-month month day-of-week)';
  try {
    const e = CronExpressionParser.parse(fields.join(' '), { tz: 'UTC', currentDate: new Date() });
    e.next(); // an expression that never fires (e.g. 30 February) throws here
    return undefined;
  } catch (err) {
    return `invalid cron expression: ${(err as Error).message}`;
  }
}

const ALL: Cycle = Object.freeze({ name: ALL_CYCLE, start: ALL_CYCLE_START, end: null });

/**
 * The last cycle computed per reset expression. Parsing and stepping a cron expression costs 0.1-0.3 ms, and
 * the write path, the mirror and every snapshot ask for the current cycle all the time (a profile of writes
 * to `global` spent a third of the service's time here): nearly every question falls in the cycle asked last.
 * A pure memo of a pure function, bounded, shared by whoever asks.
 */
const recent = new Map<string, Cycle>();
const RECENT_MAX = 10_000;

/** The cycle of a window that contains instant `at`: the last reset at or before it, and the next one. */
export function cycleAt(reset: string | null, at: Date): Cycle {
  if (reset === null) return ALL;
  const t = at.getTime();
  const held = recent.get(reset);
  if (held && t >= held.start.getTime() && t < held.end!.getTime()) return held;
  const cycle = computeCycle(reset, at);
  if (recent.size >= RECENT_MAX) recent.clear();
  recent.set(reset, cycle);
  return cycle;
}

function computeCycle(reset: string, at: Date): Cycle {
  // prev() is strictly before currentDate; resets fall on whole minutes, so `at + 1 ms` includes `at` itself.
  const start = CronExpressionParser.parse(reset, { tz: 'UTC', currentDate: new Date(at.getTime() + 1) })
    .prev()
    .toDate();
  const end = CronExpressionParser.parse(reset, { tz: 'UTC', currentDate: start }).next().toDate();
  return Object.freeze({ name: cycleName(start), start, end });
}

/** The cycle just before `cycle` (for `all`, itself). */
export function previousCycle(reset: string | null, cycle: Cycle): Cycle {
  if (reset === null) return cycle;
  return cycleAt(reset, new Date(cycle.start.getTime() - 1));
}

export function cycleName(start: Date): string {
  return start.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The cycle named `name` of a window, when that really is one of its cycles' names. */
export function cycleNamed(reset: string | null, name: string): Cycle | undefined {
  if (reset === null) return name === ALL_CYCLE ? cycleAt(null, new Date()) : undefined;
  const start = new Date(name);
  if (Number.isNaN(start.getTime()) || cycleName(start) !== name) return undefined;
  const cycle = cycleAt(reset, start);
  return cycle.start.getTime() === start.getTime() ? cycle : undefined;
}

import { expect } from 'chai';
import { checkReset, cycleAt, cycleNamed, previousCycle, PRESETS } from '../src/leaderboard/boards/cycles';

const t = (iso: string) => new Date(iso);
const span = (reset: string | null, at: string) => {
  const c = cycleAt(reset, t(at));
  return [c.name, c.end?.toISOString() ?? null];
};

describe('cycle arithmetic (UTC, cron resets)', () => {
  const { day, week, month } = PRESETS as Record<string, string>;

  it('all has the one cycle "all" that never ends', () => {
    expect(span(null, '2026-12-02T10:00:00Z')).to.deep.equal(['all', null]);
    expect(cycleNamed(null, 'all')?.name).to.equal('all');
    expect(cycleNamed(null, '2026-12-02T00:00:00Z')).to.equal(undefined);
  });

  it('a day runs from midnight to midnight; the reset instant itself opens the new cycle', () => {
    expect(span(day, '2026-12-02T13:45:10.123Z')).to.deep.equal([
      '2026-12-02T00:00:00Z',
      '2026-12-03T00:00:00.000Z',
    ]);
    expect(span(day, '2026-12-03T00:00:00.000Z')[0]).to.equal('2026-12-03T00:00:00Z');
    expect(span(day, '2026-12-02T23:59:59.999Z')[0]).to.equal('2026-12-02T00:00:00Z');
  });

  it('months end on the 28th, 29th, 30th and 31st; a leap day belongs to February', () => {
    expect(span(month, '2026-01-31T23:59:59.999Z')).to.deep.equal([
      '2026-01-01T00:00:00Z',
      '2026-02-01T00:00:00.000Z',
    ]);
    expect(span(month, '2026-02-28T12:00:00Z')).to.deep.equal([
      '2026-02-01T00:00:00Z',
      '2026-03-01T00:00:00.000Z',
    ]);
    expect(span(month, '2028-02-29T12:00:00Z')).to.deep.equal([
      '2028-02-01T00:00:00Z',
      '2028-03-01T00:00:00.000Z',
    ]);
    expect(span(day, '2028-02-29T23:00:00Z')).to.deep.equal([
      '2028-02-29T00:00:00Z',
      '2028-03-01T00:00:00.000Z',
    ]);
    expect(span(month, '2026-04-30T23:59:59Z')[1]).to.equal('2026-05-01T00:00:00.000Z');
    expect(span(month, '2026-12-31T23:59:59Z')[1]).to.equal('2027-01-01T00:00:00.000Z');
  });

  it('weeks are ISO weeks from Monday, including week 53 across the new year', () => {
    // 2026 has 53 ISO weeks: week 53 is Monday 28 December 2026 to Sunday 3 January 2027.
    expect(span(week, '2027-01-01T12:00:00Z')).to.deep.equal([
      '2026-12-28T00:00:00Z',
      '2027-01-04T00:00:00.000Z',
    ]);
    expect(span(week, '2026-12-02T10:00:00Z')).to.deep.equal([
      '2026-11-30T00:00:00Z',
      '2026-12-07T00:00:00.000Z',
    ]);
    expect(t(cycleAt(week, t('2026-12-30T00:00:00Z')).start.toISOString()).getUTCDay()).to.equal(1);
  });

  it('is free of daylight saving time: every day of March and October is exactly 24 hours', () => {
    for (const m of ['2026-03', '2026-10']) {
      for (let d = 1; d <= 31; d++) {
        const at = t(`${m}-${String(d).padStart(2, '0')}T12:00:00Z`);
        const c = cycleAt(day, at);
        const oracle = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
        expect(c.start.getTime(), at.toISOString()).to.equal(oracle);
        expect(c.end!.getTime() - c.start.getTime()).to.equal(86_400_000);
      }
    }
  });

  it('any 5-field expression: every 15 minutes, every minute', () => {
    expect(span('*/15 * * * *', '2026-12-02T10:07:00Z')).to.deep.equal([
      '2026-12-02T10:00:00Z',
      '2026-12-02T10:15:00.000Z',
    ]);
    expect(span('* * * * *', '2026-12-02T10:07:59.999Z')).to.deep.equal([
      '2026-12-02T10:07:00Z',
      '2026-12-02T10:08:00.000Z',
    ]);
  });

  it('the previous cycle is the one just before, and names resolve only to real cycle starts', () => {
    expect(previousCycle(month, cycleAt(month, t('2026-03-10T00:00:00Z'))).name).to.equal(
      '2026-02-01T00:00:00Z',
    );
    expect(cycleNamed(day, '2026-12-02T00:00:00Z')?.end?.toISOString()).to.equal('2026-12-03T00:00:00.000Z');
    expect(cycleNamed(day, '2026-12-02T00:00:01Z')).to.equal(undefined);
    expect(cycleNamed(day, '2026-12-02')).to.equal(undefined);
    expect(cycleNamed(day, 'nonsense')).to.equal(undefined);
  });

  it('refuses what is not a 5-field expression that fires', () => {
    expect(checkReset('0 0 * * *')).to.equal(undefined);
    for (const bad of [
      '0 0 0 * * *',
      '* * * *',
      '@daily',
      '61 * * * *',
      '0 25 * * *',
      '0 0 30 2 *',
      'x y z a b',
    ])
      expect(checkReset(bad), bad).to.be.a('string');
  });
});

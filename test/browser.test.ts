import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { addPoints, addToTop, adminToken } from './helpers/api';
import { launchBrowser, screenshotIfFailed, watchConsole } from './helpers/browser';
import { uniqueUser } from './helpers/env';
import { eventually, startInstance, type Instance } from './helpers/instance';
import { openRawStream } from './helpers/sse';

interface Row {
  userId: string;
  rank: string;
  name: string;
  score: string;
}

/** What the page shows, row by row (score as digits only, whatever the locale's grouping). */
const rowsOn = (page: Page): Promise<Row[]> =>
  page.$$eval('#rows tr', (trs) =>
    trs.map((tr) => {
      const row = tr as HTMLTableRowElement;
      return {
        userId: row.dataset.userId ?? '',
        rank: row.querySelector('.rank-value')?.textContent ?? '',
        name: row.querySelector('.name-text')?.textContent ?? '',
        id: row.querySelector('.user-id')?.textContent ?? '',
        score: (row.querySelector('.points')?.textContent ?? '').replace(/\D/g, ''),
      };
    }),
  );

const stateOf = (page: Page) => page.getAttribute('#connection', 'data-state');

const waitForState = (page: Page, state: string, timeout = 5000) =>
  page.waitForSelector(`#connection[data-state="${state}"]`, { timeout });

/** Resolves when the user's row shows `score` (and rank 1 when asked). */
const waitForRow = (page: Page, userId: string, score: number, timeout: number) =>
  page.waitForFunction(
    ([id, digits]) => {
      const tr = [...document.querySelectorAll<HTMLTableRowElement>('#rows tr')].find(
        (row) => row.dataset.userId === id,
      );
      return tr?.querySelector('.points')?.textContent?.replace(/\D/g, '') === digits;
    },
    [userId, String(score)] as const,
    { timeout },
  );

// The browser itself reports a refused EventSource (503, not text/event-stream) in the console. That is the
// situation those tests create on purpose; anything else (a script error, a CSP violation) still fails them.
const REFUSED_STREAM = [/\/api\/v1\/scores\/stream/, /EventSource's response has a MIME type/];

describe('live page in a real browser', function () {
  this.timeout(60_000);
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let app: Instance;
  let page: Page | undefined;
  const extraInstances: Instance[] = [];

  before(async () => {
    browser = await launchBrowser();
    app = await startInstance({ SNAPSHOT_TICK_MS: '100' });
  });
  after(async () => {
    await browser?.close();
    await app?.close();
  });
  afterEach(async function () {
    await screenshotIfFailed(this.currentTest, page);
    await page?.close();
    page = undefined;
    await Promise.all(extraInstances.splice(0).map((i) => i.close()));
  });

  async function open(url: string, viewport?: { width: number; height: number }) {
    page = await browser.context.newPage();
    if (viewport) await page.setViewportSize(viewport);
    const console = watchConsole(page);
    await page.goto(url);
    return { page, console };
  }

  it('shows the top N (rank, name, score) exactly as /top, names as text, streaming live', async () => {
    const hostile = uniqueUser('page-xss');
    const hostileName = '<img src=x onerror="window.__xss=1">Mallory & <b>co</b>';
    await addToTop(app, uniqueUser('page-a'), 'Ada Lovelace');
    await addToTop(app, hostile, hostileName);
    await new Promise((r) => setTimeout(r, 300)); // one snapshot tick and then some

    const { page, console } = await open(`${app.url}/`);
    await waitForState(page, 'live');
    expect(await page.textContent('#connection-text')).to.equal('Live');
    const top = await app.request.get('/api/v1/scores/top');
    await page.waitForFunction(
      (etag) => document.getElementById('board')?.dataset.version === etag,
      top.headers.etag,
    );

    const entries = top.body as Array<{ rank: number; userId: string; displayName: string; score: number }>;
    const loose = (name: string) => name.normalize('NFKC').toLowerCase();
    const twice = (name: string) => entries.filter((o) => loose(o.displayName) === loose(name)).length > 1;
    const expected = entries.map((e) => ({
      userId: e.userId,
      rank: String(e.rank),
      name: e.displayName,
      id: twice(e.displayName) ? `@${e.userId}` : '',
      score: String(e.score),
    }));
    expect(expected).to.have.length.greaterThan(1);
    expect(await rowsOn(page)).to.deep.equal(expected);
    expect(expected[0].userId).to.equal(hostile);
    expect(await page.$$('#rows img, #rows b')).to.have.length(0);
    expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).to.equal(undefined);
    expect(console.errors()).to.deep.equal([]);
  });

  it('shows the user id beside a name that two users on screen share, so neither can pass for the other', async () => {
    const [real, copy] = [uniqueUser('page-real'), uniqueUser('page-copy')];
    await addToTop(app, real, 'Grace Hopper');
    await addToTop(app, copy, 'GRACE HOPPER');
    const { page, console } = await open(`${app.url}/`);
    await waitForState(page, 'live');
    await waitForRow(page, copy, (await app.request.get(`/api/v1/scores/users/${copy}`)).body.score, 2000);
    const rows = await rowsOn(page);
    expect(rows.find((r) => r.userId === real)).to.include({ name: 'Grace Hopper', id: `@${real}` });
    expect(rows.find((r) => r.userId === copy)).to.include({ name: 'GRACE HOPPER', id: `@${copy}` });
    expect(console.errors()).to.deep.equal([]);
  });

  it('has window tabs, a board picker and the time to the next reset, all through the URL, streaming live', async () => {
    const board = `page-${Date.now().toString(36)}`;
    const created = await app.request
      .post('/api/v1/boards')
      .set('Authorization', `Bearer ${adminToken()}`)
      .send({
        id: board,
        title: 'Page Board',
        windows: ['all', 'day', { name: 'minute', reset: '* * * * *' }],
      });
    expect(created.status, created.text).to.equal(201);
    const player = uniqueUser('page-board');
    const post = (scoreIncrement: number) =>
      app.request
        .post('/api/v1/scores/update')
        .set('Authorization', `Bearer ${adminToken()}`)
        .send({ userId: player, scoreIncrement, boardId: board });
    await addPoints(app, player, 1, 'Board Player'); // provisions the user (on global)
    expect((await post(40)).status).to.equal(201);

    const { page, console } = await open(`${app.url}/?board=${board}&window=day`);
    await waitForState(page, 'live');
    await waitForRow(page, player, 40, 3000);
    await page.waitForSelector('#views:not([hidden])');
    const tabs = await page.$$eval('#window-tabs a', (as) =>
      as.map((a) => [a.textContent, a.getAttribute('href'), a.getAttribute('aria-current')]),
    );
    expect(tabs).to.deep.equal([
      ['All time', `/?board=${board}`, null],
      ['Today', `/?board=${board}&window=day`, 'page'],
      ['minute', `/?board=${board}&window=minute`, null],
    ]);
    expect(await page.isVisible('#board-picker')).to.equal(true);
    expect(await page.$eval('#board-picker', (s) => (s as HTMLSelectElement).value)).to.equal(board);
    expect(await page.textContent('#next-reset')).to.match(
      /^Resets in \d+ h \d+ min$|^Resets in \d+ min \d+ s$/,
    );
    expect(await page.title()).to.equal('Page Board – Today – Live scoreboard');

    await page.click('#window-tabs a[data-window="minute"]');
    await page.waitForURL(`${app.url}/?board=${board}&window=minute`);
    await waitForState(page, 'live');
    expect(await page.textContent('#next-reset')).to.match(/^Resets in (\d+ s|1 min 0 s)$/);
    expect((await post(2)).status).to.equal(201);
    await waitForRow(page, player, 42, 3000).catch(async () => waitForRow(page, player, 2, 3000)); // a new minute
    expect(console.errors()).to.deep.equal([]);
  });

  it('fits a phone screen without sideways scrolling', async () => {
    await addToTop(
      app,
      uniqueUser('page-long'),
      'A player with a remarkably long display name, far too long',
    );
    const { page, console } = await open(`${app.url}/`, { width: 360, height: 740 });
    await waitForState(page, 'live');
    await page.waitForSelector('#rows tr');
    const widths = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    expect(widths.scroll).to.be.at.most(widths.client);
    expect(console.errors()).to.deep.equal([]);
  });

  it('shows a delta posted through the API within a second, and animates it', async () => {
    const { page, console } = await open(`${app.url}/`);
    await waitForState(page, 'live');
    await page.waitForSelector('#rows tr');

    const runner = uniqueUser('page-live');
    const lead = await addToTop(app, runner, 'Live Runner');
    await waitForRow(page, runner, lead.score, 1000);
    expect((await rowsOn(page))[0]).to.include({ userId: runner, rank: '1' });

    const bumped = await addPoints(app, runner, 7);
    await waitForRow(page, runner, bumped.score, 1000);
    const row = `#rows tr[data-user-id="${runner}"]`;
    expect(await page.textContent(`${row} .delta`)).to.equal('+7');
    expect(await page.getAttribute(`${row} .points`, 'class')).to.contain('bump');
    expect(await stateOf(page)).to.equal('live');
    expect(console.errors()).to.deep.equal([]);
  });

  it("with ?transport=ws streams over Chromium's own WebSocket, the same top N, live", async () => {
    const { page, console } = await open(`${app.url}/?transport=ws`);
    await waitForState(page, 'live');
    await eventually(() => app.services.ws.size() === 1);
    const runner = uniqueUser('page-ws');
    const lead = await addToTop(app, runner, 'Socket Runner');
    await waitForRow(page, runner, lead.score, 1000);
    const top = await app.request.get('/api/v1/scores/top');
    await page.waitForFunction(
      (etag) => document.getElementById('board')?.dataset.version === etag,
      top.headers.etag,
    );
    const shown = (await rowsOn(page)).map((r) => ({ userId: r.userId, rank: r.rank, score: r.score }));
    const want = (top.body as Array<{ rank: number; userId: string; score: number }>).map((e) => ({
      userId: e.userId,
      rank: String(e.rank),
      score: String(e.score),
    }));
    expect(shown).to.deep.equal(want);
    expect(console.errors()).to.deep.equal([]);
  });

  it('falls back to polling with If-None-Match when the stream is refused, and still updates', async () => {
    const refusing = await startInstance({
      SNAPSHOT_TICK_MS: '100',
      SSE_MAX_CLIENTS: '0',
      POLL_INTERVAL_S: '1',
    });
    extraInstances.push(refusing);
    const polls: Array<{ status: number; ifNoneMatch?: string }> = [];
    page = await browser.context.newPage();
    page.on('response', (res) => {
      if (new URL(res.url()).pathname === '/api/v1/scores/top') {
        polls.push({ status: res.status(), ifNoneMatch: res.request().headers()['if-none-match'] });
      }
    });
    const console = watchConsole(page);
    await page.goto(`${refusing.url}/`);
    await waitForState(page, 'polling');
    expect(await page.textContent('#connection-text')).to.equal('Polling every 1 s');

    const player = uniqueUser('page-poll');
    const lead = await addToTop(app, player, 'Polled Player'); // written through the other instance
    const posted = Date.now();
    await waitForRow(page, player, lead.score, 4000);
    expect(Date.now() - posted).to.be.below(3000); // one poll interval (1 s, jittered) plus a tick

    // Unchanged boards cost a 304: the page sends the version it shows.
    const deadline = Date.now() + 4000;
    while (!polls.some((p) => p.status === 304) && Date.now() < deadline) await page.waitForTimeout(100);
    const revalidations = polls.filter((p) => p.status === 304);
    expect(revalidations, JSON.stringify(polls)).to.have.length.greaterThan(0);
    expect(revalidations.every((p) => p.ifNoneMatch?.startsWith('"'))).to.equal(true);
    expect(await stateOf(page)).to.equal('polling');
    expect(console.errors(REFUSED_STREAM)).to.deep.equal([]);
  });

  it('goes back to the stream once it has room again', async () => {
    const full = await startInstance({ SNAPSHOT_TICK_MS: '100', SSE_MAX_CLIENTS: '1', POLL_INTERVAL_S: '1' });
    extraInstances.push(full);
    const occupant = openRawStream(`${full.url}/api/v1/scores/stream`);
    await occupant.ready;
    const { page, console } = await open(`${full.url}/`);
    await waitForState(page, 'polling');
    occupant.close();
    await waitForState(page, 'live', 8000); // the first retry comes after about 2 s

    const player = uniqueUser('page-back');
    const lead = await addToTop(full, player, 'Back Live');
    await waitForRow(page, player, lead.score, 1000);
    expect(console.errors(REFUSED_STREAM)).to.deep.equal([]);
  });

  it('renders the API reference at /docs from the local renderer, without console errors', async () => {
    const requests: string[] = [];
    page = await browser.context.newPage();
    page.on('request', (req) => requests.push(req.url()));
    const console = watchConsole(page);
    await page.goto(`${app.url}/docs`);
    await page.getByRole('heading', { name: 'Add a score delta' }).waitFor({ timeout: 15_000 });
    await page.getByRole('heading', { name: 'The top N as Server-Sent Events' }).waitFor();
    expect(requests.filter((u) => !u.startsWith(app.url) && !u.startsWith('blob:'))).to.deep.equal([]);
    expect(console.errors()).to.deep.equal([]);
  });
});

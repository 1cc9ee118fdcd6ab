import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium (CI installs it); CHROMIUM_PATH points elsewhere on other machines. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '../artifacts');

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A headless Chromium with a fresh, throw-away profile. */
export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `The browser tests need Chromium, and there is none at ${CHROMIUM_PATH}. ` +
        'Install it with `apt-get install -y chromium` (Debian), or set CHROMIUM_PATH to a Chromium binary.',
    );
  }
  const profile = mkdtempSync(path.join(tmpdir(), 'scoreboard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ARGS,
    viewport: { width: 800, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Collects what a person would see in the devtools console as an error: uncaught exceptions, console.error
 * calls and failed loads. `expected` filters messages a test provokes on purpose (a refused stream).
 */
export function watchConsole(page: Page) {
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  return {
    errors: (expected: RegExp[] = []) => errors.filter((e) => !expected.some((re) => re.test(e))),
  };
}

/** Saves what the page showed when a test failed, for the person reading the CI log. */
export async function screenshotIfFailed(
  test: Mocha.Test | undefined,
  page: Page | undefined,
): Promise<void> {
  if (!test || !page || test.state !== 'failed' || page.isClosed()) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(
    ARTIFACTS,
    `${test
      .fullTitle()
      .replace(/[^\w-]+/g, '-')
      .slice(0, 120)}.png`,
  );
  try {
    await page.screenshot({ path: file });
    console.error(`    screenshot of the failed page: ${path.relative(process.cwd(), file)}`);
  } catch (err) {
    console.error(`    could not take a screenshot: ${(err as Error).message}`);
  }
}

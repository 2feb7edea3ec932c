/**
 * Chromium for the page's tests: headless, from /usr/bin/chromium (IMGC_CHROMIUM elsewhere); a
 * suite is skipped, saying why, on a machine without it (.ci/run installs it).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.IMGC_CHROMIUM ?? '/usr/bin/chromium';

/** The browser, or undefined after skipping the suite (`ctx` is its `before` hook's `this`). */
export async function launchChromium(ctx: Mocha.Context): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) {
    process.stdout.write(`    skipped: no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)\n`);
    ctx.skip();
    return undefined;
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

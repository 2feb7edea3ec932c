/**
 * The demo page (GET / on the WebSocket port) in real headless Chromium (Debian's, driven by
 * playwright-core): two browser contexts sign in with their own generated keys, chat directly and in
 * a group, reload and see their history. Takes a screenshot of the page: into docs/client-demo.png with
 * IMGC_UPDATE_SCREENSHOT=1 (to refresh the one kept in docs), else into the temp directory.
 * Skipped (with a message) when /usr/bin/chromium is absent: .ci/run installs it.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from './support/chromium';
import { startServer, type ServerHandle } from './support/server';

const SHOT = process.env.IMGC_UPDATE_SCREENSHOT === '1'
  ? resolve(__dirname, '..', '..', 'docs', 'client-demo.png')
  : join(tmpdir(), `imgc-client-demo-${process.pid}.png`);

describe('demo page in Chromium', function () {
  this.timeout(120_000);
  let srv: ServerHandle | undefined;
  let browser: Browser | undefined;

  before(async function () {
    const launched = await launchChromium(this);
    if (launched === undefined) return;
    srv = await startServer(['--auth', 'signed']);
    browser = launched;
  });
  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  async function signIn(page: Page): Promise<string> {
    await page.goto(srv!.url.replace(/^ws/, 'http') + '/');
    await page.locator('#state.state-ready').waitFor({ timeout: 15_000 });
    const me = (await page.locator('#me').textContent())!;
    expect(me).to.match(/^5[1-9A-HJ-NP-Za-km-z]{47}$/);
    return me;
  }

  async function say(page: Page, text: string): Promise<void> {
    await page.fill('#compose input', text);
    await page.click('#compose button');
    await page.locator('.msg.mine', { hasText: text }).locator('.state.stored').waitFor({ timeout: 10_000 });
  }

  it('serves the page and its script; other paths still answer 426', async () => {
    const base = srv!.url.replace(/^ws/, 'http');
    const page = await fetch(`${base}/`);
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.match(/text\/html/);
    expect(await page.text()).to.include('<script type="module" src="/app.js">');
    const js = await fetch(`${base}/app.js`);
    expect(js.status).to.equal(200);
    expect(js.headers.get('content-type')).to.match(/javascript/);
    expect((await fetch(`${base}/nothing`)).status).to.equal(426);
  });

  it('two people chat directly and in a group, reload, and see their history', async () => {
    const ca = await browser!.newContext({ viewport: { width: 1000, height: 640 } });
    const cb = await browser!.newContext({ viewport: { width: 1000, height: 640 } });
    const a = await ca.newPage();
    const b = await cb.newPage();
    const errors: string[] = [];
    for (const p of [a, b]) p.on('pageerror', (e) => errors.push(String(e)));
    const alice = await signIn(a);
    const bob = await signIn(b);
    expect(alice).to.not.equal(bob);

    // Direct: alice starts a chat with bob's address.
    await a.fill('#new-direct input', bob);
    await a.click('#new-direct button');
    await say(a, 'hi bob');
    await b.locator(`#convs li[data-id="${alice}"]`).click();
    await b.locator('.msg.theirs', { hasText: 'hi bob' }).waitFor();
    await say(b, 'hello alice, how are you?');
    await a.locator('.msg.theirs', { hasText: 'hello alice, how are you?' }).waitFor();

    // Group: alice makes one with bob; bob sees it appear and reads the message.
    await a.fill('#new-group input', bob);
    await a.click('#new-group button');
    await a.locator('#title', { hasText: '# GD' }).waitFor();
    const gid = ((await a.locator('#title').textContent())!).slice(2);
    await say(a, 'welcome to the group');
    await b.locator(`#convs li[data-id="${gid}"]`).click();
    await b.locator('.msg.theirs', { hasText: 'welcome to the group' }).waitFor();
    await say(b, 'thanks!');
    await a.locator('.msg.theirs', { hasText: 'thanks!' }).waitFor();

    // Reload: the same key signs in again; the conversations and their history come back.
    await b.reload();
    await b.locator('#state.state-ready').waitFor();
    expect((await b.locator('#me').textContent())!).to.equal(bob);
    await b.locator(`#convs li[data-id="${alice}"]`).click();
    await b.locator('.msg.theirs', { hasText: 'hi bob' }).waitFor();
    await b.locator('.msg.mine', { hasText: 'hello alice, how are you?' }).waitFor();
    expect(await b.locator('.msg').count()).to.equal(2);

    await a.locator(`#convs li[data-id="${bob}"]`).click();
    await a.locator('.msg.theirs', { hasText: 'hello alice, how are you?' }).waitFor();
    await say(a, 'fine, thanks, and you?');
    await a.screenshot({ path: SHOT });
    expect(existsSync(SHOT), 'screenshot written').to.equal(true);
    expect(errors, errors.join('\n')).to.deep.equal([]);
    await ca.close();
    await cb.close();
  });
});

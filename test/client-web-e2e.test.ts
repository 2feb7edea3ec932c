/**
 * End-to-end encryption on the demo page, in real headless Chromium (as test/client-web.test.ts:
 * Debian's, driven by playwright-core; skipped with a message when it is absent):
 * - two browser profiles (two accounts, each its own localStorage with its device) chat directly:
 *   each line carries the lock, the title the "end-to-end encrypted" badge; a reload reads the
 *   history back decrypted; the texts are nowhere in the server's data directory;
 * - a W3OS client without device keys: plaintext, marked "not encrypted" (and found on disk: the
 *   control that the search above finds what is there);
 * - a record that does not decrypt (tampered): a "could not be decrypted" line with its code, never
 *   its bytes;
 * - the CLI (an Ed25519 key, so the page checks an Ed25519 vouch through WebCrypto) reads what the
 *   page sent it, decrypted.
 * And, without a browser, the page's vouch check (src/web/verify.ts) against @polkadot's signatures.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringToU8a, u8aToHex, u8aWrapBytes } from '@polkadot/util';
import { encodeAddress } from '@polkadot/util-crypto';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ImgcClient, polkadotVerify } from '../src/client/index';
import { ss58Decode, verify } from '../src/web/verify';
import { accountsReady, newAccount } from './support/accounts';
import { Client, isMessage, until } from './support/client';
import { foundIn } from './support/files';
import { launchChromium } from './support/chromium';
import { startServer, tempDir, type ServerHandle } from './support/server';

const CLI = resolve(__dirname, '..', 'src', 'cli', 'main.js');
const SHOT = join(tmpdir(), `imgc-client-demo-e2e-${process.pid}.png`);


interface Run { code: number | null; stdout: string; stderr: string }

function imgc(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<Run> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => { clearTimeout(t); res({ code, stdout, stderr }); });
  });
}

/** The JSON lines a --json run printed (exit 0 expected). */
function jsonLines(r: Run, what: string): any[] {
  expect(r.code, `${what}: exit code; stderr: ${r.stderr}; stdout: ${r.stdout}`).to.equal(0);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('demo page: the vouch check (src/web/verify.ts)', () => {
  before(accountsReady);

  it('accepts sr25519 and Ed25519 signatures, raw and <Bytes>-wrapped, of the account named', async () => {
    for (const type of ['sr25519', 'ed25519'] as const) {
      const acc = newAccount(type);
      const text = `IMGC end-to-end device\naccount: ${acc.address}\ndevice: ${'ab'.repeat(32)}`;
      const raw = u8aToHex(acc.pair.sign(stringToU8a(text)));
      const wrapped = u8aToHex(acc.pair.sign(u8aWrapBytes(text)));
      expect(await verify(text, raw, acc.address), `${type} raw`).to.equal(true);
      expect(await verify(text, wrapped, acc.address), `${type} wrapped`).to.equal(true);
      expect(await verify(text, raw.slice(2), acc.address), `${type} without 0x`).to.equal(true);
      // The SDK's own check agrees.
      expect(await polkadotVerify(text, raw, acc.address)).to.equal(true);
      // Another text, another account, a changed signature: false.
      expect(await verify(`${text}!`, raw, acc.address), `${type} other text`).to.equal(false);
      expect(await verify(text, raw, newAccount(type).address), `${type} other account`).to.equal(false);
      const flipped = `${raw.slice(0, -2)}${(parseInt(raw.slice(-2), 16) ^ 1).toString(16).padStart(2, '0')}`;
      expect(await verify(text, flipped, acc.address), `${type} changed signature`).to.equal(false);
    }
  });

  it('decodes SS58 with one- and two-byte prefixes; anything malformed is false, never a throw', async () => {
    const acc = newAccount();
    const pub = acc.pair.publicKey;
    expect(ss58Decode(acc.address)).to.deep.equal(pub);
    expect(ss58Decode(encodeAddress(pub, 0))).to.deep.equal(pub);
    expect(ss58Decode(encodeAddress(pub, 2))).to.deep.equal(pub);
    expect(ss58Decode(encodeAddress(pub, 1284))).to.deep.equal(pub); // two-byte prefix
    const sig = u8aToHex(acc.pair.sign(stringToU8a('x')));
    expect(await verify('x', sig, encodeAddress(pub, 1284))).to.equal(true);
    // One checksum bit changed: refused before any signature check.
    const bad = encodeAddress(pub, 42);
    const other = bad.slice(0, -1) + (bad.endsWith('1') ? '2' : '1');
    expect(ss58Decode(other)).to.equal(undefined);
    expect(await verify('x', sig, other)).to.equal(false);
    for (const [sigHex, account] of [
      ['0x', acc.address], ['0xzz', acc.address], [`${sig}00`, acc.address], [sig.slice(0, 10), acc.address],
      [sig, ''], [sig, 'not-base58-0OIl'], [sig, '5'], [sig, `${acc.address}x`],
    ]) {
      expect(await verify('x', sigHex!, account!), `${sigHex} ${account}`).to.equal(false);
    }
    expect(await verify(undefined as unknown as string, sig, acc.address)).to.equal(false);
    expect(await verify('x', null as unknown as string, acc.address)).to.equal(false);
    // An ECDSA account (its address is a hash of a 33-byte key): not checked here, false.
    const ecdsa = newAccount('ecdsa');
    expect(await verify('x', u8aToHex(ecdsa.pair.sign(stringToU8a('x'))), ecdsa.address)).to.equal(false);
  });
});

describe('demo page in Chromium: end-to-end encryption', function () {
  this.timeout(180_000);
  let srv: ServerHandle | undefined;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const sdk: ImgcClient[] = [];
  /** Page errors and console errors of every page. */
  const errors: string[] = [];

  before(async function () {
    const launched = await launchChromium(this);
    if (launched === undefined) return;
    await accountsReady();
    srv = await startServer(['--auth', 'signed']);
    browser = launched;
  });
  after(async () => {
    for (const c of sdk) c.close();
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await srv?.stop();
  });

  /** A new profile (its own localStorage: its own key and device) on the page. */
  async function profile(): Promise<Page> {
    const ctx = await browser!.newContext({ viewport: { width: 1000, height: 640 } });
    contexts.push(ctx);
    const page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(`pageerror: ${String(e)}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`); });
    return page;
  }

  /** Opens the page, waits until signed in and its device's key packages are on the server; its address. */
  async function signIn(page: Page): Promise<string> {
    await page.goto(srv!.url.replace(/^ws/, 'http') + '/');
    await page.locator('#state.state-ready').waitFor({ timeout: 15_000 });
    await page.locator('#device:not([hidden])').waitFor({ timeout: 15_000 });
    expect(await page.locator('#device').getAttribute('data-device')).to.match(/^[0-9a-f]{64}$/);
    const me = (await page.locator('#me').textContent())!;
    expect(me).to.match(/^5[1-9A-HJ-NP-Za-km-z]{47}$/);
    return me;
  }

  async function openDirect(page: Page, to: string): Promise<void> {
    await page.fill('#new-direct input', to);
    await page.click('#new-direct button');
    await page.locator('#title', { hasText: to }).waitFor();
  }

  /** Sends from the compose box; waits until stored and returns how it went (the line's data-e2e). */
  async function say(page: Page, text: string): Promise<string | null> {
    await page.fill('#compose input', text);
    await page.click('#compose button');
    const line = page.locator('.msg.mine', { hasText: text });
    await line.locator('.state.stored').waitFor({ timeout: 15_000 });
    return line.getAttribute('data-e2e');
  }

  async function badge(page: Page): Promise<{ e2e: string | null; text: string | null; visible: boolean }> {
    const b = page.locator('#e2e-badge');
    return { e2e: await b.getAttribute('data-e2e'), text: await b.textContent(), visible: await b.isVisible() };
  }

  /** Every message line of the open conversation: its text, side and mark. */
  async function linesOf(page: Page): Promise<Array<{ text: string; side: string; e2e: string | null; mark: string }>> {
    return page.locator('#messages .msg').evaluateAll((els) => els.map((el) => ({
      text: el.querySelector('.body')?.textContent ?? '',
      side: el.classList.contains('mine') ? 'mine' : 'theirs',
      e2e: el.getAttribute('data-e2e'),
      mark: el.querySelector('.e2e')?.textContent ?? '',
    })));
  }

  it('two profiles chat encrypted: locks, badge, history after a reload, nothing readable on the server', async () => {
    const a = await profile();
    const b = await profile();
    const alice = await signIn(a);
    const bob = await signIn(b);
    expect(alice).to.not.equal(bob);
    const hello = `secret-hello-${Date.now()}`;
    const reply = `secret-reply-${Date.now()}`;

    await openDirect(a, bob);
    expect((await badge(a)).visible, 'no badge before anything was sent').to.equal(false);
    expect(await say(a, hello)).to.equal('encrypted');
    expect(await badge(a)).to.deep.equal({ e2e: 'encrypted', text: '🔒 end-to-end encrypted', visible: true });

    // Bob: the conversation appears; the line is marked encrypted, the badge says so.
    await b.locator(`#convs li[data-id="${alice}"]`).click();
    await b.locator('.msg.theirs[data-e2e="encrypted"]', { hasText: hello }).waitFor({ timeout: 15_000 });
    expect(await badge(b)).to.deep.equal({ e2e: 'encrypted', text: '🔒 end-to-end encrypted', visible: true });
    expect(await say(b, reply)).to.equal('encrypted');

    await a.locator('.msg.theirs[data-e2e="encrypted"]', { hasText: reply }).waitFor({ timeout: 15_000 });
    expect(await linesOf(a)).to.deep.equal([
      { text: hello, side: 'mine', e2e: 'encrypted', mark: '🔒' },
      { text: reply, side: 'theirs', e2e: 'encrypted', mark: '🔒' },
    ]);

    // Reload: history comes back decrypted (from this profile's kept state), with the same marks.
    await b.reload();
    await b.locator('#state.state-ready').waitFor();
    await b.locator(`#convs li[data-id="${alice}"]`).click();
    await b.locator('.msg.mine', { hasText: reply }).waitFor();
    expect(await linesOf(b)).to.deep.equal([
      { text: hello, side: 'theirs', e2e: 'encrypted', mark: '🔒' },
      { text: reply, side: 'mine', e2e: 'encrypted', mark: '🔒' },
    ]);
    expect((await badge(b)).e2e).to.equal('encrypted');
    await a.screenshot({ path: SHOT });

    // The server holds ciphertext only.
    expect(foundIn(srv!.dataDir, hello), 'the first message on disk').to.equal(false);
    expect(foundIn(srv!.dataDir, reply), 'the reply on disk').to.equal(false);
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });

  it('a W3OS client without device keys: plaintext, marked "not encrypted" (and on disk as such)', async () => {
    const a = await profile();
    const alice = await signIn(a);
    const w3os = newAccount();
    const legacy = await Client.connect(srv!.url);
    await legacy.signIn(w3os, { signed: true });
    const plain = `plain-to-w3os-${Date.now()}`;
    await openDirect(a, w3os.address);
    expect(await say(a, plain)).to.equal('plain');
    expect(await badge(a)).to.deep.equal({ e2e: 'plain', text: '🔓 not encrypted', visible: true });
    const seen = await legacy.next(isMessage((f) => f.msg === plain), 10_000);
    expect(seen.from).to.equal(alice);
    legacy.send({ act: 'chat', to: alice, msg: 'plain reply', spam: legacy.spam });
    await a.locator('.msg.theirs[data-e2e="plain"]', { hasText: 'plain reply' }).waitFor({ timeout: 15_000 });
    expect(await linesOf(a)).to.deep.equal([
      { text: plain, side: 'mine', e2e: 'plain', mark: '🔓 not encrypted' },
      { text: 'plain reply', side: 'theirs', e2e: 'plain', mark: '🔓 not encrypted' },
    ]);
    legacy.close();
    // The control of the search in the test above: plaintext is found where it is.
    expect(foundIn(srv!.dataDir, plain)).to.equal(true);
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });

  it('a record that does not decrypt is a "could not be decrypted" line with its code, never its bytes', async () => {
    const a = await profile();
    const alice = await signIn(a);
    // Carol: the Node SDK (a @polkadot sr25519 key: the page checks her vouch with @scure/sr25519).
    const carol = newAccount();
    const c = new ImgcClient({ url: srv!.url, signer: carol.pair });
    sdk.push(c);
    await c.connect();
    await until('carol\'s device', () => c.e2e?.device !== undefined);
    await c.e2e!.topUp();
    const r = await c.send(alice, 'genuine, from carol');
    expect(r.encrypted).to.equal(true);
    await a.locator(`#convs li[data-id="${carol.address}"]`).click();
    await a.locator('.msg.theirs[data-e2e="encrypted"]', { hasText: 'genuine, from carol' }).waitFor({ timeout: 15_000 });
    // Her next record, one byte of its ciphertext changed, posted as it is.
    const [env] = (await c.e2e!.seal({ with: alice }, 'tampered'))! as Array<{ m: string }>;
    const bytes = Buffer.from(env!.m, 'base64');
    bytes[bytes.length - 5] ^= 1;
    const tampered = bytes.toString('base64');
    await c.request({ cat: 'chat', act: 'chat', to: alice, msg: { ...env, m: tampered }, mid: `t${Date.now()}` }, true);
    const bad = a.locator('.msg.theirs[data-e2e="failed"]');
    await bad.waitFor({ timeout: 15_000 });
    expect(await bad.locator('.body').textContent()).to.equal('⚠ could not be decrypted (error -6)');
    expect(await bad.getAttribute('data-code')).to.equal('-6');
    const shown = await a.locator('#messages').textContent();
    expect(shown).to.not.include(tampered.slice(0, 24)).and.not.include('"e2e"').and.not.include('null').and.not.include('tampered');
    expect((await linesOf(a)).map((l) => l.e2e)).to.deep.equal(['encrypted', 'failed']);
    expect((await badge(a)).e2e).to.equal('encrypted');
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });

  it('the CLI (an Ed25519 key) reads what the page sent it, decrypted', async () => {
    const a = await profile();
    const alice = await signIn(a);
    const dir = tempDir('imgc-web-e2e-cli-');
    const env = { IMGC_URL: srv!.url, IMGC_KEY: join(dir, 'cli.json') };
    const cli = jsonLines(await imgc(['key', 'new', '--type', 'ed25519', '--json'], env), 'key new').pop().address as string;
    // Its device publishes key packages (the page then checks its Ed25519 vouch through WebCrypto).
    const keys = await imgc(['keys'], env);
    expect(keys.code, `keys: ${keys.stderr}`).to.equal(0);
    expect(keys.stdout).to.match(/[0-9a-f]{64}/);
    expect(existsSync(join(dir, 'cli.e2e.json')), 'the CLI keeps its device state beside its key').to.equal(true);

    const secret = `secret-for-the-cli-${Date.now()}`;
    await openDirect(a, cli);
    expect(await say(a, secret)).to.equal('encrypted');
    expect((await badge(a)).e2e).to.equal('encrypted');

    const heard = jsonLines(await imgc(['listen', '--json', '--count', '1', '--timeout', '20000'], env), 'listen');
    expect(heard, JSON.stringify(heard)).to.have.length(1);
    expect(heard[0].msg, JSON.stringify(heard[0])).to.equal(secret);
    expect(heard[0].from).to.equal(alice);
    expect(heard[0].e2e).to.deep.equal({ encrypted: true });

    const hist = jsonLines(await imgc(['history', alice, '--json'], env), 'history').filter((f) => f.type === 'message');
    expect(hist.map((f) => [f.msg, f.e2e?.encrypted])).to.deep.equal([[secret, true]]);
    expect(foundIn(srv!.dataDir, secret)).to.equal(false);
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });
});

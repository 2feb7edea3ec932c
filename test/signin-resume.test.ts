/**
 * Resume tokens against the real server over real WebSockets: the Welcome of a signed sign-in
 * carries `resume`; a later socket signs in with it alone, across a restart on the same data dir too;
 * a tampered, expired, other-account or logged-out token gets 44004 and `sig` still works;
 * revocation holds across a restart; open mode ignores `resume`.
 */
import { expect } from 'chai';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { accountsReady, newAccount, signSpam, type Account } from './support/accounts';
import { Client, ClientPool, isMessage, isNotice, sleep, type Frame } from './support/client';
import { getStatus, startServer, statusFetch, type ServerHandle } from './support/server';

const WELCOME = { type: 'notice', msg: 'Welcome', method: { cat: 'chat', act: 'active' } };

/** Signs in with the signature; returns the resume token of the Welcome. */
async function signedIn(c: Client, a: Account): Promise<string> {
  const w = await c.signIn(a, { signed: true });
  expect(w.resume, 'Welcome.resume').to.be.a('string').and.match(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  return w.resume as string;
}

/** `active` with `resume` (and no sig unless given); the answer: Welcome notice or error frame. */
async function resume(c: Client, acc: string, token: string, extra: Frame = {}): Promise<Frame> {
  c.request({ act: 'active', acc, resume: token, ...extra });
  return c.next((f) => isNotice('chat', 'active')(f) || (f.type === 'error' && f.method?.act === 'active'), 5000, 'the answer to active');
}

async function expectRefused(c: Client, acc: string, token: string, reason: RegExp): Promise<void> {
  const f = await resume(c, acc, token);
  expect(f.type, JSON.stringify(f)).to.equal('error');
  expect(f.code).to.equal(44004);
  expect(f.error).to.match(reason);
  // Not signed in by it.
  expect((await c.expectError({ cat: 'chat', act: 'offline' })).code).to.equal(44003);
}

/** The token with one character of its MAC (or payload) changed. */
function tamper(token: string, part: 0 | 1): string {
  const [body, mac] = token.split('.') as [string, string];
  const s = part === 0 ? body : mac;
  const i = Math.floor(s.length / 2);
  const changed = s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  return part === 0 ? `${changed}.${mac}` : `${body}.${changed}`;
}

describe('sign-in: resume tokens', function () {
  this.timeout(60_000);
  const clients = new ClientPool();
  const servers: ServerHandle[] = [];
  const start = async (args: string[], opts: { dataDir?: string; status?: boolean } = {}) => {
    const s = await startServer(['--auth', 'signed', ...args], opts);
    servers.push(s);
    return s;
  };
  const connect = (s: ServerHandle, name?: string) => clients.connect(s.url, name);

  before(() => accountsReady());
  afterEach(() => clients.closeAll());
  after(async () => { for (const s of servers) await s.stop(); });

  it('a signed sign-in returns a token; another socket signs in with it alone (no sig), and the session works', async () => {
    const srv = await start([], { status: true });
    const [alice, bob] = [newAccount(), newAccount()];
    const token = await signedIn(await connect(srv, 'a1'), alice);
    const b = await connect(srv, 'bob');
    await b.signIn(bob, { signed: true });
    const a2 = await connect(srv, 'a2');
    const w = await resume(a2, alice.address, token, { callback: 'r1' });
    expect(w).to.deep.equal({ ...WELCOME, method: { ...WELCOME.method, callback: 'r1' } });
    a2.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'resumed' });
    expect(await b.next(isMessage(), 3000)).to.deep.include({ msg: 'resumed', from: alice.address });
    const st = await getStatus<{ signIn: { byMethod: Record<string, number> } }>(srv);
    expect(st.signIn.byMethod).to.deep.include({ sig: 2, resume: 1, open: 0 });
    // The key: in the data dir, readable by its owner alone.
    expect(statSync(join(srv.dataDir, 'resume-key')).mode & 0o777).to.equal(0o600);
  });

  it('a token still works after a restart on the same data dir, and the key file is kept', async () => {
    const srv = await start([]);
    const alice = newAccount();
    const token = await signedIn(await connect(srv), alice);
    const key = statSync(join(srv.dataDir, 'resume-key')).ino;
    await srv.stop({ keepData: true });
    const again = await start([], { dataDir: srv.dataDir });
    expect(statSync(join(again.dataDir, 'resume-key')).ino).to.equal(key);
    expect(await resume(await connect(again), alice.address, token)).to.deep.equal(WELCOME);
  });

  it('a token of another data dir (another key) is refused', async () => {
    const [one, two] = await Promise.all([start([]), start([])]);
    const alice = newAccount();
    const token = await signedIn(await connect(one), alice);
    await expectRefused(await connect(two), alice.address, token, /bad-mac/);
  });

  it('a tampered token (payload or MAC), a token for another account, garbage: 44004, and sig still works', async () => {
    const srv = await start([], { status: true });
    const [alice, mallory] = [newAccount(), newAccount()];
    const token = await signedIn(await connect(srv), alice);
    const malloryToken = await signedIn(await connect(srv), mallory);
    const c = await connect(srv);
    await expectRefused(c, alice.address, tamper(token, 0), /bad-mac/);
    await expectRefused(c, alice.address, tamper(token, 1), /bad-mac/);
    await expectRefused(c, alice.address, malloryToken, /other-account/);
    await expectRefused(c, alice.address, 'not a token', /malformed/);
    // The same socket falls back to the signature.
    expect((await c.signIn(alice, { signed: true })).msg).to.equal('Welcome');
    const st = await getStatus<{ signIn: { failures: Record<string, number> } }>(srv);
    expect(st.signIn.failures).to.deep.include({ 'bad-mac': 2, 'other-account': 1, malformed: 1 });
  });

  it('an expired token (--resume-ttl-ms 1500) gets 44004, and sig still works', async () => {
    const srv = await start(['--resume-ttl-ms', '1500']);
    const alice = newAccount();
    const token = await signedIn(await connect(srv), alice);
    expect(await resume(await connect(srv), alice.address, token), 'fresh').to.deep.equal(WELCOME);
    await sleep(1700);
    const c = await connect(srv);
    await expectRefused(c, alice.address, token, /expired/);
    expect((await c.signIn(alice, { signed: true })).msg).to.equal('Welcome');
  });

  it('with both resume and sig, a refused token falls back to the signature on the same request', async () => {
    const srv = await start([]);
    const alice = newAccount();
    const c = await connect(srv);
    const w = await resume(c, alice.address, 'garbage.token', { sig: signSpam(alice.pair, c.spam) });
    expect(w.msg).to.equal('Welcome');
    expect(w.resume, 'a new token, as for any signed sign-in').to.be.a('string');
  });

  it('logout revokes the device\'s token (only it) and signs the socket out; the revocation holds across a restart', async () => {
    const srv = await start([]);
    const alice = newAccount();
    const phone = await connect(srv, 'phone');
    const phoneToken = await signedIn(phone, alice);
    const desktopToken = await signedIn(await connect(srv, 'desktop'), alice);
    // The phone resumes on a new socket, then logs out there: the token it resumed with is revoked.
    const phone2 = await connect(srv, 'phone2');
    expect(await resume(phone2, alice.address, phoneToken)).to.deep.equal(WELCOME);
    phone2.request({ cat: 'chat', act: 'logout', callback: 'bye' });
    expect(await phone2.next(isNotice('chat', 'logout'), 3000)).to.deep.equal({ type: 'notice', msg: 'Logout', method: { cat: 'chat', act: 'logout', callback: 'bye' } });
    expect((await phone2.expectError({ cat: 'chat', act: 'offline' })).code, 'signed out').to.equal(44003);
    await expectRefused(await connect(srv), alice.address, phoneToken, /revoked/);
    expect(await resume(await connect(srv), alice.address, desktopToken), 'the other device').to.deep.equal(WELCOME);

    await srv.stop({ keepData: true });
    const again = await start([], { dataDir: srv.dataDir });
    const c = await connect(again);
    await expectRefused(c, alice.address, phoneToken, /revoked/);
    expect(await resume(await connect(again), alice.address, desktopToken), 'the other device, after the restart').to.deep.equal(WELCOME);
    expect((await c.signIn(alice, { signed: true })).msg, 'sig still works').to.equal('Welcome');
  });

  it('logout with all revokes every token of the account issued until then, across a restart; a new sign-in gets a working one', async () => {
    const srv = await start([]);
    const [alice, bob] = [newAccount(), newAccount()];
    const t1 = await signedIn(await connect(srv), alice);
    const t2 = await signedIn(await connect(srv), alice);
    const bobToken = await signedIn(await connect(srv), bob);
    const c = await connect(srv);
    await c.signIn(alice, { signed: true });
    c.request({ cat: 'chat', act: 'logout', all: true });
    await c.next(isNotice('chat', 'logout'), 3000);
    const fresh = await signedIn(await connect(srv), alice);
    await srv.kill('SIGKILL');
    const again = await start([], { dataDir: srv.dataDir });
    for (const t of [t1, t2]) await expectRefused(await connect(again), alice.address, t, /revoked/);
    expect(await resume(await connect(again), alice.address, fresh), 'issued after the revocation').to.deep.equal(WELCOME);
    expect(await resume(await connect(again), bob.address, bobToken), 'another account').to.deep.equal(WELCOME);
  });

  it('the operator revokes an account\'s tokens with POST /revoke (token required, SS58 checked); it holds across a restart', async () => {
    const srv = await start([], { status: true });
    const [alice, bob] = [newAccount(), newAccount()];
    const t = await signedIn(await connect(srv), alice);
    const bobToken = await signedIn(await connect(srv), bob);
    expect((await statusFetch(srv, `/revoke?account=${alice.address}`, { method: 'POST' }, 'wrong')).status, 'without the token').to.equal(401);
    expect((await statusFetch(srv, '/revoke?account=notss58', { method: 'POST' })).status, 'a bad account').to.equal(400);
    const r = await statusFetch(srv, `/revoke?account=${alice.address}`, { method: 'POST' });
    expect(r.status).to.equal(200);
    await expectRefused(await connect(srv), alice.address, t, /revoked/);
    await srv.kill('SIGKILL');
    const again = await start([], { dataDir: srv.dataDir });
    await expectRefused(await connect(again), alice.address, t, /revoked/);
    expect(await resume(await connect(again), bob.address, bobToken), 'another account').to.deep.equal(WELCOME);
  });

  it('open mode ignores resume (valid or not) as it ignores a missing sig, and gives no token', async () => {
    const signed = await start([]);
    const alice = newAccount();
    const token = await signedIn(await connect(signed), alice);
    const open = await start(['--auth', 'open']);
    for (const t of [token, 'garbage', tamper(token, 1)]) {
      const c = await connect(open);
      expect(await resume(c, alice.address, t)).to.deep.equal(WELCOME);
    }
    expect(await (await connect(open)).signIn(alice, { signed: true })).to.deep.equal(WELCOME);
  });
});

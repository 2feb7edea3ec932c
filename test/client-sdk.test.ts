/**
 * The client SDK (src/client) against the real server: signed sign-in, send and receive, resume
 * and its fallback to `sig`, history iteration, group methods, error codes, and reconnection across
 * a server restart and a SIGKILL with nothing lost or seen twice.
 */
import { expect } from 'chai';
import { ImgcClient, ImgcError, Code, ClientCode, type MessageFrame, type NoticeFrame } from '../src/client/index';
import { accountsReady, newAccount, type Account } from './support/accounts';
import { startServer, type ServerHandle } from './support/server';

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A client of `account` that records what it receives. */
function clientOf(url: string, account: Account, extra: Partial<ConstructorParameters<typeof ImgcClient>[0]> = {}) {
  let signs = 0;
  const pair = account.pair;
  const c = new ImgcClient({
    url,
    account: account.address,
    signer: async (m: string) => { signs++; return `0x${Buffer.from(pair.sign(new TextEncoder().encode(m))).toString('hex')}`; },
    reconnect: { initialMs: 50, maxMs: 500 },
    ...extra,
  });
  const messages: MessageFrame[] = [];
  const notices: NoticeFrame[] = [];
  const errors: number[] = [];
  c.on('message', (m) => messages.push(m));
  c.on('notice', (n) => notices.push(n));
  c.on('frame', (f) => { if ((f as { type?: string }).type === 'error') errors.push((f as { code: number }).code); });
  return { c, messages, notices, errors, signs: () => signs };
}

describe('client SDK against the server', function () {
  this.timeout(60_000);
  let srv: ServerHandle;
  const open: ImgcClient[] = [];
  const track = <T extends { c: ImgcClient }>(x: T): T => { open.push(x.c); return x; };

  before(async () => {
    await accountsReady();
    srv = await startServer(['--auth', 'signed']);
  });
  afterEach(() => { for (const c of open.splice(0)) c.close(); });
  after(async () => { await srv?.stop(); });

  it('signs in with a signer, sends and receives, resolves the send on the server\'s answer', async () => {
    const alice = newAccount();
    const bob = newAccount();
    const a = track(clientOf(srv.url, alice));
    const b = track(clientOf(srv.url, bob));
    await Promise.all([a.c.connect(), b.c.connect()]);
    expect(a.c.state).to.equal('ready');
    expect(a.c.resume, 'a resume token from the Welcome').to.be.a('string');
    const r = await a.c.send(bob.address, { text: 'hello' });
    expect(r.mid).to.be.a('string');
    expect(r.to).to.equal(bob.address);
    await until('bob gets the message', () => b.messages.length === 1);
    expect(b.messages[0]!.from).to.equal(alice.address);
    expect(b.messages[0]!.msg).to.deep.equal({ text: 'hello' });
    expect(b.messages[0]!.seq).to.be.a('number');
    expect(b.c.highestSeq).to.equal(b.messages[0]!.seq);
  });

  it('accepts a @polkadot/keyring pair as the signer (account taken from it)', async () => {
    const alice = newAccount();
    const c = new ImgcClient({ url: srv.url, signer: alice.pair });
    open.push(c);
    await c.connect();
    expect(c.account).to.equal(alice.address);
  });

  it('resumes with the token after a drop (no new signature), falls back to sig when the token is refused', async () => {
    const alice = newAccount();
    const a = track(clientOf(srv.url, alice));
    await a.c.connect();
    expect(a.signs()).to.equal(1);
    const token = a.c.resume!;
    a.c.drop();
    await until('reconnected', () => a.c.connects === 2 && a.c.state === 'ready');
    expect(a.signs(), 'the resume token signed in, not the signer').to.equal(1);
    expect(a.errors).to.deep.equal([]);

    // A tampered token: refused with 44004, then the client signs.
    const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    const b = track(clientOf(srv.url, alice, { resume: tampered }));
    await b.c.connect();
    expect(b.errors, 'the tampered token was tried and refused').to.deep.equal([Code.BAD_SIGNATURE]);
    expect(b.signs()).to.equal(1);
    expect(b.c.resume).to.be.a('string').and.not.equal(tampered);
  });

  it('rejects with typed errors carrying the server\'s codes', async () => {
    const alice = newAccount();
    const a = track(clientOf(srv.url, alice));
    await a.c.connect();
    const bad = await a.c.send('not-an-address', 'x').catch((e: unknown) => e);
    expect(bad).to.be.instanceOf(ImgcError);
    expect((bad as ImgcError).code).to.equal(Code.INVALID_ACCOUNT);
    const noGroup = await a.c.group.detail('GDabcdefghij').catch((e: unknown) => e);
    expect((noGroup as ImgcError).code).to.be.oneOf([Code.INVALID_GROUP, Code.NOT_PERMITTED]);
    const empty = await a.c.send(newAccount().address, '').catch((e: unknown) => e);
    expect((empty as ImgcError).code).to.equal(Code.MISSING_PARAMS);

    // No signer on a signed server: the sign-in is refused for good.
    const unsigned = new ImgcClient({ url: srv.url, account: newAccount().address, reconnect: { initialMs: 50 } });
    open.push(unsigned);
    const refused = await unsigned.connect().catch((e: unknown) => e);
    expect((refused as ImgcError).code).to.equal(Code.BAD_SIGNATURE);
    expect(unsigned.state).to.equal('closed');
    const after = await unsigned.send(alice.address, 'x').catch((e: unknown) => e);
    expect((after as ImgcError).code).to.equal(ClientCode.CLOSED);
  });

  it('iterates history backwards from the newest (default) and forwards, page by page', async () => {
    const alice = newAccount();
    const bob = newAccount();
    const a = track(clientOf(srv.url, alice));
    await a.c.connect();
    for (let i = 0; i < 7; i++) await a.c.send(bob.address, `m${i}`);
    const back: unknown[] = [];
    for await (const m of a.c.history({ with: bob.address, limit: 3 })) back.push(m.msg);
    expect(back).to.deep.equal(['m6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']);
    const fwd: unknown[] = [];
    for await (const m of a.c.history({ with: bob.address, limit: 3, direction: 'forward' })) fwd.push(m.msg);
    expect(fwd).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    let pages = 0;
    for await (const p of a.c.historyPages({ with: bob.address, limit: 3 })) { pages++; expect(p.messages.length).to.be.at.most(3); }
    expect(pages).to.equal(3);
    // Stopping early sends no further request.
    for await (const m of a.c.history({ with: bob.address, limit: 2 })) { expect(m.msg).to.equal('m6'); break; }
  });
});

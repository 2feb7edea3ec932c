/**
 * The client SDK (src/client) against the real server: signed sign-in, send and receive, resume
 * and its fallback to `sig`, history iteration, group methods, error codes, and reconnection across
 * a server restart and a SIGKILL with nothing lost or seen twice.
 */
import { expect } from 'chai';
import { ImgcClient, ImgcError, Code, ClientCode, type MessageFrame, type NoticeFrame } from '../src/client/index';
import { accountsReady, newAccount, type Account } from './support/accounts';
import { startServer, type ServerHandle } from './support/server';
import { useServer } from './support/suite';

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
    // Sign-ins only: the device's end-to-end vouch is signed once too.
    signer: async (m: string) => { if (!m.startsWith('IMGC end-to-end device')) signs++; return `0x${Buffer.from(pair.sign(new TextEncoder().encode(m))).toString('hex')}`; },
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
  const ctx = useServer(['--auth', 'signed']);
  const open: ImgcClient[] = [];
  const track = <T extends { c: ImgcClient }>(x: T): T => { open.push(x.c); return x; };

  afterEach(() => { for (const c of open.splice(0)) c.close(); });

  it('signs in with a signer, sends and receives, resolves the send on the server\'s answer', async () => {
    const alice = newAccount();
    const bob = newAccount();
    const a = track(clientOf(ctx.srv.url, alice));
    const b = track(clientOf(ctx.srv.url, bob));
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
    const c = new ImgcClient({ url: ctx.srv.url, signer: alice.pair });
    open.push(c);
    await c.connect();
    expect(c.account).to.equal(alice.address);
  });

  it('resumes with the token after a drop (no new signature), falls back to sig when the token is refused', async () => {
    const alice = newAccount();
    const a = track(clientOf(ctx.srv.url, alice));
    await a.c.connect();
    expect(a.signs()).to.equal(1);
    const token = a.c.resume!;
    a.c.drop();
    await until('reconnected', () => a.c.connects === 2 && a.c.state === 'ready');
    expect(a.signs(), 'the resume token signed in, not the signer').to.equal(1);
    expect(a.errors).to.deep.equal([]);

    // A tampered token: refused with 44004, then the client signs.
    const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    const b = track(clientOf(ctx.srv.url, alice, { resume: tampered }));
    await b.c.connect();
    expect(b.errors, 'the tampered token was tried and refused').to.deep.equal([Code.BAD_SIGNATURE]);
    expect(b.signs()).to.equal(1);
    expect(b.c.resume).to.be.a('string').and.not.equal(tampered);
  });

  it('rejects with typed errors carrying the server\'s codes', async () => {
    const alice = newAccount();
    const a = track(clientOf(ctx.srv.url, alice));
    await a.c.connect();
    const bad = await a.c.send('not-an-address', 'x').catch((e: unknown) => e);
    expect(bad).to.be.instanceOf(ImgcError);
    expect((bad as ImgcError).code).to.equal(Code.INVALID_ACCOUNT);
    const noGroup = await a.c.group.detail('GDabcdefghij').catch((e: unknown) => e);
    expect((noGroup as ImgcError).code).to.be.oneOf([Code.INVALID_GROUP, Code.NOT_PERMITTED]);
    const empty = await a.c.send(newAccount().address, '').catch((e: unknown) => e);
    expect((empty as ImgcError).code).to.equal(Code.MISSING_PARAMS);

    // No signer on a signed server: the sign-in is refused for good.
    const unsigned = new ImgcClient({ url: ctx.srv.url, account: newAccount().address, reconnect: { initialMs: 50 } });
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
    const a = track(clientOf(ctx.srv.url, alice));
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

  it('every group method, with the events other members see', async () => {
    const [alice, bob, carol] = [newAccount(), newAccount(), newAccount()];
    const a = track(clientOf(ctx.srv.url, alice));
    const b = track(clientOf(ctx.srv.url, bob));
    const c = track(clientOf(ctx.srv.url, carol));
    await Promise.all([a.c.connect(), b.c.connect(), c.c.connect()]);
    const id = await a.c.group.create([bob.address]);
    expect(id).to.match(/^GD[A-Za-z]{10}$/);
    await until('bob hears of the group', () => b.notices.some((n) => n.method.act === 'create'));
    let d = await a.c.group.detail(id);
    expect(d.manager).to.equal(alice.address);
    expect(d.group).to.have.members([alice.address, bob.address]);

    await a.c.group.join(id, carol.address);
    expect((await b.c.group.detail(id)).group).to.include(carol.address);
    await a.c.group.chat(id, 'to all');
    await until('bob and carol get the group message', () => b.messages.length === 1 && c.messages.length === 1);
    expect((b.messages[0] as { group?: string }).group).to.equal(id);
    await a.c.group.notice(id, 'announcement');
    await until('carol gets the group notice', () => c.notices.some((n) => n.method.act === 'notice' && n.msg === 'announcement'));
    await b.c.group.update(id, 'nick', 'bobby');
    expect((await a.c.group.detail(id)).nick).to.equal('bobby');

    await a.c.group.deport(id, carol.address);
    d = await a.c.group.detail(id);
    expect(d.block).to.include(carol.address);
    expect(d.group).to.not.include(carol.address);
    const blocked = await a.c.group.join(id, carol.address).catch((e: unknown) => e);
    expect((blocked as ImgcError).code).to.equal(Code.NOT_PERMITTED);
    await a.c.group.recover(id, carol.address);
    expect((await a.c.group.detail(id)).block).to.not.include(carol.address);

    await a.c.group.members(id, [bob.address, carol.address]);
    expect((await a.c.group.detail(id)).group).to.have.members([alice.address, bob.address, carol.address]);
    await a.c.group.divert(id, bob.address);
    expect((await a.c.group.detail(id)).manager).to.equal(bob.address);
    const notManager = await a.c.group.destory(id).catch((e: unknown) => e);
    expect((notManager as ImgcError).code).to.equal(Code.NOT_PERMITTED);
    await c.c.group.leave(id);
    expect((await b.c.group.detail(id)).group).to.not.include(carol.address);

    const page = await b.c.historyPage({ group: id });
    expect(page.messages.map((m) => m.msg)).to.include.members(['to all', 'announcement']);

    await b.c.group.destory(id);
    const gone = await b.c.group.detail(id).catch((e: unknown) => e);
    expect(gone).to.be.instanceOf(ImgcError);
    expect((gone as ImgcError).code).to.be.oneOf([Code.INVALID_GROUP, Code.NOT_PERMITTED]);
  });

  it('verification methods answer 45010 when the server has no chain', async () => {
    const a = track(clientOf(ctx.srv.url, newAccount()));
    await a.c.connect();
    expect(((await a.c.reg().catch((e: unknown) => e)) as ImgcError).code).to.equal(Code.VERIFY_DISABLED);
    expect(((await a.c.token().catch((e: unknown) => e)) as ImgcError).code).to.be.oneOf([Code.VERIFY_DISABLED, Code.NOT_PERMITTED]);
  });
});

describe('client SDK across server restarts', function () {
  this.timeout(120_000);
  let srv: ServerHandle | undefined;
  const open: ImgcClient[] = [];
  before(accountsReady);
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await srv?.stop();
    srv = undefined;
  });

  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    it(`nothing lost, nothing seen twice across a ${how} and restart (outbox + ack mode)`, async () => {
      srv = await startServer(['--auth', 'signed']);
      const port = srv.port;
      const alice = newAccount();
      const bob = newAccount();
      const a = clientOf(srv.url, alice);
      const b = clientOf(srv.url, bob);
      open.push(a.c, b.c);
      await Promise.all([a.c.connect(), b.c.connect()]);
      const N = 40;
      const sends: Array<Promise<unknown>> = [];
      for (let i = 0; i < N; i++) {
        sends.push(a.c.send(bob.address, `n${i}`));
        if (i === 15) {
          // The server goes away with sends in flight and messages not yet acknowledged.
          const old = srv;
          if (how === 'SIGKILL') await old.kill('SIGKILL'); else await old.stop({ keepData: true });
          srv = await startServer(['--auth', 'signed', '--port', String(port)], { dataDir: old.dataDir });
        }
        await sleep(5);
      }
      await Promise.all(sends);
      await until(`bob has all ${N}`, () => new Set(b.messages.map((m) => m.msg)).size === N, 30_000);
      await sleep(300); // anything delivered twice would arrive now
      const got = b.messages.map((m) => m.msg as string);
      expect(got.length, `duplicates: ${got.filter((x, i) => got.indexOf(x) !== i).join(',')}`).to.equal(N);
      expect(new Set(got)).to.deep.equal(new Set(Array.from({ length: N }, (_, i) => `n${i}`)));
      expect(a.c.connects).to.be.at.least(2);
      expect(b.c.connects).to.be.at.least(2);
      expect(a.signs() + b.signs(), 'resumed after the restart (tokens survive it)').to.equal(2);
      // The conversation's log holds each message once.
      const logged: unknown[] = [];
      for await (const m of b.c.history({ with: alice.address, direction: 'forward', limit: 100 })) logged.push(m.msg);
      expect(logged).to.have.length(N);
      srv.removeData();
    });
  }
});

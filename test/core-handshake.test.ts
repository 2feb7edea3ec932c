/**
 * Handshake of the W3OS IMGC wire protocol against the real server: the init frame, the spam
 * token, sign-in with `active` in open and signed mode, and the shape of error frames.
 */
import { expect } from 'chai';
import { accountsReady, badAddresses, newAccount, signSpam, type Account } from './support/accounts';
import { Client, ClientPool, isError, isMessage, isNotice, type Frame } from './support/client';
import { startServer, type ServerHandle } from './support/server';

const WELCOME = { type: 'notice', msg: 'Welcome', method: { cat: 'chat', act: 'active' } };

describe('core: handshake', function () {
  let open: ServerHandle;
  let signed: ServerHandle;
  const clients = new ClientPool();
  const connect = (srv: ServerHandle, name?: string): Promise<Client> => clients.connect(srv.url, name);

  before(async () => {
    await accountsReady();
    [open, signed] = await Promise.all([startServer(['--auth', 'open']), startServer(['--auth', 'signed'])]);
  });
  afterEach(() => clients.closeAll());
  after(async () => { await Promise.all([open?.stop(), signed?.stop()]); });

  describe('init frame', () => {
    it('is exactly {spam, act:"init"} with a long opaque spam that differs per connection', async () => {
      const cs = await Promise.all(Array.from({ length: 5 }, () => connect(open)));
      for (const c of cs) {
        expect(Object.keys(c.init).sort()).to.deep.equal(['act', 'spam']);
        expect(c.init.act).to.equal('init');
        expect(c.init.spam).to.be.a('string');
        expect(c.init.spam.length, 'spam length').to.be.at.least(16);
      }
      expect(new Set(cs.map((c) => c.spam)).size).to.equal(5);
    });

    it('is the first and only frame before the client speaks', async () => {
      const c = await connect(open);
      expect(await c.collect(200)).to.deep.equal([]);
    });
  });

  describe('spam', () => {
    it('a request with a wrong spam is refused and not executed', async () => {
      const [alice, bob] = [newAccount(), newAccount()];
      const a = await connect(open, 'alice');
      const b = await connect(open, 'bob');
      await a.signIn(alice);
      await b.signIn(bob);
      const req = { cat: 'chat', act: 'chat', to: bob.address, msg: 'should not arrive', spam: b.spam, callback: 'cb-wrong-spam' };
      a.send(req);
      const err = await a.next(isError(), 3000, 'error for wrong spam');
      expect(err).to.deep.include({ type: 'error', code: 44002, method: { cat: 'chat', act: 'chat' } });
      expect(err.request).to.deep.equal(req);
      expect(await b.none(isMessage(), 200), 'bob got the message').to.deep.equal([]);
    });

    it('a request without spam is refused and not executed', async () => {
      const [alice, bob] = [newAccount(), newAccount()];
      const a = await connect(open, 'alice');
      const b = await connect(open, 'bob');
      await a.signIn(alice);
      await b.signIn(bob);
      a.send({ cat: 'chat', act: 'chat', to: bob.address, msg: 'no spam' });
      const err = await a.next(isError(), 3000);
      expect(err.code).to.equal(44002);
      expect(await b.none(isMessage(), 200)).to.deep.equal([]);
    });

    it('an active with a wrong spam does not sign in', async () => {
      const alice = newAccount();
      const a = await connect(open);
      const other = await connect(open);
      a.send({ act: 'active', acc: alice.address, spam: other.spam });
      expect((await a.next(isError(), 3000)).code).to.equal(44002);
      const err = await a.expectError({ cat: 'chat', act: 'offline', callback: 'after' });
      expect(err.code).to.equal(44003);
    });
  });

  describe('before active', () => {
    it('a chat request is refused with 44003, with the reference error shape and callback echoed', async () => {
      const c = await connect(open);
      const req = c.request({ cat: 'chat', act: 'chat', to: newAccount().address, msg: 'hi', callback: 'cb-1' });
      const err = await c.next(isError(), 3000);
      expect(Object.keys(err).sort()).to.deep.equal(['code', 'error', 'method', 'request', 'type']);
      expect(err.type).to.equal('error');
      expect(err.code).to.equal(44003);
      expect(err.error).to.be.a('string').and.not.empty;
      expect(err.method).to.deep.equal({ cat: 'chat', act: 'chat' });
      expect(err.request).to.deep.equal(req);
      expect(err.request.callback).to.equal('cb-1');
    });

    it('a group request is refused with 44003 and method {cat:"group"}', async () => {
      const c = await connect(open);
      const req = c.request({ cat: 'group', act: 'create', list: [newAccount().address], callback: 'cb-g' });
      const err = await c.next(isError(), 3000);
      expect(err).to.deep.include({ type: 'error', code: 44003, method: { cat: 'group', act: 'create' } });
      expect(err.request).to.deep.equal(req);
    });

    it('`offline` and a group detail are refused too, and nothing else arrives', async () => {
      const c = await connect(open);
      expect((await c.expectError({ cat: 'chat', act: 'offline' })).code).to.equal(44003);
      expect((await c.expectError({ cat: 'group', act: 'detail', id: 'GDabcdefghij' })).code).to.equal(44003);
      expect(await c.none(() => true, 200)).to.deep.equal([]);
    });
  });

  describe('SS58 check of active', () => {
    let acct: Account;
    before(() => { acct = newAccount(); });
    const cases: Array<[string, () => string]> = [
      ['a bad checksum', () => badAddresses.badChecksum(acct.address)],
      ['one character short', () => badAddresses.tooShort(acct.address)],
      ['one character long', () => badAddresses.tooLong(acct.address)],
      ['a hex public key', () => badAddresses.hex(acct)],
      ['a non-base58 character', () => badAddresses.notBase58(acct.address)],
      ['an empty string', () => ''],
      ['a short word', () => 'alice'],
    ];
    for (const [what, make] of cases) {
      it(`refuses ${what} with 44009 and does not sign in`, async () => {
        const c = await connect(open);
        const bad = make();
        const req = c.request({ act: 'active', acc: bad, callback: 'ss58' });
        const err = await c.next(isError(), 3000);
        expect(err).to.deep.include({ type: 'error', code: 44009, method: { cat: 'chat', act: 'active' } });
        expect(err.request).to.deep.equal(req);
        expect((await c.expectError({ cat: 'chat', act: 'offline' })).code).to.equal(44003);
      });
    }

    it('accepts the unmodified address', async () => {
      const c = await connect(open);
      expect(await c.signIn(acct)).to.deep.equal(WELCOME);
    });
  });

  describe('open mode', () => {
    it('an unsigned active gets exactly the Welcome notice', async () => {
      const c = await connect(open);
      c.request({ act: 'active', acc: newAccount().address });
      const f = await c.next(() => true, 3000);
      expect(f).to.deep.equal(WELCOME);
    });

    it('the Welcome carries the callback as method.callback', async () => {
      const c = await connect(open);
      c.request({ act: 'active', acc: newAccount().address, callback: 'w-1' });
      const f = await c.next(() => true, 3000);
      expect(f).to.deep.equal({ type: 'notice', msg: 'Welcome', method: { cat: 'chat', act: 'active', callback: 'w-1' } });
    });

    it('an active with explicit cat "chat" works as well', async () => {
      const c = await connect(open);
      c.request({ cat: 'chat', act: 'active', acc: newAccount().address });
      expect(await c.next(() => true, 3000)).to.deep.equal(WELCOME);
    });
  });

  describe('a second active', () => {
    it('switches the connection to the new account: messages for the first are kept for it, not written here', async () => {
      const [first, second, sender] = [newAccount(), newAccount(), newAccount()];
      const c = await connect(open, 'switcher');
      const s = await connect(open, 'sender');
      await c.signIn(first);
      await s.signIn(sender);
      await c.signIn(second);
      s.request({ cat: 'chat', act: 'chat', to: first.address, msg: 'for first' });
      s.request({ cat: 'chat', act: 'chat', to: second.address, msg: 'for second' });
      const got = await c.next(isMessage(), 3000);
      expect(got).to.deep.include({ msg: 'for second', to: second.address });
      expect(await c.none(isMessage(), 200), 'a message for the first account').to.deep.equal([]);
      const back = await connect(open, 'first-again');
      await back.signIn(first);
      expect(await back.next(isMessage(), 3000)).to.deep.include({ msg: 'for first', to: first.address });
    });
  });

  describe('signed mode', () => {
    const refused = async (c: Client, req: Frame): Promise<Frame> => {
      const sent = c.request(req);
      const err = await c.next((f) => f.type === 'error' || isNotice('chat', 'active')(f), 5000, 'answer to active');
      expect(err.type, JSON.stringify(err)).to.equal('error');
      expect(err.code).to.equal(44004);
      expect(err.method).to.deep.equal({ cat: 'chat', act: 'active' });
      expect(err.request).to.deep.equal(sent);
      // Not signed in afterwards.
      expect((await c.expectError({ cat: 'chat', act: 'offline' })).code).to.equal(44003);
      return err;
    };

    it('an active without sig is refused with 44004', async () => {
      const c = await connect(signed);
      await refused(c, { act: 'active', acc: newAccount().address, callback: 'nosig' });
    });

    it('a signature by another key is refused with 44004', async () => {
      const [alice, mallory] = [newAccount(), newAccount()];
      const c = await connect(signed);
      await refused(c, { act: 'active', acc: alice.address, sig: signSpam(mallory.pair, c.spam) });
    });

    it('a signature of another connection\'s spam is refused with 44004', async () => {
      const alice = newAccount();
      const c = await connect(signed);
      const other = await connect(signed);
      await refused(c, { act: 'active', acc: alice.address, sig: signSpam(alice.pair, other.spam) });
    });

    it('malformed signatures are refused with 44004', async () => {
      const alice = newAccount();
      const c = await connect(signed);
      const good = signSpam(alice.pair, c.spam);
      for (const sig of ['', '0x', '0x1234', good.slice(0, -2), `${good}00ff`, good.replace(/^0x/, ''), 'zz'.repeat(64)]) {
        await refused(c, { act: 'active', acc: alice.address, sig });
      }
    });

    for (const type of ['sr25519', 'ed25519', 'ecdsa'] as const) {
      it(`a valid ${type} signature of the spam gets Welcome, and the session works`, async () => {
        const me = newAccount(type);
        const peer = newAccount();
        const c = await connect(signed, type);
        const p = await connect(signed, 'peer');
        const { resume, ...welcome } = await c.signIn(me, { signed: true });
        expect(welcome).to.deep.equal(WELCOME);
        expect(resume, 'the resume token of a signed sign-in').to.be.a('string').and.not.empty;
        await p.signIn(peer, { signed: true });
        c.request({ cat: 'chat', act: 'chat', to: peer.address, msg: `from ${type}` });
        const m = await p.next(isMessage(), 3000);
        expect(m).to.deep.include({ msg: `from ${type}`, from: me.address, to: peer.address });
      });
    }

    it('a signed active also works in open mode', async () => {
      const me = newAccount();
      const c = await connect(open);
      expect(await c.signIn(me, { signed: true })).to.deep.equal(WELCOME);
    });

    it('a wrong signature is refused in open mode too (a sig, when given, must verify)', async () => {
      const [me, other] = [newAccount(), newAccount()];
      const c = await connect(open);
      await refused(c, { act: 'active', acc: me.address, sig: signSpam(other.pair, c.spam) });
    });
  });
});

/**
 * Instant messaging (`cat: "chat"`) against the real server: live delivery and its exact frame,
 * the `to` alias, storing for absent accounts and delivery after `active` in order, several
 * devices of one account, `offline`, and the per-account bound of stored messages.
 */
import { expect } from 'chai';
import { newAccount, newAccounts } from './support/accounts';
import { isMessage, isNotice, type Frame } from './support/client';
import { getStatus, startServer, type ServerHandle } from './support/server';
import { useServer } from './support/suite';

const MESSAGE_KEYS = ['from', 'method', 'msg', 'seq', 'to', 'type'];

describe('core: instant messaging', function () {
  const ctx = useServer(['--workers', '2']);
  const { clients, connect } = ctx;

  describe('live delivery', () => {
    for (const act of ['chat', 'to']) {
      it(`act "${act}": the receiver gets exactly {msg, from, to, method:{cat:"chat",act:"chat"}, type:"message"} (+ seq)`, async () => {
        const [alice, bob] = newAccounts(2);
        const a = await connect('alice');
        const b = await connect('bob');
        await a.signIn(alice);
        await b.signIn(bob);
        const msg = { text: 'héllo ✓', n: 1, list: [1, 'two', null, true], nested: { a: { b: { c: [] } } } };
        a.request({ cat: 'chat', act, to: bob.address, msg });
        const f = await b.next(isMessage(), 3000);
        expect(Object.keys(f).sort()).to.deep.equal(MESSAGE_KEYS);
        expect(f.msg).to.deep.equal(msg);
        expect(f.from).to.equal(alice.address);
        expect(f.to).to.equal(bob.address);
        expect(f.method).to.deep.equal({ cat: 'chat', act: 'chat' });
        expect(f.type).to.equal('message');
        expect(f.seq).to.be.a('number');
      });
    }

    it('a request without cat defaults to chat', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const b = await connect('bob');
      await a.signIn(alice);
      await b.signIn(bob);
      a.request({ act: 'to', to: bob.address, msg: 'no cat' });
      expect(await b.next(isMessage(), 3000)).to.deep.include({ msg: 'no cat', from: alice.address, to: bob.address });
    });

    it('carries every kind of JSON msg unchanged (but "", refused below)', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const b = await connect('bob');
      await a.signIn(alice);
      await b.signIn(bob);
      const values: unknown[] = ['plain', ' ', 0, -1.5, 1e21, true, false, [], {}, ['a', { b: 2 }], 'quote " backslash \\ newline \n', '\u0000\u2028😀'];
      for (const v of values) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: v });
      const got = await b.nextN(values.length, isMessage(), 3000);
      expect(got.map((f) => f.msg)).to.deep.equal(values);
    });

    it('the receiver\'s seq increases by one per message; the sender gets no copy', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const b = await connect('bob');
      await a.signIn(alice);
      await b.signIn(bob);
      for (let i = 0; i < 5; i++) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: i });
      const got = await b.nextN(5, isMessage(), 3000);
      expect(got.map((f) => f.msg)).to.deep.equal([0, 1, 2, 3, 4]);
      const seqs = got.map((f) => f.seq as number);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).to.equal(seqs[0]! + i);
      expect(await a.none(isMessage(), 200)).to.deep.equal([]);
    });

    it('a request with a callback is answered with a notice carrying method.callback', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const b = await connect('bob');
      await a.signIn(alice);
      await b.signIn(bob);
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'cb', callback: 'k-7' });
      const ack = await a.next((f) => f.method?.callback === 'k-7', 3000);
      expect(ack.type).to.equal('notice');
      expect(ack.method).to.deep.include({ cat: 'chat', act: 'chat', callback: 'k-7' });
      expect(await b.next(isMessage(), 3000)).to.deep.include({ msg: 'cb' });
    });

    it('a message to an invalid account is refused with 44009 and a missing msg with 44001', async () => {
      const alice = newAccount();
      const a = await connect('alice');
      await a.signIn(alice);
      const e1 = await a.expectError({ cat: 'chat', act: 'chat', to: 'not-an-account', msg: 'x', callback: 'bad-to' });
      expect(e1).to.deep.include({ code: 44009, method: { cat: 'chat', act: 'chat' } });
      expect(e1.request.callback).to.equal('bad-to');
      const e2 = await a.expectError({ cat: 'chat', act: 'chat', to: newAccount().address, callback: 'no-msg' });
      expect(e2.code).to.equal(44001);
      const e3 = await a.expectError({ cat: 'chat', act: 'chat', msg: 'x', callback: 'no-to' });
      expect(e3.code).to.equal(44001);
    });

    it('an empty or absent msg is refused with 44001 (as the first service) for act chat and its alias to; nothing is delivered', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const b = await connect('bob');
      await a.signIn(alice);
      await b.signIn(bob);
      for (const act of ['chat', 'to']) {
        for (const [k, params] of [['empty', { msg: '' }], ['absent', {}], ['null', { msg: null }]] as const) {
          const e = await a.expectError({ cat: 'chat', act, to: bob.address, ...params, callback: `${act}-${k}` });
          expect(e, JSON.stringify(e)).to.deep.include({ code: 44001, method: { cat: 'chat', act } });
          expect(e.request.callback).to.equal(`${act}-${k}`);
        }
      }
      expect(await b.none(isMessage(), 300)).to.deep.equal([]);
      // Values that are not empty strings are messages, however small.
      for (const msg of [' ', 0, false, {}, []]) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg });
      expect((await b.nextN(5, isMessage(), 3000)).map((f) => f.msg)).to.deep.equal([' ', 0, false, {}, []]);
    });
  });

  describe('stored for absent accounts', () => {
    it('20 numbered messages to an account never seen arrive after its active, right after Welcome, in order', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      await a.signIn(alice);
      for (let i = 0; i < 20; i++) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: { n: i } });
      // The last one with a callback: its answer says all 20 were taken.
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: { n: 20 }, callback: 'last' });
      await a.next((f) => f.method?.callback === 'last', 5000, 'the answer to the last message');

      const b = await connect('bob');
      b.request({ act: 'active', acc: bob.address });
      const frames = await b.nextN(22, () => true, 5000, 'Welcome and 21 messages');
      expect(frames[0]).to.deep.equal({ type: 'notice', msg: 'Welcome', method: { cat: 'chat', act: 'active' } });
      const msgs = frames.slice(1);
      expect(msgs.map((f) => f.msg)).to.deep.equal(Array.from({ length: 21 }, (_, n) => ({ n })));
      for (const f of msgs) {
        expect(Object.keys(f).sort()).to.deep.equal(MESSAGE_KEYS);
        expect(f).to.deep.include({ from: alice.address, to: bob.address, type: 'message', method: { cat: 'chat', act: 'chat' } });
      }
      const seqs = msgs.map((f) => f.seq as number);
      expect([...seqs].sort((x, y) => x - y)).to.deep.equal(seqs);
      expect(new Set(seqs).size).to.equal(seqs.length);
      expect(await b.none(() => true, 200)).to.deep.equal([]);
    });

    it('stored messages are delivered once: a second sign-in gets none of them again', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      await a.signIn(alice);
      for (let i = 0; i < 3; i++) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: i });
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 3, callback: 'done' });
      await a.next((f) => f.method?.callback === 'done', 5000);

      const b1 = await connect('bob-1');
      await b1.signIn(bob);
      expect((await b1.nextN(4, isMessage(), 3000)).map((f) => f.msg)).to.deep.equal([0, 1, 2, 3]);
      await b1.close();
      const b2 = await connect('bob-2');
      await b2.signIn(bob);
      expect(await b2.none(isMessage(), 300)).to.deep.equal([]);
    });

    it('messages from several senders are all kept, each sender\'s in its order', async () => {
      const [alice, carol, bob] = newAccounts(3);
      const a = await connect('alice');
      const c = await connect('carol');
      await a.signIn(alice);
      await c.signIn(carol);
      for (let i = 0; i < 5; i++) {
        a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: `a${i}` });
        c.request({ cat: 'chat', act: 'to', to: bob.address, msg: `c${i}` });
      }
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'a-end', callback: 'a' });
      c.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'c-end', callback: 'c' });
      await Promise.all([a.next((f) => f.method?.callback === 'a', 5000), c.next((f) => f.method?.callback === 'c', 5000)]);
      const b = await connect('bob');
      await b.signIn(bob);
      const got = await b.nextN(12, isMessage(), 3000);
      const fromA = got.filter((f) => f.from === alice.address).map((f) => f.msg);
      const fromC = got.filter((f) => f.from === carol.address).map((f) => f.msg);
      expect(fromA).to.deep.equal(['a0', 'a1', 'a2', 'a3', 'a4', 'a-end']);
      expect(fromC).to.deep.equal(['c0', 'c1', 'c2', 'c3', 'c4', 'c-end']);
    });
  });

  describe('several devices', () => {
    it('the same account on two sockets: both get every message, in order, with the same seq', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const phone = await connect('bob-phone');
      const desk = await connect('bob-desk');
      await a.signIn(alice);
      await phone.signIn(bob);
      await desk.signIn(bob);
      for (let i = 0; i < 10; i++) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: i });
      const [p, d] = await Promise.all([phone.nextN(10, isMessage(), 3000), desk.nextN(10, isMessage(), 3000)]);
      expect(p.map((f) => f.msg)).to.deep.equal([...Array(10).keys()]);
      expect(d).to.deep.equal(p);
    });

    it('closing one device leaves the other receiving live', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const phone = await connect('bob-phone');
      const desk = await connect('bob-desk');
      await a.signIn(alice);
      await phone.signIn(bob);
      await desk.signIn(bob);
      await phone.close();
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'still here' });
      expect(await desk.next(isMessage(), 3000)).to.deep.include({ msg: 'still here', to: bob.address });
    });
  });

  describe('offline, as the first service: a status, not a sign-out', () => {
    const isPresence = (account: string) => (f: Frame): boolean => isNotice('chat', 'presence')(f) && f.method.callback === undefined && f.msg?.account === account;

    it('answers a notice; the socket stays signed in and gets messages live; presence shows it offline, then online again', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      const b = await connect('bob');
      await a.signIn(alice);
      await b.signIn(bob);
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'hi', callback: 'hi' });
      await a.next((f) => f.method?.callback === 'hi', 5000);
      await b.next(isMessage(), 3000, 'hi');
      a.request({ cat: 'chat', act: 'presence', subscribe: [bob.address], callback: 'sub' });
      expect((await a.next((f) => f.method?.callback === 'sub', 3000)).msg.presence[0]).to.include({ online: true });

      b.request({ cat: 'chat', act: 'offline', callback: 'bye' });
      const n = await b.next(isNotice('chat', 'offline'), 3000);
      expect(n).to.deep.equal({ type: 'notice', msg: 'Offline', method: { cat: 'chat', act: 'offline', callback: 'bye' } });
      expect((await a.next(isPresence(bob.address), 3000, 'offline frame')).msg.online).to.equal(false);

      for (let i = 0; i < 3; i++) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: `while away ${i}` });
      const live = await b.nextN(3, isMessage(), 3000);
      expect(live.map((f: Frame) => f.msg), 'delivered live after offline').to.deep.equal([0, 1, 2].map((i) => `while away ${i}`));
      // Still signed in: a request works (no 44003).
      b.request({ cat: 'chat', act: 'chat', to: alice.address, msg: 'from away', callback: 'sent' });
      expect((await b.next((f) => f.method?.callback === 'sent' || f.request?.callback === 'sent', 3000)).type).to.equal('notice');
      await a.next(isMessage(), 3000, 'from away');

      b.request({ cat: 'chat', act: 'online', callback: 'back' });
      expect(await b.next(isNotice('chat', 'online'), 3000)).to.deep.equal({ type: 'notice', msg: 'Online', method: { cat: 'chat', act: 'online', callback: 'back' } });
      expect((await a.next(isPresence(bob.address), 3000, 'online frame')).msg.online).to.equal(true);
      expect(await b.none(isMessage(), 300), 'nothing delivered twice').to.deep.equal([]);
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'after online' });
      expect((await b.next(isMessage(), 3000)).msg).to.equal('after online');
    });

    it('another present device keeps the account online; a second `offline` is no change; `active` again shows it online', async () => {
      const [alice, bob] = newAccounts(2);
      const a = await connect('alice');
      await a.signIn(alice);
      const b = await connect('bob');
      await b.signIn(bob);
      const desk = await connect('bob desk');
      await desk.signIn(bob);
      a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'hi', callback: 'hi' });
      await a.next((f) => f.method?.callback === 'hi', 5000);
      a.request({ cat: 'chat', act: 'presence', subscribe: [bob.address], callback: 'sub' });
      await a.next((f) => f.method?.callback === 'sub', 3000);
      b.request({ cat: 'chat', act: 'offline' });
      await b.next(isNotice('chat', 'offline'), 3000);
      expect(await a.none(isPresence(bob.address), 300), 'the desk is still present').to.deep.equal([]);
      desk.request({ cat: 'chat', act: 'offline' });
      expect((await a.next(isPresence(bob.address), 3000)).msg.online).to.equal(false);
      // `offline` twice is no change; `active` again on the socket shows it online.
      desk.request({ cat: 'chat', act: 'offline' });
      await desk.next(isNotice('chat', 'offline'), 3000);
      expect(await a.none(isPresence(bob.address), 300)).to.deep.equal([]);
      desk.request({ act: 'active', acc: bob.address });
      expect((await a.next(isPresence(bob.address), 3000)).msg.online).to.equal(true);
      await desk.close();
      expect((await a.next(isPresence(bob.address), 3000)).msg.online, 'b is still away').to.equal(false);
      await b.close();
      expect(await a.none(isPresence(bob.address), 300)).to.deep.equal([]);
    });
  });

  describe('retention (--retain-count 5)', () => {
    let small: ServerHandle;
    before(async () => { small = await startServer(['--retain-count', '5', '--workers', '1'], { status: true, env: { IMGC_LOG_LEVEL: 'info' } }); });
    after(async () => { await small?.stop(); });

    it('a conversation keeps its newest 5 (plus 1% slack, at least one), in order; the trim is logged and counted', async () => {
      const [alice, carol, dave] = newAccounts(3);
      const a = await connect('alice', small);
      await a.signIn(alice);
      for (let i = 0; i < 7; i++) a.request({ cat: 'chat', act: 'chat', to: carol.address, msg: i });
      a.request({ cat: 'chat', act: 'chat', to: carol.address, msg: 7, callback: 'last' });
      // Another conversation's message is not touched by this one's trimming.
      a.request({ cat: 'chat', act: 'chat', to: dave.address, msg: 'keep', callback: 'dave' });
      await a.next((f) => f.method?.callback === 'last', 5000);
      await a.next((f) => f.method?.callback === 'dave', 5000);
      const c = await connect('carol', small);
      await c.signIn(carol);
      // Trimmed when the log passed 5 + 1 records: back to the newest 5, then one more came.
      const got = await c.nextN(6, isMessage(), 3000);
      expect(got.map((f) => f.msg)).to.deep.equal([2, 3, 4, 5, 6, 7]);
      expect(await c.none(isMessage(), 200)).to.deep.equal([]);
      const d = await connect('dave', small);
      await d.signIn(dave);
      expect((await d.next(isMessage(), 3000)).msg).to.equal('keep');
      // Nothing is lost silently: the trim is logged and counted in /status.
      const st = await getStatus<{ delivery: { trimmed: number } }>(small);
      expect(st.delivery.trimmed).to.equal(2);
      expect(small.output()).to.match(/conversation log trimmed/);
    });
  });
});

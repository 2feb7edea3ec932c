/**
 * Own-device sync over real sockets: what an account sends reaches its other sockets that asked
 * for it (`"sync":"own"` on `active`), marked `"own":true`, with the seq its recipients got; never
 * the sending socket and never a socket that did not ask. A device that signs in later with the
 * opt-in gets its own messages in its backlog; one without gets none of them. `history` marks the
 * reader's own messages.
 */
import { expect } from 'chai';
import { newAccounts, type Account } from './support/accounts';
import { isMessage, isNotice, type Frame } from './support/client';
import { drainQuiet, expectRisingSeq, historyPage } from './support/history';
import { ask, device, makeGroup } from './support/devices';
import { useServer } from './support/suite';

describe('devices: own-device sync', function () {
  this.timeout(30_000);
  const ctx = useServer();
  const pool = ctx.clients;
  let alice: Account, bob: Account, carol: Account;
  beforeEach(() => { [alice, bob, carol] = newAccounts(3) as [Account, Account, Account]; });

  it('live: a direct message reaches the other opted-in sockets marked own, with the recipient\'s seq and `to`', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1', true);
    const a2 = await device(pool, ctx.srv.url, alice, 'a2', true);
    const a3 = await device(pool, ctx.srv.url, alice, 'a3-plain', false);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    const answer = await ask(a1, { cat: 'chat', act: 'chat', to: bob.address, msg: { t: 'hi' }, mid: 'm1' });
    expect(answer.type).to.equal('notice');
    const got = await b1.next(isMessage(), 5000, 'bob\'s message');
    expect(got).to.not.have.property('own');
    const own = await a2.next(isMessage(), 5000, 'own copy on a2');
    const { own: mark, ...rest } = own;
    expect(mark).to.equal(true);
    expect(rest, 'the same frame as the recipient got').to.deep.equal(got);
    expect(own.to).to.equal(bob.address);
    expect(own.from).to.equal(alice.address);
    expect(await a1.none(isMessage(), 300), 'never the sending socket').to.deep.equal([]);
    expect(await a3.none(isMessage(), 10), 'never a socket that did not ask').to.deep.equal([]);
    // Bob's reply is no own message of Alice's: a2 gets it once, unmarked.
    b1.request({ cat: 'chat', act: 'chat', to: alice.address, msg: 'back' });
    const back = await a2.next(isMessage(), 5000, 'reply');
    expect(back).to.not.have.property('own');
    expect(await a2.none(isMessage(), 300)).to.deep.equal([]);
  });

  it('live: group chat and notice reach the sender\'s other opted-in sockets marked own', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1', true);
    const a2 = await device(pool, ctx.srv.url, alice, 'a2', true);
    const a3 = await device(pool, ctx.srv.url, alice, 'a3-plain', false);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    const gid = await makeGroup(a1, [bob, carol], [b1]);
    a2.clear(); a3.clear();
    a1.request({ cat: 'group', act: 'chat', to: gid, msg: 'group hi' });
    a1.request({ cat: 'group', act: 'notice', to: gid, msg: 'group notice' });
    const [gm, gn] = [await b1.next(isMessage(), 5000, 'group message'), await b1.next(isNotice('group', 'notice'), 5000, 'group notice')];
    const om = await a2.next(isMessage(), 5000, 'own group message');
    const on = await a2.next(isNotice('group', 'notice'), 5000, 'own group notice');
    for (const [own, theirs] of [[om, gm], [on, gn]] as Array<[Frame, Frame]>) {
      expect(own.own).to.equal(true);
      expect(own.seq).to.equal(theirs.seq);
      expect(own.msg).to.deep.equal(theirs.msg);
      expect(own.group).to.equal(gid);
      expect(own.from).to.equal(alice.address);
      expect(own.to, 'in a group, `to` is the account itself').to.equal(alice.address);
    }
    expect(await a1.none((f) => f.own === true, 300)).to.deep.equal([]);
    expect(await a3.none((f) => f.group === gid, 10)).to.deep.equal([]);
  });

  it('at sign-in: an opted-in device gets its own messages in its backlog, marked own and in seq order', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1-plain', false);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    const gid = await makeGroup(b1, [alice], []);
    await a1.next(isNotice('group', 'create'), 5000, 'create notice');
    await ask(a1, { cat: 'chat', act: 'chat', to: bob.address, msg: 'd1', mid: 'd1' });
    await ask(a1, { cat: 'group', act: 'chat', to: gid, msg: 'g1', mid: 'g1' });
    await b1.nextN(2, (f) => f.msg === 'd1' || f.msg === 'g1');
    await a1.close();
    const a2 = await device(pool, ctx.srv.url, alice, 'a2', true);
    const frames = (await drainQuiet(a2, 400)).filter((f) => f.msg === 'd1' || f.msg === 'g1');
    expect(frames.map((f) => [f.msg, f.own, f.to, f.from])).to.deep.equal([
      ['d1', true, bob.address, alice.address],
      ['g1', true, alice.address, alice.address],
    ]);
    expectRisingSeq(frames);
  });

  it('at sign-in: a device that did not opt in gets none of its own messages', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1-plain', false);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    const gid = await makeGroup(b1, [alice], []);
    await ask(a1, { cat: 'chat', act: 'chat', to: bob.address, msg: 'd1', mid: 'd1' });
    await ask(a1, { cat: 'group', act: 'chat', to: gid, msg: 'g1', mid: 'g1' });
    await b1.nextN(2, (f) => f.msg === 'd1' || f.msg === 'g1');
    await a1.close();
    // After Alice's own messages, while she is away: in her backlog.
    await ask(b1, { cat: 'chat', act: 'chat', to: alice.address, msg: 'from bob', mid: 'fb' });
    const a2 = await device(pool, ctx.srv.url, alice, 'a2-plain', false);
    const frames = await drainQuiet(a2, 400);
    expect(frames.filter((f) => f.from === alice.address || f.own !== undefined), JSON.stringify(frames)).to.deep.equal([]);
    // It is a backlog at all: Bob's message and the create notice came.
    expect(frames.some((f) => f.msg === 'from bob')).to.equal(true);
  });

  it('history marks the reader\'s own messages (direct and group); the other side\'s are unmarked', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1', false);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    await ask(a1, { cat: 'chat', act: 'chat', to: bob.address, msg: 'A', mid: 'a' });
    await ask(b1, { cat: 'chat', act: 'chat', to: alice.address, msg: 'B', mid: 'b' });
    const gid = await makeGroup(a1, [bob], [b1]);
    await ask(a1, { cat: 'group', act: 'chat', to: gid, msg: 'GA', mid: 'ga' });
    const ha = await historyPage(a1, { with: bob.address });
    expect(ha.messages.map((f: Frame) => [f.msg, f.own ?? false, f.to])).to.deep.equal([['A', true, bob.address], ['B', false, alice.address]]);
    const hb = await historyPage(b1, { with: alice.address });
    expect(hb.messages.map((f: Frame) => [f.msg, f.own ?? false, f.to])).to.deep.equal([['A', false, bob.address], ['B', true, alice.address]]);
    const hg = await historyPage(a1, { group: gid });
    expect(hg.messages.filter((f: Frame) => f.msg === 'GA').map((f: Frame) => f.own)).to.deep.equal([true]);
    const hgb = await historyPage(b1, { group: gid });
    expect(hgb.messages.filter((f: Frame) => f.msg === 'GA').map((f: Frame) => f.own ?? false)).to.deep.equal([false]);
  });
});

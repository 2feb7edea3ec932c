/**
 * Edit and delete over real sockets, with several devices and members: the change reaches the
 * others live (and the author's other opted-in devices, marked own), comes in the backlog of an
 * account that was away, and `history` shows the latest version of each message (a deleted one as
 * a tombstone without `msg`). Only the sender edits; the sender or a group's manager deletes.
 */
import { expect } from 'chai';
import { newAccounts, type Account } from './support/accounts';
import { isMessage, isNotice, type Client, type Frame } from './support/client';
import { drainQuiet, expectRisingSeq, historyPage } from './support/history';
import { ask, device, makeGroup } from './support/devices';
import { useServer } from './support/suite';

const isEdit = isNotice('chat', 'edit');
const isDelete = isNotice('chat', 'delete');

describe('devices: edit and delete', function () {
  this.timeout(30_000);
  const ctx = useServer();
  const pool = ctx.clients;
  let alice: Account, bob: Account, carol: Account;
  beforeEach(() => { [alice, bob, carol] = newAccounts(3) as [Account, Account, Account]; });

  /** `from` sends `msg` to `to` (direct); resolves with the seq `to`'s socket saw. */
  async function sendDirect(from: Client, to: Client, msg: unknown): Promise<number> {
    from.request({ cat: 'chat', act: 'chat', to: to.account, msg });
    const f = await to.next(isMessage((x) => JSON.stringify(x.msg) === JSON.stringify(msg)), 5000, 'the message');
    return f.seq as number;
  }

  it('direct: edit and delete reach the other side and the author\'s other opted-in device live; history shows the latest version', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1', false);
    const a2 = await device(pool, ctx.srv.url, alice, 'a2', true);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    const s1 = await sendDirect(a1, b1, 'first');
    const s2 = await sendDirect(a1, b1, 'second');
    a2.clear();

    const ea = await ask(a1, { cat: 'chat', act: 'edit', with: bob.address, seq: s1, msg: { text: 'first, fixed' } });
    expect(ea.type, JSON.stringify(ea)).to.equal('notice');
    expect(ea.msg).to.include({ with: bob.address, seq: s1 });
    const editSeq = ea.msg.edit as number;
    expect(editSeq).to.be.greaterThan(s2);
    const eb = await b1.next(isEdit, 5000, 'edit on bob');
    expect(eb).to.deep.equal({ type: 'notice', msg: { text: 'first, fixed' }, from: alice.address, to: bob.address, edit: s1, method: { cat: 'chat', act: 'edit' }, seq: editSeq });
    const eo = await a2.next(isEdit, 5000, 'edit on a2');
    expect(eo).to.deep.equal({ ...eb, own: true });

    const da = await ask(a1, { cat: 'chat', act: 'delete', with: bob.address, seq: s2 });
    expect(da.type, JSON.stringify(da)).to.equal('notice');
    const delSeq = da.msg.delete as number;
    const db = await b1.next(isDelete, 5000, 'delete on bob');
    expect(db).to.deep.equal({ type: 'notice', from: alice.address, to: bob.address, delete: s2, method: { cat: 'chat', act: 'delete' }, seq: delSeq });
    expect((await a2.next(isDelete, 5000, 'delete on a2')).own).to.equal(true);
    expect(await a1.none((f) => f.own === true, 200), 'the requesting socket gets its answer only').to.deep.equal([]);

    for (const [c, other] of [[b1, alice], [a1, bob]] as Array<[Client, Account]>) {
      const h = await historyPage(c, { with: other.address });
      const shown = h.messages.map((f: Frame) => { const { own: _own, ...rest } = f; return rest; });
      const to = bob.address; // Alice wrote to Bob: the same `to` for both readers
      expect(shown, `history of ${c.name}`).to.deep.equal([
        { msg: { text: 'first, fixed' }, from: alice.address, to, method: { cat: 'chat', act: 'chat' }, type: 'message', edited: editSeq, seq: s1 },
        { from: alice.address, to, method: { cat: 'chat', act: 'chat' }, type: 'message', deleted: delSeq, seq: s2 },
      ]);
    }

    // A deleted message is neither edited nor deleted again; an edit of an edit record is no message.
    expect((await ask(a1, { cat: 'chat', act: 'edit', with: bob.address, seq: s2, msg: 'again' })).code).to.equal(44744);
    expect((await ask(a1, { cat: 'chat', act: 'delete', with: bob.address, seq: s2 })).code).to.equal(44744);
    expect((await ask(a1, { cat: 'chat', act: 'edit', with: bob.address, seq: editSeq, msg: 'x' })).code).to.equal(44744);
    // Edited twice: the latest wins.
    const e2 = await ask(a1, { cat: 'chat', act: 'edit', with: bob.address, seq: s1, msg: 'third version' });
    const h = await historyPage(b1, { with: alice.address });
    expect(h.messages[0]).to.include({ msg: 'third version', edited: e2.msg.edit, seq: s1 });
  });

  it('at sign-in: an account that was away gets the latest versions and the changes, never a deleted message\'s content', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1', false);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    await b1.close();
    expect((await ask(a1, { cat: 'chat', act: 'chat', to: bob.address, msg: 'keep me', mid: 'k' })).type).to.equal('notice');
    // Bob reads it on one device, so only what follows is in his next backlog.
    const b0 = await device(pool, ctx.srv.url, bob, 'b-peek', false);
    const m1 = await b0.next(isMessage((f) => f.msg === 'keep me'));
    await b0.close();
    await ask(a1, { cat: 'chat', act: 'chat', to: bob.address, msg: 'drop me', mid: 'd' });
    const hist = await historyPage(a1, { with: bob.address });
    const dropSeq = hist.messages.find((f: Frame) => f.msg === 'drop me').seq as number;
    const e = await ask(a1, { cat: 'chat', act: 'edit', with: bob.address, seq: m1.seq, msg: 'kept, edited' });
    const d = await ask(a1, { cat: 'chat', act: 'delete', with: bob.address, seq: dropSeq });
    const b2 = await device(pool, ctx.srv.url, bob, 'b2', false);
    const frames = await drainQuiet(b2, 400);
    expectRisingSeq(frames);
    expect(JSON.stringify(frames)).to.not.include('drop me');
    expect(frames.map((f) => [f.method?.act, f.seq, f.edit ?? f.delete ?? null, f.msg ?? null])).to.deep.equal([
      ['edit', e.msg.edit, m1.seq, 'kept, edited'],
      ['delete', d.msg.delete, dropSeq, null],
    ]);
    // An opted-in device of Alice's that signs in now gets her own records: the message in its
    // latest version, the deleted one not at all, and both changes, all marked own.
    await a1.close();
    const a3 = await device(pool, ctx.srv.url, alice, 'a3', true);
    const mine = await drainQuiet(a3, 400);
    expect(JSON.stringify(mine)).to.not.include('drop me');
    expect(mine.map((f) => [f.method?.act, f.seq, f.own, f.to, f.msg ?? null, f.edited ?? null])).to.deep.equal([
      ['chat', m1.seq, true, bob.address, 'kept, edited', e.msg.edit],
      ['edit', e.msg.edit, true, bob.address, 'kept, edited', null],
      ['delete', d.msg.delete, true, bob.address, null, null],
    ]);
  });

  it('group: the author edits, members see it live and in history; the manager may delete anyone\'s message, a member only its own', async () => {
    const b1 = await device(pool, ctx.srv.url, bob, 'b1-manager', false);
    const a1 = await device(pool, ctx.srv.url, alice, 'a1', false);
    const c1 = await device(pool, ctx.srv.url, carol, 'c1', false);
    const gid = await makeGroup(b1, [alice, carol], [a1, c1]);
    a1.request({ cat: 'group', act: 'chat', to: gid, msg: 'alice 1' });
    const g1 = (await c1.next(isMessage((f) => f.msg === 'alice 1'))).seq as number;
    a1.request({ cat: 'group', act: 'chat', to: gid, msg: 'alice 2' });
    const g2 = (await c1.next(isMessage((f) => f.msg === 'alice 2'))).seq as number;
    c1.request({ cat: 'group', act: 'chat', to: gid, msg: 'carol 1' });
    const g3 = (await a1.next(isMessage((f) => f.msg === 'carol 1'))).seq as number;

    // Not the author: no edit; a member that is not the manager deletes only its own.
    expect((await ask(c1, { cat: 'chat', act: 'edit', group: gid, seq: g1, msg: 'hijack' })).code).to.equal(44501);
    expect((await ask(b1, { cat: 'chat', act: 'edit', group: gid, seq: g1, msg: 'hijack' })).code, 'the manager does not edit').to.equal(44501);
    expect((await ask(c1, { cat: 'chat', act: 'delete', group: gid, seq: g1 })).code).to.equal(44501);
    expect((await ask(a1, { cat: 'chat', act: 'delete', group: gid, seq: g3 })).code).to.equal(44501);

    const e = await ask(a1, { cat: 'chat', act: 'edit', group: gid, seq: g1, msg: 'alice 1 (edited)' });
    expect(e.msg).to.include({ group: gid, seq: g1 });
    for (const c of [b1, c1]) {
      const f = await c.next(isEdit, 5000, 'group edit');
      expect(f).to.deep.equal({ type: 'notice', msg: 'alice 1 (edited)', from: alice.address, group: gid, to: c.account, edit: g1, method: { cat: 'chat', act: 'edit' }, seq: e.msg.edit });
    }
    const dm = await ask(b1, { cat: 'chat', act: 'delete', group: gid, seq: g2 });
    expect(dm.type, 'the manager deletes a member\'s message').to.equal('notice');
    for (const c of [a1, c1]) expect((await c.next(isDelete, 5000, 'group delete')).from).to.equal(bob.address);
    const dc = await ask(c1, { cat: 'chat', act: 'delete', group: gid, seq: g3 });
    expect(dc.type, 'a member deletes its own').to.equal('notice');

    const h = await historyPage(c1, { group: gid });
    const msgs = h.messages.filter((f: Frame) => f.type === 'message');
    expect(msgs.map((f: Frame) => [f.seq, f.msg ?? null, f.edited ?? null, f.deleted ?? null])).to.deep.equal([
      [g1, 'alice 1 (edited)', e.msg.edit, null],
      [g2, null, null, dm.msg.delete],
      [g3, null, null, dc.msg.delete],
    ]);
    expect(h.messages.some((f: Frame) => f.edit !== undefined || f.delete !== undefined), 'change records are not shown').to.equal(false);
  });

  it('errors: unknown seq, another conversation\'s seq, a server notice, a non-member, missing with/group', async () => {
    const a1 = await device(pool, ctx.srv.url, alice, 'a1', false);
    const b1 = await device(pool, ctx.srv.url, bob, 'b1', false);
    const c1 = await device(pool, ctx.srv.url, carol, 'c1', false);
    const s1 = await sendDirect(a1, b1, 'to bob');
    const gid = await makeGroup(b1, [alice], [a1]);
    b1.request({ cat: 'group', act: 'join', id: gid, account: carol.address });
    const join = await c1.next(isNotice('group', 'join'), 5000, 'join notice');
    expect((await ask(a1, { cat: 'chat', act: 'edit', with: bob.address, seq: s1 + 100000, msg: 'x' })).code).to.equal(44744);
    expect((await ask(a1, { cat: 'chat', act: 'edit', with: carol.address, seq: s1, msg: 'x' })).code, 'seq of another conversation').to.equal(44744);
    expect((await ask(b1, { cat: 'chat', act: 'delete', group: gid, seq: join.seq })).code, 'a server notice is no message').to.equal(44744);
    expect((await ask(b1, { cat: 'chat', act: 'edit', with: alice.address, seq: s1, msg: 'x' })).code, 'the receiver does not edit').to.equal(44501);
    expect((await ask(b1, { cat: 'chat', act: 'delete', with: alice.address, seq: s1 })).code, 'the receiver does not delete').to.equal(44501);
    const outsider = await device(pool, ctx.srv.url, newAccounts(1)[0]!, 'x1', false);
    expect((await ask(outsider, { cat: 'chat', act: 'delete', group: gid, seq: join.seq })).code).to.equal(44501);
    expect((await ask(a1, { cat: 'chat', act: 'delete', seq: s1 })).code).to.equal(44001);
    expect((await ask(a1, { cat: 'chat', act: 'edit', with: bob.address, seq: s1 })).code, 'an edit needs msg').to.equal(44001);
    // Nothing of it changed the message.
    const h = await historyPage(b1, { with: alice.address });
    expect(h.messages.map((f: Frame) => f.msg)).to.deep.equal(['to bob']);
  });
});

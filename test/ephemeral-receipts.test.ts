/**
 * Read receipts over real sockets: `read` (separate from `ack`) marks a conversation read up to an
 * offset; the other side's devices and the reader's other devices get a live receipt, a group's
 * online members too; positions only move forward and stop at the conversation's newest record;
 * `history` answers carry them (direct: both accounts' positions; group: per message the count of
 * members that read through it, and the furthest positions); they survive a restart; a non-member
 * is refused.
 */
import { expect } from 'chai';
import { randomAddresses } from './support/accounts';
import { isMessage, isNotice, type Frame } from './support/client';
import { startServer } from './support/server';
import { ask } from './support/devices';
import { useServer } from './support/suite';

const isRead = isNotice('chat', 'read');
const live = (f: Frame): boolean => isRead(f) && f.method.callback === undefined;

describe('ephemeral: read receipts', function () {
  this.timeout(60_000);
  const ctx = useServer(['--workers', '2']);
  const { clients, signedIn } = ctx;

  it('direct: live receipt to the other side and the reader\'s other devices; forward only, capped at the newest; in history', async () => {
    const [alice, bob] = randomAddresses(2);
    const a1 = await signedIn(alice!, 'alice 1');
    const a2 = await signedIn(alice!, 'alice 2');
    const b1 = await signedIn(bob!, 'bob 1');
    const b2 = await signedIn(bob!, 'bob 2');
    for (let i = 0; i < 3; i++) a1.request({ cat: 'chat', act: 'chat', to: bob, msg: `m${i}` });
    const got = await b1.nextN(3, isMessage(), 5000);
    const seqs = got.map((f) => f.seq as number);

    const ans = await ask(b1, { cat: 'chat', act: 'read', with: alice, seq: seqs[1] });
    expect(ans.msg).to.deep.equal({ with: alice, seq: seqs[1] });
    for (const c of [a1, a2]) {
      expect(await c.next(live, 3000, 'receipt')).to.deep.equal({ type: 'notice', msg: { account: bob, with: bob, seq: seqs[1] }, method: { cat: 'chat', act: 'read' } });
    }
    expect((await b2.next(live, 3000, 'receipt on the reader\'s other device')).msg).to.deep.equal({ account: bob, with: alice, seq: seqs[1] });
    expect(await b1.none(live, 200)).to.deep.equal([], 'not to the requesting socket');

    // Backwards: unchanged, answered with the position; no receipt.
    const back = await ask(b1, { cat: 'chat', act: 'read', with: alice, seq: seqs[0] });
    expect(back.msg.seq).to.equal(seqs[1]);
    expect(await a1.none(live, 300)).to.deep.equal([]);
    // Beyond the newest record: capped there.
    const far = await ask(b1, { cat: 'chat', act: 'read', with: alice, seq: seqs[2]! + 1_000_000 });
    expect(far.msg.seq).to.equal(seqs[2]);
    expect((await a1.next(live, 3000)).msg.seq).to.equal(seqs[2]);

    const h = await ask(a1, { cat: 'chat', act: 'history', with: bob });
    expect(h.msg.reads).to.deep.equal({ [bob!]: seqs[2] });
    expect(h.msg.messages).to.have.length(3);
    await ask(a1, { cat: 'chat', act: 'read', with: bob, seq: seqs[0] });
    const h2 = await ask(b2, { cat: 'chat', act: 'history', with: alice });
    expect(h2.msg.reads).to.deep.equal({ [alice!]: seqs[0], [bob!]: seqs[2] });
  });

  it('is not ack: reading does not acknowledge delivery, acknowledging does not mark read', async () => {
    const [alice, bob] = randomAddresses(2);
    const a = await signedIn(alice!, 'alice');
    const b = await signedIn(bob!, 'bob');
    a.request({ cat: 'chat', act: 'chat', to: bob, msg: 'x' });
    const m = await b.next(isMessage(), 5000);
    b.request({ cat: 'chat', act: 'ack', seq: m.seq });
    expect(await a.none(live, 300)).to.deep.equal([], 'ack sends no receipt');
    expect((await ask(a, { cat: 'chat', act: 'history', with: bob })).msg.reads).to.deep.equal({});
  });

  it('refused: no such conversation, a group of which it is not a member (44501); neither with nor group (44001)', async () => {
    const [alice, stranger] = randomAddresses(2);
    const a = await signedIn(alice!, 'alice');
    expect((await ask(a, { cat: 'chat', act: 'read', with: stranger, seq: 1 })).code).to.equal(44501);
    expect((await ask(a, { cat: 'chat', act: 'read', group: 'GDabcdefghij', seq: 1 })).code).to.equal(44501);
    expect((await ask(a, { cat: 'chat', act: 'read', seq: 1 })).code).to.equal(44001);
    expect((await ask(a, { cat: 'chat', act: 'read', with: stranger })).code).to.equal(44001);
  });

  it('group: live receipt to the online members; history counts per message who read through it', async () => {
    const [alice, bob, carol, dave] = randomAddresses(4);
    const a = await signedIn(alice!, 'alice');
    const b = await signedIn(bob!, 'bob');
    const c = await signedIn(carol!, 'carol');
    a.request({ cat: 'group', act: 'create', list: [bob, carol, dave], callback: 'g' });
    const gid = (await a.next(isNotice('group', 'create'), 5000)).msg.id as string;
    await b.next(isNotice('group', 'create'), 5000);
    await c.next(isNotice('group', 'create'), 5000);
    for (let i = 0; i < 3; i++) a.request({ cat: 'group', act: 'chat', to: gid, msg: `g${i}` });
    const seqs = (await b.nextN(3, isMessage(), 5000)).map((f) => f.seq as number);
    await c.nextN(3, isMessage(), 5000);

    expect((await ask(b, { cat: 'chat', act: 'read', group: gid, seq: seqs[2] })).msg).to.deep.equal({ group: gid, seq: seqs[2] });
    expect((await a.next(live, 3000)).msg).to.deep.equal({ account: bob, group: gid, seq: seqs[2] });
    expect((await c.next(live, 3000)).msg).to.deep.equal({ account: bob, group: gid, seq: seqs[2] });
    await ask(c, { cat: 'chat', act: 'read', group: gid, seq: seqs[0] });
    await a.next(live, 3000);

    const h = await ask(a, { cat: 'chat', act: 'history', group: gid });
    const msgs = h.msg.messages as Frame[];
    const idx = seqs.map((s) => msgs.findIndex((f) => f.seq === s));
    expect(idx.every((i) => i >= 0)).to.equal(true);
    expect(h.msg.readCounts).to.have.length(msgs.length);
    expect(idx.map((i) => h.msg.readCounts[i])).to.deep.equal([2, 1, 1]);
    expect(h.msg.reads).to.deep.equal({ [bob!]: seqs[2], [carol!]: seqs[0] });

    // A member that leaves no longer counts.
    c.request({ cat: 'group', act: 'leave', id: gid, account: carol, callback: 'l' });
    await c.next((f) => f.method?.callback === 'l', 5000);
    const h2 = await ask(a, { cat: 'chat', act: 'history', group: gid });
    expect(h2.msg.reads).to.deep.equal({ [bob!]: seqs[2] });
  });

  it('read positions survive a restart (stored), and the history answer carries them after it', async () => {
    const s1 = await startServer(['--workers', '2']);
    try {
      const [alice, bob] = randomAddresses(2);
      const a = await signedIn(alice!, 'alice', s1);
      const b = await signedIn(bob!, 'bob', s1);
      a.request({ cat: 'chat', act: 'chat', to: bob, msg: 'persist me' });
      const m = await b.next(isMessage(), 5000);
      await ask(b, { cat: 'chat', act: 'read', with: alice, seq: m.seq });
      await clients.closeAll();
      await s1.stop({ keepData: true });
      const s2 = await startServer(['--workers', '2'], { dataDir: s1.dataDir });
      try {
        const a2 = await signedIn(alice!, 'alice after', s2);
        expect((await ask(a2, { cat: 'chat', act: 'history', with: bob })).msg.reads).to.deep.equal({ [bob!]: m.seq });
        const b2 = await signedIn(bob!, 'bob after', s2);
        expect((await ask(b2, { cat: 'chat', act: 'read', with: alice, seq: 0 })).msg.seq, 'the stored position, not 0').to.equal(m.seq);
        await clients.closeAll();
      } finally {
        await s2.stop();
      }
    } finally {
      s1.removeData();
    }
  });
});

/**
 * Group chat (`cat: "group"`) against the real server: the twelve functions with their success
 * frames and each refusal the reference's permission rules call for, delivery to absent members,
 * per-recipient sequence numbers, and placement of groups on several worker threads.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { newAccount, newAccounts, type Account } from './support/accounts';
import { Client, isMessage, isNotice, type Frame } from './support/client';
import { getStatus, type ServerHandle } from './support/server';
import { useServer } from './support/suite';
import { groupAddress, partitionOf, workerOf } from '../src/supervisor/placement';

const RECORD_KEYS = ['announce', 'block', 'create', 'founder', 'group', 'id', 'manager', 'nick', 'notice', 'permit', 'status', 'update'];
const GID = /^GD[A-Za-z]{10}$/;
const PARTITIONS = 16;
const WORKERS = 4;

/** The fields a fanned-out copy may add to a reference frame: its recipient and sequence number. */
const FANOUT_EXTRAS = ['seq', 'to'];

/** Checks a group notice: type, method (+callback) exactly, `msg` including `msg`, nothing but the reference keys and fanout extras. */
function expectGroupNotice(f: Frame, act: string, msg: Record<string, unknown>, opts: { callback?: string; to?: string } = {}): void {
  expect(f.type, JSON.stringify(f)).to.equal('notice');
  expect(f.method).to.deep.equal(opts.callback === undefined ? { act, cat: 'group' } : { act, cat: 'group', callback: opts.callback });
  expect(f.msg).to.deep.include(msg);
  const extra = Object.keys(f).filter((k) => !['type', 'msg', 'method'].includes(k));
  expect(extra.filter((k) => !FANOUT_EXTRAS.includes(k)), 'unexpected keys').to.deep.equal([]);
  if (opts.to !== undefined && 'to' in f) expect(f.to).to.equal(opts.to);
}

interface Member { account: Account; client: Client }

describe('core: group chat', function () {
  // Four workers: the placement test below needs several, and every other test then runs on them too.
  const ctx = useServer(['--workers', String(WORKERS), '--partitions', String(PARTITIONS)], { status: true });
  const { clients, connect } = ctx;
  const online = async (name: string, account = newAccount(), server = ctx.srv): Promise<Member> => {
    const client = await connect(name, server);
    await client.signIn(account);
    return { account, client };
  };
  /** A manager and members, all signed in; the group is created and every create notice taken. */
  const makeGroup = async (n: number, server = ctx.srv): Promise<{ gid: string; m: Member[] }> => {
    const m = await Promise.all(Array.from({ length: n }, (_, i) => online(`m${i}`, newAccount(), server)));
    m[0]!.client.request({ cat: 'group', act: 'create', list: m.slice(1).map((x) => x.account.address), callback: 'mk' });
    const created = await m[0]!.client.next(isNotice('group', 'create'), 5000, 'create answer');
    const gid = created.msg.id as string;
    await Promise.all(m.slice(1).map((x) => x.client.next(isNotice('group', 'create'), 5000, 'create notice')));
    return { gid, m };
  };
  const detail = async (c: Client, gid: string): Promise<Frame> => {
    const cb = `d-${Math.random()}`;
    c.request({ cat: 'group', act: 'detail', id: gid, callback: cb });
    const f = await c.next((x) => x.method?.callback === cb || x.request?.callback === cb, 5000, 'detail answer');
    expect(f.type, JSON.stringify(f)).to.equal('notice');
    return f.msg as Frame;
  };
  /** Sends `req` and expects an error with `code`, echoing the request. */
  const refused = async (c: Client, req: Frame, code: number): Promise<Frame> => {
    const cb = `r-${Math.random()}`;
    const sent = c.request({ ...req, callback: cb });
    const f = await c.next((x) => x.method?.callback === cb || x.request?.callback === cb, 5000, `answer to ${req.act}`);
    expect(f.type, `expected error ${code}, got ${JSON.stringify(f)}`).to.equal('error');
    expect(f.code, f.error).to.equal(code);
    expect(f.method).to.deep.equal({ cat: 'group', act: req.act });
    expect(f.request).to.deep.equal(sent);
    return f;
  };
  /** Sends `req` with a callback and returns the requester's answer (must be a notice). */
  const ok = async (c: Client, req: Frame): Promise<Frame> => {
    const cb = `ok-${Math.random()}`;
    c.request({ ...req, callback: cb });
    const f = await c.next((x) => x.method?.callback === cb || x.request?.callback === cb, 5000, `answer to ${req.act}`);
    expect(f.type, `expected a notice, got ${JSON.stringify(f)}`).to.equal('notice');
    expect(f.method).to.deep.equal({ act: req.act, cat: 'group', callback: cb });
    return f;
  };

  describe('create', () => {
    it('answers the requester with {msg:{id}} and its callback, and tells every member', async () => {
      const [a, b, c] = await Promise.all([online('alice'), online('bob'), online('carol')]);
      a.client.request({ cat: 'group', act: 'create', list: [b.account.address, c.account.address], callback: 'new-group' });
      const mine = await a.client.next(isNotice('group', 'create'), 5000);
      expect(mine).to.deep.equal({ type: 'notice', msg: { id: mine.msg.id }, method: { act: 'create', cat: 'group', callback: 'new-group' } });
      expect(mine.msg.id).to.match(GID);
      for (const x of [b, c]) {
        const n = await x.client.next(isNotice('group', 'create'), 5000);
        expectGroupNotice(n, 'create', { id: mine.msg.id }, { to: x.account.address });
        expect(n.msg).to.deep.equal({ id: mine.msg.id });
      }
      expect(await a.client.none(isNotice('group', 'create'), 200), 'requester got a second create notice').to.deep.equal([]);
    });

    it('de-duplicates the list, puts the requester in, and makes it manager and founder', async () => {
      const [a, b, c] = await Promise.all([online('alice'), online('bob'), online('carol')]);
      const list = [b.account.address, c.account.address, b.account.address, a.account.address, c.account.address];
      const { msg } = await ok(a.client, { cat: 'group', act: 'create', list });
      const rec = await detail(a.client, msg.id);
      expect([...rec.group].sort()).to.deep.equal([a.account.address, b.account.address, c.account.address].sort());
      expect(rec.manager).to.equal(a.account.address);
      expect(rec.founder).to.equal(a.account.address);
    });

    it('each create gives a new id', async () => {
      const a = await online('alice');
      const b = newAccount();
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) ids.add((await ok(a.client, { cat: 'group', act: 'create', list: [b.address] })).msg.id);
      expect(ids.size).to.equal(5);
    });

    it('refuses a bad list: empty (44744), not an array (44744), an invalid account (44009), missing (44001)', async () => {
      const a = await online('alice');
      await refused(a.client, { cat: 'group', act: 'create', list: [] }, 44744);
      await refused(a.client, { cat: 'group', act: 'create', list: newAccount().address }, 44744);
      await refused(a.client, { cat: 'group', act: 'create', list: [newAccount().address, 'nope'] }, 44009);
      await refused(a.client, { cat: 'group', act: 'create' }, 44001);
    });
  });

  describe('detail', () => {
    it('gives members the full record with the reference keys and initial values', async () => {
      const { gid, m } = await makeGroup(3);
      const f = await ok(m[1]!.client, { cat: 'group', act: 'detail', id: gid });
      expect(Object.keys(f).sort()).to.deep.equal(['method', 'msg', 'type']);
      const rec = f.msg as Frame;
      expect(Object.keys(rec).sort()).to.deep.equal(RECORD_KEYS);
      expect(rec.id).to.equal(gid);
      expect(rec.group).to.deep.equal(m.map((x) => x.account.address));
      expect(rec.status).to.equal(1);
      expect(rec.create).to.be.a('number').within(Date.now() - 60_000, Date.now() + 1000);
      expect(rec.update).to.be.a('number').at.least(rec.create);
      expect(rec.notice).to.deep.equal([]);
      expect(rec.manager).to.equal(m[0]!.account.address);
      expect(rec.founder).to.equal(m[0]!.account.address);
      expect(rec.announce).to.deep.equal({ content: '', expired: 0 });
      expect(rec.permit).to.deep.equal({ free: true, announce: false });
      expect(rec.block).to.deep.equal([]);
      expect(rec.nick).to.equal('');
    });

    it('refuses a non-member with 44501', async () => {
      const { gid } = await makeGroup(2);
      const x = await online('outsider');
      await refused(x.client, { cat: 'group', act: 'detail', id: gid }, 44501);
    });
  });

  describe('unknown or malformed group ids', () => {
    const unknown = 'GDzzzzzzzzzz';
    it('every function refuses an unknown id with 44100', async () => {
      const a = await online('alice');
      const acc = a.account.address;
      const reqs: Frame[] = [
        { cat: 'group', act: 'detail', id: unknown },
        { cat: 'group', act: 'join', id: unknown, account: acc },
        { cat: 'group', act: 'members', id: unknown, members: acc },
        { cat: 'group', act: 'leave', id: unknown, account: acc },
        { cat: 'group', act: 'divert', id: unknown, manager: acc },
        { cat: 'group', act: 'deport', id: unknown, account: newAccount().address },
        { cat: 'group', act: 'recover', id: unknown, account: newAccount().address },
        { cat: 'group', act: 'destory', id: unknown },
        { cat: 'group', act: 'chat', to: unknown, msg: 'x' },
        { cat: 'group', act: 'notice', to: unknown, msg: 'x' },
        { cat: 'group', act: 'update', id: unknown, key: 'nick', val: 'n' },
      ];
      for (const r of reqs) await refused(a.client, r, 44100);
    });

    it('malformed ids are refused with 44100', async () => {
      const a = await online('alice');
      for (const id of ['', 'GD', 'XX1234567890', 'GD../../etc', 'GD' + 'a'.repeat(100), 'gdabcdefghij']) {
        await refused(a.client, { cat: 'group', act: 'detail', id }, 44100);
      }
    });
  });

  describe('join', () => {
    it('in a free group an account joins itself; all members and the joiner are told', async () => {
      const { gid, m } = await makeGroup(3);
      const d = await online('dave');
      const mine = await ok(d.client, { cat: 'group', act: 'join', id: gid, account: d.account.address });
      expect(mine.msg).to.deep.include({ id: gid, from: d.account.address });
      for (const x of m) {
        const n = await x.client.next(isNotice('group', 'join'), 5000);
        expectGroupNotice(n, 'join', { id: gid, from: d.account.address }, { to: x.account.address });
      }
      expect((await detail(m[0]!.client, gid)).group).to.deep.equal([...m.map((x) => x.account.address), d.account.address]);
      // The new member now reads the group.
      expect((await detail(d.client, gid)).id).to.equal(gid);
    });

    it('the manager may add someone; a member may not add someone else (44501)', async () => {
      const { gid, m } = await makeGroup(2);
      const [e, f] = newAccounts(2);
      await refused(m[1]!.client, { cat: 'group', act: 'join', id: gid, account: e.address }, 44501);
      await ok(m[0]!.client, { cat: 'group', act: 'join', id: gid, account: f.address });
      expect((await detail(m[0]!.client, gid)).group).to.include(f.address).and.not.include(e.address);
    });

    it('a group that is not free refuses a self-join by a non-manager (44501); the manager may still add', async () => {
      const { gid, m } = await makeGroup(2);
      await ok(m[0]!.client, { cat: 'group', act: 'update', id: gid, key: 'pmt_free', val: false });
      const d = await online('dave');
      await refused(d.client, { cat: 'group', act: 'join', id: gid, account: d.account.address }, 44501);
      expect((await detail(m[0]!.client, gid)).group).to.not.include(d.account.address);
      await ok(m[0]!.client, { cat: 'group', act: 'join', id: gid, account: d.account.address });
      expect((await detail(d.client, gid)).group).to.include(d.account.address);
    });

    it('a blocked account cannot join, by itself or by the manager (44501)', async () => {
      const { gid, m } = await makeGroup(3);
      const c = m[2]!;
      await ok(m[0]!.client, { cat: 'group', act: 'deport', id: gid, account: c.account.address });
      await refused(c.client, { cat: 'group', act: 'join', id: gid, account: c.account.address }, 44501);
      await refused(m[0]!.client, { cat: 'group', act: 'join', id: gid, account: c.account.address }, 44501);
      expect((await detail(m[0]!.client, gid)).group).to.not.include(c.account.address);
    });
  });

  describe('members', () => {
    it('the manager sets the membership; the notice tells exactly added and removed, and removed accounts get it too', async () => {
      const { gid, m } = await makeGroup(4);
      const [a, b, c, d] = m as [Member, Member, Member, Member];
      const e = await online('eve');
      const next = [a, b, e].map((x) => x.account.address);
      const mine = await ok(a.client, { cat: 'group', act: 'members', id: gid, members: next.join('_') });
      const expected = { id: gid, from: a.account.address, added: [e.account.address], removed: [c.account.address, d.account.address] };
      expect(mine.msg).to.deep.include(expected);
      for (const x of [b, c, d, e]) {
        const n = await x.client.next(isNotice('group', 'members'), 5000, `members notice for ${x.client.name}`);
        expectGroupNotice(n, 'members', { id: gid, from: a.account.address }, { to: x.account.address });
        expect(n.msg.added, 'added').to.deep.equal(expected.added);
        expect([...n.msg.removed].sort(), 'removed').to.deep.equal([...expected.removed].sort());
      }
      const rec = await detail(a.client, gid);
      expect([...rec.group].sort()).to.deep.equal([...next].sort());
      await refused(c.client, { cat: 'group', act: 'detail', id: gid }, 44501);
      expect((await detail(e.client, gid)).id).to.equal(gid);
    });

    it('an unchanged list tells empty added and removed', async () => {
      const { gid, m } = await makeGroup(2);
      const mine = await ok(m[0]!.client, { cat: 'group', act: 'members', id: gid, members: m.map((x) => x.account.address).join('_') });
      expect(mine.msg.added).to.deep.equal([]);
      expect(mine.msg.removed).to.deep.equal([]);
    });

    it('a non-manager is refused (44501) and nothing changes', async () => {
      const { gid, m } = await makeGroup(3);
      await refused(m[1]!.client, { cat: 'group', act: 'members', id: gid, members: m[1]!.account.address }, 44501);
      expect((await detail(m[0]!.client, gid)).group).to.deep.equal(m.map((x) => x.account.address));
      expect(await m[2]!.client.none(isNotice('group', 'members'), 200)).to.deep.equal([]);
    });

    it('an invalid account in the list is refused (44009)', async () => {
      const { gid, m } = await makeGroup(2);
      await refused(m[0]!.client, { cat: 'group', act: 'members', id: gid, members: `${m[1]!.account.address}_bogus` }, 44009);
    });
  });

  describe('leave', () => {
    it('the account itself leaves; every member, the leaver too, is told; then it is out', async () => {
      const { gid, m } = await makeGroup(3);
      const b = m[1]!;
      const mine = await ok(b.client, { cat: 'group', act: 'leave', id: gid, account: b.account.address });
      expect(mine.msg).to.deep.include({ from: b.account.address, id: gid });
      for (const x of [m[0]!, m[2]!]) {
        const n = await x.client.next(isNotice('group', 'leave'), 5000);
        expectGroupNotice(n, 'leave', { from: b.account.address, id: gid }, { to: x.account.address });
      }
      expect((await detail(m[0]!.client, gid)).group).to.deep.equal([m[0]!.account.address, m[2]!.account.address]);
      await refused(b.client, { cat: 'group', act: 'detail', id: gid }, 44501);
    });

    it('leaving for someone else is refused (44501), even by the manager', async () => {
      const { gid, m } = await makeGroup(3);
      await refused(m[1]!.client, { cat: 'group', act: 'leave', id: gid, account: m[2]!.account.address }, 44501);
      await refused(m[0]!.client, { cat: 'group', act: 'leave', id: gid, account: m[2]!.account.address }, 44501);
      expect((await detail(m[0]!.client, gid)).group).to.deep.equal(m.map((x) => x.account.address));
    });

    it('when the last member leaves, the group is gone (44100)', async () => {
      const a = await online('alone');
      const { msg } = await ok(a.client, { cat: 'group', act: 'create', list: [a.account.address] });
      await ok(a.client, { cat: 'group', act: 'leave', id: msg.id, account: a.account.address });
      await refused(a.client, { cat: 'group', act: 'detail', id: msg.id }, 44100);
    });

    it('a leaving manager hands the group to a remaining member', async () => {
      const { gid, m } = await makeGroup(3);
      await ok(m[0]!.client, { cat: 'group', act: 'leave', id: gid, account: m[0]!.account.address });
      const rec = await detail(m[1]!.client, gid);
      expect(rec.group).to.not.include(m[0]!.account.address);
      expect(rec.group).to.include(rec.manager);
    });
  });

  describe('divert', () => {
    it('the manager hands over; every member is told {id, manager, from}; the old manager loses the rights', async () => {
      const { gid, m } = await makeGroup(3);
      const [a, b, c] = m as [Member, Member, Member];
      const mine = await ok(a.client, { cat: 'group', act: 'divert', id: gid, manager: b.account.address });
      expect(mine.msg).to.deep.include({ id: gid, manager: b.account.address, from: a.account.address });
      for (const x of [b, c]) {
        expectGroupNotice(await x.client.next(isNotice('group', 'divert'), 5000), 'divert', { id: gid, manager: b.account.address, from: a.account.address }, { to: x.account.address });
      }
      const rec = await detail(c.client, gid);
      expect(rec.manager).to.equal(b.account.address);
      expect(rec.founder).to.equal(a.account.address);
      await refused(a.client, { cat: 'group', act: 'members', id: gid, members: a.account.address }, 44501);
      await refused(a.client, { cat: 'group', act: 'divert', id: gid, manager: a.account.address }, 44501);
      await ok(b.client, { cat: 'group', act: 'divert', id: gid, manager: a.account.address });
    });

    it('the new manager must be a member (44501)', async () => {
      const { gid, m } = await makeGroup(2);
      await refused(m[0]!.client, { cat: 'group', act: 'divert', id: gid, manager: newAccount().address }, 44501);
      expect((await detail(m[0]!.client, gid)).manager).to.equal(m[0]!.account.address);
    });

    it('a non-manager is refused (44501)', async () => {
      const { gid, m } = await makeGroup(3);
      await refused(m[1]!.client, { cat: 'group', act: 'divert', id: gid, manager: m[1]!.account.address }, 44501);
      expect((await detail(m[0]!.client, gid)).manager).to.equal(m[0]!.account.address);
    });
  });

  describe('deport and recover', () => {
    it('deport blocks and removes the account; recover unblocks it and it may join again', async () => {
      const { gid, m } = await makeGroup(3);
      const [a, , c] = m as [Member, Member, Member];
      const dep = await ok(a.client, { cat: 'group', act: 'deport', id: gid, account: c.account.address });
      expect(dep.msg).to.deep.include({ id: gid });
      let rec = await detail(a.client, gid);
      expect(rec.group).to.not.include(c.account.address);
      expect(rec.block).to.deep.equal([c.account.address]);
      await refused(c.client, { cat: 'group', act: 'detail', id: gid }, 44501);
      await refused(c.client, { cat: 'group', act: 'chat', to: gid, msg: 'let me in' }, 44501);

      const rec2 = await ok(a.client, { cat: 'group', act: 'recover', id: gid, account: c.account.address });
      expect(rec2.msg).to.deep.include({ id: gid });
      rec = await detail(a.client, gid);
      expect(rec.block).to.deep.equal([]);
      expect(rec.group).to.not.include(c.account.address);
      await ok(c.client, { cat: 'group', act: 'join', id: gid, account: c.account.address });
      expect((await detail(c.client, gid)).group).to.include(c.account.address);
    });

    it('a non-manager may neither deport nor recover (44501)', async () => {
      const { gid, m } = await makeGroup(3);
      const [a, b, c] = m as [Member, Member, Member];
      await refused(b.client, { cat: 'group', act: 'deport', id: gid, account: c.account.address }, 44501);
      expect((await detail(a.client, gid)).block).to.deep.equal([]);
      await ok(a.client, { cat: 'group', act: 'deport', id: gid, account: c.account.address });
      await refused(b.client, { cat: 'group', act: 'recover', id: gid, account: c.account.address }, 44501);
      expect((await detail(a.client, gid)).block).to.deep.equal([c.account.address]);
    });
  });

  describe('destory', () => {
    it('a non-manager is refused (44501); the manager removes the group, every member is told, then it is unknown (44100)', async () => {
      const { gid, m } = await makeGroup(3);
      await refused(m[1]!.client, { cat: 'group', act: 'destory', id: gid }, 44501);
      expect((await detail(m[1]!.client, gid)).id).to.equal(gid);
      const mine = await ok(m[0]!.client, { cat: 'group', act: 'destory', id: gid });
      expect(mine.msg).to.deep.include({ id: gid, from: m[0]!.account.address });
      for (const x of m.slice(1)) {
        expectGroupNotice(await x.client.next(isNotice('group', 'destory'), 5000), 'destory', { id: gid, from: m[0]!.account.address }, { to: x.account.address });
      }
      await refused(m[0]!.client, { cat: 'group', act: 'detail', id: gid }, 44100);
      await refused(m[1]!.client, { cat: 'group', act: 'chat', to: gid, msg: 'anyone?' }, 44100);
    });
  });

  describe('chat', () => {
    it('every other member gets {msg, from, group, to:<member>, method:{act:"message",cat:"group"}, cat:"group", type:"message"}; the sender does not', async () => {
      const { gid, m } = await makeGroup(3);
      const msg = { text: 'hello group', at: [1, 2, 3] };
      m[1]!.client.request({ cat: 'group', act: 'chat', to: gid, msg });
      for (const x of [m[0]!, m[2]!]) {
        const f = await x.client.next(isMessage(), 5000);
        // Key for key and in order as the first service sent it (JSON.parse keeps the order), plus seq.
        expect(Object.keys(f)).to.deep.equal(['msg', 'from', 'group', 'to', 'method', 'cat', 'type', 'seq']);
        expect(f).to.deep.include({ msg, from: m[1]!.account.address, group: gid, to: x.account.address, cat: 'group', type: 'message' });
        expect(f.method).to.deep.equal({ act: 'message', cat: 'group' });
        expect(f.seq).to.be.a('number');
      }
      expect(await m[1]!.client.none(isMessage(), 200)).to.deep.equal([]);
    });

    it('with a mid the sender is answered {type:"notice", msg:{id, mid}, method:{act, cat:"group"(, callback)}} (chat and notice)', async () => {
      const { gid, m } = await makeGroup(2);
      for (const act of ['chat', 'notice']) {
        m[0]!.client.request({ cat: 'group', act, to: gid, msg: 'with a mid', mid: `mid-${act}` });
        const a = await m[0]!.client.next((f) => f.type === 'notice' && f.msg?.mid === `mid-${act}`, 5000, `answer to the ${act} mid`);
        expect(a).to.deep.equal({ type: 'notice', msg: { id: gid, mid: `mid-${act}` }, method: { act, cat: 'group' } });
        m[0]!.client.request({ cat: 'group', act, to: gid, msg: 'with a callback', callback: `cb-${act}` });
        const b = await m[0]!.client.next((f) => f.method?.callback === `cb-${act}`, 5000, `answer to the ${act} callback`);
        expect(b).to.deep.equal({ type: 'notice', msg: { id: gid, mid: null }, method: { act, cat: 'group', callback: `cb-${act}` } });
      }
      expect(await m[1]!.client.nextN(4, (f) => f.type === 'message' || f.method?.act === 'notice', 5000)).to.have.length(4);
    });

    it('a non-member is refused (44501) and no member receives anything', async () => {
      const { gid, m } = await makeGroup(2);
      const x = await online('outsider');
      await refused(x.client, { cat: 'group', act: 'chat', to: gid, msg: 'spam!' }, 44501);
      expect(await m[0]!.client.none(isMessage(), 200)).to.deep.equal([]);
    });

    it('is routed by `to`: an extra `id` naming another group does not redirect it', async () => {
      const g1 = await makeGroup(2);
      const a = g1.m[0]!;
      // A second group with the same manager and another member.
      const other = await online('other');
      const { msg } = await ok(a.client, { cat: 'group', act: 'create', list: [other.account.address] });
      await other.client.next(isNotice('group', 'create'), 5000);
      a.client.request({ cat: 'group', act: 'chat', to: g1.gid, id: msg.id, msg: 'for group 1' });
      const [inG1, inOther] = await Promise.all([g1.m[1]!.client.none(isMessage(), 500), other.client.none(isMessage(), 500)]);
      expect(inOther.map((f) => ({ msg: f.msg, group: f.group })), `delivered to the group named by \`id\` (${msg.id}), not \`to\` (${g1.gid})`).to.deep.equal([]);
      expect(inG1.map((f) => ({ msg: f.msg, group: f.group }))).to.deep.equal([{ msg: 'for group 1', group: g1.gid }]);
    });

    it('an absent member gets the group messages after its active, in order', async () => {
      const { gid, m } = await makeGroup(3);
      const away = m[2]!;
      await away.client.close();
      // One sender: the order of frames from different sockets is not defined.
      for (let i = 0; i < 6; i++) m[0]!.client.request({ cat: 'group', act: 'chat', to: gid, msg: { n: i } });
      m[0]!.client.request({ cat: 'group', act: 'chat', to: gid, msg: { n: 6 }, callback: 'last' });
      const ack = await m[0]!.client.next((f) => f.method?.callback === 'last', 5000);
      expect(ack.type).to.equal('notice');
      const back = await connect('back');
      back.request({ act: 'active', acc: away.account.address });
      const frames = await back.nextN(8, () => true, 5000, 'Welcome and 7 group messages');
      expect(frames[0]).to.deep.equal({ type: 'notice', msg: 'Welcome', method: { cat: 'chat', act: 'active' } });
      const got = frames.slice(1);
      expect(got.map((f) => f.msg)).to.deep.equal([0, 1, 2, 3, 4, 5, 6].map((n) => ({ n })));
      for (const f of got) {
        expect(f).to.deep.include({ type: 'message', group: gid, to: away.account.address, method: { act: 'message', cat: 'group' }, cat: 'group' });
      }
    });

    it('an absent member also gets event notices (create) on its active', async () => {
      const a = await online('alice');
      const absent = newAccount();
      const { msg } = await ok(a.client, { cat: 'group', act: 'create', list: [absent.address] });
      const c = await connect('later');
      await c.signIn(absent);
      const n = await c.next(isNotice('group', 'create'), 5000);
      expectGroupNotice(n, 'create', { id: msg.id }, { to: absent.address });
    });

    it('seq increases by one per recipient across groups and direct messages', async () => {
      const g1 = await makeGroup(2);
      const g2 = await makeGroup(2);
      const [a1, b] = g1.m as [Member, Member];
      // b joins group 2 and also gets direct messages: one sequence for all it receives.
      await ok(b.client, { cat: 'group', act: 'join', id: g2.gid, account: b.account.address });
      b.client.clear();
      a1.client.request({ cat: 'group', act: 'chat', to: g1.gid, msg: 1 });
      await b.client.next(isMessage((f) => f.msg === 1), 5000);
      g2.m[0]!.client.request({ cat: 'group', act: 'chat', to: g2.gid, msg: 2 });
      await b.client.next(isMessage((f) => f.msg === 2), 5000);
      g2.m[1]!.client.request({ cat: 'chat', act: 'chat', to: b.account.address, msg: 3 });
      await b.client.next(isMessage((f) => f.msg === 3), 5000);
      a1.client.request({ cat: 'group', act: 'notice', to: g1.gid, msg: 4 });
      await b.client.next((f) => f.msg === 4, 5000);
      const seqs = b.client.log.filter((f) => [1, 2, 3, 4].includes(f.msg)).map((f) => f.seq as number);
      expect(seqs).to.have.length(4);
      for (let i = 1; i < 4; i++) expect(seqs[i], `seqs ${seqs.join(',')}`).to.equal(seqs[0]! + i);
    });
  });

  describe('notice', () => {
    it('the manager\'s notice reaches every other member carrying msg', async () => {
      const { gid, m } = await makeGroup(3);
      m[0]!.client.request({ cat: 'group', act: 'notice', to: gid, msg: { text: 'meeting at 5' } });
      for (const x of m.slice(1)) {
        const n = await x.client.next(isNotice('group', 'notice'), 5000);
        expect(n.msg).to.deep.equal({ text: 'meeting at 5' });
        expect(n.method).to.deep.equal({ act: 'notice', cat: 'group' });
      }
      expect(await m[0]!.client.none(isNotice('group', 'notice'), 200)).to.deep.equal([]);
    });

    it('a member is refused (44501) while permit.announce is false, and allowed after the manager sets pmt_announce true', async () => {
      const { gid, m } = await makeGroup(3);
      await refused(m[1]!.client, { cat: 'group', act: 'notice', to: gid, msg: 'hear me' }, 44501);
      expect(await m[2]!.client.none(isNotice('group', 'notice'), 200)).to.deep.equal([]);
      await ok(m[0]!.client, { cat: 'group', act: 'update', id: gid, key: 'pmt_announce', val: true });
      expect((await detail(m[1]!.client, gid)).permit).to.deep.equal({ free: true, announce: true });
      m[1]!.client.request({ cat: 'group', act: 'notice', to: gid, msg: 'hear me now' });
      for (const x of [m[0]!, m[2]!]) expect((await x.client.next(isNotice('group', 'notice'), 5000)).msg).to.equal('hear me now');
    });

    it('a non-member is refused (44501)', async () => {
      const { gid } = await makeGroup(2);
      const x = await online('outsider');
      await refused(x.client, { cat: 'group', act: 'notice', to: gid, msg: 'hi' }, 44501);
    });
  });

  describe('empty messages', () => {
    it('chat and notice with an empty or absent msg are refused with 44001 (as the first service); no member receives anything', async () => {
      const { gid, m } = await makeGroup(2);
      for (const act of ['chat', 'notice']) {
        await refused(m[0]!.client, { cat: 'group', act, to: gid, msg: '' }, 44001);
        await refused(m[0]!.client, { cat: 'group', act, to: gid }, 44001);
      }
      expect(await m[1]!.client.none((f) => f.type === 'message' || f.method?.act === 'notice', 300)).to.deep.equal([]);
      // The same requests with a msg go through.
      m[0]!.client.request({ cat: 'group', act: 'chat', to: gid, msg: 0 });
      expect((await m[1]!.client.next(isMessage(), 5000)).msg).to.equal(0);
    });
  });

  describe('update', () => {
    const cases: Array<[string, unknown, (r: Frame) => unknown, unknown]> = [
      ['nick', 'The Crew', (r) => r.nick, 'The Crew'],
      ['announce', 'read the rules', (r) => r.announce.content, 'read the rules'],
      ['expired', 1_900_000_000_000, (r) => r.announce.expired, 1_900_000_000_000],
      ['pmt_announce', true, (r) => r.permit.announce, true],
      ['pmt_free', false, (r) => r.permit.free, false],
    ];
    for (const [key, val, read, expected] of cases) {
      it(`key ${key}: every member is told {key, value, id, from} and detail shows it`, async () => {
        const { gid, m } = await makeGroup(3);
        const mine = await ok(m[0]!.client, { cat: 'group', act: 'update', id: gid, key, val });
        expect(mine.msg).to.deep.include({ key, value: expected, id: gid, from: m[0]!.account.address });
        for (const x of m.slice(1)) {
          expectGroupNotice(await x.client.next(isNotice('group', 'update'), 5000), 'update', { key, value: expected, id: gid, from: m[0]!.account.address }, { to: x.account.address });
        }
        expect(read(await detail(m[1]!.client, gid))).to.deep.equal(expected);
      });
    }

    it('a member may change the nick', async () => {
      const { gid, m } = await makeGroup(2);
      await ok(m[1]!.client, { cat: 'group', act: 'update', id: gid, key: 'nick', val: 'by member' });
      expect((await detail(m[0]!.client, gid)).nick).to.equal('by member');
    });

    it('an unknown key is refused with 44744, and so are values of the wrong type', async () => {
      const { gid, m } = await makeGroup(2);
      const c = m[0]!.client;
      for (const key of ['color', 'manager', 'group', 'permit', '__proto__', 'NICK', '']) {
        await refused(c, { cat: 'group', act: 'update', id: gid, key, val: 'x' }, 44744);
      }
      await refused(c, { cat: 'group', act: 'update', id: gid, key: 'nick', val: { a: 1 } }, 44744);
      await refused(c, { cat: 'group', act: 'update', id: gid, key: 'expired', val: 'tomorrow' }, 44744);
      await refused(c, { cat: 'group', act: 'update', id: gid, key: 'pmt_free', val: 'maybe' }, 44744);
      const rec = await detail(c, gid);
      expect(rec.nick).to.equal('');
      expect(rec.permit).to.deep.equal({ free: true, announce: false });
      expect(Object.keys(rec).sort()).to.deep.equal(RECORD_KEYS);
    });

    it('a non-member is refused (44501); a member may not change the permits (44501)', async () => {
      const { gid, m } = await makeGroup(2);
      const x = await online('outsider');
      await refused(x.client, { cat: 'group', act: 'update', id: gid, key: 'nick', val: 'hijack' }, 44501);
      await refused(m[1]!.client, { cat: 'group', act: 'update', id: gid, key: 'pmt_free', val: false }, 44501);
      await refused(m[1]!.client, { cat: 'group', act: 'update', id: gid, key: 'pmt_announce', val: true }, 44501);
      // The announcement follows permit.announce, as notices do.
      await refused(m[1]!.client, { cat: 'group', act: 'update', id: gid, key: 'announce', val: 'by member' }, 44501);
      const rec = await detail(m[0]!.client, gid);
      expect(rec.permit).to.deep.equal({ free: true, announce: false });
      expect(rec.announce).to.deep.equal({ content: '', expired: 0 });
    });
  });

  describe('placement on worker threads (--workers 4)', () => {
    const four = (): ServerHandle => ctx.srv;

    it('16 groups spread over more than one worker (GET /status agrees with placement), and every group works wherever it lives', async () => {
      const a = await online('alice', newAccount(), four());
      const b = await online('bob', newAccount(), four());
      const before = await workerStatus(four());
      const gids: string[] = [];
      for (let i = 0; i < 16; i++) {
        const f = await ok(a.client, { cat: 'group', act: 'create', list: [b.account.address] });
        gids.push(f.msg.id);
      }
      await b.client.nextN(16, isNotice('group', 'create'), 5000);
      // Where the service's placement functions say each group lives…
      const workers = gids.map((g) => workerOf(groupAddress(g), PARTITIONS, WORKERS));
      expect(new Set(workers).size, `workers ${workers.join(',')}`).to.be.greaterThan(1);
      // …is where the status server counts them: per worker, the new groups it holds.
      const after = await workerStatus(four());
      expect(after.map((w) => w.index)).to.deep.equal([0, 1, 2, 3]);
      expect(new Set(after.map((w) => w.threadId)).size, 'distinct worker threads').to.equal(WORKERS);
      const added = after.map((w, i) => (w.groups ?? NaN) - (before[i]!.groups ?? NaN));
      const expected = [0, 1, 2, 3].map((w) => workers.filter((x) => x === w).length);
      expect(added, 'new groups per worker (status) vs placement').to.deep.equal(expected);
      expect(added.filter((n) => n > 0).length).to.be.greaterThan(1);

      for (const [i, gid] of gids.entries()) {
        expect((await detail(b.client, gid)).group).to.deep.equal([a.account.address, b.account.address]);
        a.client.request({ cat: 'group', act: 'chat', to: gid, msg: { i } });
        const f = await b.client.next(isMessage((x) => x.group === gid), 5000, `message in group ${i} (worker ${workers[i]})`);
        expect(f.msg).to.deep.equal({ i });
        await ok(b.client, { cat: 'group', act: 'update', id: gid, key: 'nick', val: `g${i}` });
        expect((await detail(a.client, gid)).nick).to.equal(`g${i}`);
      }
    });
  });
});

interface WorkerFigures { index: number; threadId: number | null; groups: number | null }

/** The per-worker figures of GET /status. */
async function workerStatus(server: ServerHandle): Promise<WorkerFigures[]> {
  const s = await getStatus<{ workers: WorkerFigures[] }>(server);
  return s.workers;
}



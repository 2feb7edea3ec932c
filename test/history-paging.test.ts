/**
 * `history` against the real server: paging a direct conversation of 250 messages both ways, the
 * limit respected and clamped, both sides shown with the right `to`; who may read a group (a
 * non-member, a deported and a leaving member may not; a member added late reads everything
 * retained but gets only what came after joining at sign-in); parameter refusals; and retention
 * by count, with the trimmed records counted on /status.
 */
import { expect } from 'chai';
import { newAccounts, type Account } from './support/accounts';
import { Client, isMessage, isNotice, type Frame } from './support/client';
import { getStatus, startServer, type ServerHandle } from './support/server';
import { drainQuiet, expectRisingSeq, history, historyPage, isDirectAnswer, isGroupChatAnswer, pageAll, sendAcked } from './support/history';
import { useServer } from './support/suite';

describe('history: paging, permissions, retention', function () {
  this.timeout(60_000);
  const ctx = useServer(['--rate-limit', '100000']);
  const clients = ctx.clients;
  const online = async (acc: Account, name: string, server = ctx.srv): Promise<Client> => {
    const c = await clients.connect(server.url, name);
    await c.signIn(acc);
    return c;
  };
  /** Sends the group messages `from..from+n-1` (as {g}) with mid and waits for their answers. */
  const post = (c: Client, gid: string, from: number, n: number) =>
    sendAcked(c, n, (i) => ({ cat: 'group', act: 'chat', to: gid, msg: { g: from + i }, mid: `g${from + i}` }), isGroupChatAnswer, n);
  const groupOf = async (c: Client, list: string[]): Promise<string> => {
    c.request({ cat: 'group', act: 'create', list, callback: 'mk' });
    return (await c.next((f) => f.method?.callback === 'mk', 5000, 'create answer')).msg.id as string;
  };
  const change = async (c: Client, r: Frame): Promise<Frame> => {
    const cb = `chg${Math.random()}`;
    c.request({ cat: 'group', ...r, callback: cb });
    const f = await c.next((x) => x.method?.callback === cb || x.request?.callback === cb, 5000, `answer to ${r.act}`);
    expect(f.type, JSON.stringify(f)).to.equal('notice');
    return f;
  };

  describe('a direct conversation of 250 messages', () => {
    let a: Account, b: Account;
    let ca: Client, cb: Client;
    before(async () => {
      [a, b] = newAccounts(2) as [Account, Account];
      ca = await Client.connect(ctx.srv.url, { name: 'alice' });
      cb = await Client.connect(ctx.srv.url, { name: 'bob' });
      await ca.signIn(a);
      await cb.signIn(b);
      // Turns of 25: A then B, so the conversation's order is i = 0..249 and both sides are in it.
      for (let t = 0; t < 10; t++) {
        const [s, to] = t % 2 === 0 ? [ca, b] : [cb, a];
        await sendAcked(s, 25, (k) => ({ cat: 'chat', act: 'chat', to: to.address, msg: { i: t * 25 + k }, mid: `m${t * 25 + k}` }), isDirectAnswer, 25);
      }
      ca.clear();
      cb.clear();
    });
    after(async () => { await ca.close(); await cb.close(); });

    it('backwards from the newest: each message once, in order, more false only at the first', async () => {
      const mores: boolean[] = [];
      const sizes: number[] = [];
      const seen: Frame[] = [];
      let before: number | undefined;
      for (;;) {
        const m = await historyPage(ca, { with: b.address, limit: 100, ...(before === undefined ? {} : { before }) });
        expect(m.with).to.equal(b.address);
        mores.push(m.more as boolean);
        sizes.push(m.messages.length as number);
        seen.unshift(...(m.messages as Frame[]));
        if (!m.more) break;
        before = m.first as number;
      }
      expect(sizes).to.deep.equal([100, 100, 50]);
      expect(mores).to.deep.equal([true, true, false]);
      expect(seen.map((f) => f.msg.i)).to.deep.equal([...Array(250).keys()]);
      expectRisingSeq(seen, 'history seq');
    });

    it('forwards from 0: the same messages, more false only at the last page, then an empty page', async () => {
      const back = await pageAll(ca, { with: b.address }, 'backward');
      const fwd = await pageAll(cb, { with: a.address }, 'forward', 0);
      expect(fwd.pages).to.equal(3);
      expect(fwd.messages.map((f) => f.msg.i)).to.deep.equal([...Array(250).keys()]);
      expect(fwd.messages.map((f) => f.seq)).to.deep.equal(back.messages.map((f) => f.seq));
      const end = await historyPage(cb, { with: a.address, after: fwd.messages.at(-1)!.seq });
      expect(end).to.deep.include({ more: false, first: null, last: null, messages: [] });
      const start = await historyPage(cb, { with: a.address, before: fwd.messages[0]!.seq });
      expect(start).to.deep.include({ more: false, messages: [] });
    });

    it('respects the limit, refuses one outside 1-100 with 44744 and defaults to 50', async () => {
      expect((await historyPage(ca, { with: b.address, limit: 7 })).messages).to.have.length(7);
      expect((await historyPage(ca, { with: b.address, limit: 100 })).messages).to.have.length(100);
      for (const limit of [0, 101, 1000, 1e9]) {
        const f = await history(ca, { with: b.address, limit });
        expect([f.type, f.code], `limit ${limit}`).to.deep.equal(['error', 44744]);
      }
      expect((await historyPage(ca, { with: b.address })).messages).to.have.length(50);
      const one = await historyPage(ca, { with: b.address, limit: 1, after: 0 });
      expect(one.messages.map((f: Frame) => f.msg.i)).to.deep.equal([0]);
      expect(one.more).to.equal(true);
    });

    it('shows both sides, each frame with the `to` it was sent with', async () => {
      for (const [c, me, peer] of [[ca, a, b], [cb, b, a]] as const) {
        const { messages } = await pageAll(c, { with: peer.address }, 'forward');
        expect(messages).to.have.length(250);
        for (const f of messages) {
          const fromA = Math.floor((f.msg.i as number) / 25) % 2 === 0;
          expect(f.from, `message ${f.msg.i} read by ${me === a ? 'A' : 'B'}`).to.equal(fromA ? a.address : b.address);
          expect(f.to).to.equal(fromA ? b.address : a.address);
          expect(f.method).to.deep.equal({ cat: 'chat', act: 'chat' });
          expect(f.type).to.equal('message');
        }
      }
    });
  });

  describe('who reads a group', () => {
    it('a non-member gets 44501, also for a group that does not exist', async () => {
      const [a, b, d] = newAccounts(3) as [Account, Account, Account];
      const ca = await online(a, 'alice');
      const gid = await groupOf(ca, [b.address]);
      await post(ca, gid, 0, 3);
      const cd = await online(d, 'dave');
      for (const group of [gid, 'GDnosuchgroup1']) {
        const f = await history(cd, { group });
        expect(f.type, JSON.stringify(f)).to.equal('error');
        expect(f.code).to.equal(44501);
        expect(f.method).to.deep.include({ cat: 'chat', act: 'history' });
      }
      expect((await historyPage(ca, { group: gid, after: 0 })).messages.map((f: Frame) => f.msg.g)).to.deep.equal([0, 1, 2]);
    });

    it('a deported member and one who leaves get 44501 afterwards and none of the group at sign-in', async () => {
      const [a, b, c, e] = newAccounts(4) as [Account, Account, Account, Account];
      const ca = await online(a, 'alice');
      const gid = await groupOf(ca, [b.address, c.address, e.address]);
      const cb = await online(b, 'bob');
      const cc = await online(c, 'carol');
      await post(ca, gid, 0, 5);
      // Both read it while members.
      for (const x of [cb, cc]) expect((await historyPage(x, { group: gid, after: 0 })).messages).to.have.length(5);
      await cc.close();
      await change(ca, { act: 'deport', id: gid, account: c.address });
      await change(cb, { act: 'leave', id: gid, account: b.address });
      await cb.close();
      await post(ca, gid, 5, 5);

      for (const [acc, name, act] of [[c, 'carol', 'deport'], [b, 'bob', 'leave']] as const) {
        const x = await online(acc, `${name}-again`);
        const frames = await drainQuiet(x);
        expect(frames.filter((f) => f.group === gid || f.type === 'notice' && f.msg?.group === gid), `${name}: no group frames at sign-in`).to.deep.equal([]);
        if (act === 'deport') expect(frames.filter(isNotice('group', 'deport')).map((f) => f.msg.account), 'the deport notice, in its own log').to.deep.equal([c.address]);
        const f = await history(x, { group: gid });
        expect(f.type, `${name}: ${JSON.stringify(f)}`).to.equal('error');
        expect(f.code).to.equal(44501);
        expect((await history(x, { group: gid, after: 0 })).code).to.equal(44501);
      }
      // E, still a member and away all along, gets everything at sign-in.
      const ce = await online(e, 'erin');
      const got = (await drainQuiet(ce)).filter(isMessage((f) => f.group === gid));
      expect(got.map((f) => f.msg.g)).to.deep.equal([...Array(10).keys()]);
    });

    it('a member added after 10 messages reads the whole retained history but gets only what came after joining at sign-in', async () => {
      const [a, b, n] = newAccounts(3) as [Account, Account, Account];
      const ca = await online(a, 'alice');
      const gid = await groupOf(ca, [b.address]);
      await post(ca, gid, 0, 10);
      await change(ca, { act: 'join', id: gid, account: n.address });
      await post(ca, gid, 10, 5);
      const cn = await online(n, 'newcomer');
      const frames = await drainQuiet(cn);
      expectRisingSeq(frames);
      const msgs = frames.filter(isMessage((f) => f.group === gid));
      expect(msgs.map((f) => f.msg.g), 'only what came after joining').to.deep.equal([10, 11, 12, 13, 14]);
      const joined = frames.filter(isNotice('group', 'join'));
      expect(joined.map((f) => f.msg.account)).to.deep.equal([n.address]);
      expect(frames.filter(isNotice('group', 'limited'))).to.deep.equal([]);
      // Documented choice: a current member reads everything retained, from before it joined too.
      const all = await pageAll(cn, { group: gid }, 'forward');
      expect(all.messages.filter((f) => f.type === 'message').map((f) => f.msg.g)).to.deep.equal([...Array(15).keys()]);
      expect(all.messages.every((f) => f.to === n.address)).to.equal(true);
      expectRisingSeq(all.messages);
    });
  });

  describe('refusals', () => {
    it('neither `with` nor `group`: 44001; both `before` and `after`: 44744; out of range or wrong type: refused', async () => {
      const [a, b] = newAccounts(2) as [Account, Account];
      const ca = await online(a, 'alice');
      const none = await history(ca, {});
      expect(none.type).to.equal('error');
      expect(none.code).to.equal(44001);
      const both = await history(ca, { with: b.address, before: 10, after: 1 });
      expect(both.type).to.equal('error');
      expect(both.code).to.equal(44744);
      for (const bad of [{ with: b.address, before: -1 }, { with: b.address, limit: 'x' }, { with: 'not-an-address' }, { group: 'nope' }]) {
        const f = await history(ca, bad);
        expect(f.type, JSON.stringify(bad)).to.equal('error');
      }
      // An empty conversation is no error: an empty page.
      expect(await historyPage(ca, { with: b.address })).to.deep.include({ with: b.address, more: false, messages: [], first: null, last: null });
    });
  });

  describe('retention by count', () => {
    let small: ServerHandle | undefined;
    after(async () => { await small?.stop(); });

    it('with --retain-count 100, history reaches back to the newest 100 (or 101) of 300 and /status counts the rest', async () => {
      small = await startServer(['--retain-count', '100', '--rate-limit', '100000'], { status: true, env: { IMGC_LOG_LEVEL: 'info' } });
      const [a, b] = newAccounts(2) as [Account, Account];
      const ca = await online(a, 'alice', small);
      await sendAcked(ca, 300, (i) => ({ cat: 'chat', act: 'chat', to: b.address, msg: { i }, mid: `r${i}` }), isDirectAnswer, 50);
      const cb = await online(b, 'bob', small);
      await drainQuiet(cb, 300);
      const { messages } = await pageAll(cb, { with: a.address }, 'backward');
      const kept = messages.map((f) => f.msg.i as number);
      expect(kept.length).to.be.within(100, 101);
      expect(kept).to.deep.equal(Array.from({ length: kept.length }, (_, k) => 300 - kept.length + k));
      const st = await getStatus<{ delivery: { trimmed: number; trims: number } }>(small);
      expect(st.delivery.trimmed).to.equal(300 - kept.length);
      expect(st.delivery.trims).to.be.greaterThan(0);
      expect(small.output()).to.match(/conversation log trimmed/);
      // Forwards from 0 starts at the oldest retained.
      const first = await historyPage(cb, { with: a.address, after: 0, limit: 1 });
      expect(first.messages[0].msg.i).to.equal(300 - kept.length);
    });
  });
});

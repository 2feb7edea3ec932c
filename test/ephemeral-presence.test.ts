/**
 * Presence over real sockets: subscribing to a contact (direct conversation or common group) gives
 * its state at once and live online/offline frames after; several devices (offline only when the
 * last socket closes); unsubscribe; refusal of a non-contact; the per-request bound, the rate limit
 * and the per-connection cap; `online` in a group's `detail`; after a restart everyone is offline
 * with no last-seen time until they reconnect.
 */
import { expect } from 'chai';
import { randomAddresses } from './support/accounts';
import { Client, isError, isMessage, isNotice, sleep, type Frame } from './support/client';
import { startServer } from './support/server';
import { useServer } from './support/suite';

const isPresence = isNotice('chat', 'presence');
const liveOf = (account: string) => (f: Frame): boolean => isPresence(f) && f.method.callback === undefined && f.msg?.account === account;

describe('ephemeral: presence', function () {
  this.timeout(60_000);
  const ctx = useServer(['--workers', '2']);
  const { clients, signedIn } = ctx;

  /** `a` and `b` become direct contacts: one message from a to b, taken by b when given. */
  async function befriend(a: Client, b: string, bClient?: Client): Promise<void> {
    a.request({ cat: 'chat', act: 'chat', to: b, msg: 'hi', callback: 'f' });
    await a.next((f) => f.method?.callback === 'f', 5000, 'chat answer');
    if (bClient) await bClient.next(isMessage(), 5000, 'hi');
  }

  async function subscribe(c: Client, accounts: string[], cb = `s${Math.random()}`): Promise<Frame> {
    c.request({ cat: 'chat', act: 'presence', subscribe: accounts, callback: cb });
    return c.next((f) => f.method?.callback === cb || f.request?.callback === cb, 5000, 'presence answer');
  }

  it('a contact: state at once; online with its first socket, offline only when its last closes; unsubscribe stops it', async () => {
    const [alice, bob] = randomAddresses(2);
    const a = await signedIn(alice!, 'alice');
    await befriend(a, bob!);
    const ans = await subscribe(a, [bob!]);
    expect(ans.type).to.equal('notice');
    expect(ans.msg.presence).to.deep.equal([{ account: bob, online: false, lastSeen: null }]);
    expect(ans.msg.refused).to.deep.equal([]);
    expect(ans.msg.subscribed).to.equal(1);

    const b1 = await signedIn(bob!, 'bob phone');
    const on = await a.next(liveOf(bob!), 3000, 'online frame');
    expect(on.msg.online).to.equal(true);
    expect(on.msg.lastSeen).to.be.a('number');
    expect(Object.keys(on).sort()).to.deep.equal(['method', 'msg', 'type']);
    const b2 = await signedIn(bob!, 'bob desktop');
    expect(await a.none(liveOf(bob!), 300)).to.deep.equal([], 'a second device is no change');
    const again = await subscribe(a, [bob!]);
    expect(again.msg.presence[0]).to.include({ account: bob, online: true });

    await b1.close();
    expect(await a.none(liveOf(bob!), 300)).to.deep.equal([], 'one device left: still online');
    const t0 = Date.now();
    await b2.close();
    const off = await a.next(liveOf(bob!), 3000, 'offline frame');
    expect(off.msg.online).to.equal(false);
    expect(off.msg.lastSeen).to.be.within(t0 - 1000, Date.now() + 1000);
    const now = await subscribe(a, [bob!]);
    expect(now.msg.presence).to.deep.equal([{ account: bob, online: false, lastSeen: off.msg.lastSeen }]);

    a.request({ cat: 'chat', act: 'presence', unsubscribe: [bob!], callback: 'u' });
    expect((await a.next((f) => f.method?.callback === 'u')).msg.subscribed).to.equal(0);
    await signedIn(bob!, 'bob again');
    expect(await a.none(liveOf(bob!), 400)).to.deep.equal([], 'unsubscribed: no frame');
  });

  it('`offline` on the last socket makes the account offline too; every device of the subscriber that subscribed gets frames', async () => {
    const [alice, bob] = randomAddresses(2);
    const a1 = await signedIn(alice!, 'alice 1');
    const a2 = await signedIn(alice!, 'alice 2');
    const a3 = await signedIn(alice!, 'alice 3 (not subscribed)');
    await befriend(a1, bob!);
    await subscribe(a1, [bob!]);
    await subscribe(a2, [bob!]);
    const b = await signedIn(bob!, 'bob');
    await a1.next(liveOf(bob!), 3000);
    await a2.next(liveOf(bob!), 3000);
    b.request({ cat: 'chat', act: 'offline' });
    expect((await a1.next(liveOf(bob!), 3000)).msg.online).to.equal(false);
    expect((await a2.next(liveOf(bob!), 3000)).msg.online).to.equal(false);
    expect(await a3.none(liveOf(bob!), 300)).to.deep.equal([]);
  });

  it('a non-contact is refused (listed in `refused`, never watched); a co-member of a group is a contact', async () => {
    const [alice, stranger, member] = randomAddresses(3);
    const a = await signedIn(alice!, 'alice');
    a.request({ cat: 'group', act: 'create', list: [member], callback: 'g' });
    await a.next(isNotice('group', 'create'), 5000, 'create');
    const ans = await subscribe(a, [stranger!, member!]);
    expect(ans.msg.refused).to.deep.equal([stranger]);
    expect(ans.msg.presence.map((p: Frame) => p.account)).to.deep.equal([member]);
    await signedIn(stranger!, 'stranger');
    await signedIn(member!, 'member');
    const got = await a.collect(500);
    const live = got.filter((f) => isPresence(f));
    expect(live.map((f) => f.msg.account)).to.deep.equal([member]);
  });

  it('bounds: at most 100 accounts per request (44744); at most 10 requests at once, 5 a second (44029)', async () => {
    const [alice] = randomAddresses(1);
    const a = await signedIn(alice!, 'alice');
    const big = await a.expectError({ cat: 'chat', act: 'presence', subscribe: randomAddresses(101) });
    expect(big.code).to.equal(44744);
    const frames: Frame[] = [];
    for (let i = 0; i < 12; i++) a.request({ cat: 'chat', act: 'presence', subscribe: randomAddresses(1), callback: `r${i}` });
    for (let i = 0; i < 12; i++) frames.push(await a.next((f) => f.method?.callback === `r${i}` || f.request?.callback === `r${i}`));
    const limited = frames.filter(isError(44029));
    expect(limited.length).to.be.at.least(1);
    expect(frames.slice(0, 10).filter(isError(44029))).to.deep.equal([], 'the burst of 10 passes');
  });

  it('cap: at most 1,000 subscriptions per connection (the 1,001st request is refused, 44744)', async () => {
    const [alice] = randomAddresses(1);
    const members = randomAddresses(1000);
    const extra = randomAddresses(1);
    const a = await signedIn(alice!, 'alice');
    a.request({ cat: 'group', act: 'create', list: [...members, extra[0]], callback: 'g' });
    await a.next(isNotice('group', 'create'), 10_000, 'create');
    for (let i = 0; i < 10; i++) {
      const ans = await subscribe(a, members.slice(i * 100, (i + 1) * 100));
      expect(ans.type, JSON.stringify(ans).slice(0, 300)).to.equal('notice');
      expect(ans.msg.subscribed).to.equal((i + 1) * 100);
    }
    await sleep(400); // a token for one more request
    const over = await subscribe(a, extra);
    expect(over.type).to.equal('error');
    expect(over.code).to.equal(44744);
    expect(over.error).to.match(/1000/);
  });

  it('group detail asked with online:true carries `online`: the members signed in now (not without it)', async () => {
    const [alice, bob, carol] = randomAddresses(3);
    const a = await signedIn(alice!, 'alice');
    const b = await signedIn(bob!, 'bob');
    a.request({ cat: 'group', act: 'create', list: [bob, carol], callback: 'g' });
    const gid = (await a.next(isNotice('group', 'create'), 5000)).msg.id as string;
    a.request({ cat: 'group', act: 'detail', id: gid, callback: 'd0' });
    const d0 = await a.next((f) => f.method?.callback === 'd0');
    expect(d0.msg).to.not.have.any.keys('online', 'onlineCount');
    a.request({ cat: 'group', act: 'detail', id: gid, online: true, callback: 'd1' });
    const d1 = await a.next((f) => f.method?.callback === 'd1');
    expect([...d1.msg.online].sort()).to.deep.equal([alice, bob].sort());
    expect(d1.msg.onlineCount).to.equal(2);
    expect(d1.msg.group).to.have.length(3);
    await b.close();
    a.request({ cat: 'group', act: 'detail', id: gid, online: true, callback: 'd2' });
    expect((await a.next((f) => f.method?.callback === 'd2')).msg.online).to.deep.equal([alice]);
  });

  it('after a restart everyone is offline with no last-seen until they reconnect (nothing stale)', async () => {
    const s1 = await startServer(['--workers', '2']);
    try {
      const [alice, bob] = randomAddresses(2);
      const a = await signedIn(alice!, 'alice', s1);
      const b = await signedIn(bob!, 'bob', s1);
      await befriend(a, bob!, b);
      const before = await subscribe(a, [bob!]);
      expect(before.msg.presence[0]).to.include({ online: true });
      await a.close();
      await s1.stop({ keepData: true });
      await b.closed;
      const s2 = await startServer(['--workers', '2'], { dataDir: s1.dataDir });
      try {
        const a2 = await signedIn(alice!, 'alice after', s2);
        const after = await subscribe(a2, [bob!]);
        expect(after.msg.presence).to.deep.equal([{ account: bob, online: false, lastSeen: null }]);
        await signedIn(bob!, 'bob after', s2);
        expect((await a2.next(liveOf(bob!), 3000)).msg.online).to.equal(true);
        await clients.closeAll();
      } finally {
        await s2.stop();
      }
    } finally {
      s1.removeData();
    }
  });
});

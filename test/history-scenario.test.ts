/**
 * Issue 9's scenario against the real server: B is away while A sends it 50 acknowledged direct
 * messages and C posts 3,000 messages in their group. At sign-in B gets every direct message once
 * and in order, and the group's newest 200 after a `limited` notice; `history` pages back from the
 * notice's `before` to the group's first message. The acknowledging variant acks half of what came
 * and, after a reconnect, gets exactly the rest.
 */
import { expect } from 'chai';
import { newAccounts, type Account } from './support/accounts';
import { isMessage, isNotice, sleep, type Frame } from './support/client';
import { drainQuiet, expectRisingSeq, isDirectAnswer, isGroupChatAnswer, isLimited, pageAll, sendAcked } from './support/history';
import { useServer } from './support/suite';

const GROUP_MSGS = 3000;
const DIRECT_MSGS = 50;
const BACKLOG = 200;

describe('history: the scenario of issue 9 (50 direct messages survive 3,000 group messages)', function () {
  this.timeout(60_000);
  const ctx = useServer(['--rate-limit', '100000']);
  const clients = ctx.clients;
  let a: Account, b: Account, c: Account;
  beforeEach(() => { [a, b, c] = newAccounts(3) as [Account, Account, Account]; });

  /** C makes the group of A, B and C; A sends B the direct messages; C posts in the group. All acknowledged; everyone leaves. */
  async function whileBIsAway(): Promise<string> {
    const cc = await clients.connect(ctx.srv.url, 'carol');
    await cc.signIn(c);
    cc.request({ cat: 'group', act: 'create', list: [a.address, b.address], callback: 'mk' });
    const gid = (await cc.next((f) => f.method?.callback === 'mk', 5000, 'create answer')).msg.id as string;

    const ca = await clients.connect(ctx.srv.url, 'alice');
    await ca.signIn(a);
    const directAcks = await sendAcked(ca, DIRECT_MSGS, (i) => ({ cat: 'chat', act: 'chat', to: b.address, msg: { d: i }, mid: `d${i}` }), isDirectAnswer, 10);
    expect(directAcks).to.have.length(DIRECT_MSGS);
    await ca.close();

    const t0 = Date.now();
    const groupAcks = await sendAcked(cc, GROUP_MSGS, (i) => ({ cat: 'group', act: 'chat', to: gid, msg: { g: i }, mid: `g${i}` }), isGroupChatAnswer, 300);
    expect(groupAcks).to.have.length(GROUP_MSGS);
    expect(new Set(groupAcks).size).to.equal(GROUP_MSGS);
    expect(Date.now() - t0, 'the group messages take seconds, not more').to.be.below(30_000);
    await cc.close();
    return gid;
  }

  /** Checks a sign-in backlog: the create notice, every direct message, the limited notice, the newest 200 of the group. */
  function checkBacklog(frames: Frame[], gid: string): { limited: Frame; group: Frame[]; direct: Frame[] } {
    expectRisingSeq(frames, 'backlog seq');
    const direct = frames.filter(isMessage((f) => f.method?.cat === 'chat'));
    expect(direct.map((f) => f.msg.d), 'every direct message, once, in order').to.deep.equal([...Array(DIRECT_MSGS).keys()]);
    expect(direct.every((f) => f.from === a.address && f.to === b.address)).to.equal(true);
    const group = frames.filter(isMessage((f) => f.group === gid));
    expect(group.map((f) => f.msg.g), 'the newest 200 of the group, in order').to.deep.equal(Array.from({ length: BACKLOG }, (_, i) => GROUP_MSGS - BACKLOG + i));
    const limited = frames.filter(isLimited);
    expect(limited, 'one limited notice').to.have.length(1);
    const n = limited[0]!;
    expect(n).to.deep.equal({ type: 'notice', msg: { group: gid, limited: true, before: group[0]!.seq, epoch: n.msg.epoch }, to: b.address, method: { act: 'limited', cat: 'group' } });
    expect(n.msg.epoch).to.be.a('string').and.not.equal('');
    expect(frames.indexOf(n), 'the notice comes right before the group\'s first frame').to.equal(frames.indexOf(group[0]!) - 1);
    const creates = frames.filter(isNotice('group', 'create'));
    expect(creates.map((f) => f.msg.id)).to.deep.equal([gid]);
    expect(frames.length, 'nothing else').to.equal(DIRECT_MSGS + BACKLOG + 2);
    return { limited: n, group, direct };
  }

  it('B gets all 50 direct messages and the group\'s newest 200 after a limited notice; history pages back to the first', async () => {
    const gid = await whileBIsAway();
    const cb = await clients.connect(ctx.srv.url, 'bob');
    await cb.signIn(b);
    const frames = await drainQuiet(cb);
    const { limited, group } = checkBacklog(frames, gid);

    // Paging back from the notice's `before` reads the rest of the group, to its first message.
    const back = await pageAll(cb, { group: gid }, 'backward', limited.msg.before as number, 100);
    const older = back.messages.filter((f) => f.type === 'message');
    expect(older.map((f) => f.msg.g)).to.deep.equal([...Array(GROUP_MSGS - BACKLOG).keys()]);
    expect(back.pages).to.equal(Math.ceil((GROUP_MSGS - BACKLOG) / 100));
    expectRisingSeq(older, 'history seq');
    expect(older.at(-1)!.seq).to.be.below(group[0]!.seq);
    const all = [...older, ...group].map((f) => f.msg.g as number);
    expect(all).to.deep.equal([...Array(GROUP_MSGS).keys()]);
    expect(new Set(all).size).to.equal(GROUP_MSGS);
    // The history frames are the group frames as they were delivered.
    expect(older.every((f) => f.group === gid && f.from === c.address && f.to === b.address && f.type === 'message')).to.equal(true);
    // Nothing more arrives, and a second sign-in delivers nothing again.
    await cb.close();
    const again = await clients.connect(ctx.srv.url, 'bob-again');
    await again.signIn(b);
    expect(await drainQuiet(again, 500)).to.deep.equal([]);
  });

  it('acknowledging: B acks half of what came, reconnects, and gets exactly the unacknowledged rest', async () => {
    // B switches to ack mode before it goes away.
    const b0 = await clients.connect(ctx.srv.url, 'bob0');
    await b0.signIn(b);
    b0.request({ cat: 'chat', act: 'ack', seq: 0 });
    await sleep(150);
    await b0.close();

    const gid = await whileBIsAway();
    const b1 = await clients.connect(ctx.srv.url, 'bob1');
    await b1.signIn(b);
    const frames = await drainQuiet(b1);
    checkBacklog(frames, gid);
    const withSeq = frames.filter((f) => f.seq !== undefined);
    const half = Math.floor(withSeq.length / 2);
    const ackAt = withSeq[half - 1]!.seq as number;
    b1.request({ cat: 'chat', act: 'ack', seq: ackAt });
    await sleep(200);
    await b1.close();

    const b2 = await clients.connect(ctx.srv.url, 'bob2');
    await b2.signIn(b);
    const rest = await drainQuiet(b2);
    expect(rest.map((f) => f.seq), 'exactly the unacknowledged rest').to.deep.equal(withSeq.slice(half).map((f) => f.seq));
    expect(rest.filter(isLimited), 'the rest is within the bound: no notice').to.deep.equal([]);
    b2.request({ cat: 'chat', act: 'ack', seq: rest.at(-1)!.seq });
    await sleep(200);
    await b2.close();

    const b3 = await clients.connect(ctx.srv.url, 'bob3');
    await b3.signIn(b);
    expect(await drainQuiet(b3, 500), 'nothing acknowledged comes back').to.deep.equal([]);
  });
});

/**
 * Added to 2,000 groups while away (issue 9): A creates 2,000 groups with B in each and sends B 20
 * direct messages with `mid`; at sign-in B gets every `create` notice and every direct message,
 * each once, with `seq` rising. (Before issue 9 the notices pushed the direct messages out of a
 * bounded inbox.)
 */
import { expect } from 'chai';
import { newAccounts, type Account } from './support/accounts';
import { isMessage, isNotice } from './support/client';
import { drainQuiet, expectRisingSeq, isDirectAnswer, sendAcked } from './support/history';
import { useServer } from './support/suite';

const GROUPS = 2000;
const DIRECT = 20;

describe('history: added to 2,000 groups while away', function () {
  this.timeout(60_000);
  const ctx = useServer(['--rate-limit', '100000', '--groups-per-hour', '10000', '--groups-per-hour-per-address', '10000', '--stranger-adds-per-hour', '10000']);
  const clients = ctx.clients;

  it('every create notice and every direct message arrive at sign-in, each once, seq rising', async () => {
    const [a, b] = newAccounts(2) as [Account, Account];
    const ca = await clients.connect(ctx.srv.url, 'alice');
    await ca.signIn(a);
    const ids: string[] = [];
    // Direct messages before, between and after the groups, so they interleave with the notices.
    const direct = async (from: number, n: number) => {
      const acks = await sendAcked(ca, n, (i) => ({ cat: 'chat', act: 'chat', to: b.address, msg: { d: from + i }, mid: `d${from + i}` }), isDirectAnswer, n);
      expect(acks).to.deep.equal(Array.from({ length: n }, (_, i) => `d${from + i}`));
    };
    await direct(0, 5);
    const t0 = Date.now();
    for (let i = 0; i < GROUPS; i += 250) {
      for (let k = i; k < i + 250; k++) ca.request({ cat: 'group', act: 'create', list: [b.address], callback: `c${k}` });
      const answers = await ca.nextN(250, (f) => typeof f.method?.callback === 'string' && f.method.callback.startsWith('c') || f.type === 'error', 20_000, 'create answers');
      for (const f of answers) { expect(f.type, JSON.stringify(f)).to.equal('notice'); ids.push(f.msg.id as string); }
      if (i === 1000) await direct(5, 10);
    }
    await direct(15, 5);
    expect(new Set(ids).size).to.equal(GROUPS);
    expect(Date.now() - t0).to.be.below(40_000);
    await ca.close();

    const cb = await clients.connect(ctx.srv.url, 'bob');
    await cb.signIn(b);
    const frames = await drainQuiet(cb, 500);
    expectRisingSeq(frames, 'sign-in seq');
    const creates = frames.filter(isNotice('group', 'create'));
    const got = creates.map((f) => f.msg.id as string);
    expect(got.length, 'create notices').to.equal(GROUPS);
    expect(new Set(got)).to.deep.equal(new Set(ids));
    expect(creates.every((f) => f.to === b.address && typeof f.seq === 'number')).to.equal(true);
    const directs = frames.filter(isMessage());
    expect(directs.map((f) => f.msg.d)).to.deep.equal([...Array(DIRECT).keys()]);
    expect(frames.length, 'nothing else').to.equal(GROUPS + DIRECT);
    // The direct messages sent between the groups arrive between their notices.
    const at = (d: number) => frames.findIndex((f) => f.msg?.d === d);
    expect(at(5)).to.be.greaterThan(at(4) + 1000);
    expect(at(15)).to.be.greaterThan(at(14));
  });
});

/**
 * Routing a call to its partition's owner (src/cluster/routing.ts): decided here, forwarded, or
 * held until an owner is known, with a fake clock and fake deps (no node, no NATS).
 */
import { expect } from 'chai';
import type { GroupCall, VerifyCall } from '../src/actors/envelopes';
import { groupAddress, VERIFY_ADDRESS } from '../src/actors/address';
import { MAX_HOPS, MOVED_TEXT, Routing, WAIT_OWNER_MS, WAITING_MAX } from '../src/cluster/routing';
import { partitionOf } from '../src/hash';
import { Code } from '../src/protocol/codes';

const PARTITIONS = 8;
const SELF = 'n1';

/** A group id whose actor lives in `partition`. */
function idIn(partition: number): string {
  for (let i = 0; ; i++) if (partitionOf(groupAddress(`G${i}`), PARTITIONS) === partition) return `G${i}`;
}

function call(partition: number, conn = 1, hops?: number): GroupCall & { hops?: number } {
  return { t: 'group', id: idIn(partition), origin: { conn, account: 'A', request: { cat: 'group', act: 'chat', callback: `c${conn}` } }, now: 0, ...(hops === undefined ? {} : { hops }) };
}

function harness() {
  const owners = new Map<number, string>();
  const decided: GroupCall[] = [];
  const verified: VerifyCall[] = [];
  const forwarded: Array<[string, GroupCall]> = [];
  const forwardedVerify: Array<[string, VerifyCall]> = [];
  const refused: Array<{ conn: number; code: number; error: string; request: unknown }> = [];
  let now = 1000;
  const routing = new Routing({
    self: SELF,
    partitions: PARTITIONS,
    ownerOf: (p) => owners.get(p),
    decide: (c) => { decided.push(c); },
    verify: (c) => { verified.push(c); },
    forward: (node, c) => { forwarded.push([node, c]); },
    forwardVerify: (node, c) => { forwardedVerify.push([node, c]); },
    owned: () => undefined,
    forwardOwned: () => undefined,
    sendTo: (conn, frame) => {
      const f = JSON.parse(frame) as { code: number; error: string; request: unknown };
      refused.push({ conn, code: f.code, error: f.error, request: f.request });
    },
  }, () => now);
  const tick = (ms: number): void => { now += ms; };
  return { routing, owners, decided, verified, forwarded, forwardedVerify, refused, tick };
}

const moved = (conn: number) => ({ conn, code: Code.UNAVAILABLE, error: MOVED_TEXT, request: { cat: 'group', act: 'chat', callback: `c${conn}` } });

describe('cluster: routing', () => {
  it('decides a call here when this node owns its partition', () => {
    const h = harness();
    h.owners.set(3, SELF);
    h.routing.group(call(3));
    expect(h.decided).to.deep.equal([call(3)]);
    expect(h.forwarded).to.deep.equal([]);
    expect(h.routing.counters.forwarded).to.equal(0);
  });

  it('forwards a call to the owning node, one hop more, counted', () => {
    const h = harness();
    h.owners.set(3, 'n2');
    h.routing.group(call(3, 1));
    h.routing.group(call(3, 2, MAX_HOPS - 1));
    expect(h.forwarded).to.deep.equal([['n2', { ...call(3, 1), hops: 1 }], ['n2', { ...call(3, 2), hops: MAX_HOPS }]]);
    expect(h.routing.counters.forwarded).to.equal(2);
    expect(h.decided).to.deep.equal([]);
  });

  it(`refuses a call forwarded ${MAX_HOPS} times instead of forwarding it again`, () => {
    const h = harness();
    h.owners.set(3, 'n2');
    h.routing.group(call(3, 5, MAX_HOPS));
    expect(h.forwarded).to.deep.equal([]);
    expect(h.refused).to.deep.equal([moved(5)]);
    expect(h.routing.counters.refusedMoved).to.equal(1);
    expect(h.routing.waitingCalls).to.equal(0);
    // With no owner it is not held either.
    h.owners.clear();
    h.routing.group(call(3, 6, MAX_HOPS));
    expect(h.refused).to.deep.equal([moved(5), moved(6)]);
    expect(h.routing.waitingCalls).to.equal(0);
  });

  it('holds a call while its partition has no owner and sends the waiting calls, in order, once one is known', () => {
    const h = harness();
    h.routing.group(call(2, 1));
    h.routing.group(call(2, 2));
    h.routing.group(call(4, 3));
    expect(h.routing.waitingCalls).to.equal(3);
    expect([...h.decided, ...h.forwarded, ...h.refused]).to.deep.equal([]);
    // Still no owner: nothing goes.
    h.routing.release(2);
    expect(h.routing.waitingCalls).to.equal(3);
    h.owners.set(2, SELF);
    h.routing.release(2);
    expect(h.decided).to.deep.equal([call(2, 1), call(2, 2)]);
    expect(h.routing.waitingCalls).to.equal(1);
    h.owners.set(4, 'n3');
    h.routing.release(4);
    expect(h.forwarded).to.deep.equal([['n3', { ...call(4, 3), hops: 1 }]]);
    expect(h.routing.waitingCalls).to.equal(0);
    // A second release has nothing left.
    h.routing.release(2);
    expect(h.decided).to.have.length(2);
  });

  it(`refuses (45003) the calls that waited ${WAIT_OWNER_MS} ms, keeping the younger ones`, () => {
    const h = harness();
    h.routing.group(call(2, 1));
    h.tick(WAIT_OWNER_MS / 2);
    h.routing.group(call(2, 2));
    h.routing.group(call(5, 3));
    // A release while there is still no owner does not restart the wait.
    h.routing.release(2);
    h.tick(WAIT_OWNER_MS / 2 - 1);
    h.routing.expire();
    expect(h.refused).to.deep.equal([]);
    h.tick(1);
    h.routing.expire();
    expect(h.refused).to.deep.equal([moved(1)]);
    expect(h.routing.waitingCalls).to.equal(2);
    expect(h.routing.counters.refusedMoved).to.equal(1);
    h.tick(WAIT_OWNER_MS / 2);
    h.routing.expire();
    expect(h.refused).to.deep.equal([moved(1), moved(2), moved(3)]);
    expect(h.routing.waitingCalls).to.equal(0);
    // Nothing left to release.
    h.owners.set(2, SELF);
    h.routing.release(2);
    expect(h.decided).to.deep.equal([]);
  });

  it(`holds at most ${WAITING_MAX} calls; past that a call is refused at once`, () => {
    const h = harness();
    for (let i = 0; i < WAITING_MAX; i++) h.routing.group(call(1, 1));
    expect(h.routing.waitingCalls).to.equal(WAITING_MAX);
    expect(h.refused).to.deep.equal([]);
    h.routing.group(call(6, 9));
    expect(h.refused).to.deep.equal([moved(9)]);
    expect(h.routing.waitingCalls).to.equal(WAITING_MAX);
    // Once the queue drains, calls are held again.
    h.owners.set(1, SELF);
    h.routing.release(1);
    expect(h.decided).to.have.length(WAITING_MAX);
    h.routing.group(call(6, 10));
    expect(h.routing.waitingCalls).to.equal(1);
  });

  it('routes a verify call to its partition owner: here, forwarded, or with no owner refused (reg, proof) or dropped', () => {
    const h = harness();
    const vp = partitionOf(VERIFY_ADDRESS, PARTITIONS);
    const reg: VerifyCall = { t: 'verify', op: 'reg', conn: 4, account: 'A', request: { cat: 'vertify', act: 'reg' }, decimals: 12, now: 0 };
    const proof: VerifyCall = { t: 'verify', op: 'proof', conn: 5, account: 'A', request: { cat: 'vertify', act: 'proof' } };
    const sweep: VerifyCall = { t: 'verify', op: 'sweep', now: 0 };
    h.owners.set(vp, SELF);
    h.routing.verify(reg);
    expect(h.verified).to.deep.equal([reg]);
    h.owners.set(vp, 'n2');
    h.routing.verify(sweep);
    expect(h.forwardedVerify).to.deep.equal([['n2', sweep]]);
    h.owners.delete(vp);
    for (const c of [reg, proof, sweep]) h.routing.verify(c);
    expect(h.refused).to.deep.equal([
      { conn: 4, code: Code.UNAVAILABLE, error: MOVED_TEXT, request: { cat: 'vertify', act: 'reg' } },
      { conn: 5, code: Code.UNAVAILABLE, error: MOVED_TEXT, request: { cat: 'vertify', act: 'proof' } },
    ]);
    expect(h.verified).to.have.length(1);
    expect(h.forwardedVerify).to.have.length(1);
    expect(h.routing.waitingCalls).to.equal(0);
  });
});

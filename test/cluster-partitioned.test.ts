/**
 * The partitioned cluster's decisions, without NATS: how an entry's records are numbered
 * (cluster/entry.ts recordsOf, against what the applier stores), which partitions a node keeps and
 * when it fills them in (cluster/stored-partitions.ts), what the owner decides before the ledger
 * (cluster/owned.ts), and where a direct message or an edit is routed (cluster/routing.ts).
 */
import { expect } from 'chai';
import { convPartition } from '../src/actors/address';
import { Delivery } from '../src/actors/delivery';
import type { Post } from '../src/actors/envelopes';
import { Applier } from '../src/carrier/applier';
import type { Op } from '../src/carrier/ops';
import type { ChangeCall, Local } from '../src/carrier/port';
import { firstOffset, recordsOf } from '../src/cluster/entry';
import { Owned } from '../src/cluster/owned';
import { MOVED_TEXT, Routing } from '../src/cluster/routing';
import { dropPartition, StoredPartitions } from '../src/cluster/stored-partitions';
import { logger } from '../src/log';
import { Code } from '../src/protocol/codes';
import { openStore } from '../src/store/open';
import type { Store } from '../src/store/ports';
import { tempDir } from './support/server';

const PARTITIONS = 8;
const log = logger({ part: 'test' });

const direct = (from: string, to: string, mid?: string, ackConn?: number): Extract<Op, { t: 'post' }> => {
  const post: Post = { t: 'post', conv: `d:${[from, to].sort().join(':')}`, tpl: { head: `{"msg":"${mid ?? 'x'}","to":`, tail: '' }, from, to: [to] };
  if (mid !== undefined) post.mid = mid;
  if (ackConn !== undefined) post.ackTo = { conn: ackConn, frame: `{"ack":"${mid}"}` };
  return { t: 'post', post, at: 1 };
};
const own = (to: string[]): Op => ({ t: 'post', post: { t: 'post', conv: 'own', tpl: { head: '{"n":1,"to":', tail: '' }, from: null, to }, at: 1 });

async function memory(): Promise<Store> { return openStore({ backend: 'memory', dir: tempDir(), fsync: 'off' }); }

function applierOn(store: Store): { applier: Applier; delivery: Delivery } {
  const delivery = new Delivery(store, { peer: () => undefined, peersOf: () => undefined }, { retainCount: 1000, retainAgeMs: 3_600_000, groupBacklog: 100, maxBuffered: 1 << 20 });
  const applier = new Applier({ delivery, positions: store.positions, state: (s) => delivery.state(s), holds: () => false, send: () => undefined });
  return { applier, delivery };
}

describe('cluster, partitioned: records of an entry', () => {
  it('recordsOf numbers records as the applier stores them: a post one, an own post one per recipient, an import at its own offset', async () => {
    const store = await memory();
    const { applier } = applierOn(store);
    const ops: Op[] = [direct('A', 'B', 'm1'), own(['C', 'D']), { t: 'append', entry: { conv: 'd:E:F', at: 1, from: 'E', head: 'h', tail: 't' }, offset: 7 }, direct('B', 'A', 'm2')];
    applier.apply(ops, { first: firstOffset(3), stores: () => true });
    const expected = recordsOf(ops, firstOffset(3)).map((r) => [r.entry.conv, r.offset]);
    expect(expected).to.deep.equal([['d:A:B', 3 * 2 ** 20], ['a:C', 3 * 2 ** 20 + 1], ['a:D', 3 * 2 ** 20 + 2], ['d:E:F', 7], ['d:A:B', 3 * 2 ** 20 + 3]]);
    for (const [conv, offset] of expected) {
      expect(store.log.read({ conv: conv as string, after: (offset as number) - 1, before: (offset as number) + 1, limit: 1, direction: 'forward' }), `${conv}@${offset}`).to.have.length(1);
    }
  });

  it('a node stores only the records of the conversations it keeps, yet numbers them all', async () => {
    const store = await memory();
    const { applier, delivery } = applierOn(store);
    const keep = convPartition('d:A:B', PARTITIONS);
    applier.apply([direct('A', 'B', 'm1'), direct('C', 'D', 'm2')], { first: firstOffset(5), stores: (conv) => convPartition(conv, PARTITIONS) === keep && conv === 'd:A:B' });
    expect(store.log.top('d:A:B')).to.deep.include({ last: firstOffset(5), count: 1 });
    expect(store.log.top('d:C:D')).to.equal(undefined);
    // Memberships are kept everywhere (admission, contacts, typing read them on any node).
    expect(store.positions.membership('C', 'd:C:D')).to.not.equal(undefined);
    // A read mark is bounded by the newest offset applied when the records are elsewhere.
    delivery.partial = true;
    expect(delivery.newestOf('d:C:D')).to.equal(firstOffset(5) + 1);
  });
});

describe('cluster, partitioned: the partitions a node keeps', () => {
  function stored(store: Store, openedAt = 0, dropAfterMs?: number) {
    const fills: Array<[number, number, number]> = [];
    let fail = false;
    const s = new StoredPartitions({
      self: 'me', partitions: PARTITIONS, states: store.states, openedAt, log,
      backfill: (p, after, through) => { fills.push([p, after, through]); return fail ? Promise.reject(new Error('no NATS')) : Promise.resolve(); },
      drop: (p, stop) => dropPartition(store, p, PARTITIONS, { stop }),
      ...(dropAfterMs !== undefined ? { dropAfterMs } : {}),
    });
    return { s, fills, failNext: (): void => { fail = true; } };
  }

  /** Direct conversations of `partition` and of another partition, with a record each in `store`. */
  async function convsIn(store: Store, partition: number): Promise<{ mine: string[]; other: string }> {
    const mine: string[] = [];
    let other = '';
    for (let i = 0; mine.length < 3 || other === ''; i++) {
      const conv = `d:5A${i}|5B${i}`;
      if (convPartition(conv, PARTITIONS) === partition) mine.push(conv); else if (other === '') other = conv;
    }
    for (const conv of [...mine, other]) store.log.append({ conv, at: 1, from: '5A', head: '{', tail: '}' });
    await store.flush();
    return { mine, other };
  }

  it('a partition that stays with another node is dropped here after the wait, its mark cleared (a later claim fills in from the start)', async () => {
    const store = await memory();
    const { s, fills } = stored(store, 0, 20);
    s.claimed(5, 'me', 10);
    await s.ready(5);
    const { mine, other } = await convsIn(store, 5);
    s.claimed(5, 'other', 20);
    expect(mine.every((c) => store.log.top(c) !== undefined), 'kept through the wait').to.equal(true);
    await new Promise((r) => setTimeout(r, 150));
    expect(mine.map((c) => store.log.top(c))).to.deep.equal([undefined, undefined, undefined]);
    expect(store.log.top(other), 'another partition\'s records stay').to.not.equal(undefined);
    expect(s.counters).to.deep.equal({ dropped: 1, droppedRecords: 3 });
    s.claimed(5, 'me', 40);
    await s.ready(5);
    expect(fills[1]).to.deep.equal([5, 0, 40]);
  });

  it('dropPartition removes a partition\'s records through `upTo` only (a fill-in keeps what came after the claim), and no other partition\'s', async () => {
    const store = await memory();
    const { mine, other } = await convsIn(store, 7);
    const [conv] = mine as [string];
    const claimAt = store.log.top(conv)!.last;
    store.log.append({ conv, at: 2, from: '5A', head: '{', tail: '}' }, firstOffset(100));
    await store.flush();
    expect(await dropPartition(store, 7, PARTITIONS, { upTo: firstOffset(100) - 1 })).to.equal(3);
    expect(store.log.read({ conv, limit: 10, direction: 'forward' }).map((r) => r.offset)).to.deep.equal([firstOffset(100)]);
    expect(claimAt).to.be.below(firstOffset(100));
    expect(store.log.top(other)).to.not.equal(undefined);
    expect(await dropPartition(store, 7, PARTITIONS)).to.equal(1);
    expect(store.log.top(conv)).to.equal(undefined);
  });

  it('a partition claimed back within the wait is not dropped, and fills in only what came meanwhile', async () => {
    const store = await memory();
    const { s, fills } = stored(store, 0, 50);
    s.claimed(6, 'me', 10);
    await s.ready(6);
    const { mine } = await convsIn(store, 6);
    s.claimed(6, 'other', 20);
    s.claimed(6, 'me', 30);
    await s.ready(6);
    await new Promise((r) => setTimeout(r, 120));
    expect(mine.every((c) => store.log.top(c) !== undefined)).to.equal(true);
    expect(s.counters.dropped).to.equal(0);
    expect(fills[1]).to.deep.equal([6, 20, 30]);
  });

  it('keeps a partition from its claim on, fills in from its mark, and stops at another node\'s claim', async () => {
    const store = await memory();
    const { s, fills } = stored(store);
    s.claimed(2, 'me', 10);
    expect(s.keeps(2)).to.equal(true);
    await s.ready(2);
    expect(fills).to.deep.equal([[2, 0, 10]]);
    s.claimed(2, 'other', 20);
    expect(s.keeps(2)).to.equal(false);
    s.claimed(2, 'me', 30);
    await s.ready(2);
    // Only what came after this node stopped keeping it.
    expect(fills[1]).to.deep.equal([2, 20, 30]);
  });

  it('a restart counts a partition kept until the stop as complete through what the replica had applied', async () => {
    const store = await memory();
    const first = stored(store);
    first.s.claimed(3, 'me', 10);
    await first.s.ready(3);
    // Restarted after applying through 50, it does not claim 3 this time; restarted again at 90, it does.
    stored(store, 50);
    const third = stored(store, 90);
    third.s.claimed(3, 'me', 95);
    await third.s.ready(3);
    // The second run's entries (50..90) were not kept: filled in from 50, not from 90.
    expect(third.fills).to.deep.equal([[3, 50, 95]]);
  });

  it('a fill that fails leaves the partition unkept, and the next claim fills from the old mark', async () => {
    const store = await memory();
    const { s, fills, failNext } = stored(store);
    failNext();
    s.claimed(4, 'me', 10);
    let failed = false;
    await s.ready(4).catch(() => { failed = true; });
    expect(failed).to.equal(true);
    await new Promise((r) => setImmediate(r));
    expect(s.keeps(4)).to.equal(false);
    expect(fills).to.deep.equal([[4, 0, 10]]);
  });
});

describe('cluster, partitioned: decided where the records are', () => {
  function owned(store: Store) {
    const submitted: Array<[number, Op[]]> = [];
    const sent: Array<[number, string]> = [];
    let applied = 0;
    const waiting: Array<() => void> = [];
    const local = { decideChange: (c: ChangeCall) => ({ ok: false, code: Code.UNEXPECTED_INPUT, error: `no message with seq ${c.request.seq as number}` }) } as unknown as Local;
    const o = new Owned({
      store,
      local: () => local,
      submit: (p, ops) => { submitted.push([p, ops]); },
      sendTo: (conn, frame) => { sent.push([conn, frame]); },
      afterPublished: (fn) => { waiting.push(fn); },
      appliedThrough: (seq) => (seq <= applied ? Promise.resolve() : new Promise((r) => { waiting.push(() => r()); })),
      caughtUp: () => Promise.resolve(),
    });
    return { o, submitted, sent, waiting, setApplied: (n: number): void => { applied = n; } };
  }

  it('a resend of a post in flight or stored is acknowledged, not handed on again', async () => {
    const store = await memory();
    const h = owned(store);
    h.o.post(direct('A', 'B', 'm1', 4), 1);
    h.o.post(direct('A', 'B', 'm1', 5), 1);
    expect(h.submitted).to.have.length(1);
    expect(h.sent).to.deep.equal([]);
    h.waiting.splice(0).forEach((fn) => fn());
    expect(h.sent).to.deep.equal([[5, '{"ack":"m1"}']]);
    // Applied: no longer in flight; now found in the store.
    h.o.settled(h.submitted[0]![1]);
    store.log.append({ conv: 'd:A:B', at: 1, from: 'A', mid: 'm1', head: 'h', tail: 't' }, 100);
    h.o.post(direct('A', 'B', 'm1', 6), 1);
    expect(h.submitted).to.have.length(1);
    expect(h.sent.at(-1)).to.deep.equal([6, '{"ack":"m1"}']);
    expect(h.o.pending).to.equal(0);
    h.o.post(direct('A', 'B', 'm2', 7), 1);
    expect(h.submitted).to.have.length(2);
  });

  it('a resend of a post whose publish got no answer waits until it is known whether that was stored', async () => {
    const store = await memory();
    const h = owned(store);
    const first = direct('A', 'B', 'm9', 4);
    h.o.post(first, 1);
    // The publish timed out: refused to the client, yet JetStream may store it within VOID_AFTER_MS.
    h.o.doubtful([first]);
    h.o.settled([first]);
    const clock = Date.now();
    h.o.post(direct('A', 'B', 'm9', 5), 1);
    expect(h.submitted).to.have.length(1);
    // It was stored after all (late, not void): the resend, decided later, finds it.
    store.log.append({ conv: 'd:A:B', at: 1, from: 'A', mid: 'm9', head: 'h', tail: 't' }, 200);
    await new Promise((r) => setTimeout(r, 4200));
    expect(Date.now() - clock).to.be.above(3000);
    expect(h.submitted).to.have.length(1);
    expect(h.sent.at(-1)).to.deep.equal([5, '{"ack":"m9"}']);
  }).timeout(10_000);

  it('an edit waits until this node applied what the asker had, then is refused to the asker when its original is not there', async () => {
    const store = await memory();
    const h = owned(store);
    h.o.change({ account: 'A', conn: 9, request: { cat: 'chat', act: 'edit', with: 'B', seq: 3 }, at: 1 }, 12, 1);
    await new Promise((r) => setImmediate(r));
    expect(h.sent).to.deep.equal([]);
    h.waiting.splice(0).forEach((fn) => fn());
    await new Promise((r) => setImmediate(r));
    expect(h.sent).to.have.length(1);
    expect(JSON.parse(h.sent[0]![1])).to.include({ code: Code.UNEXPECTED_INPUT });
    expect(h.submitted).to.deep.equal([]);
  });

  it('routing: a direct message goes to the owner of its pair\'s partition, waits while there is none, and is refused by its acknowledgement', () => {
    const owners = new Map<number, string>();
    const here: number[] = [];
    const forwarded: string[] = [];
    const sent: Array<[number, string]> = [];
    let now = 0;
    const routing = new Routing({
      self: 'me', partitions: PARTITIONS, ownerOf: (p) => owners.get(p),
      decide: () => undefined, verify: () => undefined, forward: () => undefined, forwardVerify: () => undefined,
      owned: (_c, p) => { here.push(p); },
      forwardOwned: (node) => { forwarded.push(node); },
      sendTo: (conn, frame) => { sent.push([conn, frame]); },
    }, () => now);
    const op = direct('A', 'B', 'm1', 4);
    const p = convPartition(op.post.conv, PARTITIONS);
    owners.set(p, 'me');
    routing.owned({ t: 'post', op });
    owners.set(p, 'n2');
    routing.owned({ t: 'post', op });
    owners.delete(p);
    routing.owned({ t: 'post', op });
    expect(here).to.deep.equal([p]);
    expect(forwarded).to.deep.equal(['n2']);
    expect(routing.waitingCalls).to.equal(1);
    now += 60_000;
    routing.expire();
    expect(sent).to.have.length(1);
    const refused = JSON.parse(sent[0]![1]) as { code: number; error: string };
    expect(refused).to.include({ code: Code.UNAVAILABLE, error: MOVED_TEXT });
  });
});

/**
 * Reads go to the owner (src/cluster/reads.ts, read-answers.ts) over a real nats-server: two
 * nodes, each a ClusterReads on its own memory store, each owning half of the partitions. Both
 * stores hold every record at the same offset, but each copy is marked with its node, so a frame
 * says where it was read. History and a sign-in backlog across both nodes; an owner behind the
 * asker answers once it has applied as far; a conversation that moves is asked for again where it
 * went (the backlog reads on from where the last page ended); one whose owner is gone is given up
 * (history 45003, the backlog stops short of it and says it is incomplete, so it is read again).
 */
import { expect } from 'chai';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { convPartition } from '../src/actors/address';
import { Backlog, type BacklogRange } from '../src/actors/backlog';
import { LocalReads, type BacklogSource } from '../src/actors/log-reads';
import { clusterNames } from '../src/cluster/names';
import { ClusterReads } from '../src/cluster/reads';
import { MOVED_TEXT } from '../src/cluster/routing';
import { logger } from '../src/log';
import { Code } from '../src/protocol/codes';
import { directTemplate, groupTemplate, type Request } from '../src/protocol/frames';
import { MemoryStore } from '../src/store/memory/memory-store';
import { directConv, groupConv, type Membership } from '../src/store/ports';
import { natsAvailable, startNats, type NatsHandle } from './support/nats';

const PARTITIONS = 4;
const R = 'Reader';
const MOVED_WAIT_MS = 800;

/** A ledger that has applied as far as the test says. */
class FakeLedger {
  applied = 100;
  private waiters: Array<{ seq: number; done: () => void }> = [];
  through(seq: number): Promise<void> {
    if (seq <= this.applied) return Promise.resolve();
    return new Promise((done) => this.waiters.push({ seq, done }));
  }
  advance(to: number): void {
    this.applied = to;
    for (const w of this.waiters.filter((x) => x.seq <= to)) w.done();
    this.waiters = this.waiters.filter((x) => x.seq > to);
  }
}

interface Node {
  id: string;
  store: MemoryStore;
  ledger: FakeLedger;
  reads: ClusterReads;
  nc: NatsConnection;
  /** Which partitions it stores now (the test moves them). */
  stores: (p: number) => boolean;
}

const home = (p: number): string => (p % 2 === 0 ? 'a' : 'b');
const partOf = (conv: string): number => convPartition(conv, PARTITIONS);

async function node(id: string, url: string, name: string): Promise<Node> {
  const store = new MemoryStore();
  const ledger = new FakeLedger();
  const nc = await connect({ servers: url });
  const local = new LocalReads(store);
  const n: Node = { id, store, ledger, nc, stores: (p) => home(p) === id, reads: undefined as unknown as ClusterReads };
  n.reads = new ClusterReads({
    self: id, partitions: PARTITIONS,
    ownerOf: (p) => home(p),
    storesLocally: (p) => n.stores(p),
    local: () => local,
    applied: () => ledger.applied,
    appliedThrough: (seq) => ledger.through(seq),
    nc, names: clusterNames(name), log: logger({ part: 'test', node: id }),
    movedWaitMs: MOVED_WAIT_MS,
  });
  n.reads.start();
  return n;
}

/** The same record in both stores (the same offset), each copy marked with its node (`pad`: to make it large). */
function put(nodes: Node[], conv: string, from: string, i: number, pad?: string): number {
  const offsets = nodes.map((n) => {
    const msg = JSON.stringify({ i, copy: n.id, pad });
    const tpl = conv.startsWith('g:') ? groupTemplate(from, conv.slice(2), msg) : directTemplate(from, msg);
    return n.store.log.append({ conv, at: Date.now(), from, head: tpl.head, tail: tpl.tail }).offset;
  });
  expect(new Set(offsets).size).to.equal(1);
  return offsets[0]!;
}

/** Every frame of a backlog, waiting where it must. */
async function drain(b: BacklogSource): Promise<string[]> {
  const out: string[] = [];
  for (let rounds = 0; rounds < 100_000; rounds++) {
    const { frames, last } = b.next(32);
    out.push(...frames);
    if (last !== 0) continue;
    const w = b.waiting();
    if (w === undefined) return out;
    await w;
  }
  throw new Error('the backlog never ended');
}

/** Who sends in `conv`: the other account of a direct conversation, a member of a group. */
const senderIn = (conv: string): string => (conv.startsWith('g:') ? 'Member' : conv.split(':').find((x) => x !== 'd' && x !== R)!);
/** The reader's `history` request of `conv`. */
const historyAsk = (conv: string): Request => (conv.startsWith('g:') ? { cat: 'group', act: 'history', group: conv.slice(2) } : { cat: 'chat', act: 'history', with: senderIn(conv) });
const copyOf = (frame: string): string => (JSON.parse(frame) as { msg: { copy?: string } }).msg.copy ?? '';
const asCopy = (frame: string, id: string): string => frame.replace(/"copy":"[ab]"/, `"copy":"${id}"`);

describe('cluster: reads go to the owner', function () {
  this.timeout(30_000);
  let nats: NatsHandle;
  let a: Node;
  let b: Node;
  /** Direct conversations of the reader and groups it is in, each on both owners. */
  const peers = Array.from({ length: 8 }, (_, i) => `P${i}`);
  const groups = Array.from({ length: 8 }, (_, i) => `G${i}`);
  const memberships: Membership[] = [];
  let onA: string[];
  let onB: string[];

  before(async function () {
    if (!natsAvailable()) return this.skip();
    nats = await startNats();
    const name = `reads${process.pid}`;
    a = await node('a', nats.url, name);
    b = await node('b', nats.url, name);
    const convs = [...peers.map((p) => directConv(p, R)), ...groups.map((g) => groupConv(g))];
    for (const n of [a, b]) for (const c of convs) n.store.positions.join(R, c, 0);
    memberships.push(...convs.map((conv) => ({ conv, since: 0 })));
    onA = convs.filter((c) => home(partOf(c)) === 'a');
    onB = convs.filter((c) => home(partOf(c)) === 'b');
    expect(onA.length).to.be.greaterThan(1);
    expect(onB.length).to.be.greaterThan(1);
    // Enough for several pages from each node, interleaved, some of them the reader's own.
    for (let i = 0; i < 900; i++) {
      const conv = convs[(i * 7) % convs.length]!;
      put([a, b], conv, i % 10 === 0 ? R : senderIn(conv), i);
    }
  });

  after(async () => {
    for (const n of [a, b]) { n?.reads.stop(); await n?.nc.close(); }
    await nats?.stop();
  });

  const range = (groupBacklog = 1000): BacklogRange => ({ account: R, after: 0, upTo: a.store.stats().lastOffset, groupBacklog, epoch: a.store.epoch });

  /** What one store alone gives for the whole backlog. */
  const whole = (groupBacklog?: number): string[] => {
    const out: string[] = [];
    const bl = new Backlog(a.store.log, range(groupBacklog), memberships);
    for (let r = bl.next(64); r.last !== 0; r = bl.next(64)) out.push(...r.frames);
    return out;
  };

  const historyOf = (n: Node, conv: string, extra: Partial<Request> = {}): Promise<{ ok: boolean; frame?: string; code?: number; error?: string }> => {
    return Promise.resolve(n.reads.history(R, { ...historyAsk(conv), ...extra }, 1 << 20));
  };

  it('history: read here when stored here, from the owner otherwise', async () => {
    const here = a.reads.history(R, historyAsk(onA[0]!), 1 << 20);
    expect(here).not.to.be.instanceOf(Promise);
    for (const conv of [...onA, ...onB]) {
      const h = await historyOf(a, conv);
      expect(h.ok, conv).to.equal(true);
      const msgs = (JSON.parse(h.frame!) as { msg: { messages: Array<{ msg: { copy: string } }> } }).msg.messages;
      expect(msgs.length).to.be.greaterThan(0);
      expect(new Set(msgs.map((m) => m.msg.copy)), conv).to.deep.equal(new Set([home(partOf(conv))]));
    }
    expect(a.reads.counters.asked).to.equal(onB.length);
  });

  it('the owner answers once it has applied as far as the asker had', async () => {
    const conv = onB[0]!;
    a.ledger.advance(200);
    const t0 = Date.now();
    const asked = historyOf(a, conv, { limit: 1 });
    // The record the asker's ledger (at 200) covers reaches the owner's store later.
    await new Promise((r) => setTimeout(r, 150));
    const offset = put([a, b], conv, senderIn(conv), 5000);
    b.ledger.advance(200);
    const h = await asked;
    expect(Date.now() - t0).to.be.at.least(140);
    const msgs = (JSON.parse(h.frame!) as { msg: { messages: Array<{ seq: number }> } }).msg.messages;
    expect(msgs.map((m) => m.seq)).to.deep.equal([offset]);
  });

  it('a sign-in backlog across both nodes: the same frames, in the same order, as one store gives, each read where it is stored', async () => {
    for (const groupBacklog of [1000, 20]) {
      const want = whole(groupBacklog);
      const asked = a.reads.counters.asked;
      const got = await drain(a.reads.backlog(range(groupBacklog), memberships));
      expect(got.map((f) => asCopy(f, 'a')), `groupBacklog ${groupBacklog}`).to.deep.equal(want);
      for (const f of got) if (!f.includes('"limited":true')) expect(copyOf(f), f).to.equal(home(partOf(convOfFrame(f))));
      if (groupBacklog === 20) expect(got.filter((f) => f.includes('"limited":true')).length).to.be.greaterThan(0);
      // B's part came in several pages.
      if (groupBacklog === 1000) expect(a.reads.counters.asked - asked).to.be.greaterThan(1);
    }
  });

  it('pages are bounded in bytes: large records come in several pages, whole and in order', async () => {
    const peer = Array.from({ length: 64 }, (_, i) => `Big${i}`).find((x) => home(partOf(directConv(x, R))) === 'b')!;
    const conv = directConv(peer, R);
    const offsets: number[] = [];
    for (let i = 0; i < 60; i++) offsets.push(put([a, b], conv, peer, i, 'x'.repeat(30_000)));
    for (const n of [a, b]) n.store.positions.join(R, conv, 0);
    const asked = a.reads.counters.asked;
    const got = await drain(a.reads.backlog(range(), [{ conv, since: 0 }]));
    expect(got.map((f) => (JSON.parse(f) as { seq: number }).seq)).to.deep.equal(offsets);
    // 60 records of about 30 kB: a page holds at most half of what NATS takes in one message.
    expect(a.reads.counters.asked - asked).to.be.at.least(4);
  });

  it('a conversation that moves is asked for again where it went: history after a pause, a backlog from where its last page ended', async () => {
    const conv = onB[0]!;
    b.stores = () => false;
    setTimeout(() => { b.stores = (p) => home(p) === 'b'; }, 300);
    const t0 = Date.now();
    const h = await historyOf(a, conv);
    expect(h.ok).to.equal(true);
    expect(Date.now() - t0).to.be.at.least(290);

    // B answers the first page, then its partitions move to A, which reads the rest from its own store.
    const servedBefore = b.reads.answered.asked;
    const moved = (): boolean => b.reads.answered.asked >= servedBefore + 2;
    b.stores = (p) => home(p) === 'b' && !moved();
    a.stores = (p) => home(p) === 'a' || moved();
    try {
      const got = await drain(a.reads.backlog(range(), memberships));
      expect(got.map((f) => asCopy(f, 'a'))).to.deep.equal(whole());
      const fromB = got.filter((f) => copyOf(f) === 'b').length;
      expect(fromB).to.be.greaterThan(0);
      expect(fromB).to.be.lessThan(got.filter((f) => home(partOf(convOfFrame(f))) === 'b').length);
      expect(b.reads.answered.moved).to.be.greaterThan(0);
    } finally {
      b.stores = (p) => home(p) === 'b';
      a.stores = (p) => home(p) === 'a';
    }
  });

  it('an owner that is gone: history is refused 45003 after the moved wait; a backlog stops short of its part, incomplete', async () => {
    b.reads.stop();
    // Gone from the server too (as a node that died), so an ask finds no responder.
    await b.nc.flush();
    try {
      const t0 = Date.now();
      const h = await historyOf(a, onB[0]!);
      expect(h).to.deep.include({ ok: false, code: Code.UNAVAILABLE, error: MOVED_TEXT });
      expect(Date.now() - t0).to.be.within(MOVED_WAIT_MS - 300, MOVED_WAIT_MS + 1000);
      const gaveUp = a.reads.counters.gaveUp;
      const source = a.reads.backlog(range(), memberships);
      const got = await drain(source);
      // Nothing after a record that was not read went out (the positions must not pass it): what went
      // out is the start of the whole backlog, and the reader is told to read again.
      expect(got).to.deep.equal(whole().slice(0, got.length));
      expect(got.length).to.be.below(whole().length);
      expect(source.incomplete?.()).to.equal(true);
      expect(a.reads.counters.gaveUp).to.be.greaterThan(gaveUp);
    } finally {
      b.reads.start();
    }
  });
});

function convOfFrame(f: string): string {
  const j = JSON.parse(f) as { type: string; group?: string; from: string; to: string; msg: { group?: string } };
  if (j.type === 'notice') return groupConv(j.msg.group!);
  return j.group !== undefined ? groupConv(j.group) : directConv(j.from, j.to);
}

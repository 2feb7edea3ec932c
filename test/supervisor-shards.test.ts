/**
 * Shard supervision on its own (src/supervisor/shards.ts): fake hosts stand in for the worker
 * threads, so a shard's death, its output and its figures are simulated through the events the
 * supervisor hands each host. No thread, no store, no socket.
 */
import { expect } from 'chai';
import pino from 'pino';
import type { FromShard, GroupCall, ShardStats, ToShard, VerifyCall } from '../src/actors/envelopes';
import { VERIFY_ADDRESS } from '../src/actors/address';
import { Code } from '../src/protocol/codes';
import { RestartBudget } from '../src/supervisor/restart-budget';
import type { ShardEvents } from '../src/supervisor/shard-host';
import { POISON_CRASHES, Shards, type Host } from '../src/supervisor/shards';

type PostOpts = { crashes?: number; alone?: boolean };

class FakeHost implements Host {
  readonly cfg: { verifierState: unknown } = { verifierState: undefined };
  readonly posts: Array<{ item: ToShard; opts: PostOpts | undefined }> = [];
  /** cfg.verifierState as each start() saw it. */
  readonly starts: unknown[] = [];
  failStart: Error | undefined;

  constructor(readonly index: number) {}

  post(item: ToShard, opts?: PostOpts): void { this.posts.push({ item, opts }); }
  start(): Promise<void> {
    this.starts.push(this.cfg.verifierState);
    return this.failStart ? Promise.reject(this.failStart) : Promise.resolve();
  }
  stop(): Promise<void> { return Promise.resolve(); }
}

const VERIFIER_SHARD = 1;

/** Three fake shards; the verifier on shard 1, every group on shard 0. */
function harness(budget = new RestartBudget(100, 60_000)) {
  let events: ShardEvents | undefined;
  const sent: Array<{ conn: number; frame: { code: number; error: string; request: unknown } }> = [];
  const outputs: Array<{ index: number; items: FromShard[] }> = [];
  const fatal: unknown[] = [];
  const states = new Map<string, unknown>([[VERIFY_ADDRESS, { book: 1 }], ['group:G1', { members: ['A'] }]]);
  const counters = { restarts: 0, poison: 0 };
  const shards = new Shards<FakeHost>(3, {
    host: (index, ev) => { events = ev; return new FakeHost(index); },
    workerOf: (address) => (address === VERIFY_ADDRESS ? VERIFIER_SHARD : 0),
    stateOf: (address) => states.get(address),
    output: (index, items) => { outputs.push({ index, items }); },
    sendTo: (conn, frame) => { sent.push({ conn, frame: JSON.parse(frame) }); },
    fatal: (err) => { fatal.push(err); },
    budget,
    counters,
    log: pino({ level: 'silent' }),
  });
  const host = (i: number): FakeHost => shards.hosts[i]!;
  return { shards, events: events!, sent, outputs, fatal, states, counters, host };
}

function call(act: string, conn = 7, crashes?: number): GroupCall {
  return { t: 'group', id: 'G1', origin: { conn, account: 'A', request: { cat: 'group', act, callback: `cb-${act}` } }, now: 1, ...(crashes === undefined ? {} : { crashes }) };
}

function verifyCall(op: 'reg' | 'proof' | 'sweep', conn = 9): VerifyCall {
  if (op === 'sweep') return { t: 'verify', op, now: 1 };
  const request = { cat: 'vertify', act: op };
  return op === 'reg' ? { t: 'verify', op, conn, account: 'A', request, decimals: 12, now: 1 } : { t: 'verify', op, conn, account: 'A', request };
}

const stats = (groups: number): ShardStats => ({ t: 'stats', groups, processed: groups * 10 });

describe('supervisor: shards', () => {
  it('routes a group call to the shard of its actor and a verify call to the verifier shard', () => {
    const h = harness();
    h.shards.decide(call('chat'));
    h.shards.verify(verifyCall('sweep'));
    expect(h.host(0).posts.map((p) => p.item.t)).to.deep.equal(['group']);
    expect(h.host(VERIFIER_SHARD).posts.map((p) => p.item.t)).to.deep.equal(['verify']);
  });

  it('replays a replayable group call (chat, detail, notice) after a crash, alone when it was being processed', () => {
    for (const act of ['chat', 'detail', 'notice']) {
      const h = harness();
      h.events.died(0, [{ item: call(act, 7), crashes: 1 }, { item: call(act, 8), crashes: 0 }], new Error('boom'));
      expect(h.host(0).posts).to.deep.equal([
        { item: { ...call(act, 7), crashes: 1 }, opts: { crashes: 1, alone: true } },
        { item: { ...call(act, 8), crashes: 0 }, opts: { crashes: 0, alone: false } },
      ], act);
      expect(h.sent).to.deep.equal([]);
      expect(h.counters.restarts).to.equal(1);
      expect(h.host(0).starts.length, 'restarted').to.equal(1);
    }
  });

  it('refuses a group call that may have changed state (create, join) with 45003 instead of replaying it', () => {
    for (const act of ['create', 'join']) {
      const h = harness();
      h.events.died(0, [{ item: call(act, 7), crashes: 1 }], new Error('boom'));
      expect(h.host(0).posts).to.deep.equal([]);
      expect(h.sent).to.have.length(1);
      expect(h.sent[0]!.conn).to.equal(7);
      expect(h.sent[0]!.frame.code).to.equal(Code.UNAVAILABLE);
      expect(h.sent[0]!.frame.request).to.deep.include({ act, callback: `cb-${act}` });
      expect(h.counters.poison).to.equal(0);
    }
  });

  it(`refuses a call in flight at ${POISON_CRASHES} crashes as poison (41401), counted, never replayed`, () => {
    const h = harness();
    h.events.died(0, [{ item: call('chat', 7), crashes: POISON_CRASHES }], new Error('boom'));
    expect(h.host(0).posts).to.deep.equal([]);
    expect(h.sent.map((s) => [s.conn, s.frame.code])).to.deep.equal([[7, Code.INTERNAL]]);
    expect(h.counters.poison).to.equal(1);
    // One crash fewer is not poison yet.
    const h2 = harness();
    h2.events.died(0, [{ item: call('chat', 7), crashes: POISON_CRASHES - 1 }], new Error('boom'));
    expect(h2.host(0).posts).to.have.length(1);
    expect(h2.counters.poison).to.equal(0);
  });

  it('replays a loaded message with its replayable calls and the newest state, refusing the others', () => {
    const h = harness();
    const loaded: ToShard = { t: 'loaded', address: 'group:G1', state: { stale: true }, calls: [call('chat', 1), call('create', 2), call('detail', 3, 4)] };
    h.states.set('group:G1', { fresh: true });
    h.events.died(0, [{ item: loaded, crashes: 1 }], new Error('boom'));
    expect(h.host(0).posts).to.deep.equal([{
      item: { t: 'loaded', address: 'group:G1', state: { fresh: true }, calls: [{ ...call('chat', 1), crashes: 1 }, { ...call('detail', 3), crashes: 4 }] },
      opts: { crashes: 1, alone: true },
    }]);
    expect(h.sent.map((s) => [s.conn, s.frame.code])).to.deep.equal([[2, Code.UNAVAILABLE]]);
  });

  it('a loaded message with no replayable call still brings the state back; at poison every call is refused and nothing is posted', () => {
    const h = harness();
    h.events.died(0, [{ item: { t: 'loaded', address: 'group:G1', state: 0, calls: [call('create', 2)] }, crashes: 1 }], new Error('boom'));
    expect(h.host(0).posts.map((p) => p.item)).to.deep.equal([{ t: 'loaded', address: 'group:G1', state: { members: ['A'] }, calls: [] }]);

    const p = harness();
    p.events.died(0, [{ item: { t: 'loaded', address: 'group:G1', state: 0, calls: [call('chat', 1), call('create', 2)] }, crashes: POISON_CRASHES }], new Error('boom'));
    expect(p.host(0).posts).to.deep.equal([]);
    expect(p.sent.map((s) => [s.conn, s.frame.code])).to.deep.equal([[1, Code.INTERNAL], [2, Code.INTERNAL]]);
    expect(p.counters.poison).to.equal(2);
  });

  it('replays a verify call; at poison answers reg and proof with 41401 and drops the rest', () => {
    const h = harness();
    h.events.died(VERIFIER_SHARD, [{ item: verifyCall('sweep'), crashes: 1 }], new Error('boom'));
    expect(h.host(VERIFIER_SHARD).posts).to.deep.equal([{ item: verifyCall('sweep'), opts: { crashes: 1, alone: true } }]);

    const p = harness();
    const inFlight = [verifyCall('reg', 4), verifyCall('proof', 5), verifyCall('sweep')].map((item) => ({ item, crashes: POISON_CRASHES }));
    p.events.died(VERIFIER_SHARD, inFlight, new Error('boom'));
    expect(p.host(VERIFIER_SHARD).posts).to.deep.equal([]);
    expect(p.sent.map((s) => [s.conn, s.frame.code, s.frame.request])).to.deep.equal([
      [4, Code.INTERNAL, { cat: 'vertify', act: 'reg' }],
      [5, Code.INTERNAL, { cat: 'vertify', act: 'proof' }],
    ]);
  });

  it('drops control messages in flight at a crash and posts an evict again', () => {
    const h = harness();
    const evict: ToShard = { t: 'evict', partitions: [1] };
    h.events.died(0, [{ item: { t: 'control', op: 'stats' }, crashes: 1 }, { item: { t: 'control', op: 'crash' }, crashes: 1 }, { item: evict, crashes: 1 }], new Error('boom'));
    expect(h.host(0).posts).to.deep.equal([{ item: evict, opts: undefined }]);
    expect(h.sent).to.deep.equal([]);
  });

  it('stops the service once the restart budget is spent: fatal, no restart, nothing replayed', () => {
    const h = harness(new RestartBudget(1, 60_000));
    h.events.died(0, [], new Error('first'));
    expect(h.host(0).starts).to.have.length(1);
    expect(h.fatal).to.deep.equal([]);
    const err = new Error('second');
    h.events.died(0, [{ item: call('chat'), crashes: 1 }], err);
    expect(h.fatal).to.deep.equal([err]);
    expect(h.host(0).starts).to.have.length(1);
    expect(h.host(0).posts).to.deep.equal([]);
    expect(h.counters.restarts).to.equal(2);
  });

  it('stops the service when a shard cannot start again', async () => {
    const h = harness();
    const err = new Error('no start');
    h.host(2).failStart = err;
    h.events.died(2, [], new Error('boom'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.fatal).to.deep.equal([err]);
  });

  it("hands the verifier's shard the newest verifier state before each start, and no other shard", async () => {
    const h = harness();
    await h.shards.start();
    expect(h.host(VERIFIER_SHARD).starts).to.deep.equal([{ book: 1 }]);
    expect(h.host(0).starts).to.deep.equal([undefined]);
    expect(h.host(2).starts).to.deep.equal([undefined]);
    h.states.set(VERIFY_ADDRESS, { book: 2 });
    h.events.died(VERIFIER_SHARD, [], new Error('boom'));
    expect(h.host(VERIFIER_SHARD).starts).to.deep.equal([{ book: 1 }, { book: 2 }]);
  });

  it("answers a shard's load with a loaded post carrying the stored state; the other items go to the node", () => {
    const h = harness();
    const before: FromShard = { t: 'reply', conn: 1, frame: 'a' };
    const after: FromShard = { t: 'cursor', lastProcessed: 5 };
    const waiting = [call('chat', 1), call('detail', 2, 1)];
    h.events.output(0, [before, { t: 'load', address: 'group:G1', calls: waiting }, after]);
    expect(h.host(0).posts).to.deep.equal([{ item: { t: 'loaded', address: 'group:G1', state: { members: ['A'] }, calls: waiting }, opts: { crashes: 1, alone: true } }]);
    expect(h.outputs).to.deep.equal([{ index: 0, items: [before, after] }]);
    // A load whose calls never crashed goes in the ordinary batch.
    h.events.output(0, [{ t: 'load', address: 'group:G1', calls: [call('chat')] }]);
    expect(h.host(0).posts[1]!.opts).to.deep.equal({ crashes: 0, alone: false });
    expect(h.outputs[1]).to.deep.equal({ index: 0, items: [] });
  });

  it('asks a shard for its figures once for several waiters and resolves them all with its answer', async () => {
    const h = harness();
    const a = h.shards.statsOf(2);
    const b = h.shards.statsOf(2);
    expect(h.host(2).posts).to.deep.equal([{ item: { t: 'control', op: 'stats' }, opts: undefined }]);
    const reply: FromShard = { t: 'reply', conn: 3, frame: 'x' };
    h.events.output(2, [stats(4), reply]);
    expect(await Promise.all([a, b])).to.deep.equal([stats(4), stats(4)]);
    expect(h.outputs).to.deep.equal([{ index: 2, items: [reply] }]);
    // The next question is asked again.
    const c = h.shards.statsOf(2);
    expect(h.host(2).posts).to.have.length(2);
    h.events.output(2, [stats(5)]);
    expect(await c).to.deep.equal(stats(5));
  });

  it('asks the restarted shard again for figures a dead shard took with it, so their waiters are answered', async () => {
    const h = harness();
    const waiting = h.shards.statsOf(0);
    const query = h.host(0).posts[0]!.item;
    h.events.died(0, [{ item: query, crashes: 1 }], new Error('boom'));
    expect(h.host(0).posts.map((p) => p.item)).to.deep.equal([query, { t: 'control', op: 'stats' }]);
    h.events.output(0, [stats(2)]);
    expect(await waiting).to.deep.equal(stats(2));
  });

  it("evicts on every shard, handing the verifier's shard its state only when its partition is included, and resolves once all answered", async () => {
    const answerStats = (h: ReturnType<typeof harness>): void => { for (let i = 0; i < 3; i++) h.events.output(i, [stats(i)]); };
    const h = harness();
    let done = false;
    const evicted = h.shards.evict([3, 5], 5).then(() => { done = true; });
    expect(h.host(0).posts[0]!.item).to.deep.equal({ t: 'evict', partitions: [3, 5] });
    expect(h.host(VERIFIER_SHARD).posts[0]!.item).to.deep.equal({ t: 'evict', partitions: [3, 5], verifierState: { book: 1 } });
    expect(h.host(2).posts[0]!.item).to.deep.equal({ t: 'evict', partitions: [3, 5] });
    await Promise.resolve();
    expect(done).to.equal(false);
    answerStats(h);
    await evicted;

    const other = harness();
    const e2 = other.shards.evict([3], 5);
    for (let i = 0; i < 3; i++) expect(other.host(i).posts[0]!.item).to.deep.equal({ t: 'evict', partitions: [3] });
    answerStats(other);
    await e2;
  });
});

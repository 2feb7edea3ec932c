/**
 * The durable gate's policy, the decision beside its code (src/actors/durable-gate.ts): output
 * waiting on a commit leaves when it is durable; when the commit fails with 'full' on a lone store
 * the waiting output is told it was lost and the service goes on; on a replica, or for any other
 * error, nothing waiting leaves and the owner is told. The delivery actor never ends the process.
 */
import { expect } from 'chai';
import { Delivery } from '../src/actors/delivery';
import { commitFailure, DurableGate, type GateOwner } from '../src/actors/durable-gate';
import { decideDirect } from '../src/actors/direct';
import { Code } from '../src/protocol/codes';
import { MemoryStore } from '../src/store/memory/memory-store';
import { StoreError } from '../src/store/ports';
import { FakePeer, peersOf } from './support/peers';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await turn(); };

/** A store whose next flushes resolve or fail as the test says (at once, or when a promise settles). */
class FakeFlush {
  private readonly outcomes: Array<Error | Promise<void> | undefined> = [];
  flushes = 0;
  next(outcome: Error | Promise<void> | undefined): void { this.outcomes.push(outcome); }
  flush(): Promise<void> {
    this.flushes++;
    const outcome = this.outcomes.shift();
    if (outcome instanceof Promise) return outcome;
    return outcome ? Promise.reject(outcome) : Promise.resolve();
  }
}

/** Runs the gate over one turn of three waiting outputs; says what became of each, and of the owner. */
async function oneTurn(outcome: Error | undefined, replica: boolean): Promise<{ events: string[]; fatal: unknown[] }> {
  const store = new FakeFlush();
  const events: string[] = [];
  const fatal: unknown[] = [];
  const owner: GateOwner = { replica: () => replica, lost: () => events.push('owner lost'), fatal: (err) => fatal.push(err) };
  const gate = new DurableGate(store, owner);
  store.next(outcome);
  for (const name of ['a', 'b', 'c']) gate.after(() => events.push(`${name} done`), () => events.push(`${name} lost`));
  await settle();
  expect(store.flushes).to.equal(1);
  return { events, fatal };
}

const full = (): StoreError => new StoreError('commit: store full', 'full');
const corrupt = (): StoreError => new StoreError('commit: store corrupt', 'corrupt');

describe('durable gate: what a failed commit does to waiting output', () => {
  it('decides lost only for a full disk or a writer thread that died, on a store that is not a replica', () => {
    expect(commitFailure(full(), false)).to.equal('lost');
    expect(commitFailure(full(), true)).to.equal('fatal');
    const writerDied = new StoreError("the store's writer thread stopped", 'writer');
    expect(commitFailure(writerDied, false)).to.equal('lost');
    expect(commitFailure(writerDied, true)).to.equal('fatal');
    expect(commitFailure(corrupt(), false)).to.equal('fatal');
    expect(commitFailure(new Error('full'), false)).to.equal('fatal');
  });

  it('releases waiting output in order once the commit is durable', async () => {
    expect(await oneTurn(undefined, false)).to.deep.equal({ events: ['a done', 'b done', 'c done'], fatal: [] });
  });

  it('full on a lone store: the owner hears first, then every waiting output is told it was lost; none is released', async () => {
    expect(await oneTurn(full(), false)).to.deep.equal({ events: ['owner lost', 'a lost', 'b lost', 'c lost'], fatal: [] });
  });

  it('full on a replica: fatal to the owner, nothing waiting leaves or is told', async () => {
    const err = full();
    expect(await oneTurn(err, true)).to.deep.equal({ events: [], fatal: [err] });
  });

  it('another error: fatal to the owner, nothing waiting leaves or is told', async () => {
    const err = corrupt();
    expect(await oneTurn(err, false)).to.deep.equal({ events: [], fatal: [err] });
  });

  it('goes on after a lost turn, and a later turn never overtakes an earlier one', async () => {
    const store = new FakeFlush();
    const events: string[] = [];
    const gate = new DurableGate(store, { replica: () => false, lost: () => {}, fatal: () => events.push('fatal') });
    let failFirst: (err: Error) => void = () => {};
    store.next(new Promise<void>((_, reject) => { failFirst = reject; }));
    gate.after(() => events.push('1 done'), () => events.push('1 lost'));
    await turn();
    // The second turn's commit is durable at once, but the first one's is still under way.
    gate.after(() => events.push('2 done'), () => events.push('2 lost'));
    await settle();
    expect(events).to.deep.equal([]);
    failFirst(full());
    await gate.settle();
    expect(events).to.deep.equal(['1 lost', '2 done']);
    expect(store.flushes).to.equal(3);
  });
});

describe('durable gate in the delivery actor', () => {
  const limits = { retainCount: 1000, retainAgeMs: 0, groupBacklog: 50, maxBuffered: 8 << 20 };
  const send = (d: Delivery, mid: string): void => d.post(decideDirect('alice', 1, { cat: 'chat', act: 'chat', to: 'bob', msg: mid, mid }), Date.now());

  it('a replica with a full disk reports to its owner and answers the sender nothing, not 45007', async () => {
    const store = new MemoryStore();
    const alice = new FakePeer(1, 'alice');
    const d = new Delivery(store, peersOf([alice]), limits);
    d.replica = true;
    let fatal: unknown;
    d.onFatal = (e) => { fatal = e; };
    store.simulateFull(true);
    send(d, 'm1');
    await settle();
    expect(fatal).to.be.instanceOf(StoreError);
    expect((fatal as StoreError).code).to.equal('full');
    expect(alice.frames).to.deep.equal([]);
    expect(d.stats()).to.include({ lostFull: 0 });
  });

  it('a lone store with a full disk answers 45007 and counts the lost turn', async () => {
    const store = new MemoryStore();
    const alice = new FakePeer(1, 'alice');
    const d = new Delivery(store, peersOf([alice]), limits);
    d.onFatal = () => expect.fail('a full disk is not fatal on a lone store');
    store.simulateFull(true);
    send(d, 'm1');
    await settle();
    expect(alice.frames.map((f) => (JSON.parse(f) as { code?: number }).code)).to.deep.equal([Code.STORAGE_FULL]);
    expect(d.stats()).to.include({ lostFull: 1 });
  });

  it('with no owner told, a fatal store error does not end the process', async () => {
    const store = new MemoryStore();
    const alice = new FakePeer(1, 'alice');
    const d = new Delivery(store, peersOf([alice]), limits);
    store.flush = () => Promise.reject(corrupt());
    const exit = process.exit;
    let exited = false;
    process.exit = ((): never => { exited = true; throw new Error('process.exit called'); }) as typeof process.exit;
    try {
      send(d, 'm1');
      await settle();
    } finally {
      process.exit = exit;
    }
    expect(exited).to.equal(false);
    expect(alice.frames).to.deep.equal([]);
  });
});

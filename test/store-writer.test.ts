/**
 * The store's writer (src/store/lmdb: write-batch.ts, turn-writer.ts, thread-committer.ts,
 * writer-thread.ts): a turn's writes go over as one buffer and come back as the same operations;
 * the writer thread commits them while reads see them at once; a full batch is handed over
 * mid-turn; a writer thread that dies loses only what nobody was told was stored, the store
 * refuses writes until its probe commits through a new thread, and everything flushed is on disk.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import type { CommitEvents, Committer } from '../src/store/lmdb/committer';
import { MAX_BATCH_BYTES, TurnWriter } from '../src/store/lmdb/turn-writer';
import { BatchWriter, readBatch } from '../src/store/lmdb/write-batch';
import { directConv, StoreError, type NewEntry } from '../src/store/ports';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const conv = directConv(A, B);
const entry = (i: number, size = 10): NewEntry => ({ conv, at: i, from: A, mid: `m${i}`, head: `{"n":${i},"b":"${'x'.repeat(size)}"`, tail: '}' });
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('store writer: the write batch', () => {
  it('reads back the operations written, keys and values alike, in order', () => {
    const w = new BatchWriter();
    w.put('log', ['d:ä:ß', 42], Buffer.from('value 1'));
    w.put('mids', ['d:a:b', A, 'm-€'], Buffer.from([0, 1, 2]));
    w.remove('members', [A, 'g:x']);
    w.put('meta', 'lastOffset', Buffer.alloc(0));
    w.remove('states', 'g:😀');
    expect(w.count).to.equal(5);
    const buf = w.take();
    expect(w.count).to.equal(0);
    const ops = [...readBatch(buf)].map((o) => ({ db: o.db, key: o.key, value: o.value === undefined ? undefined : [...o.value] }));
    // A view of an ArrayBuffer of its own (transferable without taking anything else along); the
    // next batch gets another, or the one handed back.
    expect(buf.byteOffset).to.equal(0);
    expect(buf.buffer.byteLength).to.be.at.least(buf.length);
    w.put('meta', 'x', Buffer.from([1]));
    const next = w.take();
    expect(next.buffer).to.not.equal(buf.buffer);
    // Handed back: the batch after the one being written goes into it.
    w.recycle(buf.buffer as ArrayBuffer);
    w.put('meta', 'y', Buffer.from([2]));
    expect(w.take().buffer).to.not.equal(buf.buffer);
    w.put('meta', 'z', Buffer.from([3]));
    expect(w.take().buffer, 'the buffer handed back is used again').to.equal(buf.buffer);
    expect(ops).to.deep.equal([
      { db: 'log', key: ['d:ä:ß', 42], value: [...Buffer.from('value 1')] },
      { db: 'mids', key: ['d:a:b', A, 'm-€'], value: [0, 1, 2] },
      { db: 'members', key: [A, 'g:x'], value: undefined },
      { db: 'meta', key: 'lastOffset', value: [] },
      { db: 'states', key: 'g:😀', value: undefined },
    ]);
  });

  it('grows past its first buffer and refuses a batch it cannot read', () => {
    const w = new BatchWriter();
    const big = Buffer.alloc(200_000, 7);
    for (let i = 0; i < 5; i++) w.put('log', ['c', i], big);
    const ops = [...readBatch(w.take())];
    expect(ops.map((o) => (o.key as unknown[])[1])).to.deep.equal([0, 1, 2, 3, 4]);
    expect(ops.every((o) => o.value?.length === 200_000 && o.value[199_999] === 7)).to.equal(true);
    expect(() => [...readBatch(Buffer.from([99, 0]))]).to.throw(/unknown database 99/);
  });
});

describe('store writer: the turn writer with a committer it steers', () => {
  /** A committer that commits and finishes a batch only when the test says so. */
  class Steered implements Committer {
    readonly syncs = true;
    readonly batches: { ops: number; events: CommitEvents }[] = [];
    /** What `wait()` does: the test's stand-in for the writer committing the newest batch. */
    onWait = (): void => { this.batches.at(-1)?.events.committed(); };
    commit(batch: Buffer, events: CommitEvents): void { this.batches.push({ ops: [...readBatch(batch)].length, events }); }
    wait(): void { this.onWait(); }
    close(): Promise<void> { return Promise.resolve(); }
  }
  const hooks = { seal: () => undefined, finish: () => undefined, settled: () => undefined, onCommit: () => undefined, failed: (e: StoreError) => e, spaceFor: () => undefined };
  const root = { transactionSync: <T>(fn: () => T): T => fn() };

  it('one batch at a time: the turns that end while it commits and syncs share the next', async () => {
    const c = new Steered();
    const w = new TurnWriter(c, root, hooks);
    w.put('meta', 'a', Buffer.from([1]));
    await turn();
    expect(c.batches).to.have.length(1);
    w.put('meta', 'b', Buffer.from([2]));
    await turn();
    w.put('meta', 'c', Buffer.from([3]));
    await turn();
    expect(c.batches, 'the next waits while the first is under way').to.have.length(1);
    const flushed = w.whenCommitted().then(() => 'done');
    c.batches[0]!.events.committed();
    c.batches[0]!.events.done();
    expect(c.batches, 'two turns, one batch').to.have.length(2);
    expect(c.batches[1]!.ops).to.equal(2);
    c.batches[1]!.events.committed();
    c.batches[1]!.events.done();
    expect(await flushed).to.equal('done');
  });

  it('a range read waits for a commit, never for a sync: a batch committed but syncing lets the next go at once', async () => {
    const c = new Steered();
    const w = new TurnWriter(c, root, hooks);
    w.put('meta', 'a', Buffer.from([1]));
    await turn();
    c.batches[0]!.events.committed(); // syncing now
    w.put('meta', 'b', Buffer.from([2]));
    const order: string[] = [];
    const first = w.whenCommitted().then(() => order.push('flush'));
    w.commitNow();
    expect(c.batches, 'handed over without waiting for the first to be done').to.have.length(2);
    // Everything is committed, not yet on disk: the flush waits for the second batch's done.
    c.batches[0]!.events.done();
    await turn();
    expect(order).to.deep.equal([]);
    c.batches[1]!.events.done();
    await first;
    expect(order).to.deep.equal(['flush']);
    // With the newest not committed, commitNow blocks on the committer (here: commits it), then
    // hands the turn's batch over and blocks for that one too.
    w.put('meta', 'c', Buffer.from([3]));
    await turn();
    let waited = 0;
    c.onWait = () => { waited++; c.batches.at(-1)!.events.committed(); };
    w.put('meta', 'd', Buffer.from([4]));
    w.commitNow();
    expect(waited).to.equal(2);
    expect(c.batches).to.have.length(4);
    expect(c.batches[3]!.ops).to.equal(1);
  });
});

describe('store writer: the writer thread', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgc-writer-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('commits on its thread: point reads see a write at once, a range read right after it too, and a reopen finds it', async () => {
    const s = LmdbStore.open({ dir, fsync: 'grouped' });
    expect(s.stats().writer).to.equal('thread');
    const offsets: number[] = [];
    for (let t = 0; t < 20; t++) {
      for (let i = 0; i < 50; i++) {
        const e = s.log.append(entry(t * 50 + i));
        offsets.push(e.offset);
        expect(s.log.top(conv)?.last).to.equal(e.offset);
        expect(s.log.findMid(conv, A, `m${t * 50 + i}`)).to.equal(e.offset);
      }
      // A range read within the turn waits for the writer: it sees every record appended.
      expect(s.log.read({ conv, limit: 1, direction: 'backward' })[0]?.offset).to.equal(offsets.at(-1));
      await turn();
    }
    await s.flush();
    expect(s.stats().commits).to.be.at.least(1).and.at.most(40);
    await s.close();
    const again = LmdbStore.open({ dir, fsync: 'grouped', writer: 'inline' });
    expect(again.log.read({ conv, limit: 2000, direction: 'forward' }).map((e) => e.offset)).to.deep.equal(offsets);
    await again.close();
  });

  it('hands a full batch over mid-turn, so the writes not yet committed stay within two batches', async () => {
    const s = LmdbStore.open({ dir, fsync: 'off' });
    const size = 100_000;
    const n = Math.ceil((2.5 * MAX_BATCH_BYTES) / size);
    for (let i = 0; i < n; i++) {
      s.log.append(entry(i, size));
      // Never much more than two batches' worth of records waiting.
      expect(s.stats().pendingWrites as number).to.be.at.most(2 * (MAX_BATCH_BYTES / size + 2) * 2);
    }
    expect(s.stats().writerStalls, 'the third batch waited for the first').to.be.at.least(1);
    await s.flush();
    expect(s.log.top(conv)?.count).to.equal(n);
    expect(s.log.read({ conv, limit: n, direction: 'forward' })).to.have.length(n);
    await s.close();
  });

  it('a writer thread that dies loses only the unflushed batch: flush fails with writer, writes are off until the probe, then on through a new thread', async () => {
    const s = LmdbStore.open({ dir, fsync: 'grouped' });
    const kept = s.log.append(entry(1));
    await s.flush();
    expect(s.crashWriterForTest()).to.equal(true);
    const lost = s.log.append(entry(2));
    const outcome = await s.flush().then(() => 'flushed', (e: unknown) => e);
    expect(outcome).to.be.instanceOf(StoreError);
    expect((outcome as StoreError).code).to.equal('writer');
    expect(s.health().writable).to.equal(false);
    expect(s.health().reason).to.match(/writer thread stopped/);
    // Reads go on meanwhile, from what was committed.
    expect(s.log.read({ conv, limit: 10, direction: 'forward' }).map((e) => e.offset)).to.deep.equal([kept.offset]);
    expect(s.probe()).to.equal(true);
    expect(s.health().writable).to.equal(true);
    const after = s.log.append(entry(3));
    await s.flush();
    expect(s.stats().writerThreads).to.equal(2);
    expect(after.offset, 'offsets never go back: the lost one is a gap').to.be.greaterThan(lost.offset);
    await s.close();
    const again = LmdbStore.open({ dir, fsync: 'grouped', writer: 'inline' });
    expect(again.log.read({ conv, limit: 10, direction: 'forward' }).map((e) => e.offset)).to.deep.equal([kept.offset, after.offset]);
    expect(again.log.findMid(conv, A, 'm2')).to.equal(undefined);
    await again.close();
  });
});

/**
 * Out of disk, in units: the memory store simulating a full disk, the LMDB turn writer with a
 * transaction that fails as on a full disk, and the delivery actor answering a sender whose record
 * was lost with 45007 instead of an acknowledgement.
 */
import { expect } from 'chai';
import type { RootDatabase } from 'lmdb';
import { Delivery } from '../src/actors/delivery';
import { Retention } from '../src/actors/retention';
import { decideDirect } from '../src/actors/direct';
import { Code } from '../src/protocol/codes';
import { refusedAnswer, STORAGE_FULL_TEXT } from '../src/protocol/frames';
import { InlineCommitter } from '../src/store/lmdb/committer';
import type { Dbs } from '../src/store/lmdb/schema';
import { TurnWriter } from '../src/store/lmdb/turn-writer';
import { MemoryStore } from '../src/store/memory/memory-store';
import { directConv, StoreError, type StoreHealth } from '../src/store/ports';
import { FakePeer, peersOf } from './support/peers';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await turn(); };

describe('store full: the memory backend simulates it', () => {
  it('loses the writes of a full disk, fails the next flush once, reports it, and takes writes again after the probe', async () => {
    const s = new MemoryStore();
    const seen: StoreHealth[] = [];
    s.onHealth((h) => seen.push(h));
    const a = s.log.append({ conv: 'd:a:b', at: 1, from: 'a', mid: 'm1', head: '{', tail: '}' });
    await s.flush();
    s.simulateFull(true);
    const b = s.log.append({ conv: 'd:a:b', at: 2, from: 'a', mid: 'm2', head: '{', tail: '}' });
    expect(b.offset).to.be.greaterThan(a.offset);
    expect(s.health().writable).to.equal(false);
    expect(seen.map((h) => h.writable)).to.deep.equal([false]);
    try {
      await s.flush();
      expect.fail('flush after a lost write must fail');
    } catch (e) {
      expect(e).to.be.instanceOf(StoreError);
      expect((e as StoreError).code).to.equal('full');
    }
    // Told once: the next flush (nothing lost since) resolves.
    await s.flush();
    expect(s.log.read({ conv: 'd:a:b', limit: 10, direction: 'forward' }).map((e) => e.offset)).to.deep.equal([a.offset]);
    expect(s.probe()).to.equal(false);
    expect(s.health().writable).to.equal(false);
    s.simulateFull(false);
    expect(s.probe()).to.equal(true);
    expect(s.health().writable).to.equal(true);
    expect(seen.map((h) => h.writable)).to.deep.equal([false, true]);
    const c = s.log.append({ conv: 'd:a:b', at: 3, from: 'a', mid: 'm3', head: '{', tail: '}' });
    await s.flush();
    // Offsets never go back: the lost one is a gap.
    expect(c.offset).to.be.greaterThan(b.offset);
    expect(s.log.read({ conv: 'd:a:b', limit: 10, direction: 'forward' }).map((e) => e.offset)).to.deep.equal([a.offset, c.offset]);
    expect(s.health().failedCommits).to.equal(1);
  });
});

describe('store full: the LMDB turn writer', () => {
  /** A root whose transactions fail as on a full disk while `full` is set; puts record their value's first byte. */
  function fakeRoot(): { root: RootDatabase; full: boolean; committed: number[]; dbs: Dbs } {
    const f = { full: false, committed: [] as number[], root: undefined as unknown as RootDatabase, dbs: undefined as unknown as Dbs };
    f.root = {
      transactionSync<T>(fn: () => T): T {
        if (f.full) throw Object.assign(new Error('MDB_MAP_FULL: Environment mapsize limit reached'), { code: -30792 });
        return fn();
      },
    } as unknown as RootDatabase;
    f.dbs = { meta: { putSync: (_k: string, v: Buffer) => f.committed.push(v[0]!) } } as unknown as Dbs;
    return f;
  }

  /** A turn writer committing inline on `root`. */
  function writerOn(root: RootDatabase, dbs: Dbs, failed: (e: StoreError) => StoreError = (e) => e): TurnWriter {
    return new TurnWriter(new InlineCommitter(root, dbs), root, {
      seal: () => undefined, finish: () => undefined, settled: () => undefined, onCommit: () => undefined,
      failed, spaceFor: () => undefined,
    });
  }
  const put = (w: TurnWriter, n: number): void => w.put('meta', 'k', Buffer.from([n]));

  it("a commit failing with 'full' rejects its waiters and the next flush, but does not poison the writer", async () => {
    const f = fakeRoot();
    const failures: StoreError[] = [];
    const w = writerOn(f.root, f.dbs, (e) => { failures.push(e); return e; });
    f.full = true;
    put(w, 1);
    const waiting = w.whenCommitted().then(() => 'resolved', (e: StoreError) => e.code);
    await settle();
    const r1 = await waiting;
    expect(r1).to.equal('full');
    expect(w.failure).to.equal(undefined);
    // A turn lost with nobody waiting: a flush asked for at the end of that turn is told, once.
    put(w, 2);
    await turn();
    expect(await w.whenCommitted().then(() => 'resolved', (e: StoreError) => e.code)).to.equal('full');
    expect(await w.whenCommitted().then(() => 'resolved', (e: StoreError) => e.code)).to.equal('resolved');
    // A loss nobody asked about in its turn is not told to the flushes of later writes.
    put(w, 2);
    await settle();
    expect(await w.whenCommitted().then(() => 'resolved', (e: StoreError) => e.code)).to.equal('resolved');
    f.full = false;
    put(w, 3);
    expect(await w.whenCommitted().then(() => 'resolved', (e: StoreError) => e.code)).to.equal('resolved');
    expect(f.committed).to.deep.equal([3]);
    expect(failures.map((e) => e.code)).to.deep.equal(['full', 'full', 'full']);
  });

  it('a commit lost before its flush was asked for is not acknowledged by that flush', async () => {
    const f = fakeRoot();
    const w = writerOn(f.root, f.dbs);
    f.full = true;
    put(w, 1);
    // The end-of-turn commit runs before the flush is asked for (as the delivery actor does it).
    await turn();
    f.full = false;
    expect(await w.whenCommitted().then(() => 'resolved', (e: StoreError) => e.code)).to.equal('full');
  });

  it('any other failure still poisons the writer (a corrupt store takes no more writes)', async () => {
    const root = { transactionSync: () => { throw new Error('MDB_CORRUPTED: Located page was wrong type'); } } as unknown as RootDatabase;
    const w = writerOn(root, fakeRoot().dbs);
    put(w, 1);
    await settle();
    expect(w.failure?.code).to.equal('corrupt');
    expect(() => put(w, 2)).to.throw(StoreError);
  });
});

describe('store full: retention', () => {
  it('skips a trim the full store refuses (counted) instead of throwing into the append that asked for it', () => {
    const entries = [1, 2, 3, 4, 5].map((offset) => ({ conv: 'g:x', offset, at: 0, from: null, head: '', tail: '' }));
    let full = true;
    let trimmed = 0;
    const log = {
      top: () => ({ first: 1, last: 5, count: 5 }),
      read: () => entries.slice(0, 3),
      trimThrough: (_c: string, upTo: number) => {
        if (full) throw new StoreError('trim: store full', 'full');
        trimmed = upTo;
        return upTo;
      },
    } as unknown as ConstructorParameters<typeof Retention>[0];
    const r = new Retention(log, { retainCount: 2, retainAgeMs: 0 });
    expect(() => r.appended('g:x')).to.not.throw();
    expect(r.stats()).to.deep.include({ trims: 0, trimsSkippedFull: 1 });
    // The age sweep does not spin on a trim the full store refuses.
    let swept = false;
    (log as unknown as { conversations: () => string[] }).conversations = () => (swept ? [] : ((swept = true), ['g:x']));
    const ageing = new Retention(log, { retainCount: 1000, retainAgeMs: 1 });
    ageing.sweep(Date.now());
    expect(ageing.stats().trimsSkippedFull).to.equal(1);
    full = false;
    r.appended('g:x');
    expect(trimmed).to.equal(3);
    expect(r.stats()).to.deep.include({ trims: 1, trimsSkippedFull: 1 });
    // A writer thread that stopped under the trim's commit is passed over the same way.
    log.trimThrough = () => { throw new StoreError("the store's writer thread stopped", 'writer'); };
    expect(() => r.appended('g:x')).to.not.throw();
    expect(r.stats()).to.deep.include({ trims: 1, trimsSkippedFull: 2 });
    // Any other failure still reaches the caller.
    log.trimThrough = () => { throw new StoreError('trim: store corrupt', 'corrupt'); };
    expect(() => r.appended('g:x')).to.throw(StoreError);
  });
});

describe('store full: the delivery actor never acknowledges a lost record', () => {

  it('answers 45007 instead of the mid answer while full, keeps history and live relays, and acknowledges again once writable', async () => {
    const store = new MemoryStore();
    const alice = new FakePeer(1, 'alice');
    const bob = new FakePeer(2, 'bob');
    const d = new Delivery(store, peersOf([alice, bob]), { retainCount: 1000, retainAgeMs: 0, groupBacklog: 50, maxBuffered: 8 << 20 });
    let fatal: unknown;
    d.onFatal = (e) => { fatal = e; };
    const send = (mid: string): void => d.post(decideDirect('alice', 1, { cat: 'chat', act: 'chat', to: 'bob', msg: mid, mid }), Date.now());

    send('m1');
    await settle();
    // Live to bob.
    expect(bob.frames.some((f) => f.includes('"m1"'))).to.equal(true);
    expect(alice.frames.map((f) => JSON.parse(f) as { type: string; msg: { mid?: string } })).to.deep.equal([
      { type: 'notice', msg: { to: 'bob', mid: 'm1' }, method: { act: 'chat', cat: 'chat' } },
    ]);

    store.simulateFull(true);
    send('m2');
    await settle();
    expect(fatal).to.equal(undefined);
    const answer = JSON.parse(alice.frames[1]!) as { type: string; code: number; request: { mid?: string } };
    expect(answer.type).to.equal('error');
    expect(answer.code).to.equal(Code.STORAGE_FULL);
    expect(answer.request.mid).to.equal('m2');
    expect(alice.frames).to.have.length(2);
    // The stored record still reads back; the lost one is not there.
    const stored = store.log.read({ conv: directConv('alice', 'bob'), limit: 10, direction: 'forward' });
    expect(stored.map((e) => e.mid)).to.deep.equal(['m1']);
    // A history request still answers.
    d.history(bob, { cat: 'chat', act: 'history', with: 'alice', limit: 10 });
    const page = JSON.parse(bob.frames[bob.frames.length - 1]!) as { type: string };
    expect(page.type).to.not.equal('error');

    store.simulateFull(false);
    expect(store.probe()).to.equal(true);
    send('m3');
    await settle();
    expect(JSON.parse(alice.frames[2]!)).to.deep.equal({ type: 'notice', msg: { to: 'bob', mid: 'm3' }, method: { act: 'chat', cat: 'chat' } });
    expect(fatal).to.equal(undefined);
    await d.close();
  });

  it('another store failure still ends the process through onFatal', async () => {
    const store = new MemoryStore();
    const alice = new FakePeer(1, 'alice');
    const d = new Delivery(store, peersOf([alice]), { retainCount: 1000, retainAgeMs: 0, groupBacklog: 50, maxBuffered: 8 << 20 });
    let fatal: unknown;
    d.onFatal = (e) => { fatal = e; };
    store.flush = () => Promise.reject(new StoreError('commit: store corrupt', 'corrupt'));
    d.post(decideDirect('alice', 1, { cat: 'chat', act: 'chat', to: 'bob', msg: 'x', mid: 'x' }), Date.now());
    await settle();
    expect(fatal).to.be.instanceOf(StoreError);
    expect(alice.frames).to.deep.equal([]);
  });

  it('rebuilds the refused request from the answer it replaces', () => {
    const f = JSON.parse(refusedAnswer('{"type":"notice","msg":{"id":"G1","mid":"k"},"method":{"act":"chat","cat":"group","callback":"cb"}}', Code.STORAGE_FULL, STORAGE_FULL_TEXT)) as Record<string, unknown>;
    expect(f).to.deep.include({ type: 'error', code: 45007, error: STORAGE_FULL_TEXT, method: { cat: 'group', act: 'chat' } });
    expect(f.request).to.deep.include({ mid: 'k', id: 'G1', callback: 'cb' });
  });
});

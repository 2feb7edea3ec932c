import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PartitionStore, StoreCorruptError } from '../src/migrate/v1/partition';
import { fnv1a32, initDataDir, LayoutError, partitionDir, partitionOf, readMeta, stableHash32 } from '../src/migrate/v1/layout';
import { listSegments, segmentName } from '../src/migrate/v1/journal';
import { encodeSnapshot, listSnapshots, snapshotName } from '../src/migrate/v1/snapshot';
import { rm, tmpDir, scratchEachTest, type Captured } from './support/store-log';

/** A toy partition: actors by address, each event applied in one place, as the service does. */
type Event = { a: string; k: 'msg' | 'join' | 'drop'; v: string };
type State = Record<string, { msgs: string[]; members: string[] }>;

function apply(state: State, e: Event): void {
  const actor = (state[e.a] ??= { msgs: [], members: [] });
  if (e.k === 'msg') actor.msgs.push(e.v);
  else if (e.k === 'join') actor.members.push(e.v);
  else actor.members = actor.members.filter((m) => m !== e.v);
}

function rebuild(snapshot: unknown, records: unknown[]): State {
  const state = structuredClone((snapshot as State | null) ?? {});
  for (const r of records) apply(state, r as Event);
  return state;
}

/** Deterministic pseudo-random events. */
function* events(seed: number): Generator<Event> {
  let x = seed;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (;;) {
    const a = `group:GD${'abcdefgh'[next() % 8]}`;
    const k = (['msg', 'msg', 'join', 'drop'] as const)[next() % 4]!;
    yield { a, k, v: `v${next() % 50}` };
  }
}

async function run(store: PartitionStore, state: State, gen: Generator<Event>, n: number, batch = 3): Promise<void> {
  for (let i = 0; i < n; i += batch) {
    const evs: Event[] = [];
    for (let j = 0; j < batch && i + j < n; j++) evs.push(gen.next().value as Event);
    store.append(evs);
    for (const e of evs) apply(state, e);
    await store.flush();
  }
}

describe('migrate v1: partition', function () {
  let dir: string;
  let logs: Captured;
  scratchEachTest('part', (d, l) => { dir = d; logs = l; });

  it('restores snapshot + journal to exactly the state before', async () => {
    const gen = events(7);
    const state: State = {};
    let { store, snapshot, records } = await PartitionStore.open({ dir, partition: 3, fsync: 'grouped', partitions: 16 });
    expect(snapshot).to.equal(null);
    expect(records).to.deep.equal([]);
    await run(store, state, gen, 100);
    await store.checkpoint(state);
    await run(store, state, gen, 57);
    expect(store.stats()).to.include({ partition: 3, lsn: 157, lastCheckpointLsn: 100, recordsSinceCheckpoint: 57, durableLsn: 157 });
    // No close: as after a crash, the files are all there is.
    const r = await PartitionStore.open({ dir, partition: 3, fsync: 'grouped' });
    expect(r.snapshotLsn).to.equal(100);
    expect(r.records).to.have.length(57);
    expect(rebuild(r.snapshot, r.records)).to.deep.equal(state);
    expect(r.store.lsn).to.equal(157);
    await store.close();
    await r.store.close();
    ({ store, snapshot, records } = await PartitionStore.open({ dir, partition: 3, fsync: 'off' }));
    expect(rebuild(snapshot, records)).to.deep.equal(state);
    expect(fs.existsSync(path.join(partitionDir(dir, 3), snapshotName(100)))).to.equal(true);
    await store.close();
  });

  it('takes the state at checkpoint() call time even if the caller mutates it and appends right after', async () => {
    const gen = events(11);
    const state: State = {};
    const { store } = await PartitionStore.open({ dir, partition: 0, fsync: 'always', partitions: 1 });
    await run(store, state, gen, 20);
    const done = store.checkpoint(state);
    expect(store.stats()).to.include({ recordsSinceCheckpoint: 0, lastCheckpointLsn: 0, checkpointing: true });
    await run(store, state, gen, 10); // appended while the snapshot is being written
    await done;
    expect(store.stats()).to.include({ recordsSinceCheckpoint: 10, lastCheckpointLsn: 20, checkpointing: false });
    const r = await PartitionStore.open({ dir, partition: 0, fsync: 'off' });
    expect(r.snapshotLsn).to.equal(20);
    expect(r.records).to.have.length(10);
    expect(rebuild(r.snapshot, r.records)).to.deep.equal(state);
    await store.close();
    await r.store.close();
  });

  it('coalesces checkpoints asked for while one is being written into one write of the newest state', async () => {
    const gen = events(13);
    const state: State = {};
    const { store } = await PartitionStore.open({ dir, partition: 0, fsync: 'off', partitions: 1 });
    const pdir = partitionDir(dir, 0);
    const done: Promise<void>[] = [];
    for (let c = 0; c < 4; c++) {
      await run(store, state, gen, 5, 5);
      done.push(store.checkpoint(state));
    }
    await Promise.all(done);
    const written = logs.lines.filter((l) => l.msg === 'checkpoint written').map((l) => l.lsn);
    expect(written).to.deep.equal([5, 20]); // the first, then the newest of the three queued
    expect(listSnapshots(pdir).map((s) => s.lsn)).to.deep.equal([20, 5]);
    const r = await PartitionStore.open({ dir, partition: 0, fsync: 'off' });
    expect(r.snapshotLsn).to.equal(20);
    expect(rebuild(r.snapshot, r.records)).to.deep.equal(state);
    await store.close();
    await r.store.close();
  });

  for (const damage of ['checksum', 'bad JSON'] as const) {
    it(`falls back to the previous snapshot plus the journal when the newest one has ${damage === 'checksum' ? 'a bad checksum' : 'bad JSON'}`, async () => {
      const gen = events(3);
      const state: State = {};
      const { store } = await PartitionStore.open({ dir, partition: 1, fsync: 'off', partitions: 2 });
      await run(store, state, gen, 30);
      await store.checkpoint(state);
      await run(store, state, gen, 30);
      await store.checkpoint(state);
      await run(store, state, gen, 12);
      await store.close();
      const pdir = partitionDir(dir, 1);
      const newest = path.join(pdir, snapshotName(60));
      if (damage === 'checksum') {
        const b = fs.readFileSync(newest);
        b[b.length - 10] = b[b.length - 10]! ^ 0x20;
        fs.writeFileSync(newest, b);
      } else {
        fs.writeFileSync(newest, encodeSnapshot(60, '{"group:GDa": {"msgs": [')); // crc right, JSON not
      }
      const r = await PartitionStore.open({ dir, partition: 1, fsync: 'off' });
      expect(r.snapshotLsn).to.equal(30);
      expect(r.records).to.have.length(42);
      expect(rebuild(r.snapshot, r.records)).to.deep.equal(state);
      expect(fs.existsSync(`${newest}.corrupt`)).to.equal(true);
      expect(logs.warnings().some((l) => /snapshot: unusable/.test(String(l.msg)))).to.equal(true);
      // Appends continue after the last record, not after the fallback snapshot.
      expect(r.store.append([{ a: 'x', k: 'msg', v: 'y' }])).to.equal(73);
      await r.store.close();
    });
  }

  it('replays the whole journal when no snapshot is usable but the journal reaches back to lsn 1', async () => {
    const gen = events(5);
    const state: State = {};
    const { store } = await PartitionStore.open({ dir, partition: 0, fsync: 'off', partitions: 1 });
    await run(store, state, gen, 15);
    await store.checkpoint(state);
    await run(store, state, gen, 5);
    await store.close();
    fs.writeFileSync(path.join(partitionDir(dir, 0), snapshotName(15)), 'garbage');
    const r = await PartitionStore.open({ dir, partition: 0, fsync: 'off' });
    expect(r.snapshot).to.equal(null);
    expect(r.records).to.have.length(20);
    expect(rebuild(r.snapshot, r.records)).to.deep.equal(state);
    await r.store.close();
  });

  it('refuses to start when the journal no longer reaches back to the usable snapshot', async () => {
    const gen = events(5);
    const state: State = {};
    const { store } = await PartitionStore.open({ dir, partition: 0, fsync: 'off', partitions: 1 });
    for (let c = 0; c < 3; c++) {
      await run(store, state, gen, 10);
      await store.checkpoint(state);
    }
    await store.close();
    const pdir = partitionDir(dir, 0);
    for (const s of listSnapshots(pdir)) fs.writeFileSync(path.join(pdir, s.name), 'garbage');
    let err: unknown;
    await PartitionStore.open({ dir, partition: 0, fsync: 'off' }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(StoreCorruptError);
    expect(String(err)).to.match(/records 1\.\.20 are missing/);
  });

  it('checkpoint keeps two snapshots and removes the journal segments older than the oldest kept one', async () => {
    const gen = events(9);
    const state: State = {};
    const { store } = await PartitionStore.open({ dir, partition: 0, fsync: 'off', partitions: 1 });
    const pdir = partitionDir(dir, 0);
    await run(store, state, gen, 10, 1);
    await store.checkpoint(state);
    expect(listSegments(pdir).map((s) => s.firstLsn)).to.deep.equal([1, 11]);
    await run(store, state, gen, 10, 1);
    await store.checkpoint(state);
    // Snapshots 10 and 20 kept; segment 1..10 only precedes the oldest kept snapshot: gone.
    expect(listSnapshots(pdir).map((s) => s.lsn)).to.deep.equal([20, 10]);
    expect(listSegments(pdir).map((s) => s.firstLsn)).to.deep.equal([11, 21]);
    await run(store, state, gen, 5, 1);
    await store.checkpoint(state);
    await store.checkpoint(state); // nothing new: same lsn, no new segment
    expect(listSnapshots(pdir).map((s) => s.lsn)).to.deep.equal([25, 20]);
    expect(listSegments(pdir).map((s) => s.firstLsn)).to.deep.equal([21, 26]);
    expect(fs.readdirSync(pdir).sort()).to.deep.equal([segmentName(21), segmentName(26), snapshotName(20), snapshotName(25)].sort());
    const st = store.stats();
    expect(st).to.include({ lsn: 25, lastCheckpointLsn: 25, recordsSinceCheckpoint: 0, journalSegments: 2 });
    expect(st.journalBytes).to.equal(fs.statSync(path.join(pdir, segmentName(21))).size);
    expect(st.lastCheckpointAt).to.be.a('number');
    await store.close();
    const r = await PartitionStore.open({ dir, partition: 0, fsync: 'off' });
    expect(rebuild(r.snapshot, r.records)).to.deep.equal(state);
    await r.store.close();
  });

  it('numbers new records after the snapshot when the journal lost its tail (fsync off and a power loss)', async () => {
    const gen = events(1);
    const state: State = {};
    const { store } = await PartitionStore.open({ dir, partition: 0, fsync: 'off', partitions: 1 });
    await run(store, state, gen, 10, 1);
    await store.checkpoint(state);
    await store.close();
    const pdir = partitionDir(dir, 0);
    // Simulate: the journal segments vanished (unsynced) while the snapshot survived.
    for (const s of listSegments(pdir)) fs.rmSync(path.join(pdir, s.name));
    const r = await PartitionStore.open({ dir, partition: 0, fsync: 'off' });
    expect(r.snapshotLsn).to.equal(10);
    expect(r.store.append([{ a: 'x', k: 'msg', v: '1' }])).to.equal(11);
    await r.store.close();
    const again = await PartitionStore.open({ dir, partition: 0, fsync: 'off' });
    expect(again.records).to.deep.equal([{ a: 'x', k: 'msg', v: '1' }]);
    await again.store.close();
  });
});

describe('migrate v1: layout', function () {
  let dir: string;
  beforeEach(() => (dir = tmpDir('layout')));
  afterEach(() => rm(dir));

  it('hashes with FNV-1a 32 (reference vectors) and places addresses stably and evenly', () => {
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('a')).to.equal(0xe40c292c);
    expect(fnv1a32('foobar')).to.equal(0xbf9cf968);
    // Non-ASCII input is hashed as UTF-8 bytes, as another implementation would.
    let h = 0x811c9dc5;
    for (const b of Buffer.from('a€é', 'utf8')) h = Math.imul(h ^ b, 0x01000193);
    expect(fnv1a32('a€é')).to.equal(h >>> 0);
    // Pinned values: changing the hash would move every actor of existing data dirs.
    // (values cross-checked with an independent implementation of FNV-1a + murmur3 fmix32)
    expect(stableHash32('inbox:5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY')).to.equal(717129990);
    expect(partitionOf('inbox:5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY', 16)).to.equal(6);
    expect(partitionOf('group:GDabcdefghij', 16)).to.equal(1878804194 % 16);
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16000; i++) counts[partitionOf(`group:GD${i.toString(36).padStart(10, 'a')}`, 16)]!++;
    for (const c of counts) expect(c).to.be.within(800, 1200);
    for (let i = 0; i < 100; i++) expect(partitionOf(`inbox:${i}`, 7)).to.be.within(0, 6);
  });

  it('writes meta.json at first start and refuses another partition count', async () => {
    const meta = initDataDir(dir, 16);
    expect(meta).to.include({ format: 'imgc-store', version: 1, partitions: 16 });
    expect(readMeta(dir)).to.deep.equal(meta);
    expect(fs.existsSync(partitionDir(dir, 15))).to.equal(true);
    expect(path.basename(partitionDir(dir, 3))).to.equal('p03');
    expect(initDataDir(dir, 16)).to.deep.equal(meta);
    expect(() => initDataDir(dir, 8)).to.throw(LayoutError, /holds 16 partitions but 8/);
    let err: unknown;
    await PartitionStore.open({ dir, partition: 0, fsync: 'off', partitions: 4 }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(LayoutError);
    err = undefined;
    await PartitionStore.open({ dir, partition: 16, fsync: 'off' }).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/partition 16 does not exist/);
  });

  it('refuses a dir without meta.json unless a partition count is given', async () => {
    let err: unknown;
    await PartitionStore.open({ dir, partition: 0, fsync: 'off' }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(LayoutError);
    fs.mkdirSync(path.join(dir, 'p00'));
    expect(() => initDataDir(dir, 2)).to.throw(LayoutError, /no meta\.json/);
  });
});

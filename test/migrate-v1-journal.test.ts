import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
// The module object itself (not a namespace copy), so that tests can wrap its sync calls.
import fsm = require('node:fs');
import { Journal, listSegments, segmentName } from '../src/migrate/v1/journal';
import { HEADER_BYTES } from '../src/migrate/v1/record';
import { copyDir, rm, tmpDir, scratchEachTest, type Captured } from './support/store-log';

/** Records of different sizes and characters, so that cuts fall in headers, ASCII and multi-byte UTF-8. */
const SAMPLE: unknown[] = [
  { a: 'inbox:5Grw', ev: 'msg', body: 'hello' },
  { a: 'group:GDabcdefghij', ev: 'join', who: ['x', 'y'] },
  [1, 2, 3, null, true],
  { a: 'inbox:5FHn', ev: 'msg', body: 'héllo wörld ✓ 你好 🎉'.repeat(3) },
];

function seg(dir: string): string {
  const segs = listSegments(dir);
  return path.join(dir, segs[segs.length - 1]!.name);
}

/** Journals SAMPLE into `dir` and closes it; `start` and `end` are the segment's size before and after its last record. */
async function writeSample(dir: string): Promise<{ start: number; end: number }> {
  const { journal } = Journal.open({ dir, fsync: 'off' });
  journal.appendSync(SAMPLE.slice(0, -1));
  const start = fs.statSync(seg(dir)).size;
  journal.appendSync([SAMPLE[SAMPLE.length - 1]]);
  await journal.close();
  return { start, end: fs.statSync(seg(dir)).size };
}

describe('migrate v1: journal', function () {
  let dir: string;
  let logs: Captured;
  scratchEachTest('journal', (d, l) => { dir = d; logs = l; });

  it('numbers records from 1 and gives them back in order after reopening', async () => {
    let { journal, records } = Journal.open({ dir, fsync: 'off' });
    expect(records).to.deep.equal([]);
    expect(journal.lsn).to.equal(0);
    expect(journal.appendSync([SAMPLE[0], SAMPLE[1]])).to.equal(2);
    expect(journal.appendSync([])).to.equal(2);
    expect(await journal.append([SAMPLE[2]])).to.equal(3);
    await journal.close();
    ({ journal, records } = Journal.open({ dir, fsync: 'off' }));
    expect(records).to.deep.equal([
      { lsn: 1, data: SAMPLE[0] },
      { lsn: 2, data: SAMPLE[1] },
      { lsn: 3, data: SAMPLE[2] },
    ]);
    expect(journal.appendSync([SAMPLE[3]])).to.equal(4);
    await journal.close();
    expect(Journal.open({ dir, fsync: 'off' }).records.map((r) => r.lsn)).to.deep.equal([1, 2, 3, 4]);
  });

  it('refuses a record that is not JSON data and writes nothing of the batch', async () => {
    const { journal } = Journal.open({ dir, fsync: 'off' });
    expect(() => journal.appendSync([{ ok: 1 }, undefined])).to.throw(TypeError);
    expect(() => journal.appendSync([{ big: 1n }])).to.throw(TypeError);
    expect(journal.lsn).to.equal(0);
    expect(fs.statSync(seg(dir)).size).to.equal(0);
    await journal.close();
  });

  it('opens a journal cut at every byte offset of its last record with every earlier record, and appends after them', async () => {
    const { start, end } = await writeSample(dir);
    expect(end - start).to.be.greaterThan(100);
    const want = SAMPLE.slice(0, -1).map((data, i) => ({ lsn: i + 1, data }));

    for (let cut = start; cut < end; cut++) {
      const copy = tmpDir('cut');
      try {
        copyDir(dir, copy);
        fs.truncateSync(seg(copy), cut);
        logs.lines.length = 0;
        const { journal: j, records } = Journal.open({ dir: copy, fsync: 'off' });
        expect(records, `cut at ${cut}`).to.deep.equal(want);
        expect(j.lsn).to.equal(want.length);
        // The torn bytes are gone, so the next record follows the last good one on disk.
        expect(fs.statSync(seg(copy)).size, `size after repair at ${cut}`).to.equal(start);
        if (cut > start) expect(logs.warnings().map((l) => l.msg), `warning at cut ${cut}`).to.include('journal: torn or corrupt tail cut off');
        else expect(logs.warnings()).to.deep.equal([]);
        j.appendSync([{ after: cut }]);
        await j.close();
        const again = Journal.open({ dir: copy, fsync: 'off' });
        expect(again.records).to.deep.equal([...want, { lsn: want.length + 1, data: { after: cut } }]);
        await again.journal.close();
      } finally {
        rm(copy);
      }
    }
  });

  it('detects a corrupt byte in the middle of the last record by its crc', async () => {
    const { start, end } = await writeSample(dir);
    const file = seg(dir);
    const bytes = fs.readFileSync(file);
    // Same length, still valid JSON-looking text: only the crc can tell.
    const mid = start + HEADER_BYTES + Math.floor((end - start - HEADER_BYTES) / 2);
    bytes[mid] = bytes[mid]! ^ 0x01;
    fs.writeFileSync(file, bytes);
    const { journal: j, records } = Journal.open({ dir, fsync: 'off' });
    expect(records.map((r) => r.data)).to.deep.equal(SAMPLE.slice(0, -1));
    const w = logs.warnings();
    expect(w).to.have.length(1);
    expect(String(w[0]!.problem)).to.match(/crc mismatch/);
    expect(fs.statSync(file).size).to.equal(start);
    await j.close();
  });

  it('detects a damaged length field of the last record', async () => {
    const { journal } = Journal.open({ dir, fsync: 'off' });
    journal.appendSync([SAMPLE[0]]);
    const start = fs.statSync(seg(dir)).size;
    journal.appendSync([SAMPLE[1]]);
    await journal.close();
    for (const delta of [-1, 1, 0x1000000]) {
      const copy = tmpDir('len');
      try {
        copyDir(dir, copy);
        const f = seg(copy);
        const bytes = fs.readFileSync(f);
        bytes.writeUInt32LE(bytes.readUInt32LE(start) + delta, start);
        fs.writeFileSync(f, bytes);
        const { journal: j, records } = Journal.open({ dir: copy, fsync: 'off' });
        expect(records.map((r) => r.data), `delta ${delta}`).to.deep.equal([SAMPLE[0]]);
        await j.close();
      } finally {
        rm(copy);
      }
    }
  });

  it("'always' fdatasyncs inside every append", async () => {
    const real = fs.fdatasyncSync;
    let calls = 0;
    (fsm as { fdatasyncSync: typeof real }).fdatasyncSync = (fd) => {
      calls++;
      real(fd);
    };
    try {
      const { journal } = Journal.open({ dir, fsync: 'always' });
      for (let i = 0; i < 5; i++) journal.appendSync([{ i }]);
      expect(calls).to.equal(5);
      expect(journal.durableLsn).to.equal(5);
      await journal.flush();
      expect(calls).to.equal(5);
      await journal.close();
    } finally {
      (fsm as { fdatasyncSync: typeof real }).fdatasyncSync = real;
    }
  });

  it("'grouped' covers a burst of appends with one fdatasync and resolves flush only after it", async () => {
    const real = fs.fdatasync;
    const started: number[] = [];
    let release: (() => void) | undefined;
    (fsm as { fdatasync: unknown }).fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      started.push(fd);
      // Hold the sync until the test lets it go, to observe that nobody resolves early.
      release = () => real(fd, cb);
    };
    try {
      const { journal } = Journal.open({ dir, fsync: 'grouped', groupWindowMs: 5 });
      const acks: number[] = [];
      for (let i = 0; i < 100; i++) {
        journal.appendSync([{ i }]);
        void journal.flush().then(() => acks.push(i));
      }
      await new Promise((r) => setTimeout(r, 30));
      expect(started).to.have.length(1);
      expect(acks).to.deep.equal([]);
      expect(journal.durableLsn).to.equal(0);
      release!();
      await journal.flush();
      expect(acks).to.have.length(100);
      expect(journal.durableLsn).to.equal(100);
      expect(started).to.have.length(1);
      // Appends during a running sync are covered by the next one.
      journal.appendSync([{ i: 100 }]);
      const p = journal.flush();
      await new Promise((r) => setTimeout(r, 20));
      expect(started).to.have.length(2);
      journal.appendSync([{ i: 101 }]);
      const q = journal.flush();
      release!();
      await p;
      await new Promise((r) => setTimeout(r, 5));
      expect(started).to.have.length(3);
      release!();
      await q;
      expect(journal.durableLsn).to.equal(102);
      (fsm as { fdatasync: unknown }).fdatasync = real;
      await journal.close();
    } finally {
      (fsm as { fdatasync: unknown }).fdatasync = real;
    }
  });

  it("'grouped' starts the sync at once when groupMaxRecords are waiting", async () => {
    const { journal } = Journal.open({ dir, fsync: 'grouped', groupWindowMs: 60_000, groupMaxRecords: 10 });
    journal.appendSync(Array.from({ length: 10 }, (_, i) => ({ i })));
    const t0 = Date.now();
    await journal.flush();
    expect(Date.now() - t0).to.be.lessThan(5000);
    expect(journal.durableLsn).to.equal(10);
    await journal.close();
  });

  it('a failed fdatasync rejects flush and refuses later appends', async () => {
    const real = fs.fdatasync;
    (fsm as { fdatasync: unknown }).fdatasync = (_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      setImmediate(() => cb(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' })));
    };
    try {
      const { journal } = Journal.open({ dir, fsync: 'grouped', groupWindowMs: 1 });
      journal.appendSync([{ i: 1 }]);
      let err: unknown;
      await journal.flush().catch((e: unknown) => (err = e));
      expect(String(err)).to.match(/EIO/);
      expect(() => journal.appendSync([{ i: 2 }])).to.throw(/EIO/);
      await journal.close();
    } finally {
      (fsm as { fdatasync: unknown }).fdatasync = real;
    }
  });

  it('rotates into segments named by their first lsn and drops whole old segments', async () => {
    const { journal } = Journal.open({ dir, fsync: 'off' });
    journal.appendSync([{ i: 1 }, { i: 2 }]);
    journal.rotate();
    journal.rotate(); // the new segment is empty: no second rotation
    journal.appendSync([{ i: 3 }]);
    journal.rotate();
    journal.appendSync([{ i: 4 }]);
    expect(listSegments(dir).map((s) => s.name)).to.deep.equal([segmentName(1), segmentName(3), segmentName(4)]);
    expect(journal.dropThrough(2)).to.equal(1);
    expect(journal.dropThrough(2)).to.equal(0);
    expect(listSegments(dir).map((s) => s.firstLsn)).to.deep.equal([3, 4]);
    expect(journal.dropThrough(100)).to.equal(1); // never the current segment
    expect(listSegments(dir).map((s) => s.firstLsn)).to.deep.equal([4]);
    await journal.close();
    const again = Journal.open({ dir, fsync: 'off', afterLsn: 3 });
    expect(again.records).to.deep.equal([{ lsn: 4, data: { i: 4 } }]);
    await again.journal.close();
  });

  it('sets aside the segments after a corrupt record inside the journal, keeping everything before it', async () => {
    const { journal } = Journal.open({ dir, fsync: 'off' });
    journal.appendSync([{ i: 1 }, { i: 2 }]);
    journal.rotate();
    journal.appendSync([{ i: 3 }]);
    await journal.close();
    const first = path.join(dir, segmentName(1));
    const bytes = fs.readFileSync(first);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff;
    fs.writeFileSync(first, bytes);
    const { journal: j, records } = Journal.open({ dir, fsync: 'off' });
    expect(records).to.deep.equal([{ lsn: 1, data: { i: 1 } }]);
    expect(j.lsn).to.equal(1);
    expect(fs.existsSync(path.join(dir, `${segmentName(3)}.orphan`))).to.equal(true);
    expect(logs.warnings().length).to.be.greaterThan(0);
    expect(j.appendSync([{ i: 'new' }])).to.equal(2);
    await j.close();
  });
});

/**
 * Checksums of the LMDB store (issue 20): a bit flipped inside a stored value on disk is found on
 * read, never served, counted once and logged once with where it is; the rest still reads. A store
 * of the format before is migrated at open (also when a migration stopped midway), and the check
 * command names what is damaged.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { open } from 'lmdb';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import { openDbs } from '../src/store/lmdb/schema';
import { migrateFormat } from '../src/store/lmdb/format';
import { checkStore } from '../src/store/lmdb/check';
import { isDamagedState, type NewEntry } from '../src/store/ports';
import { captureLogs, rm, tmpDir } from './support/store-log';
import { flipInStore, flipValueOf, writeOldStore, type OldRecord } from './support/damage';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const CONV = `d:${B}:${A}`;
const CHECK = resolve(__dirname, '..', 'src', 'tools', 'check.js');

function entry(i: number): NewEntry {
  return { conv: CONV, at: 1_700_000_000_000 + i, from: A, mid: `m${i}`, head: `{"type":"message","msg":"text-${i}-marker","to":`, tail: ',"x":1' };
}

async function withStore<T>(dir: string, fn: (s: LmdbStore) => T | Promise<T>): Promise<T> {
  const s = LmdbStore.open({ dir, fsync: 'off' });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

function runCheck(dir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [CHECK, '--data', dir], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('store checksums: damaged values on disk', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = tmpDir('sums'); });
  afterEach(() => rm(dir));

  it('a flipped bit in a log record: skipped by every read, counted and logged once; pages still fill; the check names it', async () => {
    await withStore(dir, async (s) => {
      for (let i = 1; i <= 10; i++) s.log.append(entry(i));
      await s.flush();
    });
    expect(runCheck(dir).status, 'clean before the flip').to.equal(0);
    expect(flipInStore(dir, 'text-4-marker', 5)).to.be.greaterThan(0);
    const logs = captureLogs();
    try {
      await withStore(dir, (s) => {
        const all = s.log.read({ conv: CONV, limit: 100, direction: 'forward' });
        expect(all.map((e) => e.offset)).to.deep.equal([1, 2, 3, 5, 6, 7, 8, 9, 10]);
        expect(all.every((e) => !e.head.includes('text-4'))).to.equal(true);
        expect(s.log.read({ conv: CONV, limit: 4, direction: 'forward' }).map((e) => e.offset), 'a page fills past it').to.deep.equal([1, 2, 3, 5]);
        expect(s.log.read({ conv: CONV, before: 6, limit: 2, direction: 'backward' }).map((e) => e.offset)).to.deep.equal([3, 5]);
        expect(s.log.redact(CONV, 4, { head: '{}', tail: '' }), 'not redacted as if genuine').to.equal(false);
        expect(s.stats().damaged, 'counted once however often it is read').to.equal(1);
        expect(s.stats().damagedLast).to.equal(`log ${CONV} offset 4`);
      });
      const lines = logs.lines.filter((l) => l.msg?.startsWith('stored record is damaged'));
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ db: 'log', conv: CONV, offset: 4 });
    } finally {
      logs.restore();
    }
    const r = runCheck(dir);
    expect(r.status, r.out).to.equal(1);
    expect(r.out).to.include(`damaged: log ${CONV} offset 4`);
    expect(r.out).to.include('1 damaged');
  });

  it('a damaged state reads as damaged; a damaged position, membership key or top as absent or counted again', async () => {
    const account = 'acct-pos-marker';
    await withStore(dir, async (s) => {
      s.states.put('group:g1', { id: 'g1', name: 'state-marker-text' });
      s.positions.set(account, { delivered: 5, acked: 3, ackMode: true });
      s.positions.join(A, 'g:members-marker', 7);
      s.log.append({ ...entry(1), conv: 'd:top-marker' });
      s.log.append({ ...entry(2), conv: 'd:top-marker' });
      await s.flush();
    });
    flipInStore(dir, 'state-marker-text', 3);
    // A value follows its key in an LMDB leaf: past the key, into the checksum.
    expect(flipValueOf(dir, account)).to.equal(1);
    flipInStore(dir, 'g:members-marker', 'g:members-marker'.length - 1);
    expect(flipValueOf(dir, 'd:top-marker')).to.equal(1);
    await withStore(dir, (s) => {
      const st = s.states.get('group:g1');
      expect(isDamagedState(st), JSON.stringify(st)).to.equal(true);
      expect(s.positions.get(account)).to.equal(undefined);
      expect(s.positions.membership(A, 'g:members-marker')).to.equal(undefined);
      expect(s.positions.memberships(A), 'the key moved by the flip is not served').to.deep.equal([]);
      expect(s.log.top('d:top-marker')).to.deep.equal({ first: 1, last: 2, count: 2 });
      expect(s.stats().damaged).to.equal(4);
    });
    const report = checkStore(dir);
    expect(report.damaged.map((d) => d.db).sort()).to.deep.equal(['convs', 'members', 'positions', 'states']);
  });
});

describe('store checksums: appends at given offsets (a cluster\'s)', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = tmpDir('sums-given'); });
  afterEach(() => rm(dir));

  it('out of order, the check passes; a damaged record applied again is written over, counted once', async () => {
    await withStore(dir, async (s) => {
      for (const o of [7, 3, 9, 5, 1]) s.log.append(entry(o), o);
      await s.flush();
    });
    expect(runCheck(dir).status, 'clean').to.equal(0);
    expect(flipInStore(dir, 'text-5-marker', 5)).to.be.greaterThan(0);
    const logs = captureLogs();
    try {
      await withStore(dir, async (s) => {
        expect(s.log.read({ conv: CONV, limit: 10, direction: 'forward' }).map((e) => e.offset)).to.deep.equal([1, 3, 7, 9]);
        // The ledger entry applied again (a node replaying after a crash): the record is whole again.
        expect(s.log.append(entry(5), 5)).to.deep.equal({ ...entry(5), offset: 5 });
        expect(s.log.top(CONV)).to.deep.equal({ first: 1, last: 9, count: 5 });
        expect(s.log.append(entry(5), 5), 'and is held now').to.deep.equal({ ...entry(5), offset: 5 });
        await s.flush();
        expect(s.log.read({ conv: CONV, limit: 10, direction: 'forward' }).map((e) => e.offset)).to.deep.equal([1, 3, 5, 7, 9]);
        expect(s.log.top(CONV)).to.deep.equal({ first: 1, last: 9, count: 5 });
        expect(s.stats().damaged).to.equal(1);
      });
    } finally {
      logs.restore();
    }
    const r = runCheck(dir);
    expect(r.status, r.out).to.equal(0);
  });
});

describe('store checksums: a store of the format before is migrated at open', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = tmpDir('sums-migrate'); });
  afterEach(() => rm(dir));

  const records: OldRecord[] = Array.from({ length: 25 }, (_, k) => ({
    conv: k % 2 === 0 ? CONV : 'g:G1', offset: k + 1, at: 1_700_000_000_000 + k, from: k % 5 === 0 ? null : A,
    mid: k % 5 === 0 ? null : `m${k}`, head: `{"msg":"old-${k}","to":`, tail: ',"x":1',
  }));

  async function writeOld(): Promise<void> {
    await writeOldStore(dir, {
      records,
      positions: { [A]: { delivered: 9, acked: 4, ackMode: true }, [B]: { delivered: 25, acked: 0, ackMode: false } },
      members: [[A, 'g:G1', 2], [B, 'g:G1', 1]],
      states: { 'group:G1': { id: 'G1', group: [A, B] }, 'read:x': 12 },
      epoch: 'old-epoch-123',
    });
  }

  async function expectAllReadable(): Promise<void> {
    await withStore(dir, (s) => {
      expect(s.epoch).to.equal('old-epoch-123');
      expect(s.stats().lastOffset).to.equal(25);
      const direct = s.log.read({ conv: CONV, limit: 100, direction: 'forward' });
      const group = s.log.read({ conv: 'g:G1', limit: 100, direction: 'forward' });
      expect([...direct, ...group].map((e) => e.offset).sort((a, b) => a - b)).to.deep.equal(records.map((r) => r.offset));
      expect(direct[1]).to.deep.equal({ conv: CONV, offset: 3, at: 1_700_000_000_002, from: A, mid: 'm2', head: '{"msg":"old-2","to":', tail: ',"x":1' });
      expect(group[2]!.from).to.equal(null);
      expect(s.log.top(CONV)).to.deep.equal({ first: 1, last: 25, count: 13 });
      expect(s.log.findMid('g:G1', A, 'm3')).to.equal(4);
      expect(s.positions.get(A)).to.deep.equal({ delivered: 9, acked: 4, ackMode: true });
      expect(s.positions.memberships(B)).to.deep.equal([{ conv: 'g:G1', since: 1 }]);
      expect(s.states.get('group:G1')).to.deep.equal({ id: 'G1', group: [A, B] });
      expect(s.states.get('read:x')).to.equal(12);
      expect(s.stats().damaged).to.equal(0);
      expect(s.log.append(entry(99)).offset, 'offsets go on after the old counter').to.equal(26);
    });
    const report = checkStore(dir);
    expect(report.damaged).to.deep.equal([]);
  }

  it('every value is readable after the first open, and the format is set (the check passes)', async () => {
    await writeOld();
    expect(runCheck(dir).status, 'the check refuses the old format').to.equal(2);
    await expectAllReadable();
    // A second open finds the format set: nothing to migrate.
    const root = open({ path: join(dir, 'store'), maxDbs: 8 });
    try {
      expect(migrateFormat(root, openDbs(root), dir, { stopAfter: 0 })).to.equal(true);
    } finally {
      await root.close();
    }
  });

  it('a migration stopped midway (as if killed) finishes at the next open', async () => {
    await writeOld();
    const root = open({ path: join(dir, 'store'), maxDbs: 8 });
    try {
      expect(migrateFormat(root, openDbs(root), dir, { batch: 4, stopAfter: 3 })).to.equal(false);
    } finally {
      await root.close();
    }
    expect(runCheck(dir).status, 'format not set yet').to.equal(2);
    await expectAllReadable();
  });

  it('an old value that does not decode is left as it is and reads as damaged', async () => {
    await writeOld();
    const root = open({ path: join(dir, 'store'), maxDbs: 8 });
    root.openDB<Buffer, string>({ name: 'states', encoding: 'binary' }).putSync('group:bad', Buffer.from('{"id":"bad",'));
    await root.close();
    await withStore(dir, (s) => {
      expect(isDamagedState(s.states.get('group:bad'))).to.equal(true);
      expect(s.states.get('group:G1')).to.deep.equal({ id: 'G1', group: [A, B] });
    });
    expect(checkStore(dir).damaged).to.deep.equal([{ db: 'states', where: 'group:bad' }]);
  });
});

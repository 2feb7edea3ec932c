import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backupDataDir } from '../src/store/backup';
import { partitionDir } from '../src/store/layout';
import { listSegments } from '../src/store/journal';
import { listSnapshots } from '../src/store/snapshot';
import { PartitionStore } from '../src/store/partition';
import { captureLogs, rm, tmpDir, type Captured } from './support/store-log';
import { startWriter } from './support/store-child';
import { COLD_DIR } from '../src/store/cold';
import { KEY_FILE } from '../src/chain/token';

interface Rec { p: number; i: number }
interface State { n: number; sum: number }

/** Opens every partition of a copy and checks it is a consistent prefix of what the writer wrote. */
async function checkCopy(dir: string, partitions: number): Promise<number[]> {
  const lsns: number[] = [];
  for (let p = 0; p < partitions; p++) {
    const r = await PartitionStore.open({ dir, partition: p, fsync: 'off', partitions });
    const state: State = { ...((r.snapshot as State | null) ?? { n: 0, sum: 0 }) };
    expect(state.n).to.equal(r.snapshotLsn);
    (r.records as Rec[]).forEach((rec, k) => {
      expect(rec).to.include({ p, i: r.snapshotLsn + 1 + k });
      state.n++;
      state.sum += rec.i;
    });
    expect(state.n).to.equal(r.store.lsn);
    expect(state.sum).to.equal((state.n * (state.n + 1)) / 2);
    lsns.push(r.store.lsn);
    await r.store.close();
  }
  return lsns;
}

describe('store online backup', function () {
  this.timeout(60_000);
  let root: string;
  let logs: Captured;
  beforeEach(() => {
    root = tmpDir('backup');
    logs = captureLogs();
  });
  afterEach(() => {
    logs.restore();
    rm(root);
  });

  it('copies a data dir while a writer appends and checkpoints; each copy opens cleanly elsewhere', async () => {
    const src = path.join(root, 'data');
    const w = startWriter(src, 'off', 4, 40);
    try {
      await w.waitFor(200);
      fs.writeFileSync(path.join(src, 'server.key'), 'secret-key-material\n');
      fs.writeFileSync(path.join(src, 'status.json'), '{"x":1}\n');
      const copies: string[] = [];
      for (let k = 0; k < 5; k++) {
        const dest = path.join(root, `copy${k}`);
        const res = await backupDataDir(src, dest);
        expect(res.files).to.be.greaterThan(4);
        expect(res.bytes).to.be.greaterThan(0);
        copies.push(dest);
        await new Promise((r) => setTimeout(r, 30));
      }
      expect(w.total()).to.be.greaterThan(200);
      let previous = [0, 0, 0, 0];
      for (const dest of copies) {
        expect(fs.readFileSync(path.join(dest, 'server.key'), 'utf8')).to.equal('secret-key-material\n');
        expect(fs.existsSync(path.join(dest, 'meta.json'))).to.equal(true);
        for (let p = 0; p < 4; p++) {
          // Only the newest snapshot and the segments after it travel.
          const pdir = partitionDir(dest, p);
          expect(listSnapshots(pdir).length).to.be.at.most(1);
          const snap = listSnapshots(pdir)[0]?.lsn ?? 0;
          const segs = listSegments(pdir);
          expect(segs.length).to.be.greaterThan(0);
          expect(segs[0]!.firstLsn).to.be.at.most(snap + 1);
        }
        const lsns = await checkCopy(dest, 4);
        lsns.forEach((l, p) => expect(l).to.be.at.least(previous[p]!));
        previous = lsns;
      }
      // The copies are not empty: the writer had written before the first one.
      expect(previous.reduce((a, b) => a + b, 0)).to.be.greaterThan(100);
    } finally {
      await w.kill();
    }
    expect(logs.warnings().filter((l) => /snapshot: unusable/.test(String(l.msg)))).to.deep.equal([]);
  });

  it('refuses a non-empty destination and a source that is not a data dir, leaving nothing behind', async () => {
    const src = path.join(root, 'data');
    const dest = path.join(root, 'dest');
    fs.mkdirSync(dest);
    fs.writeFileSync(path.join(dest, 'x'), '');
    let err: unknown;
    await backupDataDir(src, dest).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/not an IMGC data dir/);
    const r = await PartitionStore.open({ dir: src, partition: 0, fsync: 'off', partitions: 1 });
    r.store.append([{ p: 0, i: 1 }]);
    await r.store.close();
    err = undefined;
    await backupDataDir(src, dest).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/not empty/);
    expect(fs.readdirSync(root).sort()).to.deep.equal(['data', 'dest']);
  });

  it('keeps the server key private (0600, even from a looser source), other files\' modes, and makes every directory 0700', async () => {
    const src = path.join(root, 'data');
    for (const [dir, p, n] of [[src, 0, 2], [src, 1, 2], [path.join(src, 'accounts'), 0, 1]] as const) {
      const r = await PartitionStore.open({ dir, partition: p, fsync: 'off', partitions: n });
      r.store.append([{ p, i: 1 }]);
      await r.store.close();
    }
    fs.mkdirSync(path.join(partitionDir(src, 0), COLD_DIR));
    fs.writeFileSync(path.join(partitionDir(src, 0), COLD_DIR, 'GDcoldgroup1.json'), '{}');
    const mode = (f: string): number => fs.statSync(f).mode & 0o777;
    const key = path.join(src, KEY_FILE);
    fs.writeFileSync(key, 'aa'.repeat(32) + '\n', { mode: 0o600 });
    fs.chmodSync(key, 0o600);
    fs.writeFileSync(path.join(src, 'shared.json'), '{}');
    fs.chmodSync(path.join(src, 'shared.json'), 0o640);
    /** Every directory under `d`, `d` included. */
    const dirs = (d: string): string[] => [d, ...fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => dirs(path.join(d, e.name)))];

    const dest = path.join(root, 'copy');
    await backupDataDir(src, dest);
    expect(mode(path.join(dest, KEY_FILE)).toString(8)).to.equal('600');
    expect(fs.readFileSync(path.join(dest, KEY_FILE), 'utf8')).to.equal(fs.readFileSync(key, 'utf8'));
    expect(mode(path.join(dest, 'shared.json')).toString(8)).to.equal('640');
    const all = dirs(dest);
    expect(all.map((d) => path.relative(dest, d)).sort()).to.include.members(['', 'accounts', 'p00', 'p01', path.join('p00', COLD_DIR)]);
    expect(all.filter((d) => mode(d) !== 0o700).map((d) => `${path.relative(dest, d)}: ${mode(d).toString(8)}`)).to.deep.equal([]);

    // A key left readable by others in the source is still private in the copy.
    fs.chmodSync(key, 0o644);
    const dest2 = path.join(root, 'copy2');
    await backupDataDir(src, dest2);
    expect(mode(path.join(dest2, KEY_FILE)).toString(8)).to.equal('600');
  });

  it('npm run backup -- DEST --data DIR produces a startable copy', async () => {
    const src = path.join(root, 'data');
    const r = await PartitionStore.open({ dir: src, partition: 1, fsync: 'always', partitions: 2 });
    r.store.append([{ p: 1, i: 1 }, { p: 1, i: 2 }]);
    await r.store.checkpoint({ n: 2, sum: 3 });
    r.store.append([{ p: 1, i: 3 }]);
    const dest = path.join(root, 'out');
    const tool = path.join(__dirname, '..', 'src', 'tools', 'backup.js');
    const run = spawnSync(process.execPath, [tool, dest, '--data', src], { encoding: 'utf8', env: { ...process.env, IMGC_LOG_LEVEL: 'info' } });
    expect(run.status, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.match(/backup done/);
    await r.store.close();
    expect(await checkCopy(dest, 2)).to.deep.equal([0, 3]);
    const bad = spawnSync(process.execPath, [tool], { encoding: 'utf8' });
    expect(bad.status).to.equal(2);
  });
});

import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backupDataDir } from '../src/store/backup';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import { scratchEachTest, type Captured } from './support/store-log';

interface Flushed { offset: number; conv: string; head: string }

/** A writer in another process (test/support/lmdb-store-child.ts) appending to the store of `dir` until killed. */
function startWriter(dir: string): { child: ChildProcess; got: Flushed[]; waitFor(n: number): Promise<void> } {
  const child = spawn(process.execPath, [path.join(__dirname, 'support', 'lmdb-store-child.js'), dir, 'grouped'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, IMGC_LOG_LEVEL: 'silent' },
  });
  const got: Flushed[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    const lines = (partial + s).split('\n');
    partial = lines.pop()!;
    for (const line of lines) got.push(JSON.parse(line) as Flushed);
  });
  const waitFor = async (n: number): Promise<void> => {
    for (let i = 0; i < 400 && got.length < n; i++) await new Promise((r) => setTimeout(r, 25));
    expect(got.length, 'records the writer made durable').to.be.at.least(n);
  };
  return { child, got, waitFor };
}

/** Opens a copy and checks it holds exactly the writer's records up to its last offset, each whole. */
async function checkCopy(dir: string, written: Flushed[], durableBefore: number): Promise<number> {
  const s = LmdbStore.open({ dir, fsync: 'off' });
  try {
    const last = s.stats().lastOffset;
    expect(last, 'the copy has everything durable before the backup began').to.be.at.least(durableBefore);
    const expected = new Map<number, Flushed>(written.filter((w) => w.offset <= last).map((w) => [w.offset, w]));
    let seen = 0;
    for (const conv of ['g:a', 'g:b', 'd:x:y']) {
      for (const e of s.log.read({ conv, limit: 1_000_000, direction: 'forward' })) {
        seen++;
        const w = expected.get(e.offset);
        if (w) expect(e.head, `record ${e.offset}`).to.equal(w.head);
        else expect(e.head, `record ${e.offset} (made durable after the child's last report)`).to.match(/^\{"pid":\d+,"i":\d+/);
      }
    }
    expect(seen, 'no gaps: one record per offset').to.equal(last);
    return last;
  } finally {
    await s.close();
  }
}

describe('store online backup', function () {
  this.timeout(60_000);
  let root: string;
  let logs: Captured;
  scratchEachTest('backup', (d, l) => { root = d; logs = l; });

  it('copies a data dir while another process writes; each copy opens cleanly elsewhere, the key stays 0600', async () => {
    const src = path.join(root, 'data');
    const w = startWriter(src);
    try {
      await w.waitFor(300);
      // Even a key left readable by others in the source is private in every copy.
      fs.writeFileSync(path.join(src, 'server-key.seed'), 'secret-key-material\n', { mode: 0o644 });
      fs.writeFileSync(path.join(src, 'legacy-import.json'), '{"x":1}\n');
      const lasts: number[] = [];
      for (let k = 0; k < 3; k++) {
        const dest = path.join(root, `copy${k}`);
        const before = Math.max(...w.got.map((g) => g.offset));
        const res = await backupDataDir(src, dest);
        expect(res.files).to.equal(3);
        expect(fs.statSync(path.join(dest, 'server-key.seed')).mode & 0o777).to.equal(0o600);
        expect(fs.statSync(dest).mode & 0o077, 'copy directory private').to.equal(0);
        expect(fs.readFileSync(path.join(dest, 'legacy-import.json'), 'utf8')).to.equal('{"x":1}\n');
        lasts.push(await checkCopy(dest, w.got, before));
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(lasts[2]!, 'later copies hold more').to.be.greaterThan(lasts[0]!);
    } finally {
      w.child.kill('SIGKILL');
    }
  });

  it('refuses a non-empty destination, a source that is not a data dir, and a destination inside it through a symlink', async () => {
    const src = path.join(root, 'data');
    const s = LmdbStore.open({ dir: src, fsync: 'off' });
    s.log.append({ conv: 'g:a', at: 1, from: null, head: '{"x":1', tail: '}' });
    await s.close();
    let err: unknown;
    await backupDataDir(path.join(root, 'nothing'), path.join(root, 'd1')).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/not an IMGC data dir/);
    const full = path.join(root, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'x'), 'x');
    err = undefined;
    await backupDataDir(src, full).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/not empty/);
    fs.symlinkSync(src, path.join(root, 'link'));
    err = undefined;
    await backupDataDir(src, path.join(root, 'link', 'inside')).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/outside the data dir/);
    expect(fs.readdirSync(root).sort()).to.deep.equal(['data', 'full', 'link']);
  });

  it('npm run backup -- DEST --data DIR produces a copy that opens with the same records', async () => {
    const src = path.join(root, 'data');
    const s = LmdbStore.open({ dir: src, fsync: 'always' });
    for (let i = 0; i < 3; i++) s.log.append({ conv: 'd:x:y', at: i, from: 'x', head: `{"i":${i}`, tail: '}' });
    await s.flush();
    const dest = path.join(root, 'out');
    const tool = path.join(__dirname, '..', 'src', 'tools', 'backup.js');
    const run = spawnSync(process.execPath, [tool, dest, '--data', src], { encoding: 'utf8', env: { ...process.env, IMGC_LOG_LEVEL: 'info' } });
    expect(run.status, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.match(/backup done/);
    await s.close();
    const copy = LmdbStore.open({ dir: dest, fsync: 'off' });
    expect(copy.log.read({ conv: 'd:x:y', limit: 10, direction: 'forward' }).map((e) => e.head)).to.deep.equal(['{"i":0', '{"i":1', '{"i":2']);
    expect(copy.epoch).to.equal(s.epoch);
    await copy.close();
    const bad = spawnSync(process.execPath, [tool], { encoding: 'utf8' });
    expect(bad.status).to.equal(2);
  });
});

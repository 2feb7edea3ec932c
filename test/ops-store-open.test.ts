/**
 * Start-up on a store that is damaged or gone, tried as an unlucky operator: LMDB's crash on a
 * damaged file (SIGSEGV, SIGBUS, SIGABRT) happens in the check's child process, and the service
 * exits 2 with one line naming the store; a data directory that holds the keys but lost its store
 * refuses to start unless --new-store begins a new one. The data directories are made by the real
 * service and filled through the real store; damage is done to the bytes on disk.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { backupDataDir } from '../src/store/backup';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import { runToExit, startServer, tempDir, type RunResult } from './support/server';

const PAGE = 4096;

/** The lines a run printed at fatal, parsed. */
function fatalLines(output: string): string[] {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 60).map((l) => l.msg);
}

async function run(dataDir: string, extra: string[] = []): Promise<RunResult> {
  return runToExit(['--port', '0', '--host', '127.0.0.1', '--status-port', '0', '--auth', 'open', '--workers', '1', '--data', dataDir, ...extra], { timeoutMs: 30_000 });
}

/** Exit 2 with one fatal line that names the store and says `found` and how to restore; nothing of a crash. */
function expectRefused(r: RunResult, dataDir: string, found: RegExp): void {
  expect(r.signal, r.output).to.equal(null);
  expect(r.code, r.output).to.equal(2);
  const lines = fatalLines(r.output);
  expect(lines, r.output).to.have.length(1);
  expect(lines[0]).to.contain(path.join(dataDir, 'store'));
  expect(lines[0]).to.match(found);
  expect(lines[0]).to.match(/--data <a backup directory>/);
  expect(r.output.split('\n').filter((l) => l.trim() !== ''), 'nothing but the fatal line').to.have.length(1);
  expect(r.output).to.not.match(/Assertion|Segmentation|Bus error|at .*\.js:\d+/);
}

function copyDir(from: string): string {
  const to = path.join(tempDir('imgc-store-open-'), 'data');
  fs.cpSync(from, to, { recursive: true });
  return to;
}

describe('operations: a store that is damaged or gone', function () {
  this.timeout(120_000);
  /** A data directory made by the service (keys and store), its store then filled and compacted (every page in use). */
  let made: string;

  before(async () => {
    const srv = await startServer(['--workers', '1']);
    await srv.stop({ keepData: true });
    const store = LmdbStore.open({ dir: srv.dataDir, fsync: 'off' });
    for (let i = 0; i < 20_000; i++) store.log.append({ conv: `d:a${i % 200}:b`, at: i, from: `a${i % 200}`, head: `{"text":"message ${i}"`, tail: '}' });
    await store.close();
    made = path.join(tempDir('imgc-store-open-'), 'data');
    await backupDataDir(srv.dataDir, made, { log: pino({ level: 'silent' }) });
    srv.removeData();
    fs.rmSync(srv.dataDir, { recursive: true, force: true });
  });

  it('a zeroed page after the meta pages: exit 2, one line naming the store', async () => {
    const dir = copyDir(made);
    const file = path.join(dir, 'store', 'data.mdb');
    const pages = fs.statSync(file).size / PAGE;
    expect(pages, 'a store of many pages').to.be.greaterThan(50);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(PAGE), 0, PAGE, Math.floor(pages / 2) * PAGE);
    fs.closeSync(fd);
    expectRefused(await run(dir), dir, /cannot be used: LMDB (aborted|cannot open)/);
  });

  it('damaged meta pages (the first 8 KiB random): exit 2, one line naming the store', async () => {
    const dir = copyDir(made);
    const fd = fs.openSync(path.join(dir, 'store', 'data.mdb'), 'r+');
    fs.writeSync(fd, randomBytes(2 * PAGE), 0, 2 * PAGE, 0);
    fs.closeSync(fd);
    expectRefused(await run(dir), dir, /cannot be used: LMDB/);
  });

  it('a file truncated to half: exit 2, one line naming the store', async () => {
    const dir = copyDir(made);
    const file = path.join(dir, 'store', 'data.mdb');
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    expectRefused(await run(dir), dir, /cannot be used: LMDB crashed with SIGBUS opening it: the file is damaged or truncated/);
  });

  it('the keys without a store (data.mdb deleted, truncated to 0, store/ removed): exit 2, one line', async () => {
    const cases: Array<[string, (dir: string) => void, RegExp]> = [
      ['deleted', (dir) => fs.rmSync(path.join(dir, 'store', 'data.mdb')), /data\.mdb is missing/],
      ['truncated to 0', (dir) => fs.truncateSync(path.join(dir, 'store', 'data.mdb'), 0), /data\.mdb is empty \(0 bytes\)/],
      ['store/ removed', (dir) => fs.rmSync(path.join(dir, 'store'), { recursive: true }), /data\.mdb is missing/],
    ];
    for (const [what, damage, found] of cases) {
      const dir = copyDir(made);
      damage(dir);
      const r = await run(dir);
      expectRefused(r, dir, found);
      expect(fatalLines(r.output)[0], what).to.match(/is gone: .* holds this service's keys \(server-key\.seed, resume-key\).*--new-store/);
      expect(fs.existsSync(path.join(dir, 'store', 'data.mdb')) && fs.statSync(path.join(dir, 'store', 'data.mdb')).size > 0, `${what}: no new store was made`).to.equal(false);
    }
  });

  it('with --new-store the keys without a store start a new one, with a warning', async () => {
    const dir = copyDir(made);
    fs.rmSync(path.join(dir, 'store'), { recursive: true });
    const srv = await startServer(['--new-store'], { dataDir: dir });
    try {
      expect(srv.output()).to.match(/--new-store: .*data\.mdb is missing; a new, empty store begins/);
    } finally {
      await srv.stop();
    }
  });

  it('a directory with only the status token (a first start that stopped early) starts as a fresh one', async () => {
    const dir = tempDir('imgc-store-open-');
    fs.writeFileSync(path.join(dir, 'status-token'), 'x'.repeat(43) + '\n', { mode: 0o600 });
    const srv = await startServer([], { dataDir: dir });
    await srv.stop();
    expect(fs.statSync(path.join(dir, 'store', 'data.mdb')).size).to.be.greaterThan(0);
  });
});

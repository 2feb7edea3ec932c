/**
 * POST /backup tried as a careless operator: destinations in /proc (the main thread once spun there),
 * non-empty, a file, are answered at once (400 or 409, plain words) while /healthz keeps answering;
 * a backup of a populated store runs off the main thread (/healthz within 200 ms throughout), and
 * SIGTERM during one ends the process within the shutdown deadline.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import { startServer, statusFetch, tempDir, type ServerHandle } from './support/server';

async function post(srv: ServerHandle, dest: string): Promise<{ status: number; ms: number; body: { ok: boolean; error?: string } }> {
  const t0 = Date.now();
  const res = await statusFetch(srv, `/backup?dest=${encodeURIComponent(dest)}`, { method: 'POST', signal: AbortSignal.timeout(60_000) });
  return { status: res.status, ms: Date.now() - t0, body: (await res.json()) as { ok: boolean; error?: string } };
}

async function healthzMs(srv: ServerHandle): Promise<number> {
  const t0 = performance.now();
  const res = await statusFetch(srv, '/healthz');
  expect(res.status).to.equal(200);
  await res.arrayBuffer();
  return performance.now() - t0;
}

describe('status: online backups never block the service', function () {
  this.timeout(120_000);
  let srv: ServerHandle;
  let out: string;

  before(async () => {
    // A populated store: the service makes the directory, the store is filled offline (tens of MB).
    const first = await startServer(['--workers', '1']);
    await first.stop({ keepData: true });
    const store = LmdbStore.open({ dir: first.dataDir, fsync: 'off' });
    for (let i = 0; i < 150_000; i++) {
      store.log.append({ conv: `d:a${i % 300}:b`, at: i, from: `a${i % 300}`, head: `{"text":"${'message '.repeat(12)}${i}"`, tail: '}' });
      if (i % 5000 === 0) await new Promise((r) => setImmediate(r));
    }
    await store.close();
    srv = await startServer(['--workers', '1', '--shutdown-ms', '3000'], { dataDir: first.dataDir, status: true });
    out = tempDir('imgc-backup-dest-');
  });

  after(async () => {
    await srv?.stop();
    if (srv) fs.rmSync(srv.dataDir, { recursive: true, force: true });
    if (out) fs.rmSync(out, { recursive: true, force: true });
  });

  it('/proc/self/x and other paths through /proc, /sys, /dev: 400 at once, /healthz still answers', async () => {
    fs.symlinkSync('/proc/self', path.join(out, 'to-proc'));
    for (const dest of ['/proc/self/x', '/sys/x', '/dev/shm/x', path.join(out, 'to-proc', 'x')]) {
      const r = await post(srv, dest);
      expect(r.status, `${dest}: ${JSON.stringify(r.body)}`).to.equal(400);
      expect(r.ms, dest).to.be.below(2000);
      expect(r.body.error).to.match(/\/proc, \/sys, \/dev cannot hold a backup/);
      expect(await healthzMs(srv)).to.be.below(1000);
    }
  });

  it('a non-empty destination: 409; a file, a path through a file, a name too long: 400 in plain words', async () => {
    const full = path.join(out, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'x'), 'x');
    const nonEmpty = await post(srv, full);
    expect(nonEmpty.status).to.equal(409);
    expect(nonEmpty.body.error).to.match(/exists and is not empty/);
    const file = path.join(out, 'file');
    fs.writeFileSync(file, 'x');
    const cases: Array<[string, RegExp]> = [
      [file, /is not a directory/],
      [path.join(file, 'x'), /file is not a directory/],
      [path.join(out, 'n'.repeat(300)), /the name is too long/],
    ];
    for (const [dest, plain] of cases) {
      const r = await post(srv, dest);
      expect(r.status, `${dest}: ${JSON.stringify(r.body)}`).to.equal(400);
      expect(r.body.error).to.match(plain);
      expect(r.body.error, 'no errno text').to.not.match(/E[A-Z]{3,}|scandir|mkdir|lstat/);
    }
  });

  it('during a backup of a populated store /healthz answers within 200 ms', async () => {
    const dest = path.join(out, 'copy');
    let done = false;
    const backup = post(srv, dest).finally(() => { done = true; });
    const times: number[] = [];
    while (!done) {
      times.push(await healthzMs(srv));
      await new Promise((r) => setTimeout(r, 10));
    }
    const r = await backup;
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    expect(fs.statSync(path.join(dest, 'store', 'data.mdb')).size).to.be.greaterThan(10 * 1024 * 1024);
    expect(times.length, 'probes made while the backup ran').to.be.at.least(3);
    expect(Math.max(...times), `probe times ${times.map(Math.round).join(',')}`).to.be.below(200);
  });

  it('SIGTERM during a backup ends the process within the shutdown deadline', async () => {
    void post(srv, path.join(out, 'cut')).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 30));
    const t0 = Date.now();
    const exit = await srv.stop({ keepData: true, graceMs: 20_000 });
    expect(Date.now() - t0, 'within --shutdown-ms 3000 and a margin').to.be.below(5000);
    expect(exit.signal, 'not killed by the test').to.equal(null);
  });
});

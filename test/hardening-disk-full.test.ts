/**
 * A full disk must not stop the process: the real server runs on a small tmpfs that the test
 * fills. Writes are then refused with error 45007 (and a sender whose message could not be stored
 * gets 45007, never its `mid` answer), reads and sign-in backlogs go on, /readyz is 503; once the
 * test frees the space, writing comes back by itself and nothing acknowledged is missing.
 *
 * Needs root (to mount the tmpfs): otherwise every test here is skipped with a message.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getStatus, startServer, statusFetch, type ServerHandle } from './support/server';
import { Client, isMessage, isNotice, sleep, type Frame } from './support/client';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { drainQuiet, historyPage, pageAll } from './support/history';

const TMPFS_MB = 24;
const STORAGE_FULL = 45007;

/** Mounts a tmpfs of `mb` MiB at a new directory; the reason it could not, otherwise. */
function mountTmpfs(mb: number): { dir: string } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'not running as root: cannot mount a tmpfs to fill' };
  const dir = mkdtempSync(join(tmpdir(), 'imgc-diskfull-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir], { stdio: 'pipe' });
    return { dir };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `mount -t tmpfs failed: ${String((e as { stderr?: unknown }).stderr ?? e).trim()}` };
  }
}

/** Writes `path` until the file system has no space left; returns the bytes written. */
function fillUp(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(256 * 1024, 1);
  let bytes = 0;
  try {
    for (;;) {
      try {
        bytes += writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
    // What is left is less than a chunk: fill it too.
    for (let small = Buffer.alloc(4096, 1); ;) {
      try {
        bytes += writeSync(fd, small);
      } catch {
        break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

async function readyz(srv: ServerHandle): Promise<{ status: number; body: Frame }> {
  const res = await fetch(`${srv.statusUrl!}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Frame };
}

async function status(srv: ServerHandle): Promise<Frame> {
  return getStatus<Frame>(srv);
}

/** Waits for the answer to the request with `mid`: its notice, or an error echoing it. */
function answerOf(c: Client, mid: string, timeoutMs = 20_000): Promise<Frame> {
  return c.next((f) => (f.type === 'notice' && f.msg?.mid === mid) || (f.type === 'error' && f.request?.mid === mid), timeoutMs, `answer to ${mid}`);
}

describe('hardening: a full disk', function () {
  this.timeout(180_000);
  let mount: string | undefined;
  let srv: ServerHandle | undefined;
  let filler: string;
  let a: Account, b: Account, d: Account;

  before(async function () {
    const m = mountTmpfs(TMPFS_MB);
    if ('skip' in m) {
      process.stderr.write(`      skipped: ${m.skip}\n`);
      this.skip();
    }
    mount = m.dir;
    filler = join(mount, 'filler');
    await accountsReady();
    [a, b, d] = newAccounts(3) as [Account, Account, Account];
    const data = join(mount, 'data');
    mkdirSync(data);
    srv = await startServer(['--workers', '1', '--rate-limit', '100000', '--min-free-mb', '0', '--data', data], { status: true, omit: ['data'], env: { IMGC_LOG_LEVEL: 'info' } });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && srv) process.stderr.write(`server output (tail):\n${srv.output().slice(-4000)}\n`);
  });

  after(async () => {
    if (srv) await srv.stop({ keepData: true });
    if (mount !== undefined) {
      try {
        execFileSync('umount', [mount], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', mount], { stdio: 'pipe' });
      }
      rmSync(mount, { recursive: true, force: true });
    }
  });

  it('stays up, refuses writes with 45007 (never a false acknowledgement), serves reads, reports it, and resumes when space returns', async () => {
    const server = srv!;
    const sender = await Client.connect(server.url);
    await sender.signIn(a);
    const reader = await Client.connect(server.url);
    await reader.signIn(b);

    // Before: a group of A and B, and messages to B and to D (away).
    sender.request({ cat: 'group', act: 'create', list: [b.address], callback: 'g' });
    const created = await sender.next(isNotice('group', 'create'), 10_000, 'group created');
    const gid = created.msg.id as string;
    await drainQuiet(reader, 200);
    const acked: string[] = [];
    for (let i = 0; i < 5; i++) {
      const mid = `pre${i}`;
      sender.request({ cat: 'chat', act: 'chat', to: b.address, msg: { i: mid }, mid });
      expect((await answerOf(sender, mid)).type).to.equal('notice');
      acked.push(mid);
      sender.request({ cat: 'chat', act: 'chat', to: d.address, msg: { away: i }, mid: `away${i}` });
      expect((await answerOf(sender, `away${i}`)).type).to.equal('notice');
    }
    await drainQuiet(reader, 200);

    // Fill the file system, then send large messages until the store cannot take them.
    const filled = fillUp(filler);
    expect(filled, 'filler bytes').to.be.greaterThan(1024 * 1024);
    const body = 'y'.repeat(50 * 1024);
    let refused: Frame | undefined;
    const refusedMids: string[] = [];
    for (let i = 0; i < 2000 && refused === undefined; i++) {
      const mid = `fill${i}`;
      sender.request({ cat: 'chat', act: 'chat', to: b.address, msg: { i: mid, body }, mid });
      const ans = await answerOf(sender, mid);
      if (ans.type === 'notice') acked.push(mid);
      else { refused = ans; refusedMids.push(mid); }
    }
    expect(refused, 'a write was refused').to.not.equal(undefined);
    expect(refused!.code).to.equal(STORAGE_FULL);
    expect(refused!.error).to.match(/cannot store/);
    // Exactly one answer per request: no acknowledgement follows the error.
    expect(await sender.none((f) => f.type === 'notice' && f.msg?.mid === refusedMids[0], 500)).to.deep.equal([]);

    // The process is up and says it is full.
    expect(server.proc.exitCode, 'the process is still running').to.equal(null);
    const rz = await readyz(server);
    expect(rz.status).to.equal(503);
    expect(rz.body.storeWritable).to.equal(false);
    expect(String(rz.body.reason)).to.match(/store full/);
    const st = await status(server);
    expect(st.store.writable).to.equal(false);
    expect(Date.parse(st.store.since as string)).to.be.greaterThan(0);
    const metrics = await (await statusFetch(server, '/metrics')).text();
    expect(metrics).to.match(/^imgc_store_writable 0$/m);

    // Writes are refused: a direct message, a group message, a group change.
    sender.request({ cat: 'chat', act: 'chat', to: b.address, msg: 'refused', mid: 'while-full' });
    expect((await answerOf(sender, 'while-full')).code).to.equal(STORAGE_FULL);
    sender.request({ cat: 'group', act: 'chat', to: gid, msg: 'refused', mid: 'group-while-full' });
    expect((await answerOf(sender, 'group-while-full')).code).to.equal(STORAGE_FULL);
    const change = await sender.expectError({ cat: 'group', act: 'update', id: gid, key: 'nick', val: 'z' });
    expect(change.code).to.equal(STORAGE_FULL);
    expect(await reader.none(isMessage((f) => f.msg === 'refused'), 300)).to.deep.equal([]);

    // Reads go on: history, detail, and the backlog of an account signing in.
    const page = await historyPage(reader, { with: a.address, limit: 100 });
    expect((page.messages as Frame[]).map((m) => (m.msg as Frame).i)).to.include.members(['pre0', 'pre4']);
    sender.request({ cat: 'group', act: 'detail', id: gid, callback: 'detail' });
    expect((await sender.next(isNotice('group', 'detail'), 10_000, 'detail')).msg.id).to.equal(gid);
    const away = await Client.connect(server.url);
    await away.signIn(d);
    const backlog = (await drainQuiet(away, 500)).filter(isMessage());
    expect(backlog.map((f) => (f.msg as Frame).away)).to.deep.equal([0, 1, 2, 3, 4]);
    expect(server.proc.exitCode, 'the process is still running').to.equal(null);

    // Space returns: writing comes back by itself within a few seconds.
    unlinkSync(filler);
    const deadline = Date.now() + 15_000;
    let back = await readyz(server);
    while (back.status !== 200 && Date.now() < deadline) {
      await sleep(250);
      back = await readyz(server);
    }
    expect(back.status, JSON.stringify(back.body)).to.equal(200);
    expect((await status(server)).store.writable).to.equal(true);
    expect((await status(server)).store.writesRefused).to.be.greaterThan(2);
    sender.request({ cat: 'chat', act: 'chat', to: b.address, msg: { i: 'after' }, mid: 'after' });
    expect((await answerOf(sender, 'after')).type).to.equal('notice');
    acked.push('after');
    expect((await reader.next(isMessage((f) => (f.msg as Frame).i === 'after'), 10_000, 'live after')).from).to.equal(a.address);
    sender.request({ cat: 'group', act: 'chat', to: gid, msg: 'group after', mid: 'group-after' });
    expect((await answerOf(sender, 'group-after')).type).to.equal('notice');

    // Nothing acknowledged is missing; nothing refused was stored.
    const all = await pageAll(reader, { with: a.address }, 'forward');
    const stored = new Set(all.messages.map((m) => (m.msg as Frame)?.i as string | undefined));
    expect(acked.length).to.be.greaterThan(5);
    for (const mid of acked) expect(stored.has(mid), `acknowledged ${mid} is stored (${stored.size} stored)`).to.equal(true);
    for (const mid of refusedMids) expect(stored.has(mid), `refused ${mid} is not stored`).to.equal(false);
    expect(all.messages.some((m) => m.msg === 'refused')).to.equal(false);
    expect(server.output()).to.match(/store full: refusing writes/);
    expect(server.output()).to.match(/store writable again/);
    // One warning, not one line per refused request.
    expect(server.output().match(/store full: refusing writes/g)).to.have.length(1);
    await Promise.all([sender.close(), reader.close(), away.close()]);
  });
});

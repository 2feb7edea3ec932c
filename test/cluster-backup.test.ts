/**
 * The operator tool `imgc-cluster` (src/tools/cluster-admin.ts) on real processes and a real
 * nats-server: a cluster backed up from JetStream and restored into a fresh nats-server, where new
 * nodes serve the same backlog, history and groups (with the same seqs); and an embedded server's
 * data directory imported into an empty cluster, where an account that was away gets its backlog.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { ClientPool, isMessage, isNotice, sleep, type Client, type Frame } from './support/client';
import { clusterName, startCluster, type ClusterHandle } from './support/cluster';
import { ask, device, makeGroup } from './support/devices';
import { natsAvailable, startNats, type NatsHandle } from './support/nats';
import { startServer, tempDir, type ServerHandle } from './support/server';

const TOOL = resolve(__dirname, '..', 'src', 'tools', 'cluster-admin.js');

interface ToolRun { code: number | null; output: string }

/** Runs the tool to its exit (SIGKILL after 30 s). */
function tool(args: string[]): Promise<ToolRun> {
  return new Promise((res) => {
    const proc = spawn(process.execPath, [TOOL, ...args], { env: { ...process.env, IMGC_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.once('exit', (code) => { clearTimeout(t); res({ code, output }); });
  });
}

const target = (nats: NatsHandle, name: string): string[] => ['--cluster', nats.url, '--cluster-name', name, '--cluster-heartbeat-ms', '250'];
const mode = (path: string): number => statSync(path).mode & 0o777;
const msgs = (h: Frame): Frame[] => h.msg.messages as Frame[];

/**
 * `ask`, again while the answer is 45003: a cluster whose nodes just started may still hand
 * partitions over, and a group call caught in a hand-over is refused with "please retry".
 */
async function askRetry(c: Client, r: Frame): Promise<Frame> {
  for (let i = 0; ; i++) {
    const f = await ask(c, r);
    if (f.code !== 45003 || i >= 20) return f;
    await sleep(250);
  }
}

/** `makeGroup` through `askRetry`: `c` creates a group of `others`; resolves once each of `members` was told. */
async function createGroup(c: Client, others: Account[], members: Client[]): Promise<string> {
  const f = await askRetry(c, { cat: 'group', act: 'create', list: others.map((a) => a.address) });
  expect(f.type, JSON.stringify(f)).to.equal('notice');
  const gid = f.msg.id as string;
  for (const m of members) await m.next((x) => isNotice('group', 'create')(x) && x.msg?.id === gid, 5000, 'create notice');
  return gid;
}

describe('cluster tools: backup, restore, import (imgc-cluster)', function () {
  this.timeout(60_000);
  const clients = new ClientPool();
  const cleanup: Array<() => Promise<unknown>> = [];
  const on = (cluster: ClusterHandle, i: number, acc: Account, name: string): Promise<Client> => device(clients, cluster.nodes[i]!.url, acc, name, false);

  before(async function () {
    if (!natsAvailable()) this.skip();
    await accountsReady();
  });
  afterEach(async () => {
    await clients.closeAll();
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  it('backup from JetStream, restore into a fresh nats-server: new nodes serve the backlog, history and groups with the same seqs', async () => {
    const nats1 = await startNats();
    cleanup.push(() => nats1.stop());
    const c1 = await startCluster(2, { nats: nats1 });
    cleanup.push(() => c1.stop());
    const [alice, bob, carol] = newAccounts(3) as [Account, Account, Account];
    const a = await on(c1, 0, alice, 'alice@0');
    const b = await on(c1, 1, bob, 'bob@1');
    const gid = await createGroup(a, [bob, carol], [b]);
    for (let i = 0; i < 3; i++) expect((await askRetry(b, { cat: 'group', act: 'chat', to: gid, msg: `g${i}` })).type).to.equal('notice');
    const groupSeqs = (await a.nextN(3, isMessage(), 5000)).map((f) => f.seq as number);
    for (const m of ['d0', 'd1']) expect((await ask(a, { cat: 'chat', act: 'chat', to: carol.address, msg: m })).type).to.equal('notice');
    a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'hi bob' });
    await b.next(isMessage(), 5000);
    // Positions reach the engine within 250 ms of a move (PositionBook); one moved in the last
    // moments before a node's graceful stop may not (see the note in docs/operations.md).
    await sleep(600);
    await clients.closeAll();
    await c1.stop();

    const dest = join(tempDir('imgc-cluster-backup-'), 'backup');
    cleanup.push(async () => rmSync(resolve(dest, '..'), { recursive: true, force: true }));
    const bk = await tool(['backup', dest, ...target(nats1, c1.name)]);
    expect(bk.code, bk.output).to.equal(0);
    expect(mode(dest)).to.equal(0o700);
    for (const f of ['ledger.jsonl', 'positions.json', 'meta.json', 'imgc-cluster-backup.json']) expect(mode(join(dest, f)), f).to.equal(0o600);
    const marker = JSON.parse(readFileSync(join(dest, 'imgc-cluster-backup.json'), 'utf8')) as Record<string, unknown>;
    expect(marker).to.include({ cluster: c1.name, format: 'imgc-cluster-backup' });
    const lines = readFileSync(join(dest, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number; subject: string; data: { ops: Array<{ t: string }> } });
    expect(lines.length).to.equal(marker.messages).and.be.greaterThan(0);
    expect(lines.at(-1)!.seq).to.equal(marker.lastSeq);
    expect(lines.some((l) => l.data.ops.some((o) => o.t === 'claim'))).to.equal(true);
    expect(JSON.parse(readFileSync(join(dest, 'meta.json'), 'utf8'))['resume-key']).to.match(/^[0-9a-f]{64}$/);
    expect(Object.keys(JSON.parse(readFileSync(join(dest, 'positions.json'), 'utf8')) as object)).to.include(`a.${alice.address}`);
    // A backup never goes into a directory with something in it.
    expect((await tool(['backup', dest, ...target(nats1, c1.name)])).code).to.equal(2);

    // Into the cluster it came from (its stream is not empty): refused, nothing written.
    const refused = await tool(['restore', dest, ...target(nats1, c1.name)]);
    expect(refused.code, refused.output).to.equal(2);
    expect(refused.output).to.include('is not empty');

    const nats2 = await startNats();
    cleanup.push(() => nats2.stop());
    const rs = await tool(['restore', dest, ...target(nats2, c1.name)]);
    expect(rs.code, rs.output).to.equal(0);
    const again = await tool(['restore', dest, ...target(nats2, c1.name)]);
    expect(again.code, again.output).to.equal(2);

    const c2 = await startCluster(2, { nats: nats2, name: c1.name });
    cleanup.push(() => c2.stop());
    // Carol was away throughout: her backlog, on a node that never saw the old cluster, with the old seqs.
    const c = await on(c2, 1, carol, 'carol@1');
    const backlog = await c.nextN(5, isMessage(), 10_000);
    expect(backlog.map((f) => f.msg).sort()).to.deep.equal(['d0', 'd1', 'g0', 'g1', 'g2']);
    expect(backlog.filter((f) => f.group === gid).map((f) => f.seq)).to.deep.equal(groupSeqs);
    const a2 = await on(c2, 0, alice, 'alice@0');
    const h = await ask(a2, { cat: 'chat', act: 'history', with: carol.address, limit: 10 });
    expect(h.type, JSON.stringify(h)).to.equal('notice');
    expect(msgs(h).map((f) => f.msg)).to.deep.equal(['d0', 'd1']);
    const gh = await ask(a2, { cat: 'chat', act: 'history', group: gid, limit: 10 });
    expect(msgs(gh).map((f) => f.seq)).to.deep.equal(groupSeqs);
    const d = await askRetry(c, { cat: 'group', act: 'detail', id: gid });
    expect(d.type, JSON.stringify(d)).to.equal('notice');
    expect(d.msg.group).to.deep.equal([alice.address, bob.address, carol.address]);
    // The restored cluster goes on: a new message gets a seq after every restored one.
    const b2 = await on(c2, 0, bob, 'bob@0');
    const sent = await askRetry(b2, { cat: 'group', act: 'chat', to: gid, msg: 'after' });
    expect(sent.type, JSON.stringify(sent)).to.equal('notice');
    const live = await c.next(isMessage((f) => f.msg === 'after'), 5000);
    expect(live.seq).to.be.greaterThan(Math.max(...groupSeqs));
    // Alice had received g0..g2 live before the backup: her position came back, so they do not come again.
    expect((await a2.none(isMessage((f) => /^g\d$/.test(String(f.msg))), 300))).to.deep.equal([]);
  });

  it('import: an embedded data directory moves into an empty cluster; the away account gets its backlog there', async () => {
    const srv: ServerHandle = await startServer();
    cleanup.push(async () => { await srv.stop(); srv.removeData(); });
    const [alice, bob, carol] = newAccounts(3) as [Account, Account, Account];
    const a = await device(clients, srv.url, alice, 'alice', false);
    const b = await device(clients, srv.url, bob, 'bob', false);
    const gid = await makeGroup(a, [bob, carol], [b]);
    // Bob's device has a key package in the directory (end to end): it moves with the import.
    expect((await ask(b, { cat: 'keys', act: 'publish', device: 'ab'.repeat(32), packages: ['AAAA'] })).type).to.equal('notice');
    // A group made and destroyed: its log goes, leaving a gap in the offsets the import closes.
    const gone = await makeGroup(a, [bob], [b]);
    for (let i = 0; i < 3; i++) await ask(a, { cat: 'group', act: 'chat', to: gone, msg: `gone${i}` });
    expect((await ask(a, { cat: 'group', act: 'destory', id: gone })).type).to.equal('notice');
    for (const m of ['y0', 'y1']) expect((await ask(b, { cat: 'group', act: 'chat', to: gid, msg: m })).type).to.equal('notice');
    for (const m of ['x0', 'typo']) expect((await ask(a, { cat: 'chat', act: 'chat', to: carol.address, msg: m })).type).to.equal('notice');
    const before = msgs(await ask(a, { cat: 'chat', act: 'history', with: carol.address, limit: 10 }));
    const typoSeq = before.find((f) => f.msg === 'typo')!.seq as number;
    const edit = await ask(a, { cat: 'chat', act: 'edit', with: carol.address, seq: typoSeq, msg: 'fixed' });
    expect(edit.type, JSON.stringify(edit)).to.equal('notice');
    a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'z' });
    await b.next(isMessage((f) => f.msg === 'z'), 5000);
    await clients.closeAll();
    await srv.stop({ keepData: true });

    const nats = await startNats();
    cleanup.push(() => nats.stop());
    const name = clusterName();
    const empty = tempDir();
    cleanup.push(async () => rmSync(empty, { recursive: true, force: true }));
    expect((await tool(['import', empty, ...target(nats, name)])).code, 'not a data directory').to.equal(2);
    const imp = await tool(['import', srv.dataDir, ...target(nats, name)]);
    expect(imp.code, imp.output).to.equal(0);
    const again = await tool(['import', srv.dataDir, ...target(nats, name)]);
    expect(again.code, again.output).to.equal(2);
    expect(again.output).to.include('is not empty');

    const cluster = await startCluster(2, { nats, name });
    cleanup.push(() => cluster.stop());
    const c = await on(cluster, 1, carol, 'carol@1');
    const backlog = await c.nextN(4, isMessage(), 10_000);
    expect(backlog.map((f) => f.msg)).to.deep.equal(['y0', 'y1', 'x0', 'fixed']);
    const seqs = backlog.map((f) => f.seq as number);
    expect([...seqs].sort((x, y) => x - y)).to.deep.equal(seqs);
    // The edit names the original by its new seq, and the original the edit.
    const fixed = backlog[3]!;
    expect(fixed.seq, 'the destroyed group\'s offsets are closed up').to.be.lessThan(typoSeq);
    const editNotice = await c.next(isNotice('chat', 'edit'), 5000, 'the edit in the backlog');
    expect(editNotice).to.include({ edit: fixed.seq, msg: 'fixed' });
    expect(fixed.edited).to.equal(editNotice.seq);

    const a2 = await on(cluster, 0, alice, 'alice@0');
    const claimed = await askRetry(a2, { cat: 'keys', act: 'claim', accounts: [bob.address] });
    expect(claimed.msg.packages, JSON.stringify(claimed)).to.deep.equal([{ account: bob.address, device: 'ab'.repeat(32), kp: 'AAAA' }]);
    const h = await ask(a2, { cat: 'chat', act: 'history', with: carol.address, limit: 10 });
    expect(msgs(h).map((f) => [f.msg, f.seq])).to.deep.equal([['x0', seqs[2]], ['fixed', seqs[3]]]);
    const gh = await ask(a2, { cat: 'chat', act: 'history', group: gid, limit: 10 });
    expect(msgs(gh).map((f) => [f.msg, f.seq])).to.deep.equal([['y0', seqs[0]], ['y1', seqs[1]]]);
    const d = await askRetry(c, { cat: 'group', act: 'detail', id: gid });
    expect(d.type, JSON.stringify(d)).to.equal('notice');
    expect(d.msg.group).to.deep.equal([alice.address, bob.address, carol.address]);
    expect((await askRetry(c, { cat: 'group', act: 'detail', id: gone })).code).to.equal(44100);
    // Alice's position moved with her: what she had received live does not come again.
    expect(await a2.none(isMessage((f) => f.msg === 'y0' || f.msg === 'y1'), 300)).to.deep.equal([]);
    await a2.close();
    // The cluster goes on from there: a group message from another node, live, after every imported seq;
    // and in Alice's backlog (her moved position is not past it).
    const b2 = await on(cluster, 1, bob, 'bob@1');
    const sent = await askRetry(b2, { cat: 'group', act: 'chat', to: gid, msg: 'y2' });
    expect(sent.type, JSON.stringify(sent)).to.equal('notice');
    const live = await c.next(isMessage((f) => f.msg === 'y2'), 5000);
    expect(live.seq).to.be.greaterThan(Math.max(...seqs));
    const a3 = await on(cluster, 1, alice, 'alice@1');
    expect((await a3.next(isMessage(), 5000, 'alice\'s backlog')).msg).to.equal('y2');
  });
});

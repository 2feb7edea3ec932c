/**
 * Cluster mode across whole-cluster restarts and network partitions: after every node and NATS
 * itself restart, everything is there (on the old nodes, which replay from where their replicas
 * stopped, and on a new node, which replays the whole ledger); a node cut off from NATS refuses
 * writes (and says it is not ready) instead of diverging, the others take its partitions over, and
 * when it is back it follows the cluster again.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import { connect as connectNats } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { ClientPool, isMessage, sleep, type Frame } from './support/client';
import { startCluster, type ClusterHandle, type ClusterStatus } from './support/cluster';
import { ask, device, makeGroup } from './support/devices';
import { natsAvailable, startNats } from './support/nats';
import { freePort, getStatus, runToExit, statusFetch, tempDir, type ServerHandle } from './support/server';
import { partitionOf } from '../src/hash';

const PARTITIONS = 8;

/** A TCP proxy in front of NATS: `cut()` drops every connection and refuses new ones; `mend()` lets them through again. */
class Proxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(readonly port: number, private readonly target: number) {}
  static async start(target: number): Promise<Proxy> { const p = new Proxy(await freePort(), target); await p.mend(); return p; }
  mend(): Promise<void> {
    this.server = createServer((inbound) => {
      const out = netConnect(this.target, '127.0.0.1');
      for (const s of [inbound, out]) { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); s.on('error', () => s.destroy()); }
      inbound.pipe(out); out.pipe(inbound);
    });
    return new Promise((res) => this.server!.listen(this.port, '127.0.0.1', () => res()));
  }
  cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((res) => this.server!.close(() => res()));
  }
}

const historyTexts = (h: Frame): string[] => {
  const list = (h.msg?.messages ?? []) as Frame[];
  return list.map((m) => String(m.msg));
};

describe('cluster: restarts and partitions', function () {
  this.timeout(120_000);
  const pool = new ClientPool();
  before(async function () {
    if (!natsAvailable()) this.skip();
    await accountsReady();
  });
  afterEach(() => pool.closeAll());

  it('restart the whole cluster (NATS too): every node, old or new, has everything', async () => {
    const nats = await startNats();
    const cluster: ClusterHandle = await startCluster(2, { nats, args: ['--partitions', String(PARTITIONS)] });
    const [alice, bob, carol] = newAccounts(3) as [Account, Account, Account];
    const a = await device(pool, cluster.nodes[0]!.url, alice, 'alice', false);
    const b = await device(pool, cluster.nodes[1]!.url, bob, 'bob', false);
    const gid = await makeGroup(a, [bob, carol], [b]);
    for (let i = 0; i < 10; i++) await ask(a, { cat: 'chat', act: 'chat', to: carol.address, msg: `d${i}` });
    for (let i = 0; i < 10; i++) await ask(b, { cat: 'group', act: 'chat', to: gid, msg: `g${i}` });
    await pool.closeAll();
    const dirs = cluster.nodes.map((n) => n.dataDir);
    await Promise.all(cluster.nodes.map((n) => n.stop({ keepData: true })));
    await nats.stop({ keepStore: true });
    const nats2 = await startNats({ port: nats.port, storeDir: nats.storeDir });
    // The same cluster again: its nodes on their data directories, and one new node with an empty one.
    const again = await startCluster(0, { nats: nats2, name: cluster.name, args: ['--partitions', String(PARTITIONS)] });
    for (const d of dirs) await again.addNode({ dataDir: d });
    await again.addNode();
    await again.ready();
    try {
      for (const node of again.nodes) {
        const c = await device(pool, node.url, carol, `carol@${node.port}`, false);
        const got = await c.nextN(20, isMessage(), 10_000, 'backlog');
        expect(got.map((f) => f.msg)).to.deep.equal([...Array.from({ length: 10 }, (_, i) => `d${i}`), ...Array.from({ length: 10 }, (_, i) => `g${i}`)]);
        const d = await ask(c, { cat: 'group', act: 'detail', id: gid });
        expect(d.msg?.group, JSON.stringify(d)).to.include(carol.address);
        const h = await ask(c, { cat: 'chat', act: 'history', group: gid, limit: 50 });
        expect(historyTexts(h)).to.include.members(['g0', 'g9']);
        await c.close();
      }
    } finally {
      await again.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
      await nats2.stop();
      rmSync(nats.storeDir, { recursive: true, force: true });
    }
  });

  it('a node cut off from NATS refuses writes and is not ready; the others take its partitions; back, it follows the cluster', async () => {
    const nats = await startNats();
    const proxy = await Proxy.start(nats.port);
    const cluster = await startCluster(2, { nats, args: ['--partitions', String(PARTITIONS)] });
    try {
      // Node x reaches NATS through the proxy. Placement depends on the nodes' random ids: a node
      // that happens to be given no partition is replaced (the test needs x to own one).
      let x: ServerHandle | undefined;
      let mine = new Set<number>();
      for (let attempt = 0; attempt < 5 && mine.size === 0; attempt++) {
        if (x) { await x.stop(); cluster.nodes.splice(cluster.nodes.indexOf(x), 1); }
        x = await cluster.addNode({ args: ['--cluster', `nats://127.0.0.1:${proxy.port}`] });
        await cluster.ready();
        mine = new Set((await getStatus<ClusterStatus>(x)).cluster.serving);
      }
      expect(mine.size).to.be.greaterThan(0);
      if (!x) throw new Error('no node x');
      const [alice, xavier, yan] = newAccounts(3) as [Account, Account, Account];
      const a = await device(pool, cluster.nodes[0]!.url, alice, 'alice@0', false);
      const xv = await device(pool, x.url, xavier, 'xavier@x', false);
      let gid = '';
      for (let i = 0; i < 40 && gid === ''; i++) {
        const id = await makeGroup(a, [xavier, yan]);
        if (mine.has(partitionOf(`group:${id}`, PARTITIONS))) gid = id;
      }
      expect(gid).to.not.equal('');
      await sleep(300);
      xv.clear();

      await proxy.cut();
      await sleep(500);
      // Writes on the cut-off node are refused, never acknowledged.
      const direct = await ask(xv, { cat: 'chat', act: 'chat', to: alice.address, msg: 'from the island' }).catch((e: unknown) => ({ type: 'timeout', error: String(e) }) as Frame);
      expect(direct.type, JSON.stringify(direct)).to.equal('error');
      expect(direct.code).to.equal(45003);
      const inGroup = await ask(xv, { cat: 'group', act: 'chat', to: gid, msg: 'island group' }).catch((e: unknown) => ({ type: 'timeout', error: String(e) }) as Frame);
      expect(inGroup.type, JSON.stringify(inGroup)).to.equal('error');
      const ready = await statusFetch(x, '/readyz');
      expect(ready.status).to.equal(503);
      // The others serve its partitions within seconds.
      let served = false;
      for (let i = 0; i < 100 && !served; i++) {
        const f = await ask(a, { cat: 'group', act: 'chat', to: gid, msg: `mainland ${i}` });
        served = f.type === 'notice';
        if (!served) await sleep(100);
      }
      expect(served, 'group served by the rest of the cluster').to.equal(true);
      expect((await ask(a, { cat: 'chat', act: 'chat', to: xavier.address, msg: 'while you were away' })).type).to.equal('notice');

      await proxy.mend();
      // Back: it follows the cluster (what happened meanwhile reaches its socket), and nothing of what it refused exists.
      const late = await xv.next((f) => isMessage()(f) && f.msg === 'while you were away', 20_000, 'the message sent during the cut');
      expect(late.from).to.equal(alice.address);
      await cluster.ready(20_000);
      const hx = await ask(xv, { cat: 'chat', act: 'history', group: gid, limit: 100 });
      const h0 = await ask(a, { cat: 'chat', act: 'history', group: gid, limit: 100 });
      expect(historyTexts(hx)).to.deep.equal(historyTexts(h0));
      expect(historyTexts(h0)).to.not.include('island group');
      const dm = await ask(a, { cat: 'chat', act: 'history', with: xavier.address, limit: 100 });
      expect(historyTexts(dm)).to.not.include('from the island');
      expect((await ask(xv, { cat: 'group', act: 'chat', to: gid, msg: 'back home' })).type).to.equal('notice');
    } finally {
      await cluster.stop();
      await proxy.cut().catch(() => undefined);
      await nats.stop();
    }
  });
});

describe('cluster: start-up refusals', function () {
  this.timeout(60_000);

  it('no NATS at --cluster: exit 2 with one line naming the cluster; a node with other partitions than the cluster: exit 2', async function () {
    const closed = await freePort();
    const r = await runToExit(['--port', String(await freePort()), '--status-port', '0', '--data', tempDir(), '--cluster', `nats://127.0.0.1:${closed}`, '--cluster-name', 'nowhere']);
    expect(r.code, r.output).to.equal(2);
    expect(r.output).to.match(/cluster nowhere at nats:\/\/127\.0\.0\.1:\d+ cannot be joined/);
    if (!natsAvailable()) return;
    const nats = await startNats();
    const cluster = await startCluster(1, { nats, args: ['--partitions', '8'] });
    try {
      const other = await runToExit(['--port', String(await freePort()), '--status-port', '0', '--data', tempDir(), '--cluster', nats.url, '--cluster-name', cluster.name, '--partitions', '16']);
      expect(other.code, other.output).to.equal(2);
      expect(other.output).to.match(/this cluster runs with \{\\?"partitions\\?":8\}/);
    } finally {
      await cluster.stop();
      await nats.stop();
    }
  });
});

describe('cluster: a poison ledger entry', function () {
  this.timeout(60_000);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  it('an unreadable message and an entry that fails to apply are skipped by every node, which go on serving', async function () {
    if (!natsAvailable()) return this.skip();
    await accountsReady();
    const nats = await startNats();
    const cluster = await startCluster(2, { nats });
    try {
      const nc = await connectNats({ servers: nats.url });
      const js = jetstream(nc);
      await js.publish(`imgc.${cluster.name}.ledger.n.evil`, 'not json');
      await js.publish(`imgc.${cluster.name}.ledger.n.evil`, JSON.stringify({ node: 'evil', at: Date.now(), ops: [{ t: 'post', post: null, at: 1 }] }));
      await nc.close();
      const [alice, bob] = newAccounts(2) as [Account, Account];
      const a = await device(pool, cluster.nodes[0]!.url, alice, 'alice@0', false);
      const b = await device(pool, cluster.nodes[1]!.url, bob, 'bob@1', false);
      expect((await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: 'after the poison' })).type).to.equal('notice');
      expect((await b.next(isMessage(), 5000)).msg).to.equal('after the poison');
      for (const n of cluster.nodes) {
        const st = await getStatus<{ cluster: { ledger: { applyFailed: number } } }>(n);
        expect(st.cluster.ledger.applyFailed).to.equal(1);
        expect(n.proc.exitCode).to.equal(null);
      }
    } finally {
      await cluster.stop();
      await nats.stop();
    }
  });
});

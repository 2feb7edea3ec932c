/**
 * Cluster mode when a node dies (SIGKILL) in the middle of direct and group traffic: its clients
 * come back on the other nodes with their resume tokens, its partitions are served again within
 * seconds, and nothing a sender saw acknowledged is lost or stored twice. Also: a resume token of
 * one node is accepted by the others, and a revocation on one node holds on all.
 */
import { expect } from 'chai';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { Client, ClientPool, isMessage, isNotice, sleep, type Frame } from './support/client';
import { startCluster, type ClusterHandle, type ClusterStatus } from './support/cluster';
import { natsAvailable } from './support/nats';
import { getStatus, type ServerHandle } from './support/server';
import { partitionOf } from '../src/hash';

const PARTITIONS = 8;

/** A signed-in device in ack mode that keeps every message by seq and can move to another node. */
class Device {
  c!: Client;
  token = '';
  readonly bySeq = new Map<number, Frame>();
  private stopped = false;

  constructor(private readonly pool: ClientPool, readonly acc: Account, readonly name: string) {}

  async connect(url: string, how: 'sig' | 'resume'): Promise<void> {
    this.c = await this.pool.connect(url, this.name);
    const r: Frame = how === 'sig' ? { act: 'active', acc: this.acc.address } : { act: 'active', acc: this.acc.address, resume: this.token };
    if (how === 'sig') { await this.c.signIn(this.acc, { signed: true }); this.token = (this.c.log.find(isNotice('chat', 'active'))!.resume as string); }
    else {
      this.c.request(r);
      const w = await this.c.next((f) => isNotice('chat', 'active')(f) || f.type === 'error', 5000, 'resume answer');
      expect(w.type, JSON.stringify(w)).to.equal('notice');
    }
    void this.pump(this.c);
  }

  /** Takes every message, keeps it by seq, acknowledges it. */
  private async pump(c: Client): Promise<void> {
    while (!this.stopped && c.open) {
      let f: Frame;
      try { f = await c.next(isMessage(), 60_000); } catch { return; }
      this.bySeq.set(f.seq as number, f);
      c.request({ cat: 'chat', act: 'ack', seq: f.seq });
    }
  }

  texts(): string[] { return [...this.bySeq.values()].map((f) => String(f.msg)); }
  stop(): void { this.stopped = true; }
}

/** Sends numbered messages with mids; keeps which were acknowledged; resends the rest (same mid) when asked. */
class Sender {
  readonly acked = new Set<string>();
  private n = 0;
  constructor(readonly name: string, private readonly frame: (text: string) => Frame) {}

  async sendOne(c: Client): Promise<void> {
    const text = `${this.name}-${this.n++}`;
    await this.send(c, text);
  }

  async send(c: Client, text: string): Promise<boolean> {
    if (!c.open) return false;
    c.request({ ...this.frame(text), mid: text, callback: text });
    try {
      const f = await c.next((x) => x.method?.callback === text || x.request?.callback === text, 8000, `answer to ${text}`);
      if (f.type === 'error') return false;
      this.acked.add(text);
      return true;
    } catch {
      return false;
    }
  }

  /** Everything sent but not acknowledged, sent again with its mid on `c` (stored once, whatever happened before). */
  async resendAll(c: Client): Promise<void> {
    for (let i = 0; i < this.n; i++) {
      const text = `${this.name}-${i}`;
      if (!this.acked.has(text)) await this.send(c, text);
    }
  }
}

describe('cluster: a node killed in the middle of traffic', function () {
  this.timeout(120_000);
  let cluster: ClusterHandle;
  const pool = new ClientPool();

  before(async function () {
    if (!natsAvailable()) this.skip();
    await accountsReady();
    cluster = await startCluster(3, { args: ['--auth', 'signed', '--partitions', String(PARTITIONS), '--group-backlog', '10000'] });
  });
  afterEach(() => pool.closeAll());
  after(async () => { await cluster?.stop(); });

  it('a resume token of one node signs in on another; `logout` with all on one node ends it on every node', async () => {
    const [acc] = newAccounts(1);
    const d = new Device(pool, acc!, 'd');
    await d.connect(cluster.nodes[0]!.url, 'sig');
    const token = d.token;
    const c2 = await pool.connect(cluster.nodes[2]!.url, 'other node');
    c2.request({ act: 'active', acc: acc!.address, resume: token });
    expect((await c2.next((f) => isNotice('chat', 'active')(f) || f.type === 'error', 5000)).type).to.equal('notice');
    const cb = 'bye';
    c2.request({ cat: 'chat', act: 'logout', all: true, callback: cb });
    await c2.next((f) => f.method?.callback === cb, 5000, 'logout answer');
    await sleep(300);
    const c1 = await pool.connect(cluster.nodes[1]!.url, 'third node');
    c1.request({ act: 'active', acc: acc!.address, resume: token });
    const f = await c1.next((x) => isNotice('chat', 'active')(x) || x.type === 'error', 5000);
    expect(f.type, JSON.stringify(f)).to.equal('error');
    expect(f.code).to.equal(44004);
  });

  it('SIGKILL: clients move with resume tokens, partitions are served again within seconds, nothing acknowledged is lost or stored twice', async () => {
    // Placement depends on the nodes' random ids (one of three may be given no partition), and a
    // node that missed heartbeats under load may be between hand-overs: wait until the placement
    // settles, then kill the node serving the most partitions; the other two play nodes 0 and 1.
    await cluster.ready(20_000);
    const placed = await Promise.all(cluster.nodes.map((s) => getStatus<ClusterStatus>(s)));
    const victim = placed.reduce((best, x, i) => (x.cluster.serving.length > placed[best]!.cluster.serving.length ? i : best), 0);
    const [n0, n1] = [0, 1, 2].filter((i) => i !== victim).map((i) => cluster.nodes[i]!) as [ServerHandle, ServerHandle];
    const victimParts = new Set(placed[victim]!.cluster.serving);
    expect(victimParts.size, 'the victim serves a partition').to.be.greaterThan(0);
    const [alice, bob, carol, dave] = newAccounts(4) as [Account, Account, Account, Account];
    const A = new Device(pool, alice, 'alice@0');
    const B = new Device(pool, bob, 'bob@victim');
    const C = new Device(pool, carol, 'carol@1');
    await A.connect(n0.url, 'sig');
    await B.connect(cluster.nodes[victim]!.url, 'sig');
    await C.connect(n1.url, 'sig');
    // A group whose partition the victim serves, with members on every node (and dave away).
    let gid = '';
    for (let i = 0; i < 40 && gid === ''; i++) {
      const cb = `mk${i}`;
      A.c.request({ cat: 'group', act: 'create', list: [bob.address, carol.address, dave.address], callback: cb });
      const id = (await A.c.next((f) => f.method?.callback === cb, 5000)).msg.id as string;
      if (victimParts.has(partitionOf(`group:${id}`, PARTITIONS))) gid = id;
    }
    expect(gid, 'a group on the victim\'s partitions').to.not.equal('');

    const ab = new Sender('ab', (t) => ({ cat: 'chat', act: 'chat', to: bob.address, msg: t }));
    const ba = new Sender('ba', (t) => ({ cat: 'chat', act: 'chat', to: alice.address, msg: t }));
    const cg = new Sender('cg', (t) => ({ cat: 'group', act: 'chat', to: gid, msg: t }));
    let running = true;
    const loop = async (s: Sender, dev: () => Device): Promise<void> => {
      while (running) { await s.sendOne(dev().c); await sleep(5); }
    };
    const loops = [loop(ab, () => A), loop(ba, () => B), loop(cg, () => C)];
    await sleep(1500);

    const killedAt = Date.now();
    await cluster.nodes[victim]!.kill('SIGKILL');
    // Bob's device comes back on node 0 with its token; the group is served again.
    await B.connect(n0.url, 'resume');
    let servedAfterMs = -1;
    for (let i = 0; i < 200; i++) {
      const cb = `d${i}`;
      C.c.request({ cat: 'group', act: 'detail', id: gid, callback: cb });
      const f = await C.c.next((x) => x.method?.callback === cb || x.request?.callback === cb, 12_000);
      if (f.type === 'notice') { servedAfterMs = Date.now() - killedAt; break; }
      await sleep(100);
    }
    expect(servedAfterMs, 'the victim\'s group served again').to.be.within(0, 8000);
    await sleep(1500);
    running = false;
    await Promise.all(loops);
    // What was not acknowledged is sent again with its mid: stored once whatever happened to the first try.
    await ba.resendAll(B.c);
    await ab.resendAll(A.c);
    await cg.resendAll(C.c);
    expect(ab.acked.size + ba.acked.size + cg.acked.size).to.be.greaterThan(30);
    await sleep(1500);

    // Every acknowledged message reached its receivers; none is there under two seqs.
    const check = (dev: Device, s: Sender): void => {
      const texts = dev.texts();
      for (const t of s.acked) expect(texts, `${dev.name} has ${t}`).to.include(t);
      const mine = texts.filter((t) => t.startsWith(`${s.name}-`));
      expect(mine.length, `${dev.name}: ${s.name} stored twice`).to.equal(new Set(mine).size);
    };
    check(B, ab);
    check(A, ba);
    check(A, cg);
    check(B, cg);
    // Dave, away all along, signs in on node 1 and reads the group from the log.
    const D = new Device(pool, dave, 'dave@1');
    await D.connect(n1.url, 'sig');
    await sleep(1500);
    check(D, cg);
    // The surviving nodes serve every partition between them.
    await cluster.ready(10_000);
    const after = await Promise.all([n0, n1].map((s) => getStatus<ClusterStatus>(s)));
    expect(after.flatMap((x) => x.cluster.serving).sort((a, b) => a - b)).to.deep.equal([...Array(PARTITIONS).keys()]);
    expect(after[0]!.cluster.nodes.length).to.equal(2);
  });
});

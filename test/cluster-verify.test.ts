/**
 * Verification by payment in a cluster: one chain watcher for the whole cluster (on the node that
 * owns the verification actor's partition), registrations and tokens asked on any node, one
 * issuer key for every node, and the watcher moving to another node when its node dies.
 */
import { expect } from 'chai';
import { DevNode } from '../src/chain/devnode/server';
import { verifyToken } from '../src/chain/token';
import { accountsReady, devAccount, newAccounts, type Account } from './support/accounts';
import { ClientPool, isNotice, sleep, type Client } from './support/client';
import { startCluster, type ClusterHandle } from './support/cluster';
import { natsAvailable } from './support/nats';
import { getStatus } from './support/server';

interface VerifyStatus { chain: unknown; verification: { issuer: string | null } }

describe('cluster: verification by payment', function () {
  this.timeout(90_000);
  let chain: DevNode;
  let cluster: ClusterHandle;
  const pool = new ClientPool();
  const target = (): Account => devAccount('Ferdie');

  before(async function () {
    if (!natsAvailable()) this.skip();
    await accountsReady();
    chain = await DevNode.start();
    cluster = await startCluster(3, { args: ['--chain', chain.url, '--verify-target', target().address] });
  });
  afterEach(() => pool.closeAll());
  after(async () => { await cluster?.stop(); await chain?.stop(); });

  /** Indexes of the live nodes that watch the chain. */
  async function watchers(): Promise<number[]> {
    const out: number[] = [];
    for (const [i, n] of cluster.nodes.entries()) {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) continue;
      if ((await getStatus<VerifyStatus>(n)).chain !== null) out.push(i);
    }
    return out;
  }

  async function reg(c: Client, account: string): Promise<Record<string, any>> {
    for (let i = 0; i < 100; i++) {
      const cb = `r${i}-${Math.random()}`;
      c.request({ cat: 'vertify', act: 'reg', account, callback: cb });
      const f = await c.next((x) => x.method?.callback === cb || x.request?.callback === cb, 8000);
      if (f.type === 'notice') return f.msg;
      expect(f.code, JSON.stringify(f)).to.equal(45003);
      await sleep(100);
    }
    throw new Error('reg never answered');
  }

  async function payAndToken(node: number): Promise<{ issuer: string }> {
    const [acc] = newAccounts(1) as [Account];
    const c = await pool.connect(cluster.nodes[node]!.url, `payer@${node}`);
    await c.signIn(acc);
    const r = await reg(c, acc.address);
    chain.addTransfer(acc.address, target().address, BigInt(r.base));
    await chain.finalizeBlock();
    const done = await c.next(isNotice('vertify', 'done'), 15_000);
    expect(done.msg.data).to.include({ account: acc.address, done: true });
    c.request({ cat: 'vertify', act: 'token', callback: 't' });
    const t = await c.next((f) => f.method?.callback === 't', 8000);
    expect(t.type, JSON.stringify(t)).to.equal('notice');
    const ok = verifyToken(t.msg.token, t.msg.issuer, Date.now());
    expect(ok.ok).to.equal(true);
    return { issuer: t.msg.issuer };
  }

  it('one watcher for the cluster; paying through any node verifies; one issuer; the watcher moves when its node dies', async () => {
    let w: number[] = [];
    for (let i = 0; i < 50 && w.length !== 1; i++) { w = await watchers(); if (w.length !== 1) await sleep(100); }
    expect(w, 'exactly one node watches the chain').to.have.length(1);
    const leader = w[0]!;
    const others = [0, 1, 2].filter((i) => i !== leader);
    const issuers = new Set((await Promise.all(cluster.nodes.map((n) => getStatus<VerifyStatus>(n)))).map((s) => s.verification.issuer));
    expect(issuers.size, 'one issuer key for the cluster').to.equal(1);

    const first = await payAndToken(others[0]!);
    expect(issuers.has(first.issuer)).to.equal(true);

    await cluster.nodes[leader]!.kill('SIGKILL');
    await cluster.ready(15_000);
    let moved: number[] = [];
    for (let i = 0; i < 100 && moved.length !== 1; i++) { moved = await watchers(); if (moved.length !== 1) await sleep(100); }
    expect(moved, 'another node watches the chain').to.have.length(1);
    expect(moved[0]).to.not.equal(leader);
    const second = await payAndToken(others[1]!);
    expect(second.issuer).to.equal(first.issuer);
  });
});

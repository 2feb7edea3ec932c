/**
 * Snapshots and a bounded ledger, end to end (real nodes, a real nats-server): the nodes write
 * their partitions' snapshots and the shared one, the ledger is trimmed below them, and a node that
 * joins afterwards starts from the snapshots (the ledger no longer holds the start), then serves
 * every conversation's whole history once the others are killed.
 */
import { expect } from 'chai';
import { directConv } from '../src/store/ports';
import { newAccounts, type Account } from './support/accounts';
import { isMessage, sleep } from './support/client';
import { clusterPerTest, startCluster, type ClusterStatus } from './support/cluster';
import { ask, device, makeGroup } from './support/devices';
import { getStatus } from './support/server';

type WithSnapshots = ClusterStatus & { cluster: { snapshots: { trims: number; trimmedEntries: number; partitionSnapshots: number; sharedSnapshots: number } } };

describe('cluster: snapshots and a trimmed ledger', function () {
  this.timeout(120_000);
  const { pool, use } = clusterPerTest();

  it('a node joining after the ledger was trimmed starts from the snapshots and serves every history', async () => {
    const args = ['--cluster-snapshot-ms', '200', '--cluster-snapshot-records', '4', '--cluster-snapshot-entries', '4'];
    const cluster = use(await startCluster(2, { args }));
    const accounts = newAccounts(12);
    const pairs = Array.from({ length: 5 }, (_, i) => [accounts[2 * i]!, accounts[2 * i + 1]!] as [Account, Account]);
    const seqs = new Map<string, number[]>();
    for (const [i, [a, b]] of pairs.entries()) {
      const from = await device(pool, cluster.nodes[i % 2]!.url, a, `a${i}`, false);
      const to = await device(pool, cluster.nodes[(i + 1) % 2]!.url, b, `b${i}`, false);
      for (let k = 0; k < 4; k++) await ask(from, { cat: 'chat', act: 'chat', to: b.address, msg: `m${i}.${k}`, mid: `p${i}k${k}` });
      seqs.set(directConv(a.address, b.address), (await to.nextN(4, isMessage(), 5000)).map((f) => f.seq as number));
    }
    const [x, y] = accounts.slice(10) as [Account, Account];
    const cx = await device(pool, cluster.nodes[0]!.url, x, 'x', false);
    const cy = await device(pool, cluster.nodes[1]!.url, y, 'y', false);
    const gid = await makeGroup(cx, [y], [cy]);
    for (let k = 0; k < 3; k++) await ask(cx, { cat: 'group', act: 'chat', to: gid, msg: `g${k}` });
    const groupSeqs = (await cy.nextN(3, isMessage(), 5000)).map((f) => f.seq as number);

    // The snapshots come, and the ledger is trimmed below them.
    const deadline = Date.now() + 30_000;
    let trimmed = 0;
    while (Date.now() < deadline && trimmed === 0) {
      await sleep(200);
      const st = await Promise.all(cluster.nodes.map((n) => getStatus<WithSnapshots>(n)));
      trimmed = st.reduce((k, s) => k + s.cluster.snapshots.trimmedEntries, 0);
    }
    expect(trimmed, 'ledger entries trimmed below the snapshots').to.be.above(0);
    pool.closeAll();

    // A new node: the ledger's start is gone, so it can only start from the snapshots.
    const fresh = await cluster.addNode({ args });
    await cluster.ready(30_000);
    await Promise.all(cluster.nodes.slice(0, 2).map((n) => n.kill('SIGKILL')));
    await cluster.ready(30_000);
    expect((await getStatus<ClusterStatus>(fresh)).cluster.serving).to.have.length(8);
    for (const [i, [a, b]] of pairs.entries()) {
      const c = await device(pool, fresh.url, a, `h${i}`, false);
      const h = await ask(c, { cat: 'chat', act: 'history', with: b.address });
      const got = ((h.msg?.messages ?? []) as Array<{ seq: number }>).map((m) => m.seq);
      expect(got, `history of pair ${i}`).to.deep.equal(seqs.get(directConv(a.address, b.address)));
    }
    const c = await device(pool, fresh.url, y, 'gy', false);
    const h = await ask(c, { cat: 'chat', act: 'history', group: gid });
    expect(((h.msg?.messages ?? []) as Array<{ seq: number }>).map((m) => m.seq), 'the group\'s history').to.deep.equal(groupSeqs);
    // The group itself (a state, from the shared snapshot) answers on the new node.
    const d = await ask(c, { cat: 'group', act: 'detail', id: gid });
    expect(d.type, JSON.stringify(d)).to.equal('notice');
    for (const n of cluster.nodes.slice(0, 2)) n.removeData();
  });
});

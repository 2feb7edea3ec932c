/**
 * The partitioned cluster on disk: each message is stored by one node, the one keeping its
 * conversation's partition, not by all (three real nodes on a real nats-server; the nodes are
 * stopped and their stores opened and read); the nodes a partition left drop their copy of it
 * (--cluster-drop-after-ms), so each message stays on one node after a node joins; and a node that
 * takes partitions over (its owner killed) fills them in from the ledger, so their history is
 * complete on it.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { convPartition } from '../src/actors/address';
import { openStore } from '../src/store/open';
import { directConv } from '../src/store/ports';
import { newAccounts, type Account } from './support/accounts';
import { isMessage, type Client } from './support/client';
import { clusterPerTest, startCluster, type ClusterHandle, type ClusterStatus } from './support/cluster';
import { ask, device } from './support/devices';
import { getStatus } from './support/server';

const PARTITIONS = 8;

describe('cluster, partitioned: where records are stored', function () {
  this.timeout(120_000);
  const { pool, use } = clusterPerTest();

  /** 12 pairs, each sends 3 messages (acknowledged); resolves with the conversations and their offsets. */
  async function traffic(c: ClusterHandle, pairs: Array<[Account, Account]>): Promise<Map<string, number[]>> {
    const seqs = new Map<string, number[]>();
    for (const [i, [a, b]] of pairs.entries()) {
      const from: Client = await device(pool, c.nodes[i % c.nodes.length]!.url, a, `a${i}`, false);
      const to: Client = await device(pool, c.nodes[(i + 1) % c.nodes.length]!.url, b, `b${i}`, false);
      for (let k = 0; k < 3; k++) await ask(from, { cat: 'chat', act: 'chat', to: b.address, msg: `m${i}.${k}`, mid: `p${i}k${k}` });
      const got = await to.nextN(3, isMessage(), 5000);
      seqs.set(directConv(a.address, b.address), got.map((f) => f.seq as number));
    }
    return seqs;
  }

  it('each message is in the store of the one node keeping its conversation, and nowhere else', async () => {
    const cluster = use(await startCluster(3, { args: ['--partitions', String(PARTITIONS)] }));
    const accounts = newAccounts(24);
    const pairs = Array.from({ length: 12 }, (_, i) => [accounts[2 * i]!, accounts[2 * i + 1]!] as [Account, Account]);
    const claims = async (): Promise<number> => (await Promise.all(cluster.nodes.map(async (n) => (await getStatus<ClusterStatus & { cluster: { ownership: { claims: number } } }>(n)).cluster.ownership.claims))).reduce((a, b) => a + b, 0);
    const claimsBefore = await claims();
    const seqs = await traffic(cluster, pairs);
    // On a loaded machine a heartbeat can come late and a partition move: the node it was on keeps the
    // copy it stored before (as a node that loses a partition does). Only without a move is
    // "nowhere else" exact.
    const moved = (await claims()) !== claimsBefore;
    const st = await Promise.all(cluster.nodes.map(async (n) => (await getStatus<ClusterStatus & { cluster: { keeps: number[] } }>(n)).cluster));
    // What a node stores is what it serves.
    for (const c of st) expect(c.keeps, `node ${c.node} keeps what it serves`).to.deep.equal(c.serving);
    const serving = st.map((c) => c.serving);
    const dirs = cluster.nodes.map((n) => join(n.dataDir, `cluster-${cluster.name}`));
    // All at once: a node stopping one at a time would see the others go and take their partitions over.
    await Promise.all(cluster.nodes.map((n) => n.kill('SIGKILL')));
    let total = 0;
    const perNode: number[] = [];
    for (const [i, dir] of dirs.entries()) {
      const store = await openStore({ backend: 'lmdb', dir, fsync: 'off' });
      let here = 0;
      for (const [conv, offsets] of seqs) {
        const records = store.log.read({ conv, limit: 100, direction: 'forward' });
        const keeps = serving[i]!.includes(convPartition(conv, PARTITIONS));
        if (keeps) expect(records.map((r) => r.offset), `${conv} on node ${i}`).to.deep.equal(offsets);
        else if (!moved) expect(records, `${conv} must not be on node ${i}`).to.deep.equal([]);
        here += records.length;
      }
      await store.close();
      perNode.push(here);
      total += here;
    }
    // Every message once in the cluster, not once per node.
    if (moved) expect(total).to.be.below(12 * 3 * 3); else expect(total).to.equal(12 * 3);
    expect(Math.max(...perNode)).to.be.below(total);
    for (const n of cluster.nodes) n.removeData();
  });

  it('partitions that move to a joining node are dropped by the nodes they left, after --cluster-drop-after-ms: each message is then on one node', async () => {
    const cluster = use(await startCluster(2, { args: ['--partitions', String(PARTITIONS), '--cluster-drop-after-ms', '300'] }));
    const accounts = newAccounts(16);
    const pairs = Array.from({ length: 8 }, (_, i) => [accounts[2 * i]!, accounts[2 * i + 1]!] as [Account, Account]);
    const seqs = await traffic(cluster, pairs);
    type Dropped = ClusterStatus & { cluster: { keeps: number[]; dropped: { dropped: number; droppedRecords: number }; ownership: { claims: number } } };
    const before = await Promise.all(cluster.nodes.map((n) => getStatus<Dropped>(n)));
    await cluster.addNode();
    await cluster.ready(30_000);
    const placed = await Promise.all(cluster.nodes.map((n) => getStatus<Dropped>(n)));
    const movedToNew = placed[2]!.cluster.serving.filter((p) => before.some((b) => b.cluster.serving.includes(p)));
    expect(movedToNew.length, 'partitions the new node took over').to.be.greaterThan(0);
    const claims = placed.reduce((k, x) => k + x.cluster.ownership.claims, 0);
    // Each node they left drops them once the wait is over (counted from before the join: the first
    // two nodes' own hand-over at start was dropped already).
    const left = [0, 1].map((i) => placed[2]!.cluster.serving.filter((p) => before[i]!.cluster.serving.includes(p)).length);
    const droppedSince = async (): Promise<number[]> => (await Promise.all([0, 1].map((i) => getStatus<Dropped>(cluster.nodes[i]!))))
      .map((x, i) => x.cluster.dropped.dropped - before[i]!.cluster.dropped.dropped);
    let dropped = await droppedSince();
    for (let k = 0; k < 100 && dropped.some((d, i) => d < left[i]!); k++) {
      await new Promise((r) => setTimeout(r, 100));
      dropped = await droppedSince();
    }
    expect(dropped.every((d, i) => d >= left[i]!), `partitions dropped by each node they left: ${JSON.stringify(dropped)} of ${JSON.stringify(left)}`).to.equal(true);
    const st = await Promise.all(cluster.nodes.map((n) => getStatus<Dropped>(n)));
    // A partition that moved again meanwhile (a late heartbeat on a loaded machine) leaves a copy that is not dropped yet.
    const movedAgain = st.reduce((k, x) => k + x.cluster.ownership.claims, 0) !== claims;
    const serving = st.map((x) => x.cluster.serving);
    const dirs = cluster.nodes.map((n) => join(n.dataDir, `cluster-${cluster.name}`));
    await Promise.all(cluster.nodes.map((n) => n.kill('SIGKILL')));
    let total = 0;
    for (const [i, dir] of dirs.entries()) {
      const store = await openStore({ backend: 'lmdb', dir, fsync: 'off' });
      for (const [conv, offsets] of seqs) {
        const records = store.log.read({ conv, limit: 100, direction: 'forward' });
        if (serving[i]!.includes(convPartition(conv, PARTITIONS))) expect(records.map((r) => r.offset), `${conv} on node ${i}`).to.deep.equal(offsets);
        else if (!movedAgain) expect(records, `${conv} must not be on node ${i} any more`).to.deep.equal([]);
        total += records.length;
      }
      await store.close();
    }
    if (!movedAgain) expect(total, 'every message once in the cluster').to.equal(8 * 3);
    for (const n of cluster.nodes) n.removeData();
  });

  it('a node that takes a killed owner\'s partitions over fills them in: their history is complete on it', async () => {
    const cluster = use(await startCluster(2, { args: ['--partitions', String(PARTITIONS)] }));
    const accounts = newAccounts(16);
    const pairs = Array.from({ length: 8 }, (_, i) => [accounts[2 * i]!, accounts[2 * i + 1]!] as [Account, Account]);
    const seqs = await traffic(cluster, pairs);
    pool.closeAll();
    await cluster.nodes[1]!.kill('SIGKILL');
    await cluster.ready(30_000);
    const st = await getStatus<ClusterStatus>(cluster.nodes[0]!);
    expect(st.cluster.serving).to.have.length(PARTITIONS);
    for (const [i, [a, b]] of pairs.entries()) {
      const c = await device(pool, cluster.nodes[0]!.url, a, `h${i}`, false);
      const h = await ask(c, { cat: 'chat', act: 'history', with: b.address });
      const got = ((h.msg?.messages ?? []) as Array<{ seq: number }>).map((m) => m.seq);
      expect(got, `history of pair ${i}`).to.deep.equal(seqs.get(directConv(a.address, b.address)));
    }
    cluster.nodes[1]!.removeData();
  });
});
